#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests marked `slurm` (CI) and for trying
# `--executor slurm` by hand: `scripts/slurm-local.sh up` installs Debian's slurm-wlm and munge if
# missing, writes a munge key and a minimal slurm.conf (this host is controller and only node),
# and starts munged, slurmctld and slurmd; `down` stops them; `status` says whether it answers.
# Idempotent: `up` on a running cluster only checks it. Needs root (it installs packages and starts
# daemons); as another user it prints why and exits 0, and the Slurm tests skip themselves.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm-local   # pid files

say() { echo "slurm-local: $*" >&2; }

answers() { command -v sinfo >/dev/null && timeout 10 sinfo -h -o %T 2>/dev/null | grep -Eq 'idle|mix|alloc'; }

install() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null && return 0
  command -v apt-get >/dev/null || { say "no apt-get here: install slurm-wlm and munge with this system's package manager"; exit 1; }
  say "installing slurm-wlm and munge (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2/1024*0.9)}' /proc/meminfo)   # MB, leaving the system some room
  mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" "$RUN"
  cat > "$CONF_DIR/slurm.conf.new" <<CONF
# written by scripts/slurm-local.sh: a single-node test cluster
ClusterName=bench-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# quick feedback for the tests: a dead node is noticed in 30 s, a job past its limit killed at once,
# and finished jobs stay visible to scontrol for 10 minutes
SlurmdTimeout=30
KillWait=5
OverTimeLimit=0
MinJobAge=600
MaxArraySize=10001
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  if ! cmp -s "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf" 2>/dev/null; then
    mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
  else
    rm "$CONF_DIR/slurm.conf.new"
  fi
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if id munge >/dev/null 2>&1; then su -s /bin/sh munge -c munged || munged --force; else munged --force; fi
  fi
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

up() {
  if [ "$(id -u)" != 0 ]; then
    say "not root: cannot install or start Slurm here (run as root, or use a cluster's login node); Slurm tests will be skipped"
    exit 0
  fi
  install
  write_conf
  start_munge
  for _ in $(seq 60); do
    # (re)started inside the loop: a daemon still shutting down is started again once it is gone
    running slurmctld || slurmctld
    running slurmd || slurmd
    answers && break
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  answers || { say "Slurm did not answer within 60 s: see $LOGS/slurmctld.log and $LOGS/slurmd.log"; exit 1; }
  say "up: $(sinfo -h -o '%P %D node(s) %T %c CPUs %m MB')"
}

down() {
  [ "$(id -u)" = 0 ] || { say "not root: nothing to stop"; exit 0; }
  for d in slurmd slurmctld; do
    if running "$d"; then kill "$(cat "$RUN/$d.pid")"; fi
  done
  say "stopped slurmctld and slurmd (munged left running)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if answers; then sinfo; else say "no Slurm answering here"; exit 1; fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
