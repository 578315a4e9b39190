#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm` tests and for trying
# `hydra/launcher=submitit_slurm` without a real cluster.
#
#   sudo scripts/slurm_local.sh start    # munge key, slurm.conf, munged + slurmctld + slurmd; waits for an idle node
#   sudo scripts/slurm_local.sh status   # exit 0 when the node is up and idle
#   sudo scripts/slurm_local.sh stop     # ends exactly the daemons `start` started (pid files)
#
# Needs root and Debian's packages: `apt-get install -y slurm-wlm munge`. Everything it
# writes is under /etc/slurm/slurm.conf (marked as ours; any other slurm.conf is left
# alone and `start` refuses), /run/slurm-local, /var/lib/slurm-local, /var/log/slurm-local.
# Accounting is off (accounting_storage/none): `sacct` then fails, which submitit would
# report at every poll; harness/slurm.py gives submitit a status path through squeue instead.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
RUN=/run/slurm-local
STATE=/var/lib/slurm-local
LOG=/var/log/slurm-local
MARK="# written by scaling-harness scripts/slurm_local.sh"
PARTITION=debug

die() { echo "slurm_local.sh: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -p "$PARTITION" -o %T 2>/dev/null | head -n1; }

preflight() {
  [ "$(id -u)" -eq 0 ] || die "needs root (it writes $CONF and starts munged, slurmctld, slurmd); run it with sudo"
  for b in munged slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || die "needs $b: apt-get install -y slurm-wlm munge"
  done
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real cluster's config"
  fi
  local host node
  host=$(hostname -s)
  # slurmd -C prints this machine's exact NodeName line (cores, sockets, memory)
  node=$(slurmd -C | head -n1)
  mkdir -p /etc/slurm "$RUN" "$STATE/ctld" "$STATE/d" "$LOG"
  cat > "$CONF.tmp" <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# no cgroups: containers and CI runners often lack a writable cgroup tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# accounting off: no slurmdbd, no database
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# seconds between SIGTERM and SIGKILL (time limit, scancel, requeue); SLURM's default
KillWait=30
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  # a munged that is already running (the system's) is used, never restarted or stopped
  if munge -n </dev/null >/dev/null 2>&1; then return; fi
  [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- munged
  for _ in $(seq 50); do
    if munge -n </dev/null >/dev/null 2>&1; then
      cp /run/munge/munged.pid "$RUN/munged.pid"  # ours: `stop` ends it
      return
    fi
    sleep 0.1
  done
  die "munged did not come up (see /var/log/munge/munged.log)"
}

wait_idle() {
  local s
  for _ in $(seq 120); do
    s=$(node_state)
    case "$s" in idle|mixed|allocated) return 0 ;; esac
    sleep 0.5
  done
  die "node not idle after 60 s (state: ${s:-none}); logs in $LOG"
}

start() {
  preflight
  write_conf
  start_munge
  alive "$RUN/slurmctld.pid" || slurmctld
  alive "$RUN/slurmd.pid" || slurmd
  wait_idle
  # a node that was down (an earlier unclean stop) is returned to service
  if [ "$(node_state)" != idle ] && [ "$(node_state)" != mixed ] && [ "$(node_state)" != allocated ]; then
    scontrol update nodename="$(hostname -s)" state=resume
    wait_idle
  fi
  echo "slurm_local.sh: up: partition $PARTITION on $(hostname -s) is $(node_state) (config $CONF, logs $LOG)"
}

stop() {
  preflight
  local name pid
  for name in slurmd slurmctld munged; do
    if alive "$RUN/$name.pid"; then
      pid=$(cat "$RUN/$name.pid")
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$RUN/$name.pid"
  done
  echo "slurm_local.sh: stopped"
}

status() {
  local name up=0
  for name in munged slurmctld slurmd; do
    if alive "$RUN/$name.pid"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"
    else echo "$name: not running (by this script)"; fi
  done
  s=$(node_state || true)
  echo "partition $PARTITION: ${s:-unreachable}"
  case "$s" in idle|mixed|allocated) up=1 ;; esac
  [ "$up" -eq 1 ]
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
