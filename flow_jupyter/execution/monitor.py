"""The incremental run monitor: a run directory's files → a small, persistable run state.

Nextflow writes three things into a run directory while it runs, and all three only grow:

- ``events.ndjson`` from Flow's Nextflow plugin (``nf_plugin/FlowEventsObserver.groovy``): one JSON object per line,
  structured and authoritative;
- the trace file (``-with-trace``): one TSV row per finished task;
- ``.nextflow.log``: free text, but the only source when the plugin could not load (a site's own newer Nextflow).

nextflow.py's ``get_execution`` re-reads the whole log on every poll, so a poll of a 100k-task run costs seconds of
CPU. Here every source is a :class:`Tail` that reads only the bytes appended since a stored offset, and a poll
applies just those lines to a :class:`RunState`. Offsets and state are plain JSON-able values the caller persists, so
a restarted server resumes where it stopped instead of re-reading gigabytes.

The events file is written by a process running user pipelines on shared storage: it is untrusted. Lines that are
not JSON objects, have wrong types or are huge are skipped and counted (``malformed_lines``, ``oversized_lines``);
nothing in it can raise out of :meth:`Monitor.poll`.

Events are authoritative. Trace rows and log lines describe tasks only while no event has been seen (``mode`` is
``"trace+log"``); run-level facts from the log (session id, run name, abort cause, end of run) are always read,
because the log is the only place they appear when Nextflow fails before the plugin loads.

Like nextflow.py's ``log.py``, the log and trace parsers are pure functions of a line; this module does no I/O
besides reading the three files, knows no database and no tornado. ``watch`` is the async poll loop.
"""
from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import re
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.safeopen import open_beneath

EVENTS_FILE = "events.ndjson"
TRACE_FILE = "trace.txt"
LOG_FILE = ".nextflow.log"

MAX_LINE = 1 << 20
"""Longest line (bytes) a Tail hands out; longer ones are skipped to the next newline and counted."""
CHUNK = 1 << 18
"""Bytes read per system call."""
POLL_BUDGET = 64 << 20
"""Bytes one poll reads per source at most, so catching up after a long outage never blocks for long; the rest
comes on the next poll (``Changes.more``)."""
HEAD_BYTES = 64
"""Bytes at the start of a file fingerprinted to notice a replacement that reused the inode number."""

RUN_STATUSES = ("pending", "submitted", "running", "succeeded", "failed", "cancelled", "lost")
TERMINAL_RUN_STATUSES = frozenset({"succeeded", "failed", "cancelled", "lost"})
TASK_STATUSES = ("NEW", "SUBMITTED", "RUNNING", "COMPLETED", "FAILED", "CACHED", "ABORTED")
# Tasks only move forward: sources are read one after the other and may describe a task out of order.
_TASK_RANK = {"NEW": 0, "SUBMITTED": 1, "RUNNING": 2, "COMPLETED": 3, "FAILED": 3, "CACHED": 3, "ABORTED": 3}
_FINAL_RANK = 3
# Per-process progress buckets (the DESIGN wording), one per task status.
PROGRESS_BUCKETS = ("pending", "submitted", "running", "succeeded", "failed", "cached", "aborted")
_BUCKET = {"NEW": "pending", "SUBMITTED": "submitted", "RUNNING": "running", "COMPLETED": "succeeded",
           "FAILED": "failed", "CACHED": "cached", "ABORTED": "aborted"}
# An abort for one of these causes is the user's (or the scheduler's) cancel, not a pipeline failure.
CANCEL_SIGNALS = frozenset({"SIGTERM", "SIGINT", "SIGHUP", "SIGKILL", "SIGUSR2", "SIGQUIT"})

_MAX_TEXT = 4096          # longest name/tag/path kept from untrusted input
_MAX_ERROR = 64 * 1024    # longest error message kept
_NO_EXIT = 2**31 - 1      # Nextflow's Integer.MAX_VALUE "exit status not known"


# --------------------------------------------------------------------------------------------------------------------
# Tail: new complete lines of a growing file
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class TailPosition:
    """Where a Tail stopped: all ints, persisted by the caller between polls and across server restarts.

    ``inode`` and the head fingerprint tell "the same file, grown" from "a new file" (Nextflow rotates
    ``.nextflow.log`` on a resumed run; an operator may replace a file). ``skipping`` is 1 while the Tail is inside an
    oversized line whose end has not been written yet.
    """

    offset: int = 0
    inode: int = 0
    head_len: int = 0
    head_crc: int = 0
    skipping: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> TailPosition:
        """Tolerant: a missing or damaged record starts the file from the beginning."""
        if not isinstance(data, dict):
            return cls()
        values = {f.name: data.get(f.name) for f in fields(cls)}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()):
            return cls()
        return cls(**values)


