#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, to try `snakemake --profile workflow/profiles/slurm`
# and to run tests/test_slurm.py. Debian/Ubuntu only: it installs Debian's packages (slurmctld,
# slurmd, slurm-client, munge) with apt-get when they are missing. Run it as root (or with sudo).
#
#   workflow/profiles/slurm/local-cluster.sh start    # idempotent: does nothing when already up
#   workflow/profiles/slurm/local-cluster.sh status   # exit 0 when the cluster answers and its node is up
#   workflow/profiles/slurm/local-cluster.sh stop     # stops only the daemons this script started
#   eval "$(workflow/profiles/slurm/local-cluster.sh env)"   # SLURM_CONF for sbatch, squeue, snakemake
#   workflow/profiles/slurm/local-cluster.sh install  # only install the packages (CI does, see .ci/run)
#
# Everything lives in $TRACKRANK_SLURM_DIR (default ${TMPDIR:-/tmp}/trackrank-slurm): slurm.conf,
# gres.conf, a munge key and socket of its own, state, spool, logs and pid files. The only file
# written outside it is /etc/slurm/slurm.conf, a symlink to the generated config, made only when
# no slurm.conf exists there (so that plain `sbatch` finds the cluster) and removed by `stop`.
#
# The node advertises this machine's CPUs, a bit less than its memory, and one GPU (gres gpu:1
# backed by /dev/null, so GPU requests schedule as on a real cluster; jobs see
# CUDA_VISIBLE_DEVICES=0 and PyTorch falls back to the CPU). Partitions: `cpu` (default) and
# `gpu`, both on this node, as the profile's defaults expect. No accounting database: run
# snakemake with `--slurm-status-command squeue --slurm-no-account` (MinJobAge keeps finished
# jobs visible to squeue for an hour).
#
# Exit status: 0 done, 1 failed, 2 usage, 3 the Debian packages are missing and cannot be installed.
# Environment: TRACKRANK_SLURM_DIR, TRACKRANK_SLURM_CTLD_PORT (6817), TRACKRANK_SLURM_D_PORT (6818),
# TRACKRANK_SLURM_PURGE_STATE=1 (start from an empty job state).
set -euo pipefail

STATE=${TRACKRANK_SLURM_DIR:-${TMPDIR:-/tmp}/trackrank-slurm}
CONF="$STATE/etc/slurm.conf"
CTLD_PORT=${TRACKRANK_SLURM_CTLD_PORT:-6817}
D_PORT=${TRACKRANK_SLURM_D_PORT:-6818}
PACKAGES=(slurmctld slurmd slurm-client munge)
ETC_CONF=/etc/slurm/slurm.conf
export SLURM_CONF="$CONF"
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons, for users whose PATH lacks sbin

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            exec sudo -n -E TMPDIR="${TMPDIR:-/tmp}" bash "$0" "$@"
        fi
        if [ "$1" != stop ] && ! have_binaries; then
            say "Slurm is not installed and installing it needs root (or password-less sudo)"
            exit 3
        fi
        die "must run as root or with password-less sudo (slurmd launches the jobs)"
    fi
}

# --- packages ----------------------------------------------------------------------------------

have_binaries() {
    local bin
    for bin in slurmctld slurmd sbatch squeue srun scontrol sinfo munged munge unmunge; do
        command -v "$bin" >/dev/null 2>&1 || return 1
    done
}

install_packages() {
    have_binaries && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "Slurm is not installed and apt-get is not available: install ${PACKAGES[*]} yourself"
        exit 3
    fi
    say "installing ${PACKAGES[*]} with apt-get"
    # Keep the packages' init scripts from starting system-wide daemons: this script runs its own.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    local ok=1
    if ! apt-get update -qq >"$STATE/apt.log" 2>&1; then
        ok=0
    elif ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${PACKAGES[@]}" >>"$STATE/apt.log" 2>&1; then
        ok=0
    fi
    [ "$made_policy" = 1 ] && rm -f "$policy"
    if [ "$ok" = 0 ] || ! have_binaries; then
        tail -n 20 "$STATE/apt.log" >&2 || true
        say "cannot install the Debian packages ${PACKAGES[*]} (log: $STATE/apt.log)"
        exit 3
    fi
}

