"""Outputs benchmark: task event → API latency of 99 active runs while a 100th publishes a 2 GiB output.

Target (issue 16 B): while one run's published 2 GiB output is checksummed and registered, p99 from a task event
being appended to another run's events file to ``GET /flow/api/executions/<id>/tasks`` showing that task's new
status stays < 1 s for the other 99 runs.

A real ``jupyter server`` with Flow (fresh root; SQLite, or a throwaway PostgreSQL database with ``--database
postgresql``) follows ``--runs`` executions created straight in its database in state ``submitted``, each with a
Local head job that is a live ``sleep`` this script started (what the Local backend's status query checks: pid,
start time, boot id), so the scheduler says RUNNING until the end. Each run directory starts with the plugin's
``flow_create``/``flow_begin`` events (bench/monitor.py's header); from then on the script drives the runs itself:

* a writer thread appends real plugin event lines (``task_submit``, ``task_start``, ``task_complete`` of one task
  after the other, in the observer's JSON shape) to the other runs' events files in turn at a steady ``--rate``
  (open loop: the schedule does not wait for the server);
* a poller thread asks ``GET …/tasks?process=…`` of every run with an unseen event every 20 ms and times each event
  from its append to the first answer that shows the task at (or past) its new status;
* in a *publishing* phase, the publishing run publishes the same 2 GiB file again and again (a hard link
  ``results/big-<n>.bin`` of one file of random bytes written once; its page cache is dropped with
  ``posix_fadvise(DONTNEED)`` before each publish, so every checksum really reads 2 GiB from the disk) with a
  ``file_publish`` event, each time waiting until ``GET /flow/api/files?execution=…`` lists it before the next.

Peer, measured in the same run: *baseline* phases, the same runs and event rate without the publisher; the phases
alternate (baseline, publishing, …) after an unrecorded warm-up, and each drains before the next starts. Also shown:
the publish → listed time, the server's disk reads per publish (``/proc/<pid>/io``), its CPU, the poll sweep (the
measurement's resolution) and how late the writer was, and a cold-cache sha256 of the file in this process.

    .venv/bin/python bench/outputs.py [--runs 100] [--size-mib 2048] [--rate 30] [--phase-seconds 40]
                                      [--pairs 2] [--database sqlite|postgresql] [--quick] [--keep]

``--quick``: 256 MiB, 15 s phases, one pair (under a minute). The full run takes about 3½ minutes and 2 GiB in a
temporary directory (removed at the end, with the server, the ``sleep`` heads and, for PostgreSQL, the database).
Needs nothing else. Figures move with other load on the machine: each phase line shows the load average.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
# bench/executions.py imports bench/monitor.py, which needs the venv's `nextflow` launcher on PATH (nextflow.py).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

from sqlalchemy import create_engine, select, text  # noqa: E402

from executions import Client, FlowServer, cpu_seconds, pct, project_for  # noqa: E402  (bench/executions.py)
from flow_jupyter.db import Database  # noqa: E402
from flow_jupyter.db.models import Execution, PipelineVersion, Project  # noqa: E402
from flow_jupyter.execution.backends.base import BackendJob, utc_now_iso  # noqa: E402
from flow_jupyter.execution.backends.local import boot_id, process_start_ticks  # noqa: E402
from flow_jupyter.execution.runfiles import RunFiles  # noqa: E402
from flow_jupyter.fsutil import hash_file  # noqa: E402
from monitor import _event, header  # noqa: E402  (bench/monitor.py)

PROCESS = "FLOW_BENCH:STEP"
#: One task's life in the events file: (plugin event, Nextflow status in the event, the API's word for it).
STAGES = (("task_submit", "SUBMITTED", "submitted"), ("task_start", "RUNNING", "running"),
          ("task_complete", "COMPLETED", "succeeded"))
RANK = {"pending": 0, "submitted": 1, "running": 2, "succeeded": 3}
TARGET_P99_S = 1.0
POLL_SECONDS = 0.02
MiB = 1 << 20
BLOCK = 64 * MiB


# ---------------------------------------------------------------- server and runs


@dataclass
class OutputsServer(FlowServer):
    """bench/executions.py's server (real ``jupyter server`` with Flow, fresh root) on SQLite or a given database."""

    url: str = ""

    @property
    def database_url(self) -> str:
        return self.url or f"sqlite:///{self.flow_root / 'flow.sqlite'}"


