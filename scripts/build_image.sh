#!/usr/bin/env bash
# Build the workflow's container image (envs/Containerfile) with podman and print its name.
#
#   scripts/build_image.sh                    # or: make image
#   BASE=python:3.11-slim scripts/build_image.sh   # with an image registry: the official base
#
# The tag is a hash of what goes into the image (Containerfile, envs/requirements.txt, pyproject.toml,
# the agc_ttbar sources), so an unchanged image is not rebuilt and a changed package never runs
# under an old tag. Without BASE, the base is made locally: a debootstrap'ed Debian bookworm
# (python3 3.11, python3-venv), tarred and `podman import`ed, for machines that reach Debian and
# PyPI but no image registry. The Python packages are built into a wheelhouse on the host with the
# host's pip (so torch==2.13.0 resolves as pip resolves it here: set PIP_EXTRA_INDEX_URL to
# https://download.pytorch.org/whl/cpu where pip would otherwise pick the CUDA build) and installed
# from it inside the build without network. Everything is cached in AGC_IMAGE_CACHE
# (default ~/.cache/agc-ttbar-image): the rootfs tarball, the wheelhouse; the image lives in
# podman's store.
#
# Environment: IMAGE (name, default localhost/agc-ttbar), BASE (base image; default: local bookworm),
# DEBIAN_MIRROR, AGC_IMAGE_CACHE, PODMAN_RUNTIME (default runc: crun fails on hybrid cgroups).
# Needs podman, runc, and (for the local base) debootstrap run as root:
#   apt-get install -y podman runc debootstrap
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/agc-ttbar}
CACHE=${AGC_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agc-ttbar-image}
RUNTIME=${PODMAN_RUNTIME:-runc}
PY=${PYTHON:-python3}
log() { echo "build_image: $*" >&2; }

for tool in podman "$RUNTIME"; do
    command -v "$tool" >/dev/null || { log "$tool not found: apt-get install -y podman runc debootstrap"; exit 1; }
done
mkdir -p "$CACHE"

# ---- The tag: a hash of every input of the image ----
key=$( { sha256sum envs/Containerfile envs/requirements.txt pyproject.toml;
         find agc_ttbar -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
             | xargs -0 sha256sum; echo "base=${BASE:-local-bookworm}"; } | sha256sum | cut -c1-16)
ref="$IMAGE:$key"
if podman image exists "$ref"; then
    log "cached: $ref"
    echo "$ref"
    exit 0
fi

# ---- The base image ----
if [ -n "${BASE:-}" ]; then
    base=$BASE
else
    base=localhost/agc-ttbar-base:bookworm
    if ! podman image exists "$base"; then
        rootfs_tar="$CACHE/bookworm-python3-rootfs.tar"
        if [ ! -s "$rootfs_tar" ]; then
            command -v debootstrap >/dev/null || { log "debootstrap not found: apt-get install -y debootstrap"; exit 1; }
            [ "$(id -u)" = 0 ] || { log "debootstrap needs root (or set BASE to a python:3.11 image)"; exit 1; }
            mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(.*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
            mirror=${mirror:-http://deb.debian.org/debian}
            root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
            trap 'rm -rf "$root"' EXIT
            log "debootstrap bookworm from $mirror (a few minutes, once)"
            debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
                || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
            rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
            tar -C "$root" --numeric-owner -cf "$rootfs_tar.tmp" .
            mv "$rootfs_tar.tmp" "$rootfs_tar"
            rm -rf "$root"
            trap - EXIT
        fi
        log "podman import $rootfs_tar"
        podman import --change 'CMD ["/bin/bash"]' "$rootfs_tar" "$base" >/dev/null
    fi
fi

# ---- The wheelhouse (host pip, the image's Python version) ----
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null \
    || { log "$PY is not Python 3.11 (the image's): set PYTHON"; exit 1; }
wheels="$CACHE/wheelhouse-$(cat envs/requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$wheels/.complete" ]; then
    log "pip wheel -r envs/requirements.txt -> $wheels"
    rm -rf "$wheels"
    "$PY" -m pip wheel -q --disable-pip-version-check -w "$wheels" -r envs/requirements.txt 'setuptools>=77' \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    if ! ls "$wheels"/torch-*+cpu-*.whl >/dev/null 2>&1; then
        log "pip chose a torch wheel that is not the CPU build: $(ls "$wheels"/torch-* 2>/dev/null)"
        log "set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu and rerun"
        rm -rf "$wheels"; exit 1
    fi
    touch "$wheels/.complete"
fi

# ---- The build: a small context (the package and the pins only) ----
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/envs"
cp envs/requirements.txt "$ctx/envs/"
cp pyproject.toml "$ctx/"
tar --exclude=__pycache__ --exclude='*.pyc' -cf - agc_ttbar | tar -C "$ctx" -xf -
log "podman build $ref (base $base)"
podman build --runtime "$RUNTIME" --network none --build-arg "BASE=$base" -v "$wheels:/wheels:ro" \
    -f envs/Containerfile -t "$ref" "$ctx" >&2
podman tag "$ref" "$IMAGE:latest"
# Keep the cache to the current build: older wheelhouses and older tags of this image (their
# layers shared with the new one stay; what only they used is freed).
find "$CACHE" -maxdepth 1 -name 'wheelhouse-*' ! -path "$wheels" -exec rm -rf {} +
podman images --format "{{.Repository}}:{{.Tag}}" "$IMAGE" | grep "^$IMAGE:" | grep -vxF -e "$ref" -e "$IMAGE:latest" \
    | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$ref"
