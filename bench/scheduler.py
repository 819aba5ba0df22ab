"""Scheduler commands per minute against the number of active Slurm runs (1, 10, 100, 1,000): Flow's execution
manager (one batched status query per round for all its runs) against the per-run polling it replaced (one
``squeue -j <id>`` per run every ``backend_poll_seconds``), measured side by side in the same window.

Both talk to a *recorded-squeue fake*, not the real controller: submitting 1,000 real head jobs to the 2-core dev
cluster takes longer than the measurement, and what is counted is how many commands each issues, not how fast Slurm
answers. The fake is the backend's ``runner`` (the seam flow_jupyter.proc.run fills in production; tests replay
captured exchanges through it): it counts every argv and answers ``squeue`` in the format asked for (``-o``), with
each asked id RUNNING on one node, as the real squeue prints it. ``scontrol``, ``sinfo`` and anything else are
counted too and answered empty.

Flow's side is the real ExecutionManager of a real FlowHost (SQLite in a temporary root, migrated), following N
execution rows in state ``running`` with Slurm head jobs (ids 100001…) and empty run directories; the manager claims
them, follows their files and asks the scheduler as in production, on its own asyncio loop in this process. The peer
is a thread doing what the old manager did: every ``backend_poll_seconds``, one ``squeue -h -j <id> -o
'%T|%r|%S|%N'`` per run. Each size gets a fresh root; both are counted over the same ``--seconds`` after
``--warmup`` (start-up jitter and the first claims).

    .venv/bin/python bench/scheduler.py [--sizes 1,10,100,1000] [--seconds 60] [--warmup 10]

Needs nothing else (no Slurm, no server). About (warmup + seconds) per size: 5 minutes with the defaults.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from sqlalchemy import select  # noqa: E402

from flow_jupyter import proc  # noqa: E402
from flow_jupyter.config import FlowSettings  # noqa: E402
from flow_jupyter.db.models import Execution, PipelineVersion, Project, User  # noqa: E402
from flow_jupyter.execution.backends.base import BackendJob, utc_now_iso  # noqa: E402
from flow_jupyter.execution.backends.slurm import SlurmBackend  # noqa: E402
from flow_jupyter.execution.manager import ExecutionManager  # noqa: E402
from flow_jupyter.execution.service import MANAGER_KEY  # noqa: E402
from flow_jupyter.host import FlowHost  # noqa: E402

OLD_FORMAT = "%T|%r|%S|%N"  # what the per-run code asked for
FIRST_JOB_ID = 100001
NODE = socket.gethostname()


class RecordedSqueue:
    """A Slurm ``runner`` that counts each command (by ``source``) and answers like the real one."""

    def __init__(self, run_dirs: dict[str, str]) -> None:
        self.run_dirs = run_dirs  # job id → run dir, for %Z
        self.lock = threading.Lock()
        self.calls: list[tuple[float, str, str, tuple[str, ...]]] = []  # (monotonic, source, command, ids asked)
        self.started = datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S")

    def runner(self, source: str):
        def run(argv: list[str], **_kwargs: Any) -> proc.Result:
            return self.answer(source, list(argv))
        return run

    def answer(self, source: str, argv: list[str]) -> proc.Result:
        command = Path(argv[0]).name
        ids: list[str] = []
        fmt = ""
        for index, word in enumerate(argv):
            following = argv[index + 1] if index + 1 < len(argv) else ""
            if word in ("-j", "--jobs"):
                ids = following.split(",")
            elif word.startswith("--jobs="):
                ids = word.split("=", 1)[1].split(",")
            elif word in ("-o", "--format"):
                fmt = following
            elif word.startswith("--format="):
                fmt = word.split("=", 1)[1]
        with self.lock:
            self.calls.append((time.monotonic(), source, command, tuple(ids)))
        if command != "squeue" or not ids or "--start" in argv:
            return proc.Result(argv, 0, "", "")
        lines = [self.line(fmt, job_id) for job_id in ids if job_id in self.run_dirs]
        return proc.Result(argv, 0, "".join(line + "\n" for line in lines), "")

    def line(self, fmt: str, job_id: str) -> str:
        values = {"%i": job_id, "%A": job_id, "%T": "RUNNING", "%t": "R", "%r": "None", "%S": self.started,
                  "%N": NODE, "%Z": self.run_dirs[job_id], "%j": "flow-bench", "%%": "%"}
        out, index = [], 0
        while index < len(fmt):
            token = fmt[index:index + 2]
            if token in values:
                out.append(values[token])
                index += 2
            else:
                out.append(fmt[index])
                index += 1
        return "".join(out)

    def window(self, source: str, start: float, end: float) -> tuple[int, float, int]:
        """Commands of ``source`` in [start, end), the mean number of job ids each asked about, and how many
        different jobs were asked about (every run should be: a run nobody asks about is not followed)."""
        with self.lock:
            chosen = [ids for moment, who, _, ids in self.calls if who == source and start <= moment < end]
        asked = {job_id for ids in chosen for job_id in ids}
        return len(chosen), (sum(map(len, chosen)) / len(chosen) if chosen else 0.0), len(asked)

    def commands(self, source: str, start: float, end: float) -> Counter:
        with self.lock:
            return Counter(command for moment, who, command, _ in self.calls if who == source and start <= moment < end)


def arrange(host: FlowHost, count: int) -> dict[str, str]:
    """N running Slurm executions straight in the database, as a manager leaves them after submitting: id → dir."""
    run_dirs: dict[str, str] = {}
    now = datetime.now(timezone.utc)
    with host.db.session() as session:
        user = User(name=f"bench-{uuidlib.uuid4().hex[:6]}")
        session.add(user)
        session.flush()
        project = Project(name="scheduler-bench", owner_id=user.id)
        session.add(project)
        session.flush()
        version = session.scalar(select(PipelineVersion.id).order_by(PipelineVersion.id).limit(1))
        if version is None:
            raise SystemExit("no pipeline version in the fresh database (ensure_bundled made none)")
        for n in range(count):
            execution_uuid = str(uuidlib.uuid4())
            run_dir = host.storage.root / "executions" / execution_uuid
            run_dir.mkdir(parents=True)
            job_id = str(FIRST_JOB_ID + n)
            run_dirs[job_id] = str(run_dir)
            job = BackendJob(backend="slurm", job_id=job_id, execution_uuid=execution_uuid, run_dir=str(run_dir),
                             submitted_at=utc_now_iso())
            session.add(Execution(uuid=execution_uuid, owner_id=user.id, project_id=project.id,
                                  pipeline_version_id=version, params={}, status="running", backend="slurm",
                                  backend_job=job.to_json(), run_dir=f"executions/{execution_uuid}",
                                  created_at=now, submitted_at=now))
    return run_dirs


def per_run_peer(fake: RecordedSqueue, job_ids: list[str], poll: float, stop: threading.Event) -> None:
    """The old manager's scheduler traffic: each run asked about on its own, every ``poll`` seconds."""
    run = fake.runner("per-run")
    due: dict[str, float] = {}
    while not stop.is_set():
        moment = time.monotonic()
        for job_id in job_ids:
            if due.get(job_id, 0.0) <= moment:
                run(["squeue", "-h", "-j", job_id, "-o", OLD_FORMAT])
                due[job_id] = moment + poll
        stop.wait(0.5)  # the old manager's tick


