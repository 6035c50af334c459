#!/usr/bin/env bash
# A real two-node Slurm cluster on this one machine, for toolship's Slurm
# backend tests and benchmarks.
#
#   scripts/slurm-cluster.sh start    install (apt) if needed, write the config,
#                                     start munged + slurmctld + slurmd node1/node2,
#                                     wait until both nodes are up
#   scripts/slurm-cluster.sh stop     cancel all jobs, stop the daemons started
#                                     here (by pid file), leave no daemon behind
#   scripts/slurm-cluster.sh status   print sinfo (exit 0) or "not running" (exit 1)
#
# Everything lives under ${TOOLSHIP_SLURM_DIR:-/tmp/toolship-slurm}: slurm.conf,
# gres.conf, munge key/socket, state, spool, logs and pid files. Nothing is written to
# /etc/slurm or /etc/munge: Debian's slurm 22.05 daemons and clients honour
# SLURM_CONF, and munged runs with its own key, socket, pid and log file (so it
# neither needs nor disturbs a system munged on /run/munge).
#
# The script exports nothing. Callers set SLURM_CONF themselves:
#     export SLURM_CONF=/tmp/toolship-slurm/slurm.conf
# `start` prints that line and also writes it to ${TOOLSHIP_SLURM_DIR}/env
# (so `. /tmp/toolship-slurm/env` works).
#
# GPUs: node1 has two fake GPUs (gres/gpu, `Gres=gpu:2`), so Slurm allots devices
# to `--gres=gpu:N` jobs and sets SLURM_JOB_GPUS / CUDA_VISIBLE_DEVICES as on a real
# GPU node. Their device files are character devices made here ($DIR/gpu/nvidia0,
# nvidia1, with the null device's numbers), never /dev/nvidia*: nothing else on the
# host mistakes them for GPUs, and no container is given them. node2 has none: a
# GPU job always lands on node1.
#
# Stdout of `start` is exactly two lines:
#     slurm ready: 2 nodes (node1,node2), partition debug
#     export SLURM_CONF=...
# progress goes to stderr.
#
# Needs root (SlurmUser=root, slurmd must run as root). Idempotent: when the
# cluster already runs, `start` only checks it (well under a second); daemons
# that died are started again; a changed slurm.conf restarts the cluster.
# `stop` then `start` keeps slurmctld's state (job ids keep counting); remove
# the directory for a clean slate.
#
# Environment knobs (all optional):
#   TOOLSHIP_SLURM_DIR        directory for everything       (/tmp/toolship-slurm)
#   TOOLSHIP_SLURM_CTLD_PORT  slurmctld port                 (17000)
#   TOOLSHIP_SLURMD_PORTS     slurmd ports of node1-node2    (17001-17002)
#   TOOLSHIP_SLURM_CPUS       CPUs per node                  (2)
#   TOOLSHIP_SLURM_MEM        RealMemory per node, MB        (4000, capped below slurmd -C / 2)
#   TOOLSHIP_SLURM_TIMEOUT    seconds to wait for readiness  (60)
set -euo pipefail

DIR="${TOOLSHIP_SLURM_DIR:-/tmp/toolship-slurm}"
CONF="$DIR/slurm.conf"
GRES_CONF="$DIR/gres.conf"   # slurmd reads gres.conf beside slurm.conf
GPU_DIR="$DIR/gpu"
CTLD_PORT="${TOOLSHIP_SLURM_CTLD_PORT:-17000}"
SLURMD_PORTS="${TOOLSHIP_SLURMD_PORTS:-17001-17002}"
CPUS="${TOOLSHIP_SLURM_CPUS:-2}"
WANT_MEM="${TOOLSHIP_SLURM_MEM:-4000}"
TIMEOUT="${TOOLSHIP_SLURM_TIMEOUT:-60}"
NODES=(node1 node2)

MUNGE_DIR="$DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
MUNGE_KEY="$MUNGE_DIR/munge.key"
MUNGE_PID="$DIR/run/munged.pid"
CTLD_PID="$DIR/run/slurmctld.pid"
slurmd_pid() { printf '%s/run/slurmd-%s.pid' "$DIR" "$1"; }

PKGS=(slurm-wlm munge)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
# For this script's own slurm commands only; the caller's environment is untouched.
export SLURM_CONF="$CONF"

log() { printf 'slurm-cluster: %s\n' "$*" >&2; }
die() { printf 'slurm-cluster: ERROR: %s\n' "$*" >&2; exit 1; }

