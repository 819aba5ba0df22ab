"""Local backend: Nextflow runs as a child process group of this host, in its own session.

Nextflow is not started directly but under a tiny Python wrapper (this module's ``__main__``) which runs the argv,
forwards SIGTERM/SIGINT to Nextflow's process group and writes the exit code atomically to ``run_dir/exit_code``.
That file is what lets a restarted host (no longer the parent, so it cannot ``wait``) tell how a run ended. No shell
is involved anywhere. The pid is recorded with its start time (``/proc/<pid>/stat`` field 22) and the boot id, so a
pid reused by an unrelated process after the run ended or after a reboot is never taken for the run.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from flow_jupyter.execution.backends.base import (
    Backend,
    BackendJob,
    BackendState,
    JobInfo,
    Launch,
    clear_run_evidence,
    info_from_exit_code,
    mark_cancel_requested,
    read_exit_code,
    read_head_file,
    utc_now_iso,
    write_head_file,
)
from flow_jupyter.execution.runfiles import CANCEL_FILE, EXIT_CODE_FILE, LOCAL_STDERR_FILE, LOCAL_STDOUT_FILE
from flow_jupyter.fsutil import atomic_write_text
from flow_jupyter.procinfo import boot_id, process_start_ticks, stat_fields

#: Seconds between SIGTERM to the run's processes and SIGKILL to whatever is left (Nextflow cleans up on SIGTERM).
CANCEL_GRACE_SECONDS = 10.0
WRAPPER_MODULE = "flow_jupyter.execution.backends.local"


# --- /proc helpers (Linux) -------------------------------------------------------------------------------------
def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime")


def _session_pgids(sid: int) -> set[int]:
    """Process groups of the live (non-zombie) processes in session ``sid``: everything a run started."""
    groups: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields and int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            groups.add(int(fields[2]))
    return groups


def session_alive(sid: int) -> bool:
    return bool(_session_pgids(sid))


class LocalBackend(Backend):
    """Runs Nextflow on this host. Keeps its own children's Popen objects to reap them and read their status."""

    name = "local"

    def __init__(self, cancel_grace_seconds: float = CANCEL_GRACE_SECONDS):
        self.cancel_grace_seconds = cancel_grace_seconds
        self._children: dict[int, subprocess.Popen] = {}

    # --- submit ---------------------------------------------------------------------------------------------
    def submit(self, launch: Launch) -> BackendJob:
        run_dir = launch.run_dir
        clear_run_evidence(run_dir)
        argv = [sys.executable, "-P", "-m", WRAPPER_MODULE,
                "--exit-file", str(run_dir / EXIT_CODE_FILE), "--", *launch.argv]
        with open(run_dir / LOCAL_STDOUT_FILE, "ab") as out, open(run_dir / LOCAL_STDERR_FILE, "ab") as err:
            proc = subprocess.Popen(argv, cwd=run_dir, env=os.environ | launch.env, start_new_session=True,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, close_fds=True)
        self._children[proc.pid] = proc
        ticks = process_start_ticks(proc.pid)
        hz = os.sysconf("SC_CLK_TCK")
        job = BackendJob(
            backend=self.name, job_id=str(proc.pid), execution_uuid=launch.execution_uuid, run_dir=str(run_dir),
            submitted_at=utc_now_iso(), pid_start=_boot_time() + ticks / hz if ticks is not None else None,
            pid_start_ticks=ticks, boot_id=boot_id(),
        )
        write_head_file(job)
        return job

    # --- status ---------------------------------------------------------------------------------------------
    def is_alive(self, job: BackendJob) -> bool:
        """True while the recorded process itself (same pid, start time and boot) runs and is not a zombie."""
        pid = int(job.job_id)
        fields = stat_fields(pid)
        if not fields or fields[0] in ("Z", "X"):
            self._reap(pid)
            return False
        return int(fields[19]) == job.pid_start_ticks and job.boot_id == boot_id()

    def _reap(self, pid: int) -> int | None:
        """Collect our own finished child so it does not linger as a zombie; its exit status, if we got it."""
        proc = self._children.get(pid)
        if proc is not None:
            return proc.poll()
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None  # not our child (a restarted host): the exit_code file tells
        return os.waitstatus_to_exitcode(status) if done else None

    def status(self, job: BackendJob) -> JobInfo:
        pid = int(job.job_id)
        run_dir = Path(job.run_dir)
        proc = self._children.get(pid)
        running = proc.poll() is None if proc is not None else self.is_alive(job)
        if running:
            return JobInfo(BackendState.RUNNING, node=socket.gethostname())
        code = read_exit_code(run_dir)
        if code is None and proc is not None:
            # The wrapper died without writing (SIGKILL): keep what only the parent knows on disk.
            code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
            try:
                atomic_write_text(run_dir / EXIT_CODE_FILE, f"{code}\n")
            except OSError:
                pass
        if proc is not None:
            self._children.pop(pid, None)
        if code is not None:
            return info_from_exit_code(code, run_dir, "exit code recorded in the run directory")
        if (run_dir / CANCEL_FILE).exists():
            return JobInfo(BackendState.CANCELLED, None, "cancelled; killed before it recorded an exit code")
        return JobInfo(BackendState.UNKNOWN, None, "the process is gone and left no exit code")

    # --- cancel ---------------------------------------------------------------------------------------------
    def _owns_session(self, job: BackendJob) -> bool:
        """Whether processes in session <pid> are ours: the pid is our live process, or no process holds it (Linux
        never reuses a pid while a session or group still carries it, so survivors with that session id are ours)."""
        pid = int(job.job_id)
        return self.is_alive(job) or stat_fields(pid) is None

    def cancel(self, job: BackendJob, task_ids: Sequence[str] = (), grace_seconds: float | None = None) -> None:
        """SIGTERM every process group of the run's session, then SIGKILL what is left after the grace period.
        Local tasks are processes of that session, so ``task_ids`` are not needed."""
        grace = self.cancel_grace_seconds if grace_seconds is None else grace_seconds
        mark_cancel_requested(Path(job.run_dir))
        sid = int(job.job_id)
        if not self._owns_session(job):
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            for pgid in _session_pgids(sid):
                try:
                    os.killpg(pgid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self._reap(sid)
                if not session_alive(sid):
                    return
                time.sleep(0.1)
        self._reap(sid)

    # --- find -----------------------------------------------------------------------------------------------
    def find(self, execution_uuid: str, run_dir: Path) -> BackendJob | None:
        job = read_head_file(run_dir, execution_uuid)
        return job if job is not None and job.backend == self.name else None


# --- the wrapper ----------------------------------------------------------------------------------------------
def _wrapper_main(args: list[str]) -> int:
    """Run argv in its own process group, forward SIGTERM/SIGINT to it, record its exit code atomically.

    The code written is Nextflow's own, or 128 + the signal number when we were told to stop (or it was killed by
    a signal), which `info_from_exit_code` reads as cancelled.
    """
    parser = argparse.ArgumentParser(prog="flow-local-wrapper")
    parser.add_argument("--exit-file", required=True, type=Path)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    ns = parser.parse_args(args)
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    received: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum: int, _frame) -> None:
        received.append(signum)
        if child is not None:
            try:
                os.killpg(child.pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        child = subprocess.Popen(argv, process_group=0, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"flow: cannot start {argv[0]!r}: {exc}", file=sys.stderr)
        atomic_write_text(ns.exit_file, "127\n")
        return 127
    if received:  # a signal arrived before the child existed
        os.killpg(child.pid, received[0])
    returncode = child.wait()
    code = returncode if returncode >= 0 else 128 - returncode
    if received and code != 0:
        code = 128 + received[0]
    atomic_write_text(ns.exit_file, f"{code}\n")
    return code


if __name__ == "__main__":
    sys.exit(_wrapper_main(sys.argv[1:]))