@dataclass
class Run:
    """One active execution: its row, its run directory, the live ``sleep`` that is its head job, and the task its
    next event is about."""

    uuid: str
    dir: Path
    sleeper: subprocess.Popen
    rng: random.Random
    task: int = 0
    stage: int = len(STAGES) - 1  # the next event starts a new task
    hash: str = ""
    fd: int = -1

    def append(self, text: str) -> None:
        """One ``write`` of whole lines on an O_APPEND descriptor, as the plugin's writer does."""
        os.write(self.fd, text.encode())

    def next_event(self) -> tuple[str, str, str]:
        """The next event line of this run's current task (a new task after a completion), not yet written:
        (task key, the API's status once it is applied, the line)."""
        self.stage = (self.stage + 1) % len(STAGES)
        if self.stage == 0:
            self.task += 1
            self.hash = "%032x" % self.rng.getrandbits(128)
        kind, status, api_status = STAGES[self.stage]
        short = f"{self.hash[:2]}/{self.hash[2:8]}"
        now_ms = int(time.time() * 1000)
        task = {"task_id": self.task, "hash": short, "native_id": str(200_000 + self.task),
                "name": f"{PROCESS} (t{self.task})", "process": PROCESS, "tag": f"t{self.task}", "module": [],
                "container": None, "attempt": 1, "submit": now_ms, "workdir": f"{self.dir}/work/{self.hash[:2]}/"
                f"{self.hash[2:]}", "cpus": 1, "memory": 1 << 30, "time": 3_600_000, "disk": None,
                "queue": "normal", "executor": "slurm", "status": status}
        if self.stage >= 1:
            task["start"] = now_ms
        if self.stage == 2:
            task.update({"exit": 0, "complete": now_ms, "duration": 1, "realtime": 1, "%cpu": 99.0,
                         "peak_rss": 1 << 20, "hostname": "node01"})
        return short, api_status, _event(kind, now_ms, task=task)


class Runs:
    """Creates the executions straight in the server's database as the manager leaves them after a submit: status
    ``submitted``, unclaimed (the manager claims them), backend local, ``backend_job`` naming a live process."""

    def __init__(self, server: OutputsServer, project: int) -> None:
        self.server = server
        self.db = Database(server.database_url)
        with self.db.session() as session:
            self.owner = session.get_one(Project, project).owner_id
            self.version = session.scalar(select(PipelineVersion.id).order_by(PipelineVersion.id).limit(1))
        self.project = project
        self.runs: list[Run] = []

    def add(self, count: int) -> list[Run]:
        new: list[Run] = []
        for number in range(count):
            execution_uuid = str(uuidlib.uuid4())
            run_dir = self.server.flow_root / "executions" / execution_uuid
            (run_dir / "results").mkdir(parents=True)
            sleeper = subprocess.Popen(["sleep", "3600"], start_new_session=True, stdin=subprocess.DEVNULL)
            run = Run(execution_uuid, run_dir, sleeper, random.Random(number))
            run.fd = os.open(run_dir / RunFiles.of(execution_uuid, resumed=False).events,
                             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            run.append(header(run_dir)[0])
            new.append(run)
        self.runs += new
        moment = datetime.now(timezone.utc)
        with self.db.session() as session:
            for run in new:
                job = BackendJob(backend="local", job_id=str(run.sleeper.pid), execution_uuid=run.uuid,
                                 run_dir=str(run.dir), submitted_at=utc_now_iso(),
                                 pid_start_ticks=process_start_ticks(run.sleeper.pid), boot_id=boot_id())
                session.add(Execution(uuid=run.uuid, owner_id=self.owner, project_id=self.project,
                                      pipeline_version_id=self.version, params={},
                                      status="submitted", backend="local", backend_job=job.to_json(),
                                      run_dir=f"executions/{run.uuid}", created_at=moment, submitted_at=moment))
        return new

    def stop(self) -> None:
        for run in self.runs:
            if run.fd >= 0:
                os.close(run.fd)
            if run.sleeper.poll() is None:
                run.sleeper.kill()
            run.sleeper.wait(timeout=10)
        self.db.dispose()


# ---------------------------------------------------------------- the big output


def write_big_file(path: Path, size: int) -> None:
    """``size`` bytes that must really be read to be hashed: random 64 MiB blocks, each one a little different."""
    block = bytearray(os.urandom(min(BLOCK, size)))
    with open(path, "wb") as out:
        written, number = 0, 0
        while written < size:
            block[:8] = number.to_bytes(8, "little")
            piece = memoryview(block)[:size - written]
            out.write(piece)
            written += len(piece)
            number += 1
        out.flush()
        os.fsync(out.fileno())


def drop_cache(path: Path) -> None:
    """Evict the file's (clean) pages, so the next checksum reads it from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_bytes(pid: int) -> int:
    """Bytes the process had read from storage (not the page cache), from /proc/<pid>/io."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- one phase


@dataclass
class Probe:
    run: int
    key: str
    rank: int
    written: float
    latency: float | None = None


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    probes: list[Probe] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)  # (published, listed) per big publish
    sweeps: list[float] = field(default_factory=list)
    writer_late: float = 0.0
    seconds: float = 0.0
    cpu: float = 0.0
    disk_read: int = 0
    unseen: int = 0
    load: float = 0.0  # the machine's 1-minute load average at the end (other work on the host shows up here)

    def latencies(self, during_checksum: bool = False) -> list[float]:
        return [p.latency for p in self.probes if p.latency is not None
                and (not during_checksum or any(start <= p.written <= end for start, end in self.windows))]


