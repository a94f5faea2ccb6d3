#!/usr/bin/env bash
# Stop the daemons started by scripts/slurm/start-cluster.sh, by the PIDs it
# recorded in the state dir. Idempotent: missing/dead PIDs are fine.
set -uo pipefail
STATE_DIR="${HDS_SLURM_STATE_DIR:-/var/run/hds-slurm}"
say() { echo "[stop-cluster] $*"; }

stop_one() { # stop_one NAME
    local f="$STATE_DIR/$1.pid" pid
    if [[ ! -s "$f" ]]; then say "$1: no pid file, nothing to stop"; return; fi
    pid=$(cat "$f")
    if ! kill -0 "$pid" 2>/dev/null; then
        say "$1: pid $pid not running"; rm -f "$f"; return
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; say "$1: pid $pid killed (SIGKILL)"
    else say "$1: pid $pid stopped"; fi
    rm -f "$f"
}
# reverse start order
stop_one slurmd
stop_one slurmctld
stop_one slurmdbd
stop_one mariadb
stop_one munged