@dataclass
class TailRead:
    """What one :meth:`Tail.read` found."""

    lines: list[bytes]
    restarted: bool = False
    """The file was truncated or replaced since the stored position, and was read again from its start."""
    oversized: int = 0
    more: bool = False
    """The byte budget ran out before the end of the file."""


class Tail:
    """Reads the complete lines appended to a file since a stored byte offset.

    A partial last line stays in the file for the next read (the offset stops at its start), so a line written in two
    pieces is handed out once, whole. Lines longer than ``max_line`` are consumed up to their newline but not handed
    out. The file is never read whole: a read costs the new bytes plus, at most, one partial line re-read.
    """

    def __init__(self, path: str | os.PathLike[str], position: TailPosition | None = None, *,
                 max_line: int = MAX_LINE, chunk: int = CHUNK) -> None:
        self.path = Path(path)
        self.position = position or TailPosition()
        self.max_line = max_line
        self.chunk = chunk

    def read(self, max_bytes: int = POLL_BUDGET) -> TailRead:
        """New complete lines (without their newline); a missing file is simply "nothing yet"."""
        try:
            # Beneath its directory, never through a link: a task could plant one to make Flow read another file.
            handle, _info = open_beneath(self.path.parent, self.path.name)
        except OSError:
            return TailRead([])
        with handle:
            pos = self.position
            stat = os.fstat(handle.fileno())
            restarted = self._replaced(handle, stat)
            if restarted:
                pos.offset, pos.skipping, pos.head_len, pos.head_crc = 0, 0, 0, 0
            pos.inode = stat.st_ino
            if pos.head_len < HEAD_BYTES and stat.st_size > pos.head_len:
                head = os.pread(handle.fileno(), HEAD_BYTES, 0)
                pos.head_len, pos.head_crc = len(head), zlib.crc32(head)
            if stat.st_size <= pos.offset:
                return TailRead([], restarted)
            handle.seek(pos.offset)
            return self._scan(handle, max_bytes, restarted)

    def _replaced(self, handle: Any, stat: os.stat_result) -> bool:
        pos = self.position
        if pos.offset == 0 and pos.head_len == 0:
            return False
        if pos.inode and stat.st_ino != pos.inode:
            return True
        if stat.st_size < pos.offset or stat.st_size < pos.head_len:
            return True
        return pos.head_len > 0 and zlib.crc32(os.pread(handle.fileno(), pos.head_len, 0)) != pos.head_crc

    def _scan(self, handle: Any, max_bytes: int, restarted: bool) -> TailRead:
        pos = self.position
        lines: list[bytes] = []
        oversized = 0
        consumed = pos.offset      # first byte not yet handed out or skipped
        pending = b""              # bytes of an unfinished line
        read = 0
        eof = False
        while read < max_bytes:
            chunk = handle.read(self.chunk)
            if not chunk:
                eof = True
                break
            read += len(chunk)
            if pos.skipping:
                newline = chunk.find(b"\n")
                if newline < 0:
                    consumed += len(chunk)
                    continue
                consumed += newline + 1
                pos.skipping = 0
                chunk = chunk[newline + 1:]
            data = pending + chunk if pending else chunk
            parts = data.split(b"\n")
            pending = parts.pop()
            for part in parts:
                consumed += len(part) + 1
                if len(part) > self.max_line:
                    oversized += 1
                else:
                    lines.append(part)
            if len(pending) > self.max_line:
                oversized += 1
                pos.skipping = 1
                consumed += len(pending)
                pending = b""
        pos.offset = consumed
        return TailRead(lines, restarted, oversized, more=not eof and read >= max_bytes)


# --------------------------------------------------------------------------------------------------------------------
# Pure parsers: values, log lines, trace rows
# --------------------------------------------------------------------------------------------------------------------

_LOG_LINE = re.compile(
    r"(?P<stamp>[A-Z][a-z]{2}-\d{1,2} \d{2}:\d{2}:\d{2}\.\d{3}) \[(?P<thread>[^\]]*)\] (?P<level>[A-Z]+) +"
    r"(?P<logger>\S+) - (?P<message>.*)")
_SUBMITTED = re.compile(r"\[(?P<hash>[0-9a-f]{2}/[0-9a-f]{6})\] Submitted process > (?P<name>.+)")
_CACHED = re.compile(r"\[(?P<hash>[0-9a-f]{2}/[0-9a-f]{6})\] Cached process > (?P<name>.+)")
_COMPLETED = re.compile(
    r"Task completed > TaskHandler\[(?:jobId: (?P<job>[^;]*); )?id: (?P<id>\d+); name: (?P<name>.*); "
    r"status: (?P<status>[A-Z]+); exit: (?P<exit>[^;]*); error: (?P<error>.*?); workDir: (?P<workdir>\S+?)"
    r"(?:\]|\s|$)")