# --- pid files ---------------------------------------------------------------------------------

# pid_of NAME: the pid recorded for daemon NAME when that process is alive and is NAME, else nothing.
pid_of() {
    local name=$1 file="$STATE/run/$1.pid" pid
    [ -s "$file" ] || return 0
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 0
    [ "$(cat "/proc/$pid/comm")" = "$name" ] && echo "$pid"
    return 0
}

running() { [ -n "$(pid_of "$1")" ]; }

wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --- configuration -----------------------------------------------------------------------------

node_name() { hostname -s; }

write_config() {
    local host cpus topo mem_mb real_mem
    host=$(node_name)
    # `slurmd -C` prints this machine's node line (CPUs, sockets, cores, threads, memory).
    topo=$(slurmd -C 2>/dev/null | head -n 1 | tr ' ' '\n' \
        | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ' || true)
    cpus=$(nproc)
    [ -n "$topo" ] || topo="CPUs=$cpus"
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # A bit under the machine's memory: slurmd drains a node that reports less than RealMemory.
    real_mem=$((mem_mb - mem_mb / 20))
    mkdir -p "$STATE/etc" "$STATE/ctld" "$STATE/spool" "$STATE/log" "$STATE/run"
    cat >"$CONF.new" <<EOF
# Generated by workflow/profiles/slurm/local-cluster.sh: a one-node cluster on $host.
ClusterName=trackrank
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups, no accounting: works in containers and VMs without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue (the status command here) and scontrol for an hour.
MinJobAge=3600
SlurmdTimeout=300
InactiveLimit=0
KillWait=10
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 ${topo}RealMemory=$real_mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
    mv "$CONF.new" "$CONF"
    # A GPU without a device: File=/dev/null. Slurm sets CUDA_VISIBLE_DEVICES for the job all the same.
    echo "NodeName=$host Name=gpu File=/dev/null" >"$STATE/etc/gres.conf"
}

# --- munge -------------------------------------------------------------------------------------

munge_works() {
    munge -n --socket="$STATE/munge/munge.socket" | unmunge --socket="$STATE/munge/munge.socket" >/dev/null 2>&1
}

start_munged() {
    local dir="$STATE/munge"
    id munge >/dev/null 2>&1 || die "no 'munge' user: is the munge package installed?"
    mkdir -p "$dir"
    chown munge:munge "$dir"
    chmod 0755 "$dir"  # munged: the socket folder must be searchable by all
    if [ -n "$(pid_of munged)" ] && munge_works; then
        return 0
    fi
    # A key of its own (the system's /etc/munge/munge.key stays untouched).
    if [ ! -s "$dir/munge.key" ]; then
        dd if=/dev/urandom bs=1 count=1024 of="$dir/munge.key" status=none
    fi
    chown munge:munge "$dir/munge.key"
    chmod 0400 "$dir/munge.key"
    rm -f "$dir/munge.socket" "$dir/munge.socket.lock"
    # munged refuses to run as root with a key owned by munge: run it as the munge user.
    runuser -u munge -- munged \
        --key-file="$dir/munge.key" \
        --socket="$dir/munge.socket" \
        --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" \
        --seed-file="$dir/munged.seed" 9>&- \
        || die "munged failed to start (log: $dir/munged.log)"
    wait_for 10 test -s "$dir/munged.pid" || die "munged wrote no pid file (log: $dir/munged.log)"
    cp "$dir/munged.pid" "$STATE/run/munged.pid"
    wait_for 10 munge_works || die "munge does not answer on $dir/munge.socket (log: $dir/munged.log)"
}

# --- slurm -------------------------------------------------------------------------------------

node_up() {
    local state
    state=$(sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n 1)
    case "$state" in
        idle*|mixed*|allocated*|completing*) return 0 ;;
        *) return 1 ;;
    esac
}

link_etc_conf() {
    if [ ! -e "$ETC_CONF" ] && [ ! -L "$ETC_CONF" ]; then
        mkdir -p "$(dirname "$ETC_CONF")"
        ln -s "$CONF" "$ETC_CONF"
        echo "$ETC_CONF" >"$STATE/run/etc-link"
    fi
}

