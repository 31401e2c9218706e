#!/usr/bin/env bash
# Job runner of container_runner "podman" (the Snakefile makes this Snakemake's shell executable):
# Snakemake calls it as `podman_job.sh -c CMD` for every job, and it runs CMD as REANA's job
# controller runs a job: `bash -c CMD` in a fresh container of AGC_CONTAINER_IMAGE, the workspace
# (AGC_CONTAINER_WORKSPACE, the Snakemake working directory) bind-mounted at the same path as the
# working directory, no network, none of the host's environment (PATH, venv, Snakemake's
# OMP_NUM_THREADS and friends: REANA's job controller passes only the command and the image).
#
# PODMAN_RUNTIME (default runc: podman's default crun fails on hybrid cgroups) and PODMAN_ARGS (extra
# `podman run` options, e.g. more -v mounts for inputs outside the workspace) adjust it.
set -euo pipefail
if [ "${1:-}" != "-c" ] || [ $# -ne 2 ]; then
    echo "podman_job.sh: usage: podman_job.sh -c COMMAND (Snakemake's shell executable)" >&2
    exit 2
fi
image=${AGC_CONTAINER_IMAGE:?podman_job.sh: AGC_CONTAINER_IMAGE is not set (config container_image)}
image=${image#docker://}   # the same config value serves apptainer (docker://...) and local podman
ws=${AGC_CONTAINER_WORKSPACE:-$PWD}

# podman asks for rlimits above the caller's (nofile 1048576) unless told; without CAP_SYS_RESOURCE
# runc then fails ("error setting rlimit"). Keep the caller's, nproc at most pid_max.
nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi
ulimits=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")

# shellcheck disable=SC2086  # PODMAN_ARGS is a list of options
exec podman --runtime "${PODMAN_RUNTIME:-runc}" run --rm --network none "${ulimits[@]}" \
    -v "$ws:$ws" -w "$PWD" ${PODMAN_ARGS:-} "$image" \
    bash -c "set -euo pipefail; $2"
