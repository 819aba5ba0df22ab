"""Monitoring benchmark: CPU per poll of Flow's incremental run monitor vs nextflow.py's `get_execution`.

Target (DESIGN "Performance targets"): monitoring a 100k-task run costs ≥10× less CPU per poll than nextflow.py.

For each size (1k / 10k / 100k tasks) a synthetic run directory is written in the formats Nextflow and Flow's plugin
produce: `.nextflow.log` (launch header, then per task a `Launch cmd line`, a `Submitted process >` and a
`Task completed > TaskHandler[...]` line), the trace file (default columns) and `events.ndjson` (pending, submit,
start and complete events with the plugin's trace-record fields, a `file_publish` for half the tasks). The run is
written up to `size - polls * batch` tasks and both monitors catch up once (timed separately: the cost after a server
restart). Then the run grows: each step appends `batch` tasks' worth of lines to all three files, and one
`Monitor.poll()` and one `get_execution(...)` are timed with `time.process_time` on the same files at the same
moment. nextflow.py is called as its own `_run` poll loop calls it: the previous Execution and `log_start` (the
number of characters already parsed) are passed back in, so it parses only the new part of the log (but still
reads the whole file and walks every task it knows on each poll).

Ours is measured twice: with events (the plugin loaded) and in the trace+log fallback (a second directory holding
the same trace and log without events.ndjson). Nextflow's console output goes to `stdout.txt` in the run directory,
as nextflow.py's own launch command writes it (one `Submitted process >` line per task); `get_execution` reads it
on every poll, ours never does. No task work directories are written: nextflow.py globs `work/*/*`
and matches every unresolved task against every directory on each poll, which would make its polls far slower
still; without them its glob is empty, so the comparison favours the peer.

"event → state" latency is not measured here: it is dominated by the poll interval, not by the parse.

Run: `PATH=.venv/bin:$PATH .venv/bin/python bench/monitor.py [--sizes 1000,10000,100000] [--polls 20]`
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flow_jupyter.execution.monitor import Monitor  # noqa: E402
from flow_jupyter.execution.runfiles import EVENTS_FILE, LOG_FILE, TRACE_FILE  # noqa: E402

try:
    from nextflow.command import get_execution  # noqa: E402
except Exception as error:  # nextflow.py refuses to import without a `nextflow` executable on PATH
    sys.exit(f"cannot import nextflow.py ({error}); put the venv's bin (with the `nextflow` launcher) on PATH")

PROCESSES = ["NFCORE_RNASEQ:RNASEQ:FASTQC", "NFCORE_RNASEQ:RNASEQ:TRIMGALORE", "NFCORE_RNASEQ:RNASEQ:STAR_ALIGN",
             "NFCORE_RNASEQ:RNASEQ:SAMTOOLS_SORT", "NFCORE_RNASEQ:RNASEQ:SALMON_QUANT",
             "NFCORE_RNASEQ:RNASEQ:MULTIQC"]
TRACE_HEADER = "task_id\thash\tnative_id\tname\tstatus\texit\tsubmit\tduration\trealtime\t%cpu\tpeak_rss\tpeak_vmem" \
               "\trchar\twchar\n"
RUN_NAME, SESSION = "ecstatic_volta", "2f34d83b-a13a-44ff-a46e-470b829e082d"
START_MS = 1_795_600_000_000
STDOUT_FILE = "stdout.txt"  # where nextflow.py's own launch command sends Nextflow's console output


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%b-%d %H:%M:%S.%f")[:-3]


def _trace_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _event(event: str, when: int, **fields) -> str:
    return json.dumps({"v": 1, "event": event, "time": when, "run_name": RUN_NAME, "session_id": SESSION, **fields},
                      separators=(",", ":")) + "\n"


def header(run_dir: Path) -> tuple[str, str, str, str]:
    """The lines Nextflow and the plugin write before the first task."""
    log = "".join(f"{_stamp(START_MS + i)} [main] DEBUG {line}\n" for i, line in enumerate([
        f"nextflow.cli.Launcher - $> nextflow -log {run_dir}/.nextflow.log run main.nf -with-trace",
        "nextflow.plugin.PluginsFacade - Setting up plugin manager > mode=prod; embedded=false",
        f"nextflow.Session - Session UUID: {SESSION}",
        f"nextflow.Session - Run name: {RUN_NAME}",
        "nextflow.Session - Executor pool size: 2",
        f"nextflow.Session - Work-dir: {run_dir}/work [ext2/ext3]",
        "nextflow.Session - Session start",
        "nextflow.script.ScriptRunner - > Launching execution",
    ]))
    events = _event("flow_create", START_MS, resumed=False, work_dir=f"{run_dir}/work", launch_dir=str(run_dir),
                    nextflow_version="24.10.0", pid=4242, hostname="node01") + _event("flow_begin", START_MS + 5)
    events += "".join(_event("process_create", START_MS + 10, process=p, process_id=i) for i, p in enumerate(PROCESSES))
    console = (f"N E X T F L O W  ~  version 24.10.0\nLaunching `main.nf` [{RUN_NAME}] DSL2 - revision: "
               "579b99603e\n")
    return events, TRACE_HEADER, log, console


def task_lines(run_dir: Path, task_id: int, rng: random.Random) -> tuple[str, str, str, str]:
    """One task's lines in events.ndjson, the trace, the log and Nextflow's console output (stdout.txt)."""
    process = PROCESSES[task_id % len(PROCESSES)]
    tag = f"SAMPLE_{task_id // len(PROCESSES):06d}_T1"
    name = f"{process} ({tag})"
    full_hash = "%032x" % rng.getrandbits(128)
    short = f"{full_hash[:2]}/{full_hash[2:8]}"
    workdir = f"{run_dir}/work/{full_hash[:2]}/{full_hash[2:]}"
    submit = START_MS + 1000 + task_id * 50
    start, realtime = submit + 400, rng.randint(2_000, 900_000)
    complete = start + realtime + 300
    rss, cpu = rng.randint(10 << 20, 8 << 30), round(rng.uniform(50, 390), 1)
    base = {"task_id": task_id, "hash": short, "native_id": str(100_000 + task_id), "name": name, "process": process,
            "tag": tag, "module": [], "container": None, "attempt": 1, "submit": submit, "workdir": workdir,
            "cpus": 4, "memory": 8 << 30, "time": 3_600_000, "disk": None, "queue": "normal", "executor": "slurm"}
    done = {**base, "status": "COMPLETED", "exit": 0, "start": start, "complete": complete,
            "duration": complete - submit, "realtime": realtime, "%cpu": cpu, "%mem": 1.2, "rss": rss,
            "vmem": rss * 2, "peak_rss": rss, "peak_vmem": rss * 2, "rchar": 1 << 30, "wchar": 1 << 28,
            "syscr": 120_000, "syscw": 80_000, "read_bytes": 1 << 30, "write_bytes": 1 << 28, "vol_ctxt": 5000,
            "inv_ctxt": 800, "error_action": None, "hostname": "node01"}
    events = (_event("task_pending", submit - 10, task={**base, "status": "NEW"})
              + _event("task_submit", submit, task={**base, "status": "SUBMITTED"})
              + _event("task_start", start, task={**base, "status": "RUNNING", "start": start})
              + _event("task_complete", complete, task=done))
    if task_id % 2 == 0:
        events += _event("file_publish", complete + 20, destination=f"{run_dir}/results/{tag}/{task_id}.bam",
                         source=f"{workdir}/{task_id}.bam")
    trace = (f"{task_id}\t{short}\t{100_000 + task_id}\t{name}\tCOMPLETED\t0\t{_trace_time(submit)}\t"
             f"{(complete - submit) / 1000:.1f}s\t{realtime / 1000:.1f}s\t{cpu}%\t{rss / (1 << 20):.1f} MB\t"
             f"{rss / (1 << 19):.1f} MB\t1 GB\t256 MB\n")
    log = (f"{_stamp(submit - 1)} [Task submitter] DEBUG n.executor.GridTaskHandler - [SLURM] submitted process "
           f"{name} > jobId: {100_000 + task_id}; workDir: {workdir}\n"
           f"{_stamp(submit)} [Task submitter] INFO  nextflow.Session - [{short}] Submitted process > {name}\n"
           f"{_stamp(complete)} [Task monitor] DEBUG n.processor.TaskPollingMonitor - Task completed > "
           f"TaskHandler[jobId: {100_000 + task_id}; id: {task_id}; name: {name}; status: COMPLETED; exit: 0; "
           f"error: -; workDir: {workdir} started: {start}; exited: {_trace_time(complete)}; ]\n")
    return events, trace, log, f"[{short}] Submitted process > {name}\n"


def append(dirs: list[Path], parts: tuple[str, ...]) -> None:
    """Appends (events, trace, log, console) text; empty parts are left out (the fallback gets no events)."""
    for run_dir in dirs:
        for name, text in zip((EVENTS_FILE, TRACE_FILE, LOG_FILE, STDOUT_FILE), parts):
            if not text:
                continue
            with (run_dir / name).open("a") as handle:
                handle.write(text)


def batch(run_dir: Path, first: int, count: int, rng: random.Random) -> tuple[str, ...]:
    lines = [task_lines(run_dir, task_id, rng) for task_id in range(first, first + count)]
    return tuple("".join(part) for part in zip(*lines))  # type: ignore[return-value]


def cpu(call) -> tuple[float, object]:
    start = time.process_time()
    result = call()
    return (time.process_time() - start) * 1000, result


def measure(size: int, polls: int, per_poll: int, root: Path) -> dict:
    rng = random.Random(size)
    run_dir, fallback = root / f"run{size}", root / f"run{size}" / "fallback"
    fallback.mkdir(parents=True)
    head = header(run_dir)
    append([run_dir], head)
    append([fallback], ("", head[1], head[2], ""))
    polls = max(1, min(polls, size // (2 * per_poll)))  # the timed polls cover at most the second half of the run
    prefill = size - polls * per_poll
    for first in range(1, prefill + 1, 5000):
        parts = batch(run_dir, first, min(5000, prefill + 1 - first), rng)
        append([run_dir], parts)
        append([fallback], ("", parts[1], parts[2], ""))
    nextflow_command = f"nextflow -log {run_dir}/.nextflow.log run main.nf -with-trace"

    ours, ours_fallback = Monitor(run_dir), Monitor(fallback)
    gc.collect()
    catch_up = {"ours": cpu(lambda: _drain(ours))[0], "fallback": cpu(lambda: _drain(ours_fallback))[0]}
    peer_ms, (execution, diff) = cpu(lambda: get_execution(str(run_dir), str(run_dir), nextflow_command, None, 0))
    catch_up["peer"], log_start = peer_ms, diff

    times: dict[str, list[float]] = {"ours": [], "fallback": [], "peer": []}
    next_id = prefill + 1
    for _ in range(polls):
        parts = batch(run_dir, next_id, per_poll, rng)
        append([run_dir], parts)
        append([fallback], ("", parts[1], parts[2], ""))
        next_id += per_poll
        gc.collect()
        elapsed, _changes = cpu(ours.poll)
        times["ours"].append(elapsed)
        elapsed, _changes = cpu(ours_fallback.poll)
        times["fallback"].append(elapsed)
        elapsed, (execution, diff) = cpu(
            lambda: get_execution(str(run_dir), str(run_dir), nextflow_command, execution, log_start))
        log_start += diff
        times["peer"].append(elapsed)

    # Both saw the same run: every task, all finished.
    assert len(ours.state.tasks) == size and ours.state.mode == "events", len(ours.state.tasks)
    assert len(ours_fallback.state.tasks) == size and ours_fallback.state.mode == "trace+log"
    assert len(execution.process_executions) == size, len(execution.process_executions)
    sizes = {name: (run_dir / name).stat().st_size for name in (EVENTS_FILE, TRACE_FILE, LOG_FILE, STDOUT_FILE)}
    return {"size": size, "polls": polls, "catch_up": catch_up, "median": {k: statistics.median(v) for k, v in times.items()},
            "p90": {k: sorted(v)[int(len(v) * 0.9) - 1] for k, v in times.items()}, "bytes": sizes}


def _drain(monitor: Monitor) -> None:
    while monitor.poll().more:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--polls", type=int, default=20, help="timed polls per size")
    parser.add_argument("--batch", type=int, default=100, help="tasks appended before each poll")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="flow-monitor-bench-"))
    try:
        results = [measure(int(size), args.polls, args.batch, root) for size in args.sizes.split(",")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'tasks':>7} {'polls':>5} {'events MB':>9} {'log MB':>7} | {'ours ms':>8} {'fallback':>8} {'peer ms':>8} "
          f"(median CPU per poll, {args.batch} tasks/poll) | catch-up ms ours / fallback / peer")
    for r in results:
        m, c, b = r["median"], r["catch_up"], r["bytes"]
        print(f"{r['size']:>7} {r['polls']:>5} {b[EVENTS_FILE] / 1e6:>9.1f} {b[LOG_FILE] / 1e6:>7.1f} | {m['ours']:>8.2f} "
              f"{m['fallback']:>8.2f} {m['peer']:>8.2f} | {c['ours']:.0f} / {c['fallback']:.0f} / {c['peer']:.0f}")
    for r in results:
        m = r["median"]
        verdict = "" if r["size"] < 100_000 else (" (target ≥10×: " + ("PASS" if m["peer"] >= 10 * m["ours"]
                                                                       else "FAIL") + ")")
        print(f"{r['size']} tasks: ours {m['ours']:.2f} ms (events) / {m['fallback']:.2f} ms (trace+log) vs "
              f"nextflow.py get_execution {m['peer']:.2f} ms per poll → {m['peer'] / m['ours']:.1f}× / "
              f"{m['peer'] / m['fallback']:.1f}× less CPU{verdict}")


if __name__ == "__main__":
    main()