_NAME = re.compile(r"(?P<process>.*?) \((?P<tag>.*)\)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?) ?(B|KB|MB|GB|TB|PB)?")
_MEMORY_FACTOR = {None: 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "PB": 1 << 50}
# Cheap substring tests that pick the few log lines worth a regex; every other line costs one `in` per marker.
_LOG_MARKERS = ("Submitted process >", "Cached process >", "Task completed >", "Session UUID:", "Run name:",
                "Session aborted", "Execution complete", " ERROR ", "Session start")
_LOG_MARKER = re.compile("|".join(re.escape(marker) for marker in _LOG_MARKERS))


@dataclass(frozen=True)
class LogLine:
    """One timestamped line of ``.nextflow.log``."""

    stamp: str
    thread: str
    level: str
    logger: str
    message: str


@dataclass(frozen=True)
class LogEvent:
    """What a log line says about the run, for the few kinds the monitor uses.

    ``kind`` is one of ``session_id``, ``run_name``, ``session_start``, ``submitted``, ``cached``, ``task_completed``,
    ``aborted``, ``error``, ``launch_error``, ``goodbye``; ``data`` holds the kind's values.
    """

    kind: str
    stamp: str
    data: dict[str, Any] = field(default_factory=dict)


def parse_log_line(line: str) -> LogLine | None:
    """Splits a timestamped log line; continuation lines (stack traces, multi-line messages) give None."""
    match = _LOG_LINE.match(line)
    if not match:
        return None
    return LogLine(match["stamp"], match["thread"], match["level"], match["logger"], match["message"].rstrip())


def split_task_name(name: str) -> tuple[str, str | None]:
    """``"NFCORE:RNASEQ:FASTQC (S1)"`` → ``("NFCORE:RNASEQ:FASTQC", "S1")``: the trace's default columns and the log
    only carry the task name, so process and tag come from it."""
    match = _NAME.fullmatch(name)
    return (match["process"], match["tag"]) if match else (name, None)


def parse_submitted(message: str) -> tuple[str, str] | None:
    """``[ab/cdef12] Submitted process > GREET (Ada)`` → (hash, name)."""
    match = _SUBMITTED.match(message)
    return (match["hash"], match["name"]) if match else None


def parse_cached(message: str) -> tuple[str, str] | None:
    """``[ab/cdef12] Cached process > GREET (Ada)`` → (hash, name)."""
    match = _CACHED.match(message)
    return (match["hash"], match["name"]) if match else None


def hash_from_workdir(workdir: str) -> str | None:
    """``…/work/a7/e488ddf027a9…`` → ``a7/e488dd``, the short hash the log, the trace and events share."""
    parts = workdir.rstrip("/").rsplit("/", 2)
    if len(parts) < 3 or len(parts[1]) != 2 or len(parts[2]) < 6:
        return None
    return f"{parts[1]}/{parts[2][:6]}"


def parse_task_completed(message: str) -> dict[str, Any] | None:
    """A ``Task completed > TaskHandler[...]`` message (local or grid handler) → task fields.

    Nextflow logs status COMPLETED for a task that exited non-zero; like nextflow.py, a non-zero exit is FAILED.
    """
    match = _COMPLETED.search(message)
    if not match:
        return None
    exit_code = parse_exit(match["exit"])
    status = match["status"]
    if status == "COMPLETED" and exit_code not in (None, 0):
        status = "FAILED"
    workdir = match["workdir"]
    return {"task_id": int(match["id"]), "name": match["name"], "status": status, "exit": exit_code,
            "workdir": workdir, "hash": hash_from_workdir(workdir), "native_id": match["job"]}


def classify_log_line(line: str) -> LogEvent | None:
    """The monitor's view of one log line, or None for the many lines it does not need."""
    if not _LOG_MARKER.search(line):
        return None
    parsed = parse_log_line(line)
    if parsed is None:
        return None
    message, stamp = parsed.message, parsed.stamp
    if "Submitted process >" in message and (submitted := parse_submitted(message)):
        return LogEvent("submitted", stamp, {"hash": submitted[0], "name": submitted[1]})
    if "Cached process >" in message and (cached := parse_cached(message)):
        return LogEvent("cached", stamp, {"hash": cached[0], "name": cached[1]})
    if message.startswith("Task completed >") and (completed := parse_task_completed(message)):
        return LogEvent("task_completed", stamp, completed)
    if message.startswith("Session UUID: "):
        return LogEvent("session_id", stamp, {"session_id": message[len("Session UUID: "):].strip()})
    if message.startswith("Run name: "):
        return LogEvent("run_name", stamp, {"run_name": message[len("Run name: "):].strip()})
    if message == "Session start":
        return LogEvent("session_start", stamp)
    if message.startswith("Session aborted -- Cause: "):
        return LogEvent("aborted", stamp, {"cause": message[len("Session aborted -- Cause: "):].strip()})
    if message.endswith("Execution complete -- Goodbye"):
        return LogEvent("goodbye", stamp)
    if parsed.level == "ERROR":
        kind = "launch_error" if parsed.logger == "nextflow.cli.Launcher" else "error"
        return LogEvent(kind, stamp, {"message": message})
    return None


