#!/usr/bin/env bash
# A real single-machine HTCondor pool for tests and demos, without systemd: Debian trixie's
# `minicondor` inside a debootstrap chroot, started as root.
#
#   scripts/htcondor_pool.sh setup      # build/refresh the cached chroot (idempotent)
#   scripts/htcondor_pool.sh start      # setup + mounts + condor_master, wait for a slot, token
#   scripts/htcondor_pool.sh run DIR -- CMD...   # run CMD as the submit user in DIR, in the chroot
#   scripts/htcondor_pool.sh root -- CMD...      # run CMD as root in the chroot (condor_history ...)
#   scripts/htcondor_pool.sh status     # condor_status / condor_q of the running pool
#   scripts/htcondor_pool.sh stop       # condor_off, stop leftover daemons, unmount everything
#   scripts/htcondor_pool.sh destroy    # stop, then delete the chroot
#
# Jobs run the submitting Python (`sys.executable`), so the repository, the Python environment
# (venv and its base interpreter) and anything in AGC_CONDOR_BINDS are bind-mounted into the chroot
# at the same path. Snakemake submits from inside the chroot (`run`), where the schedd lives.
#
# Environment:
#   AGC_CONDOR_ROOT    chroot folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/agc-htcondor/trixie)
#   AGC_CONDOR_MIRROR  Debian mirror (default: the first Debian URI of this machine's apt sources)
#   AGC_CONDOR_USER    unprivileged submit user created in the chroot (default: agcsubmit)
#   AGC_CONDOR_PYTHON  Python whose environment jobs use (default: <repo>/.venv/bin/python, else python3)
#   AGC_CONDOR_BINDS   extra host paths to bind at the same path, colon-separated
#   AGC_CONDOR_PASSENV extra variables `run` passes into the chroot, space-separated
#                      (PATH, HOME, USER, LANG and TMPDIR are always set)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
ROOT="${AGC_CONDOR_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/agc-htcondor/trixie}"
SUBMIT_USER="${AGC_CONDOR_USER:-agcsubmit}"
SUITE=trixie
# Runtime libraries of a CPython build and of the wheels in the venv that are not in minbase.
CHROOT_PACKAGES="minicondor procps ca-certificates libstdc++6 zlib1g libssl3t64 libsqlite3-0 libffi8
  libbz2-1.0 liblzma5 libreadline8t64 libncursesw6 libuuid1 libgomp1 libexpat1 libtirpc3t64 libnsl2
  libgdbm6t64 libcrypt1"
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# `run` hands the caller's PATH to the submitting process; the script itself needs the sbin tools.
CALLER_PATH="${PATH:-$CLEAN_PATH}"
export PATH="$CLEAN_PATH:${PATH:-}"

log() { printf '[htcondor_pool] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# One setup/start at a time (parallel test sessions share the cached chroot).
take_lock() { mkdir -p "$(dirname "$ROOT")"; exec 9>"$(dirname "$ROOT")/.lock"; flock 9; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (chroot, mounts, condor daemons)"; }

default_python() {
    if [ -n "${AGC_CONDOR_PYTHON:-}" ]; then echo "$AGC_CONDOR_PYTHON"
    elif [ -x "$REPO/.venv/bin/python" ]; then echo "$REPO/.venv/bin/python"
    else command -v python3; fi
}

debian_mirror() {
    if [ -n "${AGC_CONDOR_MIRROR:-}" ]; then echo "$AGC_CONDOR_MIRROR"; return; fi
    local uri
    uri=$( { grep -hs -E '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
               | awk '{for (i = 2; i <= NF; i++) print $i}';
             grep -hs -E '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
               | sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } \
           | grep -E '/debian/?$' | grep -v -E 'security|debug' | head -n1 || true)
    [ -n "$uri" ] || die "no Debian mirror in /etc/apt/sources*; set AGC_CONDOR_MIRROR"
    echo "${uri%/}"
}

# Mount points under ROOT, deepest first.
mounts_under_root() {
    awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r
}

# --- setup -------------------------------------------------------------------------------------
do_setup() {
    need_root
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
        } || die "cannot install debootstrap"
    }
    mkdir -p "$(dirname "$ROOT")"
    if [ ! -e "$ROOT/.agc-debootstrap-done" ]; then
        [ -z "$(mounts_under_root)" ] || die "$ROOT has mounts but no finished debootstrap; run stop"
        rm -rf "$ROOT"
        local mirror t0=$SECONDS
        mirror=$(debian_mirror)
        log "debootstrap $SUITE from $mirror into $ROOT"
        debootstrap --variant=minbase "$SUITE" "$ROOT" "$mirror" > "$(dirname "$ROOT")/debootstrap.log" 2>&1 \
            || die "debootstrap failed, see $(dirname "$ROOT")/debootstrap.log"
        touch "$ROOT/.agc-debootstrap-done"
        log "debootstrap took $((SECONDS - t0)) s"
    fi
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    cp -L /etc/hosts "$ROOT/etc/hosts"
    local want
    want=$(echo $CHROOT_PACKAGES | tr ' ' '\n' | sort | tr '\n' ' ')
    if [ "$(cat "$ROOT/.agc-packages-done" 2>/dev/null)" != "$want" ]; then
        local t0=$SECONDS
        mount_system
        log "installing $want"
        chroot "$ROOT" env -i PATH=$CLEAN_PATH DEBIAN_FRONTEND=noninteractive \
            sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $want" \
            > "$(dirname "$ROOT")/apt.log" 2>&1 || die "apt-get in the chroot failed, see $(dirname "$ROOT")/apt.log"
        chroot "$ROOT" apt-get clean
        echo "$want" > "$ROOT/.agc-packages-done"
        log "package install took $((SECONDS - t0)) s"
    fi
    configure_condor
}

