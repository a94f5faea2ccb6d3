#!/usr/bin/env bash
# Bring up a one-node SLURM test cluster (munged + slurmctld + slurmd) on a
# Debian 12 machine, as root. Idempotent: if the daemons recorded in the state
# dir are alive and the node answers in sinfo, it returns at once.
#
# Environment (all optional):
#   HDS_SLURM_STATE_DIR   state dir for PIDs/logs/spool   (default /var/run/hds-slurm)
#   HDS_SLURM_PARTITION   name of the GPU partition         (default gpu)
#   HDS_SLURM_TIMEOUT     seconds to wait for the node to become idle (default 90)
#   HDS_SLURM_FAKE_GPU    prefix of the fake GPU devices    (default /dev/fakegpu: fakegpu0 … fakegpu5)
#
# The node is in two partitions, `cpu` (the default) and `gpu`, as on most sites. It has six
# fake GPUs (gres gpu:6 backed by char devices, so a job with --gpus=1 sees one of
# CUDA_VISIBLE_DEVICES=0 … 5 but torch finds no CUDA device) and at least 12 CPUs, so that the
# test files running side by side (pytest-xdist) each find the GPUs their jobs ask for at once,
# as on a multi-GPU node; the license bench:1, MinJobAge=3600,
# and accounting: slurmdbd backed by a MariaDB server of its own (data in the state dir), so
# `sacct` works, as the Snakemake SLURM plugin expects by default (its status checks, failure
# reasons, --slurm-efficiency-report).
set -euo pipefail

STATE_DIR="${HDS_SLURM_STATE_DIR:-/var/run/hds-slurm}"
PARTITION="${HDS_SLURM_PARTITION:-gpu}"
TIMEOUT="${HDS_SLURM_TIMEOUT:-90}"
FAKE_GPU="${HDS_SLURM_FAKE_GPU:-/dev/fakegpu}"
N_GPUS=6
MIN_CPUS=12
CONF_DIR=/etc/slurm
LOG_DIR="$STATE_DIR/log"
SPOOL_DIR="$STATE_DIR/spool"

say() { echo "[start-cluster] $*"; }
die() { echo "[start-cluster] ERROR: $*" >&2; exit 1; }

alive() { # alive NAME -> 0 if pidfile exists and process alive
    local f="$STATE_DIR/$1.pid"
    [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true; }

dump_logs() {
    for f in "$LOG_DIR"/munged.log "$LOG_DIR"/mariadb.log "$LOG_DIR"/slurmdbd.log "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log; do
        [[ -f "$f" ]] || continue
        echo "----- tail -n 30 $f -----" >&2
        tail -n 30 "$f" >&2 || true
    done
    echo "----- sinfo -----" >&2
    sinfo -N -l >&2 2>&1 || true
    scontrol show node >&2 2>&1 || true
}

[[ $EUID -eq 0 ]] || die "must run as root (it installs packages, writes /etc/slurm and starts daemons)"

t0=$(date +%s)

# ---- fast path: already up ------------------------------------------------
if alive munged && alive mariadb && alive slurmdbd && alive slurmctld && alive slurmd; then
    st=$(node_state)
    gres=$(sinfo -h -N -o '%G' 2>/dev/null | head -n1 || true)
    if [[ "$gres" != "gpu:$N_GPUS" ]]; then
        say "the running cluster has ${gres:-no gres}, not gpu:$N_GPUS (an older start-cluster.sh); restarting"
        "$(dirname "$0")/stop-cluster.sh" || true
        st=restarted
    fi
    case "$st" in
        restarted) ;;
        idle|mix|alloc|comp)
            say "cluster already up (node state: $st, state dir $STATE_DIR); nothing to do"
            exit 0 ;;
        *)
            say "daemons alive but node state is '${st:-unknown}'; restarting"
            "$(dirname "$0")/stop-cluster.sh" || true ;;
    esac
fi