_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_LOG_STAMP = re.compile(r"([A-Z][a-z]{2})-(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3})")
_TRACE_STAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3})")


@functools.lru_cache(maxsize=256)
def _local_hour_ms(year: int, month: int, day: int, hour: int) -> int:
    """Epoch ms of a local wall-clock hour. Cached: strptime per line was most of a fallback poll's CPU, and every
    line of a run falls into a few hours. Per hour (not per day) so daylight-saving changes come out right."""
    return int(time.mktime((year, month, day, hour, 0, 0, 0, 0, -1))) * 1000


def _local_ms(year: int, month: int, day: int, hour: int, minute: int, second: int, milli: int) -> int | None:
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 62):
        return None
    try:
        return _local_hour_ms(year, month, day, hour) + (minute * 60 + second) * 1000 + milli
    except (OverflowError, ValueError):
        return None


def log_time_ms(stamp: str, now: float | None = None) -> int | None:
    """``Nov-25 14:20:01.123`` (local time, no year) → epoch ms. The year is the current one, or the previous one if
    that would put the line in the future (a run that crossed New Year)."""
    match = _LOG_STAMP.fullmatch(stamp)
    if not match or match[1] not in _MONTHS:
        return None
    now = time.time() if now is None else now
    year = time.localtime(now).tm_year
    parts = (_MONTHS[match[1]], *(int(match[i]) for i in range(2, 7)))
    when = _local_ms(year, *parts)
    if when is not None and when > (now + 86_400) * 1000:
        when = _local_ms(year - 1, *parts)
    return when


def parse_trace_time(value: str) -> int | None:
    """``2026-11-25 15:20:27.631`` (local time) → epoch ms; ``-`` or garbage → None."""
    match = _TRACE_STAMP.fullmatch(value)
    return _local_ms(*(int(group) for group in match.groups())) if match else None


def parse_duration_ms(value: str) -> int | None:
    """Nextflow's duration text (``356ms``, ``1.5s``, ``1h 2m 3s``) → ms."""
    value = value.strip()
    if not value or value == "-":
        return None
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(a + b for a, b in parts) != value.replace(" ", ""):
        return None
    return int(sum(float(number) * _DURATION_MS[unit] for number, unit in parts))


def parse_memory_bytes(value: str) -> int | None:
    """Nextflow's memory text (``85.4 KB``, ``0``) → bytes."""
    match = _MEMORY.fullmatch(value.strip())
    return int(float(match[1]) * _MEMORY_FACTOR[match[2]]) if match else None


def parse_percent(value: str) -> float | None:
    """``12.9%`` → 12.9."""
    try:
        return float(value.strip().rstrip("%"))
    except ValueError:
        return None


def parse_int(value: Any) -> int | None:
    """An int from JSON or text (at most 18 digits); bools, floats with fractions and ``-`` give None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        result = int(value)
    else:
        return None
    return result if abs(result) < 10**18 else None


def parse_exit(value: Any) -> int | None:
    """An exit status; Nextflow's Integer.MAX_VALUE ("not known yet") gives None."""
    result = parse_int(value)
    return None if result is None or abs(result) >= _NO_EXIT else result


def parse_trace_row(columns: list[str], line: str) -> dict[str, Any] | None:
    """One TSV row of the trace file → task fields (None if it does not fit the header)."""
    values = line.split("\t")
    if len(values) != len(columns):
        return None
    row = dict(zip(columns, values))
    task: dict[str, Any] = {}
    for column, value in row.items():
        if value == "-" or value == "":
            continue
        if column in ("task_id", "attempt"):
            task[column] = parse_int(value)
        elif column == "exit":
            task[column] = parse_exit(value)
        elif column in ("submit", "start", "complete"):
            task[column] = parse_trace_time(value)
        elif column in ("duration", "realtime"):
            task[column] = parse_duration_ms(value)
        elif column == "%cpu":
            task["cpu_percent"] = parse_percent(value)
        elif column == "peak_rss":
            task[column] = parse_memory_bytes(value)
        elif column in ("hash", "native_id", "name", "status", "process", "tag", "workdir"):
            task[column] = value
    return task


# --------------------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class TaskRecord:
    """One task as Flow shows it. Times are epoch ms, durations ms, memory bytes."""

    key: str
    task_id: int | None = None
    hash: str | None = None
    name: str | None = None
    process: str | None = None
    tag: str | None = None
    native_id: str | None = None
    status: str = "NEW"
    exit: int | None = None
    submit: int | None = None
    start: int | None = None
    complete: int | None = None
    duration: int | None = None
    realtime: int | None = None
    cpu_percent: float | None = None
    peak_rss: int | None = None
    workdir: str | None = None
    attempt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


_TASK_FIELDS = frozenset(TaskRecord.__slots__) - {"key", "status"}


