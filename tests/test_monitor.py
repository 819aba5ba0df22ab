"""The incremental run monitor on real Nextflow output.

The tiny pipeline runs for real (local executor) with `-with-trace` and its own `.nextflow.log`; a failing pipeline and
a cancelled one are written here and run for real too. Flow's plugin is built in parallel, so `events.ndjson` is
generated from the real trace in the plugin's documented format (`nf_plugin/FlowEventsObserver.groovy`). The stories:
files that grow between polls (a line split across two polls), a server restart from persisted offsets and state,
garbage in the untrusted events file, truncated and replaced files, and the trace+log fallback when there are no
events.
"""
from __future__ import annotations

import asyncio
import csv
import glob
import json
import os
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from conftest import TINY_PIPELINE
from waiting import wait_for
from flow_jupyter.execution.monitor import Changes, Monitor, load, watch
from flow_jupyter.execution.parsers import (
    classify_log_line, hash_from_workdir, parse_duration_ms, parse_memory_bytes, parse_task_completed, split_task_name,
)
from flow_jupyter.execution.runfiles import EVENTS_FILE, LOG_FILE, TRACE_FILE, WORK_DIR
from flow_jupyter.execution.runstate import RunState
from flow_jupyter.execution.tailing import MAX_LINE, Tail, TailPosition

NAMES = ["Ada", "Grace", "Rosalind"]
SOURCES = (EVENTS_FILE, TRACE_FILE, LOG_FILE)

FAILING_PIPELINE = """\
nextflow.enable.dsl = 2
process OK {
    tag "${x}"
    input: val x
    output: stdout
    script: "echo ok ${x}"
}
process BOOM {
    input: val x
    output: stdout
    script: "echo 'going down' >&2; exit 3"
}
workflow {
    BOOM(OK(Channel.of(1, 2)).collect())
}
"""

SLOW_PIPELINE = """\
nextflow.enable.dsl = 2
process SLOW {
    tag "${x}"
    input: val x
    script: "sleep 120"
}
workflow {
    SLOW(Channel.of(1, 2))
}
"""


# --- real runs -------------------------------------------------------------------------------------------------------

def _env() -> dict[str, str]:
    return dict(os.environ, NXF_ANSI_LOG="false")


def _argv(run_dir: Path, script: Path, *extra: str) -> list[str]:
    return ["nextflow", "-log", str(run_dir / LOG_FILE), "run", str(script), "-work-dir", str(run_dir / WORK_DIR),
            "-with-trace", str(run_dir / TRACE_FILE), *extra]


def _run(run_dir: Path, script: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(run_dir, script, *extra), cwd=run_dir, capture_output=True, text=True, timeout=300,
                          env=_env())


@pytest.fixture(scope="module")
def succeeded_run(tmp_path_factory) -> Path:
    """The tiny pipeline, run for real: its log and trace, plus events.ndjson generated from them."""
    run_dir = tmp_path_factory.mktemp("succeeded")
    (run_dir / "names.txt").write_text("\n".join(NAMES) + "\n")
    done = _run(run_dir, TINY_PIPELINE / "main.nf", "--names", str(run_dir / "names.txt"),
                "--outdir", str(run_dir / "results"))
    assert done.returncode == 0, done.stdout + done.stderr
    _write_events(run_dir, success=True)
    return run_dir


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> Path:
    """A pipeline whose last task exits 3, run for real."""
    run_dir = tmp_path_factory.mktemp("failed")
    (run_dir / "main.nf").write_text(FAILING_PIPELINE)
    done = _run(run_dir, run_dir / "main.nf")
    assert done.returncode != 0, done.stdout + done.stderr
    _write_events(run_dir, success=False)
    return run_dir


def _log_value(run_dir: Path, prefix: str) -> str:
    for line in (run_dir / LOG_FILE).read_text().splitlines():
        if f" - {prefix}" in line:
            return line.split(f" - {prefix}", 1)[1].strip()
    raise AssertionError(f"{prefix!r} not in the log")


def _ms(text: str) -> int | None:
    return None if text == "-" else int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp() * 1000)