class Driver:
    """Writes the others' events at a steady rate, polls the API for each, and (publishing phases) publishes the
    big file over and over on the publishing run."""

    def __init__(self, server: OutputsServer, others: list[Run], publisher: Run, big: Path, rate: float) -> None:
        self.server, self.others, self.publisher, self.big, self.rate = server, others, publisher, big, rate
        self.published = 0
        self.next_run = 0

    def phase(self, name: str, seconds: float, publish: bool, drain_seconds: float = 60.0) -> Phase:
        result = Phase(name)
        lock = threading.Lock()
        outstanding: dict[int, list[Probe]] = {}
        writing, polling = threading.Event(), threading.Event()
        errors: list[BaseException] = []
        cpu_before, read_before = cpu_seconds(self.server.pid), read_bytes(self.server.pid)
        started = time.monotonic()

        def write() -> None:
            number = 0
            while not writing.is_set():
                target = started + number / self.rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    result.writer_late = max(result.writer_late, -delay)
                index = self.next_run % len(self.others)
                self.next_run += 1
                run = self.others[index]
                key, status, event = run.next_event()
                probe = Probe(index, key, RANK[status], time.monotonic())
                run.append(event)
                with lock:
                    result.probes.append(probe)
                    outstanding.setdefault(index, []).append(probe)
                number += 1

        def poll() -> None:
            client = Client(self.server)
            try:
                while True:
                    with lock:
                        waiting = [index for index, items in outstanding.items() if items]
                    if not waiting and polling.is_set():
                        return
                    sweep = time.monotonic()
                    for index in waiting:
                        path = (f"/flow/api/executions/{self.others[index].uuid}/tasks"
                                f"?process={quote(PROCESS)}&limit=1000")
                        items = client.json("GET", path)["items"]
                        seen = time.monotonic()
                        status = {item["key"]: RANK.get(item["status"], -1) for item in items}
                        with lock:
                            left = []
                            for probe in outstanding[index]:
                                if status.get(probe.key, -1) >= probe.rank:
                                    probe.latency = seen - probe.written
                                else:
                                    left.append(probe)
                            outstanding[index] = left
                    if waiting:
                        result.sweeps.append(time.monotonic() - sweep)
                    time.sleep(POLL_SECONDS)
            except BaseException as exc:  # reported by the phase, never hangs it
                errors.append(exc)
            finally:
                client.close()

        def guarded(fn: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except BaseException as exc:
                    errors.append(exc)
            return run

        threads = [threading.Thread(target=guarded(write), daemon=True), threading.Thread(target=poll, daemon=True)]
        for thread in threads:
            thread.start()
        try:
            if publish:
                client = Client(self.server)
                try:
                    while time.monotonic() - started < seconds and not errors:
                        result.windows.append(self.publish_once(client))
                finally:
                    client.close()
            else:
                while time.monotonic() - started < seconds and not errors:
                    time.sleep(0.1)
        finally:
            writing.set()
            threads[0].join(timeout=30)
            result.seconds = time.monotonic() - started
            result.cpu = cpu_seconds(self.server.pid) - cpu_before
            result.disk_read = read_bytes(self.server.pid) - read_before
            result.load = os.getloadavg()[0]
            deadline = time.monotonic() + drain_seconds
            while time.monotonic() < deadline and not errors:
                with lock:
                    if not any(outstanding.values()):
                        break
                time.sleep(0.1)
            polling.set()
            with lock:
                result.unseen = sum(len(items) for items in outstanding.values())
                outstanding.clear()
            threads[1].join(timeout=30)
        if errors:
            raise RuntimeError(f"phase {name} failed: {errors[0]!r}") from errors[0]
        return result

    def publish_once(self, client: Client, timeout: float = 600.0) -> tuple[float, float]:
        """Publish the big file under a new name and wait until the API lists it: (published, listed)."""
        self.published += 1
        name = f"big-{self.published:03d}.bin"
        destination = self.publisher.dir / "results" / name
        os.link(self.big, destination)
        drop_cache(self.big)
        work = f"{self.publisher.dir}/work/{self.published:02x}/{uuidlib.uuid4().hex}"
        published = time.monotonic()
        self.publisher.append(_event("file_publish", int(time.time() * 1000), destination=str(destination),
                                     source=f"{work}/{name}"))
        path = f"/flow/api/files?execution={self.publisher.uuid}&name={quote(name)}&limit=10"
        while True:
            items = client.json("GET", path)["items"]
            if any(item["filename"] == name for item in items):
                return published, time.monotonic()
            if time.monotonic() - published > timeout:
                raise RuntimeError(f"{name} not listed after {timeout:.0f} s")
            time.sleep(0.05)


# ---------------------------------------------------------------- figures


def line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<50} (no events)"
    ms = [v * 1000 for v in values]
    return (f"  {label:<50} n={len(ms):>5}  p50 {pct(ms, 50):7.1f}  p95 {pct(ms, 95):7.1f}  p99 {pct(ms, 99):7.1f}"
            f"  max {max(ms):7.1f} ms")