configure_condor() {
    # Inside the chroot: /var/run and /var/lock are absolute symlinks that must not resolve on the host.
    chroot "$ROOT" install -d -o condor -g condor /var/run/condor /var/log/condor /var/lock/condor \
        /var/spool/condor /var/lib/condor/execute
    cat > "$ROOT/etc/condor/condor_config.local" <<'EOF'
# Written by scripts/htcondor_pool.sh: minicondor in a chroot, no systemd, no namespaces.
MOUNT_UNDER_SCRATCH =
USE_PID_NAMESPACES = False
ENABLE_IPV6 = False
# A test pool: match and start jobs quickly.
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
UPDATE_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
SHADOW_QUEUE_UPDATE_INTERVAL = 5
# Keep claims so consecutive jobs of a user start without a new negotiation cycle.
CLAIM_WORKLIFE = 600
# Keep every finished job in the history (condor_history is part of the checks).
MAX_HISTORY_LOG = 100000000
EOF
    if ! chroot "$ROOT" id -u "$SUBMIT_USER" >/dev/null 2>&1; then
        chroot "$ROOT" useradd --create-home --shell /bin/bash "$SUBMIT_USER"
    fi
}

# --- mounts ------------------------------------------------------------------------------------
is_mounted() { awk -v p="$1" '$2 == p {f = 1} END {exit !f}' /proc/self/mounts; }

mount_system() {
    is_mounted "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    local d
    for d in sys dev; do
        if ! is_mounted "$ROOT/$d"; then
            mount --rbind "/$d" "$ROOT/$d"
            mount --make-rslave "$ROOT/$d"   # unmounting here never propagates to the host
        fi
    done
}

# Host paths that must exist at the same path inside the chroot.
bind_paths() {
    local py
    py=$(default_python)
    [ -x "$py" ] || command -v "$py" >/dev/null || die "python $py not found"
    {
        echo "$REPO"
        "$py" -c 'import os, sys
print(sys.prefix); print(sys.base_prefix)
print(os.path.dirname(os.path.realpath(sys.executable)))'
        [ -z "${AGC_CONDOR_BINDS:-}" ] || echo "$AGC_CONDOR_BINDS" | tr ':' '\n'
    } | while read -r p; do
        [ -n "$p" ] && [ -d "$p" ] && (cd "$p" && pwd -P)
    done | sort -u | awk '
        # drop paths inside another bound path
        { for (i = 1; i <= n; i++) if (index($0, kept[i] "/") == 1) next; kept[++n] = $0; print }'
}

mount_binds() {
    local p rel parent
    while read -r p; do
        case "$p" in /|/proc*|/sys*|/dev*|/etc*|/usr*|/var*|/bin*|/lib*|/sbin*)
            die "refusing to bind system path $p into the chroot (jobs need a Python outside /usr:" \
                "a venv of a pyenv/conda/python.org interpreter; set AGC_CONDOR_PYTHON)";;
        esac
        if ! is_mounted "$ROOT$p"; then
            mkdir -p "$ROOT$p"
            mount --bind "$p" "$ROOT$p"
            mount --make-private "$ROOT$p"
        fi
        # The chroot's own ancestors of a bound path (e.g. /root) must be traversable by the user.
        rel="$p"
        while parent=$(dirname "$rel") && [ "$parent" != "/" ]; do
            chmod o+x "$ROOT$parent"; rel="$parent"
        done
    done < <(bind_paths)
}

# --- daemons -----------------------------------------------------------------------------------
in_root() { chroot "$ROOT" env -i PATH=$CLEAN_PATH HOME=/root LANG=C.UTF-8 "$@"; }