# pid_alive PID NAME: true if PID is a live (not zombie) process whose command
# is NAME. (PID 1 of these VMs reaps orphans lazily, so zombies linger.)
pid_alive() {
    local stat
    [ -n "$1" ] || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    # /proc/PID/stat: "PID (comm) STATE ..."
    [ "${stat#* (}" != "$stat" ] || return 1
    case "${stat#*) }" in Z*|X*) return 1 ;; esac
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
pid_of() { [ -s "$1" ] && tr -dc 0-9 <"$1" 2>/dev/null; }
# alive PIDFILE NAME: true if PIDFILE names a live process whose command is NAME.
alive() { pid_alive "$(pid_of "$1" || true)" "$2"; }

show_logs() {
    local f
    for f in "$DIR"/log/munged.log "$DIR"/log/slurmctld.log "$DIR"/log/slurmd-node1.log "$DIR"/log/slurmd-node2.log; do
        [ -e "$f" ] || continue
        printf '\n===== tail -n 25 %s =====\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
}
fail() { printf 'slurm-cluster: ERROR: %s\n' "$*" >&2; show_logs; exit 1; }

# --- install -----------------------------------------------------------------
ensure_packages() {
    local missing=() cmd
    for cmd in slurmctld slurmd sinfo sbatch srun scontrol munged mungekey; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "missing: ${missing[*]}; installing ${PKGS[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian only"
    apt-get update -q >&2
    # The packages' postinst tries to start the system services; there is no
    # /etc/slurm/slurm.conf, so the slurm units stay down (ConditionPathExists).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" >&2
    for cmd in slurmctld slurmd sinfo sbatch srun scontrol munged; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after apt-get install ${PKGS[*]}"
    done
}

# --- config ------------------------------------------------------------------
node_mem() {
    # Both slurmd share this host; keep each node's RealMemory below half of
    # what `slurmd -C` detects, and at most $WANT_MEM.
    local detected half
    detected="$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)"
    [ -n "$detected" ] || detected="$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
    half=$(( detected / 2 - 256 ))
    if [ "$WANT_MEM" -lt "$half" ]; then echo "$WANT_MEM"; else echo "$half"; fi
}

write_conf() {   # writes $1
    local host mem port1 port2
    host="$(hostname -s)"
    mem="$(node_mem)"
    port1="${SLURMD_PORTS%-*}"
    port2="${SLURMD_PORTS#*-}"
    [ "$port2" != "$SLURMD_PORTS" ] || port2=$(( port1 + 1 ))
    [ "$mem" -ge 1000 ] || die "too little memory for two 1 GB nodes (per-node RealMemory would be $mem MB)"
    cat >"$1" <<EOF
# Written by toolship scripts/slurm-cluster.sh -- regenerated on every start.
# One slurmctld and two slurmd (node1, node2) on this host ($host).
ClusterName=toolship
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET

StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# Empty: keep the system's /etc/slurm/plugstack.conf.d out of this cluster.
PlugStackConfig=$DIR/plugstack.conf

ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
# Both nodes share this host's hardware: trust the node lines below.
SlurmdParameters=config_overrides

SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default every job would get a whole node's memory.
DefMemPerCPU=500

# Fast turnaround for many small jobs: schedule at submit/finish time without
# delay, run the full queue every 5 s, backfill every second.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=5,default_queue_depth=1000,bf_interval=1,bf_continue
PriorityType=priority/basic

# No accounting daemon: sacct does not work. Finished jobs stay visible to
# squeue/scontrol for MinJobAge seconds; their exit codes also go to JobCompLoc.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=300

# Notice a dead slurmd quickly: pinged every SlurmdTimeout/3 s, DOWN after
# SlurmdTimeout s without answer; its jobs then end as NODE_FAIL (no requeue).
SlurmdTimeout=10
MessageTimeout=5
TCPTimeout=2
SlurmctldTimeout=30
KillWait=5
UnkillableStepTimeout=30
# toolship's node epilog: removes the containers of a job whose worker was killed
# before it could (a copy of scripts/slurm-epilog.sh, refreshed on every start).
Epilog=$DIR/slurm-epilog.sh
InactiveLimit=0
JobRequeue=0
# A node that comes back (slurmd restarted) returns to service by itself.
ReturnToService=2

# node1 has two (fake) GPUs, node2 none: see gres.conf.
GresTypes=gpu
NodeName=node1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$port1 CPUs=$CPUS RealMemory=$mem Gres=gpu:2 State=UNKNOWN
NodeName=node2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$port2 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP
EOF
}

write_gres_conf() {   # writes $1
    cat >"$1" <<EOF
# Written by toolship scripts/slurm-cluster.sh -- regenerated on every start.
# Two fake GPUs on node1: character devices made by this script (not /dev/nvidia*).
AutoDetect=off
NodeName=node1 Name=gpu File=$GPU_DIR/nvidia[0-1]
EOF
}