def report(phases: list[Phase], args: argparse.Namespace, cold_hash: float) -> list[str]:
    baseline = [p for p in phases if p.name == "baseline"]
    publishing = [p for p in phases if p.name == "publishing"]
    others = args.runs - 1
    size = f"{args.size_mib / 1024:g} GiB" if args.size_mib >= 1024 else f"{args.size_mib} MiB"
    print(f"\n== task event → GET /tasks shows the new status, {others} runs at {args.rate:g} events/s in all, "
          f"{len(baseline)}+{len(publishing)} phases of {args.phase_seconds:g} s, {args.database} ==")
    for phase in phases:
        windows = phase.windows
        extra = (f"; {len(windows)} publishes of {size}, publish → listed median "
                 f"{statistics.median(e - s for s, e in windows):.1f} s, server read {phase.disk_read / MiB:,.0f} MiB "
                 f"from disk" if windows else "")
        print(f"  [{phase.name}] {phase.seconds:.0f} s, server CPU {phase.cpu:.1f} s "
              f"({100 * phase.cpu / phase.seconds:.0f} % of one core), poll sweep median "
              f"{statistics.median(phase.sweeps or [0]) * 1000:.0f} ms, writer late ≤ "
              f"{phase.writer_late * 1000:.0f} ms, load {phase.load:.1f}"
              + (f", {phase.unseen} never seen" if phase.unseen else "") + extra)
    base = [v for p in baseline for v in p.latencies()]
    busy = [v for p in publishing for v in p.latencies()]
    during = [v for p in publishing for v in p.latencies(during_checksum=True)]
    print(line(f"PEER: baseline ({others} runs, no publisher)", base))
    print(line(f"with one run publishing {size} (whole phase)", busy))
    print(line("  … events written while a checksum was in flight", during))
    listed = [e - s for p in publishing for s, e in p.windows]
    if listed:
        print(f"  publish → listed by /flow/api/files: n={len(listed)}  median {statistics.median(listed):.2f} s  "
              f"max {max(listed):.2f} s  (this process's own cold-cache sha256 of the file: {cold_hash:.2f} s)")
    if not base or not during:
        return ["outputs: not enough events measured"]
    p99, peer = pct(during, 99), pct(base, 99)
    verdict = "PASS" if p99 < TARGET_P99_S else "FAIL"
    return [f"outputs: p99 {p99 * 1000:.0f} ms event → API for {others} runs while one publishes {size} "
            f"(p50 {pct(during, 50) * 1000:.0f} ms) vs {peer * 1000:.0f} ms without (p50 {pct(base, 50) * 1000:.0f} "
            f"ms) → {p99 / peer:.2f}× (target p99 < {TARGET_P99_S:.0f} s: {verdict})"]


