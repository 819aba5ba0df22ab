"""Execution benchmarks: launch → ``sbatch`` accepted, task event → visible in the API, host RSS while following
100 runs. Each part starts its own real ``jupyter server`` with Flow (fresh root, SQLite, random token) on 127.0.0.1
and prints its figure with a ratio against a peer measured in the same run.

* **launch** — target < 500 ms from the launch request to the Slurm job id being recorded. The tiny test pipeline is
  registered from a git repository and ``POST /flow/api/executions`` (backend slurm) is called N times one after the
  other; the figure is the server's own ``submitted_at − created_at`` (also shown from the moment the client sent the
  POST, same clock). Two series: *single* (each launch cancelled and settled before the next, so the manager has
  nothing else to follow) and *accumulating* (the launches stay active, as a user's queue does). Head jobs are
  submitted held (``resources.extra_directives: ["--hold"]``) so 2 cores are not flooded with Nextflow JVMs; the
  sbatch path is the same. Peer: ``sbatch --parsable --hold --wrap true`` from ``subprocess.run``, interleaved with
  the single series. Every job is cancelled afterwards (through the API, then ``scancel --name flow-<uuid>`` for each
  execution launched, and the peer's jobs by id).
* **events** — target < 1 s median and p99 from a task event being appended to a running execution's events file to
  the task being listed by ``GET /flow/api/executions/<id>/tasks``. The execution is a row in state running whose
  Local backend job is a live ``sleep`` this script started (what the manager checks: pid, start time, boot id), with
  a run directory in the formats of bench/monitor.py. Each probe is one ``task_submit`` event (plus the matching
  ``Submitted process >`` log and console lines); the client polls every 20 ms until the task is listed, waits a
  random 0–0.6 s and writes the next. Peer: nextflow.py's own poll loop (``nextflow.command._run``: sleep 1 s, then
  ``get_execution`` on the same run directory, previous Execution and log offset passed back) in a thread, timed
  from the same write to the first poll that lists the task.
* **memory** — target < 200 MB server RSS while following 100 concurrent executions. Same kind of rows (100 live
  ``sleep`` heads), each events file (and trace and log) growing to ``--tasks`` tasks over ``--seconds`` seconds;
  ``VmRSS`` of the server process sampled every 0.25 s (plus ``VmHWM`` at the end). Peer: the same server idle
  (set up, no executions) sampled before the runs are created. Also reported: how far the manager lagged behind
  the files (tasks written vs rows in ``process_executions``), the time it needed to catch up, its CPU, and the
  event → API latency of probes on one of the 100 runs while they grow and then for ``--steady-seconds`` once
  every run has caught up (nothing new but the probes: what following 100 runs costs per manager round).

    .venv/bin/python bench/executions.py [--parts launch,events,memory] [--launches 20] [--events 100]
                                         [--executions 100] [--tasks 1000] [--seconds 60] [--keep]

Needs: Slurm via ``scripts/slurm.sh`` (started if needed, never stopped) for the launch part; ``git``; the venv's
``nextflow`` launcher (put on PATH here; nextflow.py and registering the test pipeline need it). About 3 minutes.
Everything this script starts (servers, ``sleep`` heads, Slurm jobs) is stopped at the end; its temporary directory
is removed.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]
# The assembled `nextflow` launcher lives beside this interpreter (nextflow.py refuses to import without it).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

from sqlalchemy import func, select  # noqa: E402

from flow_jupyter.db import Database  # noqa: E402
from flow_jupyter.db.models import Execution, PipelineVersion, ProcessExecution, Project  # noqa: E402
from flow_jupyter.execution.backends.base import BackendJob, utc_now_iso  # noqa: E402
from flow_jupyter.execution.backends.local import boot_id, process_start_ticks  # noqa: E402
from flow_jupyter.execution.runfiles import RunFiles  # noqa: E402
from monitor import _event, _stamp, get_execution, header, task_lines  # noqa: E402  (bench/monitor.py)
from uploads import HOST, JupyterServer  # noqa: E402  (bench/uploads.py)

TINY_PIPELINE = REPO / "tests" / "pipelines" / "tiny"
TERMINAL = {"succeeded", "failed", "cancelled", "lost"}
PROBE_PROCESS = "FLOW_BENCH:PROBE"
TARGET_LAUNCH_MS = 500.0
TARGET_EVENT_S = 1.0
TARGET_RSS_MB = 200.0
POLL_SECONDS = 0.02


# ---------------------------------------------------------------- server and client


@dataclass
class FlowServer(JupyterServer):
    """bench/uploads.py's server (real ``jupyter server``, Flow on a fresh root and SQLite) with extra options."""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def tracebacks(self) -> int:
        """Tracebacks in the server log (a manager round that failed shows up here)."""
        return self.log.read_text(errors="replace").count("Traceback") if self.log.exists() else 0


