#!/usr/bin/env bash
# Single-node Slurm for development, demos and tests: `scripts/slurm.sh start|stop|stop-controller|status`.
# Idempotent: `start` on a running cluster returns at once. It writes /etc/slurm/slurm.conf only when that file is
# absent or was written by this script (marker line), so a site's own Slurm configuration is never touched. `stop`
# stops only the daemons this script started, by the pids they wrote into its state directory, never by name: on a
# real cluster's login node the site's own daemons are left alone.
set -euo pipefail

CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARKER="# managed by flow-jupyter scripts/slurm.sh"
STATE_DIR=${FLOW_SLURM_STATE_DIR:-/run/flow-jupyter-slurm}
# The node declares more CPUs than a small dev machine has (config_overrides lets slurmd accept it): a Nextflow head
# job and its task jobs must fit side by side, or the head job waits forever for room for its own tasks.
NODE_CPUS=${FLOW_SLURM_CPUS:-8}
NODE_MEMORY_MB=${FLOW_SLURM_MEMORY_MB:-16000}

log() { echo "slurm: $*" >&2; }

cluster_up() { timeout 10 sinfo -h -o '%a' 2>/dev/null | grep -q up; }

write_conf() {
  if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    log "$CONF exists and is not ours; using it as it is"
    return
  fi
  local host; host=$(hostname)
  mkdir -p "$(dirname "$CONF")"
  cat > "$CONF" <<EOC
$MARKER
ClusterName=flowdev
SlurmctldHost=$host
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmdParameters=config_overrides
MinJobAge=300
DefMemPerCPU=1000
SchedulerParameters=bf_interval=5
MailProg=/bin/true
NodeName=$host CPUs=$NODE_CPUS RealMemory=$NODE_MEMORY_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOC
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
  runuser -u munge -- munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  log "munged did not come up"; exit 1
}

start() {
  if cluster_up; then log "already running"; return; fi
  command -v slurmctld >/dev/null || { log "slurm-wlm is not installed (scripts/install-system.sh)"; exit 1; }
  write_conf
  mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE_DIR"
  start_munge
  ours slurmctld >/dev/null || slurmctld
  ours slurmd >/dev/null || slurmd
  for _ in $(seq 100); do
    if timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then log "up: $(sinfo -h -o '%P %a %D %t')"; return; fi
    sleep 0.2
  done
  # A node left DOWN by an earlier unclean stop comes back with an explicit resume.
  scontrol update NodeName="$(hostname)" State=RESUME 2>/dev/null || true
  for _ in $(seq 50); do
    if timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then log "up: $(sinfo -h -o '%P %a %D %t')"; return; fi
    sleep 0.2
  done
  log "Slurm did not become ready; see /var/log/slurm/"; sinfo || true; exit 1
}

# Whether process $2 is a live (not zombie) process named $1.
alive_as() {
  [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]] || return 1
  local state; state=$(awk '{print $3}' "/proc/$2/stat" 2>/dev/null)
  [[ -n $state && $state != Z ]]
}

# The pid of a daemon this script started (its pid file in STATE_DIR names a live process of that name), or nothing.
ours() {
  local pid
  pid=$(cat "$STATE_DIR/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive_as "$1" "$pid" || return 1
  echo "$pid"
}

# Stop one daemon this script started: SIGTERM, then SIGKILL if it is still there after 5 s.
stop_daemon() {
  local pid
  pid=$(ours "$1") || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do alive_as "$1" "$pid" || break; sleep 0.1; done
  if alive_as "$1" "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  for _ in $(seq 50); do alive_as "$1" "$pid" || break; sleep 0.1; done
  rm -f "$STATE_DIR/$1.pid"
}

stop() {
  if ours slurmctld >/dev/null || ours slurmd >/dev/null; then
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 50); do ours slurmctld >/dev/null || ours slurmd >/dev/null || break; sleep 0.1; done
    stop_daemon slurmd; stop_daemon slurmctld
  fi
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  # Only the controller (the node daemon and running jobs stay): how tests make the scheduler unreachable.
  stop-controller) stop_daemon slurmctld; log "controller stopped" ;;
  status) cluster_up && sinfo || { log "not running"; exit 1; } ;;
  *) echo "usage: $0 start|stop|stop-controller|status" >&2; exit 2 ;;
esac
