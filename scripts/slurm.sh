#!/usr/bin/env bash
# Single-node Slurm for development, demos and tests:
#   scripts/slurm.sh start|stop|status|stop-controller|stall-controller|resume-controller
# Idempotent: `start` on a running cluster returns at once (and wakes a controller this script stalled). It writes
# /etc/slurm/slurm.conf only when that file is absent or was written by this script (marker line), so a site's own
# Slurm configuration is never touched. `stop` stops only the daemons this script started, by the pids they wrote
# into its state directory, never by name: on a real cluster's login node the site's own daemons are left alone.
# `stall-controller`/`resume-controller` SIGSTOP/SIGCONT the controller this script started (by that pid file):
# how tests make the controller hang, as a real one does under load, rather than refuse connections.
#
# An outage is *held* by the process that made it (FLOW_SLURM_HOLDER, else the caller's pid: a test's pytest), in
# STATE_DIR/held-by: while that process lives, another caller's `start`, `stop` or controller verb waits for the
# outage to end (up to FLOW_SLURM_HOLD_WAIT seconds, default 600) instead of ending it early — two test sessions on
# one machine must not restart each other's stopped controller. The holder's own `start`/`resume-controller` end it.
#
# Site mode (FLOW_TEST_SLURM=site): the machine's own Slurm is used and this script never starts, stops or signals a
# daemon. `start` only checks that `sinfo` answers; `stop` does nothing; the controller verbs refuse (exit 3), and
# the tests that need them are skipped (tests/conftest.py, marker `stops_controller`).
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

site_mode() { [[ ${FLOW_TEST_SLURM:-} == site ]]; }

HOLD_FILE=$STATE_DIR/held-by
HOLDER=${FLOW_SLURM_HOLDER:-$PPID}

# A process's start time (/proc/<pid>/stat field 22): with the pid, its identity (pids are reused).
start_ticks() { awk '{sub(/.*\) /, ""); print $20}' "/proc/$1/stat" 2>/dev/null; }

# The pid of the live process holding an outage that is not ours, or nothing.
other_holder() {
  local pid ticks
  [[ -f $HOLD_FILE ]] && read -r pid ticks < "$HOLD_FILE" || return 1
  [[ $pid =~ ^[0-9]+$ && $pid != "$HOLDER" && -n $ticks && $(start_ticks "$pid") == "$ticks" ]] || return 1
  echo "$pid"
}

# Wait while another live process holds an outage (then it is over, or that process is gone).
wait_for_outage_of_others() {
  local pid waited=0 limit=${FLOW_SLURM_HOLD_WAIT:-600}
  while pid=$(other_holder); do
    ((waited == 0)) && log "the controller is held down by process $pid (a test's outage); waiting for it to end"
    ((waited >= limit * 2)) && { log "gave up waiting for process $pid's outage after ${limit} s"; exit 1; }
    sleep 0.5; waited=$((waited + 1))
  done
}

hold() {
  mkdir -p "$STATE_DIR"
  echo "$HOLDER $(start_ticks "$HOLDER")" > "$HOLD_FILE"
}

release() { other_holder >/dev/null || rm -f "$HOLD_FILE"; }

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
  if site_mode; then
    cluster_up || { log "FLOW_TEST_SLURM=site but the site's Slurm does not answer sinfo"; exit 1; }
    log "site mode: using the site's Slurm ($(sinfo -h -o '%P %a %D %t' | head -1))"; return
  fi
  wait_for_outage_of_others
  release
  resume_controller quiet
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
  if site_mode; then log "site mode: the site's Slurm is left alone"; return; fi
  wait_for_outage_of_others
  release
  resume_controller quiet  # a stopped process takes no SIGTERM until it is woken
  if ours slurmctld >/dev/null || ours slurmd >/dev/null; then
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 50); do ours slurmctld >/dev/null || ours slurmd >/dev/null || break; sleep 0.1; done
    stop_daemon slurmd; stop_daemon slurmctld
  fi
  log "stopped"
}

# Whether process $1 is stopped (SIGSTOP: state T).
stalled() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == T ]]; }

# SIGSTOP the controller this script started: it keeps its socket, so clients connect and then wait (a hung
# controller), unlike stop-controller where they are refused at once.
stall_controller() {
  local pid
  pid=$(ours slurmctld) || { log "no controller started by this script is running"; exit 1; }
  kill -STOP "$pid"
  log "controller $pid stalled (SIGSTOP)"
}

# SIGCONT the controller this script started, if it is stalled ("quiet": say nothing when there is none).
resume_controller() {
  local pid
  if ! pid=$(ours slurmctld); then [[ ${1:-} == quiet ]] || log "no controller started by this script"; return 0; fi
  if stalled "$pid"; then kill -CONT "$pid"; log "controller $pid resumed (SIGCONT)"
  elif [[ ${1:-} != quiet ]]; then log "controller $pid was not stalled"; fi
}

status() {
  local pid
  if ! site_mode; then
    if pid=$(other_holder); then log "the controller is held down by process $pid (a test's outage)"; exit 1; fi
    if pid=$(ours slurmctld) && stalled "$pid"; then log "controller $pid is stalled (SIGSTOP)"; exit 1; fi
    if ours slurmd >/dev/null && ! ours slurmctld >/dev/null; then log "controller stopped (slurmd runs)"; exit 1; fi
  fi
  cluster_up && sinfo || { log "not running"; exit 1; }
}

# The controller verbs act on daemons this script started; on a site's Slurm there are none to act on.
controller_verb() {
  if site_mode; then log "site mode: '$1' would act on the site's controller; refused"; exit 3; fi
  wait_for_outage_of_others
  case $1 in
    # Only the controller (the node daemon and running jobs stay): how tests make the scheduler unreachable.
    stop-controller) hold; resume_controller quiet; stop_daemon slurmctld; log "controller stopped" ;;
    stall-controller) hold; stall_controller ;;
    resume-controller) release; resume_controller ;;
  esac
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  stop-controller|stall-controller|resume-controller) controller_verb "$1" ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status|stop-controller|stall-controller|resume-controller" >&2; exit 2 ;;
esac