async def drive(manager: ExecutionManager, seconds: float) -> None:
    task = asyncio.ensure_future(manager._run())
    await asyncio.sleep(seconds)
    manager.stop()
    try:
        await task
    except asyncio.CancelledError:
        pass


def measure(count: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    root = tmp / f"root-{count}"
    settings = FlowSettings(root_dir=str(root), database_url=f"sqlite:///{root / 'flow.sqlite'}")
    host = FlowHost(settings)
    run_dirs = arrange(host, count)
    fake = RecordedSqueue(run_dirs)
    manager = ExecutionManager(host)
    manager._backends["slurm"] = SlurmBackend(settings, runner=fake.runner("manager"))
    host.manager = manager
    stop = threading.Event()
    peer = threading.Thread(target=per_run_peer, args=(fake, sorted(run_dirs), settings.backend_poll_seconds, stop),
                            daemon=True)
    began = time.monotonic()
    peer.start()
    rounds_before: list[int] = []

    async def run() -> None:
        async def mark() -> None:
            await asyncio.sleep(args.warmup)
            rounds_before.append(manager.rounds)
        await asyncio.gather(drive(manager, args.warmup + args.seconds), mark())
    asyncio.run(run())
    stop.set()
    peer.join(timeout=30)
    start, end = began + args.warmup, began + args.warmup + args.seconds
    new, new_ids, new_asked = fake.window("manager", start, end)
    old, _, old_asked = fake.window("per-run", start, end)
    with host.db.session() as session:
        statuses = Counter(str(status) for status in session.scalars(select(Execution.status)))
        errors = sum(1 for state in session.scalars(select(Execution.monitor_state))
                     if ((state or {}).get(MANAGER_KEY) or {}).get("backend_error"))
    host.close()
    scale = 60.0 / args.seconds
    return {"runs": count, "new": new * scale, "old": old * scale, "ids": new_ids, "asked": new_asked,
            "peer_asked": old_asked,
            "rounds": (manager.rounds - (rounds_before[0] if rounds_before else 0)) * scale,
            "commands": dict(fake.commands("manager", start, end)), "statuses": dict(statuses), "errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per size")
    parser.add_argument("--warmup", type=float, default=10.0, help="not counted: start-up jitter, first claims")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="flow-bench-scheduler-") as tmp:
        for count in sizes:
            results.append(measure(count, args, Path(tmp)))
            r = results[-1]
            print(f"  {r['runs']:>5} runs: {r['new']:.1f}/min ({r['commands']}), ids/command {r['ids']:.0f}, "
                  f"runs asked about {r['asked']} (peer {r['peer_asked']}), rounds/min {r['rounds']:.0f}, "
                  f"statuses {r['statuses']}, backend errors {r['errors']}",
                  flush=True)
    print()
    print("| active runs | Flow manager: scheduler commands/min | per-run polling (old): commands/min "
          "| peer ÷ Flow |")
    print("|---:|---:|---:|---:|")
    for r in results:
        ratio = f"{r['old'] / r['new']:.1f}" if r["new"] else "—"
        print(f"| {r['runs']:,} | {r['new']:.1f} | {r['old']:.0f} | {ratio} |")
    print()
    for r in results:
        if r["asked"] < r["runs"]:
            print(f"WARNING: the manager asked about only {r['asked']} of {r['runs']} runs: the others are not "
                  "followed at all (a figure for fewer runs than claimed)")
    for r in results:
        print(f"scheduler/{r['runs']}: Flow {r['new']:.1f} commands/min vs per-run {r['old']:.0f} "
              f"({(r['new'] / r['old'] if r['old'] else 0):.3f}× the peer's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