# ---- packages --------------------------------------------------------------
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if ((${#need[@]})); then
    command -v apt-get >/dev/null || die "missing ${need[*]} and apt-get is not available"
    say "installing ${need[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq slurmctld slurmd slurm-client munge slurmdbd mariadb-server >/dev/null \
        || die "apt-get install slurmctld slurmd slurm-client munge slurmdbd mariadb-server failed"
else
    say "packages present: $(dpkg-query -W -f='slurmctld ${Version}' slurmctld 2>/dev/null || echo slurmctld)"
fi

# ---- directories -----------------------------------------------------------
mkdir -p "$STATE_DIR" "$LOG_DIR" "$SPOOL_DIR/ctld" "$SPOOL_DIR/d" "$CONF_DIR"
chown -R slurm:slurm "$SPOOL_DIR/ctld"
chmod 755 "$STATE_DIR" "$LOG_DIR"
touch "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmdbd.log" && chown slurm:slurm "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmdbd.log"
mkdir -p "$STATE_DIR/dbd" && chown slurm:slurm "$STATE_DIR/dbd"

# ---- fake GPU devices ------------------------------------------------------
for ((i = 0; i < N_GPUS; i++)); do
    if [[ ! -c "$FAKE_GPU$i" ]]; then
        rm -f "$FAKE_GPU$i"
        mknod -m 666 "$FAKE_GPU$i" c 1 3   # same major/minor as /dev/null
        say "created fake GPU device $FAKE_GPU$i"
    fi
done

# ---- config ----------------------------------------------------------------
HOST=$(hostname -s)
NODELINE=$(slurmd -C | head -n1)     # NodeName=<host> CPUs=.. ... RealMemory=N
[[ "$NODELINE" == NodeName=* ]] || die "slurmd -C gave no NodeName line: $NODELINE"
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODELINE")
RESERVE=$(( MEM / 10 )); (( RESERVE > 2048 )) && RESERVE=2048
NODELINE=$(sed "s/RealMemory=[0-9]*/RealMemory=$(( MEM - RESERVE ))/" <<<"$NODELINE")
# At least MIN_CPUS CPUs (SlurmdParameters=config_overrides), so that the GPU jobs of several test
# files (2 threads each) run side by side on a small machine, as on a node with six GPUs.
CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$NODELINE")
if (( CPUS < MIN_CPUS )); then
    NODELINE=$(sed -E "s/CPUs=[0-9]+ Boards=[0-9]+ SocketsPerBoard=[0-9]+ CoresPerSocket=[0-9]+ ThreadsPerCore=[0-9]+/CPUs=$MIN_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$MIN_CPUS ThreadsPerCore=1/" <<<"$NODELINE")
fi

cat > "$CONF_DIR/slurm.conf" <<CONF
# Written by scripts/slurm/start-cluster.sh (one-node test cluster).
ClusterName=hds
SlurmctldHost=$HOST
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SPOOL_DIR/ctld
SlurmdSpoolDir=$SPOOL_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job that asks for no memory gets this much per CPU, not the whole node.
DefMemPerCPU=1000
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
GresTypes=gpu
Licenses=bench:1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
# Finished jobs stay visible in squeue/scontrol for MinJobAge seconds (the tests read their TRES
# with scontrol show job).
MinJobAge=3600
# SIGTERM at a job's time limit, SIGKILL this many seconds later.
KillWait=30
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5
ReturnToService=2
MpiDefault=none
SlurmdParameters=config_overrides
$NODELINE Gres=gpu:$N_GPUS State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=$PARTITION Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
CONF

cat > "$CONF_DIR/gres.conf" <<CONF
# Written by scripts/slurm/start-cluster.sh: $N_GPUS fake GPUs (char devices).
NodeName=$HOST Name=gpu File=${FAKE_GPU}[0-$(( N_GPUS - 1 ))]
CONF

cat > "$CONF_DIR/slurmdbd.conf" <<CONF
# Written by scripts/slurm/start-cluster.sh: accounting for the test cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$STATE_DIR/dbd/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=hds-test
StorageLoc=slurm_acct_db
CONF
chown slurm:slurm "$CONF_DIR/slurmdbd.conf"; chmod 600 "$CONF_DIR/slurmdbd.conf"
say "wrote $CONF_DIR/slurm.conf, gres.conf, slurmdbd.conf (node: $NODELINE Gres=gpu:$N_GPUS, partitions cpu (default) and $PARTITION, Licenses=bench:1)"

# ---- munged ----------------------------------------------------------------
if ! alive munged; then
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
        else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
        chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    fi
    rm -f /run/munge/munged.pid
    touch "$LOG_DIR/munged.log"; chown munge:munge "$LOG_DIR/munged.log"
    runuser -u munge -- /usr/sbin/munged --force --log-file="$LOG_DIR/munged.log" \
        --pid-file=/run/munge/munged.pid
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    [[ -s /run/munge/munged.pid ]] || { dump_logs; die "munged did not start"; }
    cp /run/munge/munged.pid "$STATE_DIR/munged.pid"
    say "started munged (pid $(cat "$STATE_DIR/munged.pid"))"
fi
munge -n | unmunge >/dev/null || { dump_logs; die "munge round trip failed"; }

# ---- MariaDB (accounting storage), socket only ------------------------------
DB_DIR="$STATE_DIR/mysql"
if ! alive mariadb; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if [[ ! -d "$DB_DIR/mysql" ]]; then
        mkdir -p "$DB_DIR" && chown mysql:mysql "$DB_DIR"
        mariadb-install-db --user=mysql --datadir="$DB_DIR" --skip-test-db >"$LOG_DIR/mariadb-install.log" 2>&1 \
            || { cat "$LOG_DIR/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
    fi
    rm -f "$STATE_DIR/mariadb.pid"
    touch "$LOG_DIR/mariadb.log"; chown mysql:mysql "$LOG_DIR/mariadb.log"
    setsid /usr/sbin/mariadbd --user=mysql --datadir="$DB_DIR" --skip-networking \
        --socket=/run/mysqld/mysqld.sock --pid-file="$DB_DIR/mariadbd.pid" \
        --log-error="$LOG_DIR/mariadb.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
    echo $! > "$STATE_DIR/mariadb.pid"
    for _ in $(seq 100); do mariadb -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
    mariadb -uroot -e 'select 1' >/dev/null 2>&1 || { dump_logs; die "mariadbd did not start"; }
    say "started mariadb (pid $(cat "$STATE_DIR/mariadb.pid"))"
fi
mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'hds-test';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "could not create the accounting database"

# ---- slurmdbd / slurmctld / slurmd -------------------------------------------
start_daemon() { # start_daemon NAME CMD...
    local name=$1; shift
    if alive "$name"; then say "$name already running (pid $(cat "$STATE_DIR/$name.pid"))"; return; fi
    rm -f "$STATE_DIR/$name.pid"
    "$@" || { dump_logs; die "$name failed to start"; }
    for _ in $(seq 100); do alive "$name" && break; sleep 0.1; done
    alive "$name" || { dump_logs; die "$name exited right after start"; }
    say "started $name (pid $(cat "$STATE_DIR/$name.pid"))"
}
if ! alive slurmdbd; then
    rm -f "$STATE_DIR/dbd/slurmdbd.pid"
    /usr/sbin/slurmdbd || { dump_logs; die "slurmdbd failed to start"; }
    for _ in $(seq 100); do [[ -s "$STATE_DIR/dbd/slurmdbd.pid" ]] && break; sleep 0.1; done
    cp "$STATE_DIR/dbd/slurmdbd.pid" "$STATE_DIR/slurmdbd.pid" 2>/dev/null || { dump_logs; die "slurmdbd wrote no pid file"; }
    for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
    say "started slurmdbd (pid $(cat "$STATE_DIR/slurmdbd.pid"))"
fi
sacctmgr -n -P list cluster format=cluster | grep -qx hds || sacctmgr -i add cluster hds >/dev/null \
    || { dump_logs; die "sacctmgr add cluster hds failed"; }
# -c: start clean (no stale jobs/node state from a previous run)
start_daemon slurmctld /usr/sbin/slurmctld -c
start_daemon slurmd /usr/sbin/slurmd

# ---- wait for idle ---------------------------------------------------------
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
    st=$(node_state)
    [[ "$st" == idle ]] && break
    if [[ "$st" == drain* || "$st" == down* || "$st" == inval* ]]; then
        # a node left over as down from an earlier run: resume it once
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
    fi
    if (( $(date +%s) > deadline )); then
        dump_logs
        die "node $HOST not idle after ${TIMEOUT}s (state: '${st:-none}')"
    fi
    sleep 1
done
say "node $HOST idle in partition $PARTITION after $(( $(date +%s) - t0 ))s; state dir $STATE_DIR"
sinfo