unlink_etc_conf() {
    if [ -f "$STATE/run/etc-link" ]; then
        if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then
            rm -f "$ETC_CONF"
        fi
        rm -f "$STATE/run/etc-link"
    fi
}

lock() {  # one start or stop at a time (two test sessions may start the cluster together)
    exec 9>"$STATE/lock"
    flock -w 300 9 || die "$STATE/lock is held by another start or stop"
}
# The daemons are started with `9>&-`: one that inherited the lock would hold it for good.

cmd_start() {
    need_root start
    mkdir -p "$STATE"
    chmod 0755 "$STATE"
    lock
    if [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ] && [ -n "$(pid_of munged)" ] && node_up; then
        say "already running (state: $STATE)"
        cmd_env
        return 0
    fi
    install_packages
    if [ -z "$(pid_of slurmctld)" ] && port_in_use "$CTLD_PORT"; then
        die "port $CTLD_PORT is taken (another slurmctld?); set TRACKRANK_SLURM_CTLD_PORT"
    fi
    if [ -z "$(pid_of slurmd)" ] && port_in_use "$D_PORT"; then
        die "port $D_PORT is taken (another slurmd?); set TRACKRANK_SLURM_D_PORT"
    fi
    write_config
    if [ "${TRACKRANK_SLURM_PURGE_STATE:-0}" = 1 ] && [ -z "$(pid_of slurmctld)" ]; then
        rm -rf "${STATE:?}/ctld" && mkdir -p "$STATE/ctld"
    fi
    start_munged
    if [ -z "$(pid_of slurmctld)" ]; then
        slurmctld -f "$CONF" 9>&- || die "slurmctld failed (log: $STATE/log/slurmctld.log)"
        wait_for 30 running slurmctld || die "slurmctld did not stay up (log: $STATE/log/slurmctld.log)"
    else
        scontrol reconfigure >/dev/null 2>&1 9>&- || true
    fi
    wait_for 30 scontrol ping || die "slurmctld does not answer (log: $STATE/log/slurmctld.log)"
    if [ -z "$(pid_of slurmd)" ]; then
        slurmd -f "$CONF" -N "$(node_name)" 9>&- || die "slurmd failed (log: $STATE/log/slurmd.log)"
        wait_for 30 running slurmd || die "slurmd did not stay up (log: $STATE/log/slurmd.log)"
    fi
    if ! wait_for 30 node_up; then
        # A node left down or drained by an earlier run of the same state folder.
        scontrol update NodeName="$(node_name)" State=RESUME >/dev/null 2>&1 || true
        wait_for 30 node_up || {
            sinfo -N -l >&2 || true
            die "node $(node_name) is not up (logs: $STATE/log/)"
        }
    fi
    link_etc_conf
    say "running: $(sinfo -h -N -o '%N %c CPUs, %m MB, gres %G, %T' | head -n 1) (state: $STATE)"
    cmd_env
}

stop_daemon() {
    local name=$1 pid
    pid=$(pid_of "$name")
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 30 test ! -e "/proc/$pid"; then
            say "$name ($pid) ignores SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $name ($pid)"
    fi
    rm -f "$STATE/run/$name.pid"
}

cmd_stop() {
    need_root stop
    [ -d "$STATE" ] || { say "not running (no $STATE)"; return 0; }
    lock
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    unlink_etc_conf
}

cmd_status() {
    local rc=0 name pid
    for name in munged slurmctld slurmd; do
        pid=$(pid_of "$name")
        if [ -n "$pid" ]; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running"
            rc=1
        fi
    done
    if [ "$rc" = 0 ] && node_up; then
        sinfo -N -o '%N %P %c %m %G %T'
        echo "SLURM_CONF=$CONF"
    else
        rc=1
    fi
    return "$rc"
}

cmd_env() {
    echo "export SLURM_CONF=$CONF"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    install) need_root install; mkdir -p "$STATE"; install_packages ;;
    *) echo "usage: $0 start|stop|status|env|install" >&2; exit 2 ;;
esac