class Client:
    """One keep-alive connection with the token; JSON in and out (a GET is retried once on a dropped connection)."""

    def __init__(self, server: FlowServer) -> None:
        self.server = server
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body)
        headers = self.server.headers(**{"Content-Type": "application/json"})
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.server.port, timeout=120)
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                reply = self.conn.getresponse()
                data = reply.read()
                return reply.status, json.loads(data) if data else None
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2 or method != "GET":  # never send a launch twice
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} -> {status}: {str(data)[:500]}")
        return data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# ---------------------------------------------------------------- figures


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    v = [x * scale for x in values]
    return (f"n={len(v):>3}  median {statistics.median(v):7.1f}  p90 {pct(v, 90):7.1f}  p99 {pct(v, 99):7.1f}  "
            f"max {max(v):7.1f} {unit}")


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, number, _unit = line.split()
            values[key[:-1]] = int(number)
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields_ = text[text.rindex(")") + 2:].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """VmRSS of a process every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.monotonic(), rss_kib(self.pid)[0]))
            self.done.wait(self.interval)

    def stop(self) -> list[int]:
        self.done.set()
        self.join()
        return [kib for _, kib in self.samples]


# ---------------------------------------------------------------- arranging data


def git_repo(source: Path, target: Path) -> Path:
    """A copy of ``source`` committed and tagged v1.0, as tests/test_executions_api.py registers pipelines."""
    shutil.copytree(source, target)
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.org",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.org")
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "v1"], ["tag", "v1.0"]):
        subprocess.run(["git", "-C", str(target), *argv], check=True, capture_output=True, env=env, timeout=60)
    return target


@dataclass
class FakeRun:
    """An execution row in state running whose Local head job is a live ``sleep``, and its growing run files."""

    uuid: str
    dir: Path
    sleeper: subprocess.Popen
    next_task: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, events: str = "", trace: str = "", log: str = "", console: str = "") -> None:
        """Append to the files the monitor (and nextflow.py) read; one lock per run, one write per file."""
        with self.lock:
            files = RunFiles.of(self.uuid, resumed=False)
            for name, text in ((files.events, events), (files.trace, trace), (files.log, log),
                               ("stdout.txt", console)):
                if text:
                    with open(self.dir / name, "a") as handle:
                        handle.write(text)

    def grow(self, count: int, rng: random.Random) -> None:
        """``count`` more finished tasks (pending, submit, start, complete events; trace row; log lines)."""
        if count <= 0:
            return
        parts = [task_lines(self.dir, task_id, rng) for task_id in range(self.next_task, self.next_task + count)]
        events, trace, log, _console = ("".join(p) for p in zip(*parts))
        self.append(events, trace, log)
        self.next_task += count


class FakeRuns:
    """Creates running executions straight in the server's database, as the manager itself leaves them after a
    submit: status running, backend local, ``backend_job`` naming a live process (pid, start ticks, boot id)."""

    def __init__(self, server: FlowServer, project: int) -> None:
        self.server = server
        self.db = Database(server.database_url)
        with self.db.session() as session:
            self.owner = session.get(Project, project).owner_id
            self.version = session.scalar(select(PipelineVersion.id).order_by(PipelineVersion.id).limit(1))
        self.project = project
        self.runs: list[FakeRun] = []

    def add(self, count: int) -> list[FakeRun]:
        new: list[FakeRun] = []
        for _ in range(count):
            execution_uuid = str(uuidlib.uuid4())
            run_dir = self.server.flow_root / "executions" / execution_uuid
            run_dir.mkdir(parents=True)
            sleeper = subprocess.Popen(["sleep", "3600"], start_new_session=True, stdin=subprocess.DEVNULL)
            run = FakeRun(execution_uuid, run_dir, sleeper)
            events, trace, log, console = header(run_dir)
            run.append(events, trace, log, console)
            new.append(run)
        self.runs += new
        now = datetime.now(timezone.utc)
        with self.db.session() as session:
            for run in new:
                job = BackendJob(backend="local", job_id=str(run.sleeper.pid), execution_uuid=run.uuid,
                                 run_dir=str(run.dir), submitted_at=utc_now_iso(),
                                 pid_start_ticks=process_start_ticks(run.sleeper.pid), boot_id=boot_id())
                session.add(Execution(uuid=run.uuid, owner_id=self.owner, project_id=self.project,
                                      pipeline_version_id=self.version, params={}, status="running",
                                      backend="local", backend_job=job.to_json(),
                                      run_dir=f"executions/{run.uuid}", created_at=now, submitted_at=now))
        return new

    def task_rows(self) -> dict[str, int]:
        """Rows in process_executions per execution uuid, probes left out (read from the bench side; WAL keeps it off
        the writer)."""
        with self.db.session() as session:
            rows = session.execute(select(Execution.uuid, func.count(ProcessExecution.id))
                                   .join(ProcessExecution, ProcessExecution.execution_id == Execution.id)
                                   .where(ProcessExecution.process != PROBE_PROCESS)
                                   .group_by(Execution.uuid)).all()
        return {row[0]: row[1] for row in rows}

    def stop(self) -> None:
        for run in self.runs:
            if run.sleeper.poll() is None:
                run.sleeper.kill()
            run.sleeper.wait(timeout=10)
        self.db.dispose()


def project_for(client: Client, name: str) -> int:
    return int(client.json("POST", "/flow/api/projects", {"name": name})["id"])


# ---------------------------------------------------------------- event probes


def probe_lines(run: FakeRun, number: int, rng: random.Random) -> tuple[str, str, str, str]:
    """One new task's ``task_submit`` event, and its ``Submitted process >`` log and console lines."""
    full_hash = "%032x" % rng.getrandbits(128)
    short = f"{full_hash[:2]}/{full_hash[2:8]}"
    name = f"{PROBE_PROCESS} (p{number})"
    now_ms = int(time.time() * 1000)
    task = {"task_id": 1_000_000 + number, "hash": short, "native_id": str(5_000_000 + number), "name": name,
            "process": PROBE_PROCESS, "tag": f"p{number}", "module": [], "container": None, "attempt": 1,
            "submit": now_ms, "workdir": f"{run.dir}/work/{full_hash[:2]}/{full_hash[2:]}", "cpus": 1,
            "memory": 1 << 30, "time": 3_600_000, "disk": None, "queue": "normal", "executor": "local",
            "status": "SUBMITTED"}
    log = f"{_stamp(now_ms)} [Task submitter] INFO  nextflow.Session - [{short}] Submitted process > {name}\n"
    return short, _event("task_submit", now_ms, task=task), log, f"[{short}] Submitted process > {name}\n"