def _write_events(run_dir: Path, success: bool) -> None:
    """events.ndjson as Flow's plugin writes it (v1, JSON-safe trace records), from the real trace of the run."""
    run_name, session_id = _log_value(run_dir, "Run name:"), _log_value(run_dir, "Session UUID:")
    rows = list(csv.DictReader((run_dir / TRACE_FILE).open(), delimiter="\t"))
    first = min(_ms(row["submit"]) for row in rows)
    lines: list[dict] = []

    def emit(event: str, when: int, **fields) -> None:
        lines.append({"v": 1, "event": event, "time": when, "run_name": run_name, "session_id": session_id, **fields})

    emit("flow_create", first - 2000, resumed=False, work_dir=str(run_dir / WORK_DIR), launch_dir=str(run_dir),
         nextflow_version="24.10.0")
    emit("flow_begin", first - 1000)
    for process in sorted({split_task_name(row["name"])[0] for row in rows}):
        emit("process_create", first - 900, process=process, process_id=1)
    for row in sorted(rows, key=lambda r: _ms(r["submit"])):
        process, tag = split_task_name(row["name"])
        submit = _ms(row["submit"])
        duration, realtime = parse_duration_ms(row["duration"]), parse_duration_ms(row["realtime"])
        workdir = glob.glob(str(run_dir / WORK_DIR / (row["hash"] + "*")))[0]
        task = {"task_id": int(row["task_id"]), "hash": row["hash"], "native_id": row["native_id"],
                "name": row["name"], "process": process, "tag": tag, "workdir": workdir, "attempt": 1,
                "submit": submit, "executor": "local"}
        emit("task_pending", submit - 5, task={**task, "status": "NEW"})
        emit("task_submit", submit, task={**task, "status": "SUBMITTED"})
        emit("task_start", submit + 50, task={**task, "status": "RUNNING", "start": submit + 50})
        exit_code = int(row["exit"])
        complete = {**task, "status": row["status"], "exit": exit_code, "start": submit + 50,
                    "complete": submit + (duration or 0), "duration": duration, "realtime": realtime,
                    "%cpu": None if row["%cpu"] == "-" else float(row["%cpu"].rstrip("%")),
                    "peak_rss": parse_memory_bytes(row["peak_rss"])}
        emit("task_complete", submit + (duration or 0), task=complete)
        if exit_code == 0 and (results := run_dir / "results").exists():
            for published in sorted(results.rglob("*")):
                if published.is_file() and published.stem in (tag, "all"):
                    emit("file_publish", submit + (duration or 0) + 10, destination=str(published),
                         source=str(Path(workdir) / published.name))
    last = lines[-1]["time"] + 100
    if not success:
        failing = next(row for row in rows if row["status"] == "FAILED")
        emit("flow_error", last, error_message=_log_value(run_dir, "Session aborted -- Cause:"),
             task=failing["name"], process=split_task_name(failing["name"])[0], task_id=int(failing["task_id"]),
             exit=int(failing["exit"]))
    emit("flow_complete", last + 50, success=success, exit_status=0 if success else 1,
         error_message=None if success else _log_value(run_dir, "Session aborted -- Cause:"),
         stats={"succeeded": sum(r["status"] == "COMPLETED" for r in rows),
                "failed": sum(r["status"] == "FAILED" for r in rows), "ignored": 0, "cached": 0, "retries": 0,
                "aborted": 0},
         duration=last - first)
    with (run_dir / EVENTS_FILE).open("w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")


def _copy_sources(src: Path, dst: Path, names: tuple[str, ...] = SOURCES) -> dict[str, bytes]:
    dst.mkdir(parents=True, exist_ok=True)
    return {name: (src / name).read_bytes() for name in names}


def _final_state(run_dir: Path) -> dict:
    monitor = Monitor(run_dir)
    while monitor.poll().more:
        pass
    return monitor.state.to_dict()