chroot_pids() {
    # Processes whose root directory is the chroot: the condor daemons and their jobs.
    local pid link rootreal
    rootreal=$(cd "$ROOT" && pwd -P)
    for link in /proc/[0-9]*/root; do
        pid=${link#/proc/}; pid=${pid%/root}
        [ "$(readlink "$link" 2>/dev/null)" = "$rootreal" ] && echo "$pid"
    done
    return 0
}

master_running() {
    local pid
    for pid in $(chroot_pids); do
        [ "$(cat /proc/$pid/comm 2>/dev/null)" = condor_master ] && return 0
    done
    return 1
}

do_start() {
    need_root
    local t0=$SECONDS
    take_lock
    do_setup
    mount_system
    mount_binds
    cp -L /etc/hosts "$ROOT/etc/hosts"
    if ! master_running; then
        log "starting condor_master"
        # Daemons must not inherit the lock (fd 9) or the caller's stdout/stderr pipes.
        in_root condor_master </dev/null >/dev/null 2>&1 9>&-
    fi
    local i slots=""
    for i in $(seq 1 120); do
        slots=$(in_root condor_status -af Name 2>/dev/null || true)
        if [ -n "$slots" ] && in_root condor_q -totals >/dev/null 2>&1; then break; fi
        slots=""; sleep 1
    done
    [ -n "$slots" ] || die "no slot after 120 s; logs: $ROOT/var/log/condor"
    # IDTOKEN for the submit user (the Python bindings need one); the signing key exists now.
    local home tokdir host
    home=$(in_root sh -c "getent passwd $SUBMIT_USER | cut -d: -f6")
    host=$(in_root condor_config_val FULL_HOSTNAME)
    tokdir="$ROOT$home/.condor/tokens.d"
    if [ ! -s "$tokdir/agc-$host" ]; then   # one token per host name (a cached chroot may move)
        mkdir -p "$tokdir"
        rm -f "$tokdir"/agc*
        in_root condor_token_create -identity "$SUBMIT_USER@$host" > "$tokdir/agc.tmp"
        mv "$tokdir/agc.tmp" "$tokdir/agc-$host"
        in_root chown -R "$SUBMIT_USER:$SUBMIT_USER" "$home/.condor"
        chmod 700 "$tokdir"; chmod 600 "$tokdir/agc-$host"
    fi
    log "pool up in $((SECONDS - t0)) s: $(echo $slots)"
}

do_stop() {
    need_root
    [ -d "$ROOT" ] || { log "no chroot at $ROOT"; return 0; }
    if master_running; then
        log "condor_off -master"
        in_root condor_off -master >/dev/null 2>&1 || true
        local i
        for i in $(seq 1 30); do master_running || break; sleep 1; done
    fi
    local pids
    pids=$(chroot_pids)
    if [ -n "$pids" ]; then
        log "terminating leftover chroot processes: $(echo $pids)"
        kill $pids 2>/dev/null || true
        sleep 2
        pids=$(chroot_pids)
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    fi
    local m
    for m in $(mounts_under_root); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    [ -z "$(mounts_under_root)" ] || die "mounts left under $ROOT: $(mounts_under_root | tr '\n' ' ')"
    log "stopped"
}

do_destroy() {
    do_stop
    log "removing $ROOT"
    rm -rf --one-file-system "$ROOT"
}

# run DIR -- CMD: CMD as the submit user in DIR (a path inside the chroot).
do_run() {
    need_root
    local dir="$1"; shift
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: run DIR -- CMD..."
    master_running || die "pool not running; start it first"
    local home envs=() v
    home=$(in_root sh -c "getent passwd $SUBMIT_USER | cut -d: -f6")
    for v in ${AGC_CONDOR_PASSENV:-}; do
        [ -n "${!v+x}" ] && envs+=("$v=${!v}")
    done
    chroot --userspec="$SUBMIT_USER:$SUBMIT_USER" "$ROOT" env -i \
        PATH="$CALLER_PATH" HOME="$home" USER="$SUBMIT_USER" LOGNAME="$SUBMIT_USER" \
        LANG=C.UTF-8 TMPDIR=/tmp "${envs[@]}" \
        sh -c 'cd "$0" && exec "$@"' "$dir" "$@"
}

do_root() {
    need_root
    [ "${1:-}" = "--" ] && shift
    in_root "$@"
}

do_status() {
    if master_running; then
        in_root condor_status
        in_root condor_q -totals
    else
        log "not running (chroot: $ROOT)"; return 3
    fi
}

cmd="${1:-}"; [ $# -gt 0 ] && shift
case "$cmd" in
    setup) need_root; take_lock; do_setup ;;
    start) do_start ;;
    stop) do_stop ;;
    destroy) do_destroy ;;
    run) do_run "$@" ;;
    root) do_root "$@" ;;
    status) do_status ;;
    root-path) echo "$ROOT" ;;
    user) echo "$SUBMIT_USER" ;;
    *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
esac