class NextflowPyPoller(threading.Thread):
    """The peer: nextflow.py's `_run` poll loop (sleep, then `get_execution` with the previous Execution and log
    offset) on one run directory, noting when each task identifier is first listed."""

    def __init__(self, run: FakeRun, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.interval = str(run.dir), interval
        self.seen: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        command = f"nextflow -log {self.run_dir}/.nextflow.log run main.nf -with-trace"
        execution, log_start = None, 0
        while not self.done.wait(self.interval):
            execution, diff = get_execution(self.run_dir, self.run_dir, command, execution, log_start)
            log_start += diff
            now = time.time()
            for task in execution.process_executions if execution else ():
                self.seen.setdefault(task.identifier, now)

    def stop(self) -> None:
        self.done.set()
        self.join()


def probe(client: Client, run: FakeRun, count: int, rng: random.Random, stop: threading.Event | None = None,
          timeout: float = 60.0, first: int = 0) -> tuple[list[float], dict[str, float]]:
    """Append ``count`` probe events one by one; each time poll the tasks listing every 20 ms until it shows the
    task. Returns the latencies (s) and the write time of each task key (for the peer)."""
    path = f"/flow/api/executions/{run.uuid}/tasks?process={quote(PROBE_PROCESS)}&limit=1000"
    latencies: list[float] = []
    written: dict[str, float] = {}
    for number in range(first, first + count):
        if stop is not None and stop.is_set():
            break
        key, event, log, console = probe_lines(run, number, rng)
        written[key] = time.time()
        run.append(events=event, log=log, console=console)
        deadline = time.monotonic() + timeout
        while True:
            items = client.json("GET", path)["items"]
            seen = time.time()
            if any(item["key"] == key for item in items):
                latencies.append(seen - written[key])
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"probe {key} not visible after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
        time.sleep(rng.uniform(0, 0.6))
    return latencies, written


def wait_followed(client: Client, run: FakeRun, timeout: float = 30.0) -> None:
    """Until the manager has polled the run once (monitor mode 'events' from the header's flow_create)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = client.json("GET", f"/flow/api/executions/{run.uuid}")
        if detail["monitor"]["mode"] == "events" and detail["status"] == "running":
            return
        time.sleep(0.1)
    raise RuntimeError(f"the manager did not pick up {run.uuid} within {timeout:.0f} s: {detail}")


# ---------------------------------------------------------------- part 1: launch → sbatch accepted


def slurm_start() -> None:
    done = subprocess.run([str(REPO / "scripts" / "slurm.sh"), "start"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"scripts/slurm.sh start failed:\n{done.stdout}\n{done.stderr}")


def raw_sbatch(workdir: Path, hold: bool) -> float:
    """The peer: one bare ``sbatch --parsable --wrap true`` from Python; its job is cancelled at once (untimed)."""
    argv = ["sbatch", "--parsable", "--job-name=flow-bench-peer", f"--chdir={workdir}", "--output=/dev/null",
            *(["--hold"] if hold else []), "--wrap", "true"]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"sbatch failed: {done.stderr}")
    subprocess.run(["scancel", done.stdout.strip().split(";")[0]], capture_output=True, timeout=60)
    return elapsed


def bench_launch(args: argparse.Namespace, tmp: Path) -> list[str]:
    slurm_start()
    server = FlowServer(tmp / "launch", extra_args=["--FlowSettings.executor=slurm"])
    launched: list[str] = []
    client = Client(server)
    try:
        server.start()
        project = project_for(client, "launch-bench")
        client.json("POST", "/flow/api/pipelines", {"source": str(git_repo(TINY_PIPELINE, tmp / "tiny")),
                                                    "ref": "v1.0"})
        body: dict[str, Any] = {"pipeline": "tiny", "version": "v1.0", "project": project, "backend": "slurm",
                                "params": {}, "resources": {"cores": 1}}
        if args.hold:
            body["resources"]["extra_directives"] = ["--hold"]

        def launch() -> dict[str, float]:
            sent = time.time()
            created = client.json("POST", "/flow/api/executions", body)
            answered = time.time()
            launched.append(created["id"])
            deadline = time.monotonic() + 60
            while True:
                detail = client.json("GET", f"/flow/api/executions/{created['id']}")
                if detail["submitted_at"]:
                    break
                if detail["status"] in TERMINAL or time.monotonic() > deadline:
                    raise RuntimeError(f"launch not submitted: {detail['status']} {detail['error']}")
                time.sleep(POLL_SECONDS)
            submitted = when(detail["submitted_at"])
            return {"server": submitted - when(detail["created_at"]), "client": submitted - sent,
                    "post": answered - sent}

        def cancel_settled(execution: str) -> None:
            client.json("POST", f"/flow/api/executions/{execution}/cancel")
            deadline = time.monotonic() + 60
            while client.json("GET", f"/flow/api/executions/{execution}")["status"] not in TERMINAL:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"execution {execution} did not settle after cancel")
                time.sleep(0.05)

        cold = launch()  # the first launch after start-up: imports, first sbatch
        cancel_settled(launched[-1])
        single, peer = [], []
        for _ in range(args.launches):
            single.append(launch())
            cancel_settled(launched[-1])
            peer.append(raw_sbatch(tmp, args.hold))
        accumulating = [launch() for _ in range(args.launches)]
        print(f"\n== launch → sbatch accepted ({args.launches} launches per series, head jobs "
              f"{'held' if args.hold else 'running'}, Slurm on this host) ==")
        print(f"  first launch after start-up: server {cold['server'] * 1000:.1f} ms, "
              f"from POST {cold['client'] * 1000:.1f} ms")
        rows = [("single: created_at → submitted_at (server)", [r["server"] for r in single]),
                ("single: POST sent → submitted_at", [r["client"] for r in single]),
                ("single: POST round trip (201)", [r["post"] for r in single]),
                ("accumulating: created_at → submitted_at", [r["server"] for r in accumulating]),
                ("accumulating: POST sent → submitted_at", [r["client"] for r in accumulating]),
                ("PEER: sbatch --parsable --wrap true", peer)]
        for label, values in rows:
            print(f"  {label:<46} {summary(values)}")
        thirds = [accumulating[i * len(accumulating) // 3:(i + 1) * len(accumulating) // 3] for i in range(3)]
        print("  accumulating, server ms by launches already active: " + ", ".join(
            f"{i * len(accumulating) // 3}–{(i + 1) * len(accumulating) // 3 - 1}: median "
            f"{statistics.median(r['server'] for r in part) * 1000:.0f}" for i, part in enumerate(thirds) if part))
        flow_ms = statistics.median(r["server"] for r in single) * 1000
        worst = max(pct([r["server"] for r in single], 99), pct([r["server"] for r in accumulating], 99)) * 1000
        peer_ms = statistics.median(peer) * 1000
        verdict = "PASS" if worst < TARGET_LAUNCH_MS else "FAIL"
        return [f"launch: median {flow_ms:.0f} ms created→sbatch recorded (single), p99 {worst:.0f} ms worst series "
                f"vs raw sbatch median {peer_ms:.1f} ms → {flow_ms / peer_ms:.0f}× (target < "
                f"{TARGET_LAUNCH_MS:.0f} ms: {verdict})"]
    finally:
        for execution in launched:  # best effort through the API (the manager scancels head and task jobs)
            try:
                client.call("POST", f"/flow/api/executions/{execution}/cancel")
            except Exception:
                break
        time.sleep(2 if launched else 0)
        client.close()
        server.stop()
        for execution in launched:  # whatever is left, by the job name Flow gave it
            subprocess.run(["scancel", f"--name=flow-{execution}"], capture_output=True, timeout=60)
        if server.tracebacks():
            print(f"  WARNING: {server.tracebacks()} traceback(s) in the server log")


# ---------------------------------------------------------------- part 2: event → API visible


def bench_events(args: argparse.Namespace, tmp: Path) -> list[str]:
    server = FlowServer(tmp / "events")
    client = Client(server)
    runs: FakeRuns | None = None
    peer: NextflowPyPoller | None = None
    try:
        server.start()
        runs = FakeRuns(server, project_for(client, "events-bench"))
        run = runs.add(1)[0]
        wait_followed(client, run)
        peer = NextflowPyPoller(run)
        peer.start()
        latencies, written = probe(client, run, args.events, random.Random(1))
        time.sleep(1.5)  # the peer's next poll
        peer.stop()
        peer_latencies = [peer.seen[key] - at for key, at in written.items() if key in peer.seen]
        missing = len(written) - len(peer_latencies)
        print(f"\n== task event → visible in GET /tasks (1 running execution, polled every "
              f"{POLL_SECONDS * 1000:.0f} ms) ==")
        print(f"  {'flow: event appended → listed by the API':<46} {summary(latencies)}")
        print(f"  {'PEER: nextflow.py poll loop (1 s) → listed':<46} {summary(peer_latencies)}"
              + (f"  ({missing} never seen)" if missing else ""))
        med, p99 = statistics.median(latencies), pct(latencies, 99)
        peer_med = statistics.median(peer_latencies)
        verdict = "PASS" if med < TARGET_EVENT_S and p99 < TARGET_EVENT_S else "FAIL"
        return [f"events: median {med * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms event → API vs nextflow.py poll loop "
                f"median {peer_med * 1000:.0f} ms → {med / peer_med:.2f}× (target < 1 s median and p99: {verdict})"]
    finally:
        if peer is not None and peer.is_alive():
            peer.stop()
        shut_down(server, client, runs)


# ---------------------------------------------------------------- part 3: RSS while following 100 runs


def bench_memory(args: argparse.Namespace, tmp: Path) -> list[str]:
    server = FlowServer(tmp / "memory")
    client = Client(server)
    runs: FakeRuns | None = None
    sampler: RssSampler | None = None
    try:
        server.start()
        runs = FakeRuns(server, project_for(client, "memory-bench"))
        started_kib = rss_kib(server.pid)[0]
        sampler = RssSampler(server.pid)
        sampler.start()
        time.sleep(args.idle_seconds)
        idle = sampler.stop()

        cpu_before = cpu_seconds(server.pid)
        sampler = RssSampler(server.pid)
        sampler.start()
        phase_start = time.monotonic()
        active = runs.add(args.executions)
        wait_followed(client, active[0], timeout=120)
        # Probes on the first run while all of them grow (its own connection, its own thread).
        probe_client, probe_stop = Client(server), threading.Event()
        probe_result: dict[str, Any] = {}

        def probing() -> None:
            try:
                probe_result["latencies"] = probe(probe_client, active[0], 10_000, random.Random(2), probe_stop)[0]
            except Exception as exc:  # reported, never hangs the run
                probe_result["error"] = exc

        prober = threading.Thread(target=probing, daemon=True)
        prober.start()
        rng = random.Random(3)
        rounds = max(1, round(args.seconds))
        per_round = math.ceil(args.tasks / rounds)
        lag: list[int] = []
        grow_start = time.monotonic()
        for number in range(rounds):
            if number and number % 5 == 0:  # just before the next round: what a second was not enough for
                rows = runs.task_rows()
                lag.append(sum(run.next_task - 1 - rows.get(run.uuid, 0) for run in active))
            for run in active:
                run.grow(min(per_round, args.tasks + 1 - run.next_task), rng)
            time.sleep(max(0.0, grow_start + number + 1 - time.monotonic()))
        grow_seconds = time.monotonic() - grow_start
        probe_stop.set()  # the prober ends after its current probe
        written = sum(run.next_task - 1 for run in active)
        behind = written
        while time.monotonic() - grow_start - grow_seconds < args.catch_up_seconds:
            rows = runs.task_rows()
            behind = sum(run.next_task - 1 - rows.get(run.uuid, 0) for run in active)
            if behind <= 0:
                break
            time.sleep(0.25)
        caught_up = time.monotonic() - grow_start - grow_seconds
        prober.join(timeout=120)
        cpu_used = cpu_seconds(server.pid) - cpu_before
        phase_seconds = time.monotonic() - phase_start

        # Steady state: every run caught up, nothing new but the probes. What following N runs costs per round.
        steady_cpu = cpu_seconds(server.pid)
        steady_start = time.monotonic()
        timer = threading.Timer(args.steady_seconds, probe_stop.set)
        probe_stop.clear()
        timer.start()
        steady_latencies = probe(client, active[0], 10_000, random.Random(4), probe_stop, first=100_000)[0]
        timer.cancel()
        steady_seconds = time.monotonic() - steady_start
        steady_cpu = cpu_seconds(server.pid) - steady_cpu
        busy = sampler.stop()
        hwm = rss_kib(server.pid)[1]

        mib = 1 / 1024
        events_bytes = sum((r.dir / RunFiles.of(r.uuid, resumed=False).events).stat().st_size for r in active)
        print(f"\n== server RSS following {args.executions} running executions, each growing to {args.tasks} tasks "
              f"over {grow_seconds:.0f} s ({written} tasks, {events_bytes / 1e6:.0f} MB of events) ==")
        print(f"  {'PEER: same server idle':<44} max {max(idle) * mib:6.1f} MiB  median "
              f"{statistics.median(idle) * mib:6.1f} MiB  ({len(idle)} samples; {started_kib * mib:.1f} at start)")
        print(f"  {'following the runs (growth, catch-up, steady)':<44} max {max(busy) * mib:6.1f} MiB  median "
              f"{statistics.median(busy) * mib:6.1f} MiB  ({len(busy)} samples; VmHWM {hwm * mib:.1f} MiB)")
        print(f"  manager lag (tasks written ≥1 s ago, not yet rows), every 5 s: {lag}")
        print(f"  catch-up after the last write: {caught_up:.1f} s"
              + ("" if behind <= 0 else f" (gave up, {behind} tasks still behind)"))
        print(f"  server CPU while the runs grew and it caught up: {cpu_used:.1f} s in {phase_seconds:.0f} s "
              f"({100 * cpu_used / phase_seconds:.0f} % of one core)")
        if probe_result.get("latencies"):
            print(f"  {'probes on run 1 while the runs grow':<44} {summary(probe_result['latencies'])}")
        elif "error" in probe_result:
            print(f"  probes on run 1 failed: {probe_result['error']}")
        print(f"  {'probes on run 1, steady (all caught up)':<44} {summary(steady_latencies)}")
        print(f"  server CPU steady: {steady_cpu:.1f} s in {steady_seconds:.0f} s "
              f"({100 * steady_cpu / steady_seconds:.0f} % of one core, nothing new but the probes)")
        peak, idle_peak = max(busy) * mib * 1.048576, max(idle) * mib * 1.048576  # MB, as the target
        verdict = "PASS" if peak < TARGET_RSS_MB else "FAIL"
        return [f"memory: max RSS {peak:.0f} MB following {args.executions} runs vs idle {idle_peak:.0f} MB → "
                f"{peak / idle_peak:.2f}× (target < {TARGET_RSS_MB:.0f} MB: {verdict})",
                f"memory: event → API with {args.executions} runs: median "
                f"{statistics.median(probe_result.get('latencies') or [math.nan]) * 1000:.0f} ms while they grow "
                f"({written / grow_seconds:.0f} tasks/s), {statistics.median(steady_latencies) * 1000:.0f} ms steady; "
                + (f"caught up {caught_up:.1f} s after the last write" if behind <= 0 else "did not catch up")]
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        shut_down(server, client, runs)


def shut_down(server: FlowServer, client: Client, runs: "FakeRuns | None") -> None:
    """Stop a part's server and fake runs, and say if the server logged a traceback (a failed manager round)."""
    client.close()
    server.stop()
    if runs is not None:
        runs.stop()
    if server.tracebacks():
        print(f"  WARNING: {server.tracebacks()} traceback(s) in the server log")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--parts", default="launch,events,memory", help="comma-separated: launch, events, memory")
    parser.add_argument("--launches", type=int, default=20, help="launches per series (default 20)")
    parser.add_argument("--no-hold", dest="hold", action="store_false",
                        help="let head jobs run (each starts a Nextflow JVM; keep --launches small)")
    parser.add_argument("--events", type=int, default=100, help="probe events (default 100)")
    parser.add_argument("--executions", type=int, default=100, help="concurrent executions (default 100)")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per execution (default 1000)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds over which the runs grow (default 60)")
    parser.add_argument("--idle-seconds", type=float, default=15, help="idle peer sampling (default 15)")
    parser.add_argument("--steady-seconds", type=float, default=15,
                        help="probing once every run caught up (default 15)")
    parser.add_argument("--catch-up-seconds", type=float, default=90,
                        help="longest wait for the manager after the last write (default 90)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"launch", "events", "memory"}
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-executions-"))
    lines: list[str] = []
    started = time.monotonic()
    try:
        for part in parts:
            lines += {"launch": bench_launch, "events": bench_events, "memory": bench_memory}[part](args, tmp)
    finally:
        if args.keep:
            print(f"\n(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    for line in lines:
        print(line)
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