# make_gpu_nodes: the fake GPUs' device files (slurmd wants character devices).
make_gpu_nodes() {
    local i
    mkdir -p "$GPU_DIR"
    for i in 0 1; do
        [ -c "$GPU_DIR/nvidia$i" ] && continue
        rm -f "$GPU_DIR/nvidia$i"
        mknod -m 0666 "$GPU_DIR/nvidia$i" c 1 3 || die "mknod $GPU_DIR/nvidia$i failed"
    done
}

# --- daemons -------------------------------------------------------------------
start_munged() {
    alive "$MUNGE_PID" munged && return 0
    if [ ! -s "$MUNGE_KEY" ]; then
        log "generating munge key $MUNGE_KEY"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    chmod 0400 "$MUNGE_KEY"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    log "starting munged"
    munged --force --key-file="$MUNGE_KEY" --socket="$MUNGE_SOCKET" \
        --pid-file="$MUNGE_PID" --log-file="$DIR/log/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" || fail "munged failed to start"
    local i
    for i in $(seq 50); do
        [ -S "$MUNGE_SOCKET" ] && alive "$MUNGE_PID" munged && return 0
        sleep 0.1
    done
    fail "munged did not come up (no socket $MUNGE_SOCKET)"
}

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
    if alive "$CTLD_PID" slurmctld; then return 0; fi
    log "starting slurmctld"
    slurmctld -f "$CONF" || fail "slurmctld failed to start"
    local i
    for i in $(seq 100); do
        ctld_up && return 0
        alive "$CTLD_PID" slurmctld || [ "$i" -lt 20 ] || fail "slurmctld exited"
        sleep 0.2
    done
    fail "slurmctld not answering 'scontrol ping' after 20 s"
}

start_slurmd() {
    local n="$1"
    alive "$(slurmd_pid "$n")" slurmd && return 0
    log "starting slurmd -N $n"
    slurmd -f "$CONF" -N "$n" || fail "slurmd -N $n failed to start"
}

# nodes_up: both nodes in a state that runs jobs (idle, or busy with jobs).
nodes_up() {
    local states
    states="$(sinfo -h -N -p debug -o '%N %t' 2>/dev/null | sort -u)" || return 1
    [ "$(printf '%s\n' "$states" | grep -cE '^node[12] (idle|mix|alloc|comp)$')" -eq 2 ]
}

wait_ready() {
    local start=$SECONDS deadline=$(( SECONDS + TIMEOUT )) resumed=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        nodes_up && return 0
        # A daemon that died (bad config, port taken) fails fast; allow a
        # daemonizing slurmd 3 s to write its pid file.
        if [ $(( SECONDS - start )) -ge 3 ]; then
            for n in "${NODES[@]}"; do
                alive "$(slurmd_pid "$n")" slurmd || fail "slurmd -N $n is not running"
            done
            alive "$CTLD_PID" slurmctld || fail "slurmctld is not running"
        fi
        # A node left DRAIN from an earlier run does not come back by itself.
        if [ "$resumed" -eq 0 ] && sinfo -h -N -o '%t' 2>/dev/null | grep -q 'drain\|drng'; then
            scontrol update NodeName=node[1-2] State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi
        sleep 0.3
    done
    sinfo -N -l >&2 || true
    fail "nodes not up after ${TIMEOUT} s"
}

running_any() {
    alive "$MUNGE_PID" munged || alive "$CTLD_PID" slurmctld ||
        alive "$(slurmd_pid node1)" slurmd || alive "$(slurmd_pid node2)" slurmd
}

do_start() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd runs jobs as root; SlurmUser=root)"
    ensure_packages
    # The daemons outlive this script: they must not inherit its other open files (a
    # lock the caller holds, such as `flock LOCK scripts/slurm-cluster.sh start`, would
    # stay held for as long as the cluster runs).
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] && [ "$fd" -lt 255 ] && eval "exec $fd>&-"
    done
    mkdir -p "$DIR"/{state,log,run,spool/node1,spool/node2}
    chmod 0755 "$DIR"
    mkdir -p "$MUNGE_DIR" && chmod 0755 "$MUNGE_DIR"
    [ -e "$DIR/plugstack.conf" ] || : >"$DIR/plugstack.conf"
    install -m 0755 "$(dirname "$(readlink -f "$0")")/slurm-epilog.sh" "$DIR/slurm-epilog.sh"

    make_gpu_nodes
    local new="$CONF.new.$$" new_gres="$GRES_CONF.new.$$"
    write_conf "$new"
    write_gres_conf "$new_gres"
    if { ! cmp -s "$new" "$CONF" || ! cmp -s "$new_gres" "$GRES_CONF"; } && running_any; then
        log "slurm.conf or gres.conf changed: restarting the cluster"
        do_stop
    fi
    mv -f "$new" "$CONF"
    mv -f "$new_gres" "$GRES_CONF"
    printf 'export SLURM_CONF=%s\n' "$CONF" >"$DIR/env"

    start_munged
    start_slurmctld
    for n in "${NODES[@]}"; do start_slurmd "$n"; done
    wait_ready
    echo "slurm ready: 2 nodes (node1,node2), partition debug"
    echo "export SLURM_CONF=$CONF"
}