def _grow(dst: Path, contents: dict[str, bytes], pieces: int):
    """Appends each file in `pieces` slices cut at byte positions that fall mid-line, yielding after each slice."""
    for index in range(pieces):
        for name, data in contents.items():
            cut = [len(data) * i // pieces for i in range(pieces + 1)]
            with (dst / name).open("ab") as handle:
                handle.write(data[cut[index]:cut[index + 1]])
        yield index


# --- events mode -----------------------------------------------------------------------------------------------------

@pytest.mark.nextflow
def test_a_run_read_from_its_events_has_every_task_process_and_published_file(succeeded_run: Path) -> None:
    monitor = Monitor(succeeded_run)

    changes = monitor.poll()

    state = monitor.state
    assert state.mode == "events"
    assert state.status == "succeeded" and changes.status == "succeeded"
    assert state.run_name == _log_value(succeeded_run, "Run name:")
    assert state.session_id == _log_value(succeeded_run, "Session UUID:")
    assert state.resumed is False and state.nextflow_version == "24.10.0"
    assert state.error_message is None and state.stats["succeeded"] == 4
    assert state.started < state.finished
    assert sorted(task.name for task in state.tasks.values()) == sorted([f"GREET ({n})" for n in NAMES] + ["JOIN"])
    assert {task.status for task in state.tasks.values()} == {"COMPLETED"}
    assert all(task.exit == 0 and task.workdir and task.native_id for task in state.tasks.values())
    assert state.processes["GREET"]["succeeded"] == 3 and state.processes["JOIN"]["succeeded"] == 1
    assert sum(state.processes["GREET"].values()) == 3
    published = sorted(Path(item["destination"]).name for item in state.published)
    assert published == sorted([f"{n}.txt" for n in NAMES] + ["all.txt"])
    assert state.malformed_lines == state.oversized_lines == state.unknown_events == 0
    assert set(changes.tasks) == set(state.tasks) and changes.processes == {"GREET", "JOIN"}
    assert json.loads(json.dumps(state.to_dict())) == state.to_dict()


@pytest.mark.nextflow
def test_files_growing_between_polls_give_the_same_state_as_one_read(succeeded_run: Path, tmp_path: Path) -> None:
    contents = _copy_sources(succeeded_run, tmp_path)
    monitor = Monitor(tmp_path)
    statuses, seen_tasks, published = [], set(), []

    for _ in _grow(tmp_path, contents, pieces=7):
        changes = monitor.poll()
        statuses.append(monitor.state.status)
        seen_tasks |= set(changes.tasks)
        published += changes.published

    assert monitor.state.to_dict() == _final_state(succeeded_run)
    assert statuses[0] == "running" and statuses[-1] == "succeeded"
    assert seen_tasks == set(monitor.state.tasks)
    assert len(published) == len(monitor.state.published) == 4      # each published file reported once
    assert monitor.state.malformed_lines == 0


@pytest.mark.nextflow
def test_a_line_split_across_two_polls_is_applied_once_whole(succeeded_run: Path, tmp_path: Path) -> None:
    events = (succeeded_run / EVENTS_FILE).read_bytes().splitlines(keepends=True)
    submit = next(i for i, line in enumerate(events) if b'"task_submit"' in line)
    (tmp_path / EVENTS_FILE).write_bytes(b"".join(events[:submit]) + events[submit][:40])
    monitor = Monitor(tmp_path)

    before = {key: task.status for key, task in monitor.poll().tasks.items()}
    with (tmp_path / EVENTS_FILE).open("ab") as handle:
        handle.write(events[submit][40:])
    after = monitor.poll()

    key = json.loads(events[submit])["task"]["hash"]
    assert before[key] == "NEW"
    assert list(after.tasks) == [key] and after.tasks[key].status == "SUBMITTED"
    assert monitor.state.malformed_lines == 0
    assert monitor.offsets["events"]["offset"] == sum(len(line) for line in events[:submit + 1])


@pytest.mark.nextflow
def test_a_restarted_server_resumes_from_persisted_offsets_and_state(succeeded_run: Path, tmp_path: Path) -> None:
    contents = _copy_sources(succeeded_run, tmp_path)
    monitor = Monitor(tmp_path)
    growth = _grow(tmp_path, contents, pieces=5)
    for _ in range(3):
        next(growth)
        monitor.poll()
    saved_state, saved_offsets = json.dumps(monitor.state.to_dict()), json.dumps(monitor.offsets)
    del monitor  # the server stops; the run goes on writing

    for _ in growth:
        pass
    resumed = load(tmp_path, json.loads(saved_state), json.loads(saved_offsets))
    changes = resumed.poll()

    assert resumed.state.to_dict() == _final_state(succeeded_run)
    assert changes.status == "succeeded" and changes.restarted == []


@pytest.mark.nextflow
def test_garbage_in_the_events_file_is_skipped_and_counted(succeeded_run: Path, tmp_path: Path) -> None:
    events = (succeeded_run / EVENTS_FILE).read_bytes().splitlines(keepends=True)
    half = len(events) // 2
    for name in (TRACE_FILE, LOG_FILE):
        (tmp_path / name).write_bytes((succeeded_run / name).read_bytes())
    (tmp_path / EVENTS_FILE).write_bytes(b"".join(events[:half]))
    monitor = Monitor(tmp_path)
    monitor.poll()
    garbage = [
        b"this is not json\n",
        b"[1, 2, 3]\n",                                                         # JSON, but not an object
        b'{"v": 1, "event": 42}\n',                                             # event name of the wrong type
        b'{"v": 1, "event": "task_submit", "task": "GREET (Ada)"}\n',           # task of the wrong type
        b'{"v": 1, "event": "task_complete", "task": {"hash": 7, "task_id": "x"}}\n',  # no usable key
        b'{"v": 1, "event": "file_publish", "destination": ["a"]}\n',           # destination of the wrong type
        b'{"v": 1, "event": "flow_complete", "success": "yes"}\n',              # success of the wrong type
        b"\xff\xfe not utf-8\n",
        b"[" * 100_000 + b"\n",                                                 # nesting beyond the parser's depth
        b'{"v": 1, "event": "task_submit", "task": {"task_id": 1' + b"0" * 5000 + b"}}\n",  # number too long
        b'{"v": 1, "event": "telepathy", "task": {}}\n',                        # an event from a newer plugin
        b'{"v": 2, "event": "task_submit", "task": {"task_id": 1}}\n',          # a newer schema version
        b'{"v": 1, "event": "task_start", "task": {"hash": "' + b"x" * (5 << 20) + b'"}}\n',  # 5 MiB line
        b"\n",
    ]

    with (tmp_path / EVENTS_FILE).open("ab") as handle:
        handle.write(b"".join(garbage) + b"".join(events[half:]))
    changes = monitor.poll()

    state = monitor.state
    assert (state.malformed_lines, state.unknown_events, state.oversized_lines) == (10, 2, 1)
    assert (changes.malformed_lines, changes.oversized_lines) == (10, 1)
    clean = Monitor(succeeded_run)
    clean.poll()
    expected = clean.state.to_dict()
    actual = state.to_dict()
    for counter in ("malformed_lines", "unknown_events", "oversized_lines"):
        actual.pop(counter), expected.pop(counter)
    assert actual == expected
    assert state.status == "succeeded" and len(state.tasks) == 4


def test_an_oversized_line_still_being_written_is_skipped_once(tmp_path: Path) -> None:
    events = tmp_path / EVENTS_FILE
    good = b'{"v": 1, "event": "process_create", "process": "FASTQC", "time": 1}\n'
    events.write_bytes(good + b'{"v": 1, "event": "task_start", "task": {"tag": "' + b"y" * (3 << 20))
    monitor = Monitor(tmp_path)

    first = monitor.poll()
    with events.open("ab") as handle:
        handle.write(b"y" * (2 << 20) + b'"}}\n' + good.replace(b"FASTQC", b"MULTIQC"))
    second = monitor.poll()

    assert first.oversized_lines == 1 and second.oversized_lines == 0
    assert set(monitor.state.processes) == {"FASTQC", "MULTIQC"}
    assert monitor.offsets["events"]["skipping"] == 0
    assert monitor.offsets["events"]["offset"] == events.stat().st_size


@pytest.mark.nextflow
def test_a_truncated_or_replaced_file_is_read_again_from_its_start(succeeded_run: Path, tmp_path: Path) -> None:
    contents = _copy_sources(succeeded_run, tmp_path)
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    monitor = Monitor(tmp_path)
    monitor.poll()
    events = contents[EVENTS_FILE].splitlines(keepends=True)

    (tmp_path / EVENTS_FILE).write_bytes(b"".join(events[:3]))              # truncated in place
    truncated = monitor.poll()
    replacement = tmp_path / "new-events"
    replacement.write_bytes(b"".join(events) + events[-1])                  # a new, longer file
    os.replace(replacement, tmp_path / EVENTS_FILE)
    replaced = monitor.poll()
    rotated = tmp_path / "new-log"                                          # a resumed run rotates the log
    rotated.write_bytes(contents[LOG_FILE])
    os.replace(rotated, tmp_path / LOG_FILE)
    log_again = monitor.poll()

    assert truncated.restarted == ["events"]
    assert replaced.restarted == ["events"] and set(replaced.tasks) == set(monitor.state.tasks)
    assert log_again.restarted == ["log"]
    assert monitor.state.status == "succeeded" and len(monitor.state.tasks) == 4
    assert monitor.offsets["events"]["offset"] == (tmp_path / EVENTS_FILE).stat().st_size


# --- fallback: trace + log only -----------------------------------------------------------------------------------

@pytest.mark.nextflow
def test_without_events_a_succeeded_run_is_read_from_trace_and_log(succeeded_run: Path, tmp_path: Path) -> None:
    contents = _copy_sources(succeeded_run, tmp_path, (TRACE_FILE, LOG_FILE))
    monitor = Monitor(tmp_path)
    statuses = []

    for _ in _grow(tmp_path, contents, pieces=6):
        statuses.append(monitor.poll().status)

    state = monitor.state
    assert state.mode == "trace+log"
    assert state.status == "succeeded" and statuses[-1] == "succeeded" and "running" in statuses
    assert state.run_name == _log_value(succeeded_run, "Run name:")
    assert state.session_id == _log_value(succeeded_run, "Session UUID:")
    assert state.processes["GREET"] == {"pending": 0, "submitted": 0, "running": 0, "succeeded": 3, "failed": 0,
                                        "cached": 0, "aborted": 0}
    assert state.processes["JOIN"]["succeeded"] == 1
    assert sorted(task.tag for task in state.tasks.values() if task.process == "GREET") == NAMES
    assert all(task.workdir and task.task_id and task.exit == 0 for task in state.tasks.values())
    assert state.started < state.finished and state.error_message is None
    assert state.to_dict() == _final_state_of(succeeded_run, (TRACE_FILE, LOG_FILE), tmp_path / "once")


@pytest.mark.nextflow
def test_without_events_a_failed_run_is_failed_with_the_cause(failed_run: Path, tmp_path: Path) -> None:
    contents = _copy_sources(failed_run, tmp_path, (TRACE_FILE, LOG_FILE))
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    monitor = Monitor(tmp_path)

    monitor.poll()

    state = monitor.state
    assert state.mode == "trace+log" and state.status == "failed"
    assert state.error_message == "Process `BOOM` terminated with an error exit status (3)"
    assert state.processes["OK"]["succeeded"] == 2 and state.processes["BOOM"]["failed"] == 1
    boom = next(task for task in state.tasks.values() if task.process == "BOOM")
    assert boom.status == "FAILED" and boom.exit == 3


@pytest.mark.nextflow
def test_a_failed_run_read_from_its_events(failed_run: Path) -> None:
    monitor = Monitor(failed_run)

    monitor.poll()

    assert monitor.state.mode == "events" and monitor.state.status == "failed"
    assert monitor.state.error_message == "Process `BOOM` terminated with an error exit status (3)"
    assert monitor.state.processes["BOOM"]["failed"] == 1 and monitor.state.stats["failed"] == 1


@pytest.mark.nextflow
def test_a_live_run_is_followed_while_it_runs_and_a_sigterm_is_a_cancel(tmp_path: Path) -> None:
    (tmp_path / "main.nf").write_text(SLOW_PIPELINE)
    process = subprocess.Popen(_argv(tmp_path, tmp_path / "main.nf"), cwd=tmp_path, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    monitor = Monitor(tmp_path)
    try:
        _poll_until(monitor, lambda: monitor.state.processes.get("SLOW", {}).get("submitted") == 2)
        assert monitor.state.status == "running" and monitor.state.run_name
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    _poll_until(monitor, lambda: monitor.state.status != "running")

    assert monitor.state.status == "cancelled" and monitor.state.error_message == "SIGTERM"
    assert monitor.state.processes["SLOW"]["aborted"] == 2
    fresh = Monitor(tmp_path)
    fresh.poll()
    assert fresh.state.status == "cancelled" and fresh.state.tasks.keys() == monitor.state.tasks.keys()


def _poll_until(monitor: Monitor, condition, limit: float = 120.0) -> None:
    """Poll the monitor until ``condition()`` holds; a timeout shows the state it reached."""
    def state() -> dict:
        monitor.poll()
        return monitor.state.to_dict()

    wait_for(state, until=lambda _: condition(), what="the monitor's state to change", timeout=limit, interval=0.2)


def _final_state_of(src: Path, names: tuple[str, ...], dst: Path) -> dict:
    dst.mkdir()
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return _final_state(dst)


@pytest.mark.nextflow
def test_watch_yields_changes_until_the_run_ends(succeeded_run: Path) -> None:
    async def follow() -> list[Changes]:
        return [changes async for changes in watch(Monitor(succeeded_run), interval=0.01, timeout=60)]

    seen = asyncio.run(follow())

    assert len(seen) == 1 and seen[0].status == "succeeded"


# --- pure parsers and the Tail -----------------------------------------------------------------------------------

@pytest.mark.nextflow
def test_log_parsers_on_real_lines(succeeded_run: Path, failed_run: Path) -> None:
    rows = {row["hash"]: row for row in csv.DictReader((succeeded_run / TRACE_FILE).open(), delimiter="\t")}
    events = [e for e in map(classify_log_line, (succeeded_run / LOG_FILE).read_text().splitlines()) if e]
    kinds = [e.kind for e in events]

    submitted = {e.data["hash"]: e.data["name"] for e in events if e.kind == "submitted"}
    completed = {e.data["hash"]: e.data for e in events if e.kind == "task_completed"}
    assert submitted == {h: row["name"] for h, row in rows.items()}
    assert {h: (c["task_id"], c["status"], c["exit"]) for h, c in completed.items()} == \
        {h: (int(row["task_id"]), "COMPLETED", 0) for h, row in rows.items()}
    assert kinds[0] == "session_id" and kinds[1] == "run_name" and kinds[-1] == "goodbye"
    failed_kinds = {e.kind: e.data for e in map(classify_log_line, (failed_run / LOG_FILE).read_text().splitlines())
                    if e}
    assert failed_kinds["aborted"]["cause"] == "Process `BOOM` terminated with an error exit status (3)"
    assert failed_kinds["error"]["message"] == "Error executing process > 'BOOM'"


def test_parsers_of_grid_handler_lines_and_trace_values() -> None:
    line = ("Task completed > TaskHandler[jobId: 4711; id: 12; name: NFCORE:QC:FASTQC (S1; lane 2); status: COMPLETED;"
            " exit: 1; error: -; workDir: /data/work/3f/0c9e58bf71fab8 started: 1732544400000; exited: 2024-11-25]")
    assert parse_task_completed(line) == {
        "task_id": 12, "name": "NFCORE:QC:FASTQC (S1; lane 2)", "status": "FAILED", "exit": 1,
        "workdir": "/data/work/3f/0c9e58bf71fab8", "hash": "3f/0c9e58", "native_id": "4711"}
    assert split_task_name("NFCORE:QC:FASTQC (S1; lane 2)") == ("NFCORE:QC:FASTQC", "S1; lane 2")
    assert split_task_name("JOIN") == ("JOIN", None)
    assert hash_from_workdir("s3://bucket/work/ab/cdef1234") == "ab/cdef12"
    assert [parse_duration_ms(v) for v in ("356ms", "1.5s", "1h 2m 3s", "-", "soon")] == \
        [356, 1500, 3_723_000, None, None]
    assert [parse_memory_bytes(v) for v in ("85.4 KB", "0", "2 GB", "-")] == [87449, 0, 2 << 30, None]


def test_tail_hands_out_complete_lines_and_notices_replacement(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one\ntw")
    tail = Tail(path)

    assert tail.read().lines == [b"one"]
    with path.open("ab") as handle:
        handle.write(b"o\nthree\n")
    assert tail.read().lines == [b"two", b"three"]
    assert tail.read().lines == []
    position = TailPosition.from_dict(json.loads(json.dumps(tail.position.__dict__)))
    assert position == tail.position

    other = tmp_path / "g"
    other.write_bytes(b"fresh start\nwith more lines than before\n")
    os.replace(other, path)
    again = Tail(path, position).read()
    assert again.restarted and again.lines == [b"fresh start", b"with more lines than before"]
    assert TailPosition.from_dict({"offset": "7"}) == TailPosition()


def test_tail_reads_a_large_backlog_in_budgeted_steps(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    tail = Tail(path, chunk=4096)
    lines: list[bytes] = []

    while True:
        read = tail.read(max_bytes=64 * 1024)
        lines += read.lines
        if not read.more:
            break

    assert lines == [b"line %d" % i for i in range(100_000)]
    assert tail.position.offset == path.stat().st_size and MAX_LINE == 1 << 20


def test_an_empty_run_dir_is_pending_and_a_state_round_trips(tmp_path: Path) -> None:
    monitor = Monitor(tmp_path)

    changes = monitor.poll()

    assert not changes and monitor.state.status == "pending"
    assert RunState.from_dict(json.loads(json.dumps(monitor.state.to_dict()))) == monitor.state