@dataclass
class RunState:
    """Everything the monitor knows about a run; ``to_dict``/``from_dict`` round-trip through JSON.

    ``status`` uses the DESIGN vocabulary; the monitor moves it to ``running`` and to a terminal status, never to
    ``lost`` (that is reconciliation's call when a run stops without saying so). ``processes`` maps a process name to
    its counts per bucket of ``PROGRESS_BUCKETS``. ``log_facts`` keeps what the log said about the run's end, because
    the status is decided from events and log together.
    """

    status: str = "pending"
    mode: str = "trace+log"
    run_name: str | None = None
    session_id: str | None = None
    resumed: bool | None = None
    nextflow_version: str | None = None
    work_dir: str | None = None
    launch_dir: str | None = None
    started: int | None = None
    finished: int | None = None
    exit_status: int | None = None
    error_message: str | None = None
    stats: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    processes: dict[str, dict[str, int]] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    malformed_lines: int = 0
    oversized_lines: int = 0
    unknown_events: int = 0
    finished_tasks: int = 0
    """Finished tasks let go of by :meth:`Monitor.forget_finished` (their rows are stored elsewhere)."""
    published_count: int = 0
    trace_columns: list[str] = field(default_factory=list)
    flow_outcome: dict[str, Any] = field(default_factory=dict)
    log_facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (tasks as plain dicts)."""
        data = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "tasks"}
        data["tasks"] = {key: task.to_dict() for key, task in self.tasks.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """Rebuilds a persisted state (which Flow wrote itself, so it is trusted)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["tasks"] = {key: TaskRecord(**task) for key, task in data.get("tasks", {}).items()}
        return cls(**values)

    @property
    def task_count(self) -> int:
        return len(self.tasks) + self.finished_tasks

    def progress(self) -> dict[str, int]:
        """Counts per bucket over all processes (the run's overall progress bar)."""
        total = dict.fromkeys(PROGRESS_BUCKETS, 0)
        for counts in self.processes.values():
            for bucket, count in counts.items():
                total[bucket] = total.get(bucket, 0) + count
        return total


@dataclass
class Changes:
    """What one poll changed, so the caller updates only those rows."""

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    """New or updated tasks by key (the records themselves, as they are now)."""
    status: str | None = None
    """The run's new status, if it changed."""
    run_changed: bool = False
    """Run-level fields (names, times, error, stats) changed."""
    processes: set[str] = field(default_factory=set)
    published: list[dict[str, Any]] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    """Sources ("events", "trace", "log") that were truncated or replaced and read again from the start."""
    malformed_lines: int = 0
    oversized_lines: int = 0
    more: bool = False
    """A source has more bytes than one poll reads; poll again without waiting."""

    def __bool__(self) -> bool:
        return bool(self.tasks or self.status or self.run_changed or self.processes or self.published
                    or self.restarted or self.malformed_lines or self.oversized_lines)


# --------------------------------------------------------------------------------------------------------------------
# Monitor
# --------------------------------------------------------------------------------------------------------------------

_TASK_EVENTS = {"task_pending": "NEW", "task_submit": "SUBMITTED", "task_start": "RUNNING",
                "task_complete": None, "task_cached": "CACHED"}
_EVENT_TASK_FIELDS = (
    ("task_id", "task_id", int), ("hash", "hash", str), ("name", "name", str), ("process", "process", str),
    ("tag", "tag", str), ("native_id", "native_id", str), ("submit", "submit", int), ("start", "start", int),
    ("complete", "complete", int), ("duration", "duration", int), ("realtime", "realtime", int),
    ("%cpu", "cpu_percent", float), ("peak_rss", "peak_rss", int), ("workdir", "workdir", str),
    ("attempt", "attempt", int),
)
_RUN_EVENTS = frozenset({"flow_create", "flow_begin", "process_create", "process_terminate", "file_publish",
                         "flow_complete", "flow_error"})


_decode_json = json.JSONDecoder().decode


def _text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