# stop_pid PIDFILE NAME: SIGTERM, wait up to 10 s, then SIGKILL. Waits on the
# process, not the file: slurmctld and munged remove their pid file as soon as
# they start shutting down, well before they exit.
stop_pid() {
    local pid i
    pid="$(pid_of "$1" || true)"
    if ! pid_alive "$pid" "$2"; then rm -f "$1"; return 0; fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        pid_alive "$pid" "$2" || break
        sleep 0.1
    done
    if pid_alive "$pid" "$2"; then
        log "$2 ($pid) ignored SIGTERM for 10 s; killing"
        kill -KILL "$pid" 2>/dev/null || true
        for i in $(seq 20); do pid_alive "$pid" "$2" || break; sleep 0.1; done
    fi
    rm -f "$1"
}

# Pids of slurmstepd processes of this cluster: those holding a unix socket
# under our spool directory (each stepd listens on $spool/<host>_<job>.<step>).
our_stepds() {
    local inodes pid fd link
    inodes="$(awk -v d="$DIR/spool/" 'index($NF, d) == 1 { print $7 }' /proc/net/unix 2>/dev/null | sort -u)"
    [ -n "$inodes" ] || return 0
    for pid in $(pgrep -x slurmstepd 2>/dev/null); do
        for fd in /proc/"$pid"/fd/*; do
            link="$(readlink "$fd" 2>/dev/null)" || continue
            case "$link" in
                socket:\[*\]) printf '%s\n' "$inodes" | grep -qx "${link//[^0-9]/}" && { echo "$pid"; break; } ;;
            esac
        done
    done
}

# with_descendants PID...: the PIDs and all their descendants.
with_descendants() {
    ps -e -o pid=,ppid= | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
        { parent[$1] = $2 }
        END {
            do { added = 0
                 for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; added = 1 }
            } while (added)
            for (p in keep) printf "%s ", p
        }'
}

do_stop() {
    local i pids
    if alive "$CTLD_PID" slurmctld && ctld_up; then
        if [ -n "$(squeue -h -t PD,R,CG,S,CF -o %i 2>/dev/null)" ]; then
            log "cancelling all jobs"
            scancel --full --state=PENDING  >/dev/null 2>&1 || true
            scancel --full --state=RUNNING  >/dev/null 2>&1 || true
            scancel --full --state=SUSPENDED >/dev/null 2>&1 || true
            # Normally done in well under a second (KillWait=5 bounds it);
            # jobs on a node whose slurmd died stay COMPLETING: don't wait for those.
            for i in $(seq 70); do
                [ -z "$(squeue -h -t PD,R,CG,S,CF -o %i 2>/dev/null)" ] && break
                sleep 0.1
            done
        fi
    fi
    for n in "${NODES[@]}"; do stop_pid "$(slurmd_pid "$n")" slurmd; done
    stop_pid "$CTLD_PID" slurmctld
    # Job steps whose slurmd died (or that outlived the cancel) keep running
    # under their own slurmstepd; end them too.
    pids="$(our_stepds | tr '\n' ' ')"
    if [ -n "${pids// /}" ]; then
        # shellcheck disable=SC2086
        pids="$(with_descendants $pids)"
        log "killing leftover job steps (slurmstepd and their processes): $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
    stop_pid "$MUNGE_PID" munged
}

do_status() {
    local n ok=1
    alive "$CTLD_PID" slurmctld || ok=0
    for n in "${NODES[@]}"; do alive "$(slurmd_pid "$n")" slurmd || ok=0; done
    if [ "$ok" -eq 1 ] && sinfo -N -o '%N %P %T %C %m %E' 2>/dev/null; then
        return 0
    fi
    echo "slurm cluster not running (dir $DIR)"
    running_any && echo "(some daemons still run: scripts/slurm-cluster.sh stop)"
    return 1
}

case "${1:-}" in
    start) do_start ;;
    stop) do_stop; log "stopped" ;;
    status) do_status ;;
    *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