# ---------------------------------------------------------------- main


@contextmanager
def database(kind: str) -> Iterator[str]:
    """'' for the server's own SQLite file; for PostgreSQL a fresh database on scripts/postgres.sh's throwaway
    server, dropped at the end."""
    if kind == "sqlite":
        yield ""
        return
    from list_files import postgres_base_url  # bench/list_files.py

    base = postgres_base_url()
    name = f"flowbench_{uuidlib.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def wait_followed(client: Client, runs: list[Run], timeout: float = 120.0) -> None:
    """Until the manager has read every run's header (monitor mode 'events')."""
    deadline = time.monotonic() + timeout
    waiting = list(runs)
    while waiting:
        waiting = [run for run in waiting
                   if client.json("GET", f"/flow/api/executions/{run.uuid}")["monitor"]["mode"] != "events"]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"the manager did not pick up {len(waiting)} of {len(runs)} runs in {timeout:.0f} s")
        time.sleep(0.2)


def bench(args: argparse.Namespace, tmp: Path) -> list[str]:
    big = tmp / "big.bin"
    started = time.monotonic()
    write_big_file(big, args.size_mib * MiB)
    drop_cache(big)
    hash_started = time.monotonic()
    hash_file(big)
    cold_hash = time.monotonic() - hash_started
    print(f"  wrote {args.size_mib} MiB of random bytes in {hash_started - started:.1f} s; "
          f"cold-cache sha256 here: {cold_hash:.2f} s", flush=True)
    with database(args.database) as url:
        server = OutputsServer(tmp / "server", url=url)
        client = Client(server)
        runs: Runs | None = None
        try:
            server.start()
            runs = Runs(server, project_for(client, "outputs-bench"))
            active = runs.add(args.runs)
            wait_followed(client, active)
            print(f"  {len(active)} runs followed after {time.monotonic() - started:.0f} s", flush=True)
            driver = Driver(server, active[1:], active[0], big, args.rate)
            driver.phase("warm-up", max(5.0, 2 * (args.runs - 1) / args.rate), publish=False)
            phases = []
            for _ in range(args.pairs):
                for name in ("baseline", "publishing"):
                    phases.append(driver.phase(name, args.phase_seconds, publish=name == "publishing"))
                    print(f"  {name}: {len(phases[-1].probes)} events, p99 "
                          f"{pct(phases[-1].latencies() or [0], 99) * 1000:.0f} ms", flush=True)
            return report(phases, args, cold_hash)
        finally:
            client.close()
            server.stop()
            if runs is not None:
                runs.stop()
            if server.tracebacks():
                print(f"  WARNING: {server.tracebacks()} traceback(s) in the server log {server.log}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--runs", type=int, default=100, help="active executions, the publisher included (100)")
    parser.add_argument("--size-mib", type=int, default=2048, help="size of the published output (2048)")
    parser.add_argument("--rate", type=float, default=30.0, help="task events per second over all other runs (30)")
    parser.add_argument("--phase-seconds", type=float, default=40.0, help="length of each phase (40)")
    parser.add_argument("--pairs", type=int, default=2, help="baseline + publishing phase pairs (2)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the server's database: its own SQLite file, or a throwaway PostgreSQL database")
    parser.add_argument("--quick", action="store_true", help="256 MiB, 15 s phases, one pair")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server log)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 (one publisher and the others)")
    if args.quick:
        args.size_mib, args.phase_seconds, args.pairs = 256, 15.0, 1
    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-outputs-"))
    started = time.monotonic()
    try:
        lines = bench(args, tmp)
    finally:
        if args.keep:
            print(f"\n(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    for text_line in lines:
        print(text_line)
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