class Monitor:
    """Follows one run directory: ``poll()`` reads what the three sources appended and applies it to ``state``.

    ``state`` and ``offsets`` are what the caller persists (``state.to_dict()`` and ``offsets``, both JSON) to
    resume after a restart without re-reading the files.
    """

    def __init__(self, run_dir: str | os.PathLike[str], state: RunState | None = None,
                 offsets: dict[str, dict[str, int]] | None = None, *, events_file: str = EVENTS_FILE,
                 trace_file: str = TRACE_FILE, log_file: str = LOG_FILE, max_line: int = MAX_LINE,
                 clock: Any = time.time) -> None:
        self.run_dir = Path(run_dir)
        self.state = state or RunState()
        offsets = offsets or {}
        self._tails = {
            name: Tail(self.run_dir / filename, TailPosition.from_dict(offsets.get(name)), max_line=max_line)
            for name, filename in (("events", events_file), ("trace", trace_file), ("log", log_file))
        }
        self._clock = clock
        self._published = {item.get("destination") for item in self.state.published}
        self._by_id = {task.task_id: key for key, task in self.state.tasks.items() if task.task_id is not None}
        self._forgotten: set[str] = set()

    def forget_finished(self) -> None:
        """Let go of what the caller has stored elsewhere, so a long-lived monitor of a 100k-task run holds only its
        unfinished tasks: finished tasks (once the plugin's events drive the run: no trace row or log line can
        change a task after its final event; only their keys are kept, to ignore a repeated event) and the
        published files already handed out (their data files are registered)."""
        state = self.state
        if state.mode == "events":
            done = [key for key, task in state.tasks.items() if _TASK_RANK[task.status] == _FINAL_RANK]
            for key in done:
                task = state.tasks.pop(key)
                self._forgotten.add(key)
                if task.task_id is not None:
                    self._by_id.pop(task.task_id, None)
            state.finished_tasks += len(done)
        state.published.clear()
        self._published.clear()  # the data files' storage paths keep a repeated publish from registering twice

    @property
    def offsets(self) -> dict[str, dict[str, int]]:
        """Where each source stopped, as JSON-able ints."""
        return {name: asdict(tail.position) for name, tail in self._tails.items()}

    def poll(self, max_bytes: int = POLL_BUDGET) -> Changes:
        """Reads new bytes of events, trace and log (in that order) and applies them; never raises for file content."""
        changes = Changes()
        before = (self.state.status, self.state.malformed_lines, self.state.oversized_lines)
        for name, apply in (("events", self._apply_event), ("trace", self._apply_trace_line),
                            ("log", self._apply_log_line)):
            read = self._tails[name].read(max_bytes)
            if read.restarted:
                changes.restarted.append(name)
                self._restart(name)
            self.state.oversized_lines += read.oversized
            changes.more = changes.more or read.more
            for line in read.lines:
                apply(line, changes)
        self._settle_status(changes)
        changes.malformed_lines = self.state.malformed_lines - before[1]
        changes.oversized_lines = self.state.oversized_lines - before[2]
        if self.state.status != before[0]:
            changes.status = self.state.status
        return changes

    # --- sources -------------------------------------------------------------------------------------------------

    def _restart(self, source: str) -> None:
        """A replaced source describes a new file: forget what only it said (tasks are kept, they move forward)."""
        if source == "trace":
            self.state.trace_columns = []
        elif source == "log":
            self.state.log_facts = {}

    def _apply_event(self, raw: bytes, changes: Changes) -> None:
        if not raw.strip():
            return
        try:
            event = _decode_json(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            self.state.malformed_lines += 1
            return
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            self.state.malformed_lines += 1
            return
        if event.get("v") != 1:
            self.state.unknown_events += 1
            return
        kind = event["event"]
        if kind in _TASK_EVENTS:
            task = event.get("task")
            if not isinstance(task, dict) or not self._apply_task_event(kind, task, changes):
                self.state.malformed_lines += 1
                return
        elif kind in _RUN_EVENTS:
            if not self._apply_run_event(kind, event, changes):
                self.state.malformed_lines += 1
                return
        else:
            self.state.unknown_events += 1
            return
        if self.state.mode != "events":
            self.state.mode = "events"
            changes.run_changed = True
        if self.state.run_name is None or self.state.session_id is None:
            self._fill_run_names(event, changes)

    def _apply_task_event(self, kind: str, task: dict[str, Any], changes: Changes) -> bool:
        status = _TASK_EVENTS[kind]
        exit_code = parse_exit(task.get("exit"))
        if status is None:
            reported = task.get("status")
            status = reported if reported in ("COMPLETED", "FAILED", "ABORTED") else (
                "COMPLETED" if exit_code == 0 else "FAILED")
            if status == "COMPLETED" and exit_code not in (None, 0):
                status = "FAILED"
        values: dict[str, Any] = {"status": status, "exit": exit_code}
        # One pass over the fields Flow keeps, with exact type checks: this loop is most of a poll's CPU.
        for source, target, kind_of in _EVENT_TASK_FIELDS:
            value = task.get(source)
            if value is None:
                continue
            if kind_of is int:
                value = value if type(value) is int and -10**18 < value < 10**18 else parse_int(value)
            elif kind_of is str:
                value = value[:_MAX_TEXT] if type(value) is str else None
            else:
                value = _number(value)
            if value is not None:
                values[target] = value
        return self._update_task(values, changes, overwrite=True)

    def _apply_run_event(self, kind: str, event: dict[str, Any], changes: Changes) -> bool:
        state = self.state
        when = parse_int(event.get("time"))
        if kind == "flow_create":
            if state.status in TERMINAL_RUN_STATUSES or state.flow_outcome:
                # A resumed run appending to the same file: a new session starts.
                state.flow_outcome, state.finished, state.error_message, state.exit_status = {}, None, None, None
            state.resumed = event.get("resumed") if isinstance(event.get("resumed"), bool) else state.resumed
            state.work_dir = _text(event.get("work_dir")) or state.work_dir
            state.launch_dir = _text(event.get("launch_dir")) or state.launch_dir
            state.nextflow_version = _text(event.get("nextflow_version"), 64) or state.nextflow_version
            state.started = state.started or when
            changes.run_changed = True
        elif kind == "flow_begin":
            state.started = state.started or when
        elif kind in ("process_create", "process_terminate"):
            process = _text(event.get("process"))
            if process is None:
                return False
            if process not in state.processes:
                state.processes[process] = dict.fromkeys(PROGRESS_BUCKETS, 0)
                changes.processes.add(process)
        elif kind == "file_publish":
            destination = _text(event.get("destination"))
            if destination is None:
                return False
            if destination not in self._published:
                item = {"destination": destination, "source": _text(event.get("source")), "time": when}
                self._published.add(destination)
                state.published.append(item)
                state.published_count += 1
                changes.published.append(item)
        elif kind == "flow_error":
            message = _text(event.get("error_message"), _MAX_ERROR)
            state.flow_outcome.setdefault("error", message)
            state.error_message = state.error_message or message
            changes.run_changed = True
        elif kind == "flow_complete":
            success = event.get("success")
            if not isinstance(success, bool):
                return False
            state.flow_outcome["success"] = success
            state.flow_outcome["error"] = _text(event.get("error_message"), _MAX_ERROR) or state.flow_outcome.get(
                "error")
            state.exit_status = parse_exit(event.get("exit_status"))
            if not success:
                state.error_message = state.flow_outcome["error"] or state.error_message
            stats = event.get("stats")
            if isinstance(stats, dict):
                state.stats = {k[:64]: v for k, v in stats.items() if parse_int(v) is not None}
            state.finished = when or state.finished
            changes.run_changed = True
        return True

    def _fill_run_names(self, event: dict[str, Any], changes: Changes) -> None:
        for name in ("run_name", "session_id"):
            value = _text(event.get(name), 128)
            if value and getattr(self.state, name) != value and getattr(self.state, name) is None:
                setattr(self.state, name, value)
                changes.run_changed = True

    def _apply_trace_line(self, raw: bytes, changes: Changes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        state = self.state
        if not state.trace_columns:
            state.trace_columns = line.split("\t")
            return
        if state.mode == "events" or not line:
            return
        row = parse_trace_row(state.trace_columns, line)
        if row is None or row.get("status") not in _TASK_RANK:
            state.malformed_lines += 1
            return
        if row.get("name") and ("process" not in row or "tag" not in row):
            process, tag = split_task_name(row["name"])
            row.setdefault("process", process)
            row.setdefault("tag", tag)
        self._update_task(row, changes, overwrite=True)

    def _apply_log_line(self, raw: bytes, changes: Changes) -> None:
        line = raw.decode("utf-8", "replace")
        state, facts = self.state, self.state.log_facts
        if "started" not in facts and (first := parse_log_line(line)):
            facts["started"] = log_time_ms(first.stamp, self._clock())
        event = classify_log_line(line)
        if event is None:
            return
        data = event.data
        if event.kind in ("session_id", "run_name"):
            if getattr(state, event.kind) is None:
                setattr(state, event.kind, data[event.kind][:128])
                changes.run_changed = True
        elif event.kind == "session_start":
            facts["session_start"] = True
        elif event.kind == "aborted":
            facts.setdefault("abort_cause", data["cause"][:_MAX_ERROR])
        elif event.kind in ("error", "launch_error"):
            facts.setdefault("error", data["message"][:_MAX_ERROR])
            if event.kind == "launch_error":
                facts["ended"], facts["finished"] = True, log_time_ms(event.stamp, self._clock())
        elif event.kind == "goodbye":
            facts["ended"], facts["finished"] = True, log_time_ms(event.stamp, self._clock())
        elif state.mode != "events":
            self._apply_log_task(event, changes)

    def _apply_log_task(self, event: LogEvent, changes: Changes) -> None:
        data = dict(event.data)
        when = log_time_ms(event.stamp, self._clock())
        if event.kind == "submitted":
            data["status"], data["submit"] = "SUBMITTED", when
        elif event.kind == "cached":
            data["status"] = "CACHED"
        else:
            data["complete"] = when
            if data.get("native_id") is None:
                data.pop("native_id", None)
        process, tag = split_task_name(data["name"])
        data["process"], data["tag"] = process, tag
        self._update_task(data, changes, overwrite=False)

    # --- tasks ---------------------------------------------------------------------------------------------------

    def _task_key(self, values: dict[str, Any]) -> str | None:
        """Tasks are keyed by their short hash (all three sources carry it); ``#<task_id>`` when only the id is known.
        A record first known by id is re-keyed when its hash turns up."""
        task_hash, task_id = values.get("hash"), values.get("task_id")
        if task_hash:
            if task_id is not None and (old := self._by_id.get(task_id)) and old != task_hash \
                    and old.startswith("#") and old in self.state.tasks and task_hash not in self.state.tasks:
                task = self.state.tasks.pop(old)
                task.key = task_hash
                self.state.tasks[task_hash] = task
            return task_hash
        if task_id is not None:
            return self._by_id.get(task_id) or f"#{task_id}"
        return None

    def _update_task(self, values: dict[str, Any], changes: Changes, *, overwrite: bool) -> bool:
        """Merges known fields into the task; statuses only move forward. ``overwrite`` False only fills gaps
        (the log's view is coarser than the trace's)."""
        key = self._task_key(values)
        if key is None:
            return False
        status = values.get("status")
        if status not in _TASK_RANK:
            return False
        state = self.state
        if key in self._forgotten:
            return False  # finished, stored and let go of: nothing later can change it
        task = state.tasks.get(key)
        old_status = None
        if task is None:
            task = state.tasks[key] = TaskRecord(key=key, status=status)
        else:
            old_status = task.status
            if _TASK_RANK[status] > _TASK_RANK[task.status]:
                task.status = status
        for name, value in values.items():
            if value is not None and name in _TASK_FIELDS and (overwrite or getattr(task, name) is None):
                setattr(task, name, value)
        if task.task_id is not None:
            self._by_id[task.task_id] = key
        if task.process is None and task.name:
            task.process, task.tag = split_task_name(task.name)
        self._count(task, old_status, changes)
        changes.tasks[key] = task
        return True

    def _count(self, task: TaskRecord, old_status: str | None, changes: Changes) -> None:
        if old_status == task.status or task.process is None:
            return
        counts = self.state.processes.get(task.process)
        if counts is None:
            counts = self.state.processes[task.process] = dict.fromkeys(PROGRESS_BUCKETS, 0)
        if old_status is not None:
            counts[_BUCKET[old_status]] -= 1
        counts[_BUCKET[task.status]] += 1
        changes.processes.add(task.process)

    # --- run status ----------------------------------------------------------------------------------------------

    def _settle_status(self, changes: Changes) -> None:
        """Decides the run status from the flow outcome (events) and the log's facts together.

        The plugin's ``flow_complete`` wins; without it (no plugin, or it died) the log's end decides. A signal as the
        abort cause (SIGTERM from a cancel or ``scancel``) means cancelled, not failed.
        """
        state, facts, outcome = self.state, self.state.log_facts, self.state.flow_outcome
        cancelled = _is_signal(facts.get("abort_cause")) or _is_signal(outcome.get("error"))
        status = state.status
        if "success" in outcome:
            status = "succeeded" if outcome["success"] else ("cancelled" if cancelled else "failed")
        elif facts.get("ended"):
            error = facts.get("abort_cause") or facts.get("error")
            status = "cancelled" if cancelled else ("failed" if error else "succeeded")
            if error and state.error_message is None:
                state.error_message = error
                changes.run_changed = True
            if state.finished is None and facts.get("finished") is not None:
                state.finished = facts["finished"]
                changes.run_changed = True
        elif state.status in ("pending", "submitted") and (state.mode == "events" or facts or state.tasks):
            status = "running"
        if state.started is None and facts.get("started") is not None:
            state.started = facts["started"]
            changes.run_changed = True
        state.status = status


def _is_signal(text: Any) -> bool:
    return isinstance(text, str) and text.strip().upper() in CANCEL_SIGNALS


async def watch(monitor: Monitor, interval: float = 1.0, *, timeout: float | None = None) -> AsyncIterator[Changes]:
    """Polls in a worker thread every ``interval`` seconds and yields each non-empty Changes, until the run reaches a
    terminal status or ``timeout`` seconds pass (no poll loop without an end)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        changes = await asyncio.to_thread(monitor.poll)
        if changes:
            yield changes
        if monitor.state.status in TERMINAL_RUN_STATUSES:
            return
        if deadline is not None and loop.time() >= deadline:
            return
        if not changes.more:
            await asyncio.sleep(interval)


def load(run_dir: str | os.PathLike[str], state: dict[str, Any] | None = None,
         offsets: dict[str, dict[str, int]] | None = None) -> Monitor:
    """A Monitor from what the caller persisted (``state.to_dict()`` and ``offsets``, e.g. JSON columns)."""
    return Monitor(run_dir, RunState.from_dict(state) if state else None, offsets)


__all__ = [
    "Changes", "LogEvent", "LogLine", "Monitor", "RunState", "Tail", "TailPosition", "TailRead", "TaskRecord",
    "classify_log_line", "hash_from_workdir", "load", "log_time_ms", "parse_duration_ms", "parse_log_line",
    "parse_memory_bytes", "parse_submitted", "parse_cached", "parse_task_completed", "parse_trace_row",
    "split_task_name", "watch",
]
