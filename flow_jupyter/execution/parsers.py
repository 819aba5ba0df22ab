"""Pure parsers of what Nextflow and Flow's plugin write into a run directory: one line (or one value) at a time.

- plugin event lines (``events.ndjson``, one JSON object per line, see ``nf_plugin/FlowEventsObserver.groovy``):
  :func:`parse_event_line` and :func:`task_event_values`;
- trace rows (``-with-trace``, TSV): :func:`parse_trace_row`;
- ``.nextflow.log`` lines (free text): :func:`parse_log_line`, :func:`classify_log_line`;
- the values inside them (Nextflow's durations, memory sizes, times, exit codes).

Like nextflow.py's ``log.py`` these are functions of a line: no I/O, no state, no database. Every input is
untrusted (a run's tasks can write anything into the run directory), so nothing here raises for bad content except
:func:`parse_event_line`, whose two exceptions say how the line was bad.
"""
from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 4096
"""Longest name/tag/path kept from untrusted input."""
MAX_ERROR = 64 * 1024
"""Longest error message kept."""
_NO_EXIT = 2**31 - 1      # Nextflow's Integer.MAX_VALUE "exit status not known"


# --- plugin events ----------------------------------------------------------------------------------------------

#: The ``v`` of every line Flow understands; must match the observer's SCHEMA_VERSION.
EVENT_SCHEMA_VERSION = 1
#: Task events → the task status they mean (``task_complete``: decided from the task's own status and exit).
TASK_EVENTS: dict[str, str | None] = {"task_pending": "NEW", "task_submit": "SUBMITTED", "task_start": "RUNNING",
                                      "task_complete": None, "task_cached": "CACHED"}
RUN_EVENTS = frozenset({"flow_create", "flow_begin", "process_create", "process_terminate", "file_publish",
                        "flow_complete", "flow_error"})
# (event field, task field, type) of every task field Flow keeps from an event.
_EVENT_TASK_FIELDS = (
    ("task_id", "task_id", int), ("hash", "hash", str), ("name", "name", str), ("process", "process", str),
    ("tag", "tag", str), ("native_id", "native_id", str), ("submit", "submit", int), ("start", "start", int),
    ("complete", "complete", int), ("duration", "duration", int), ("realtime", "realtime", int),
    ("%cpu", "cpu_percent", float), ("peak_rss", "peak_rss", int), ("workdir", "workdir", str),
    ("attempt", "attempt", int),
)
_decode_json = json.JSONDecoder().decode


class MalformedLine(ValueError):
    """Not a well-formed event: not JSON, not an object, or a field of the wrong type."""


class UnknownEvent(ValueError):
    """A well-formed line of a schema version or kind Flow does not know (a newer plugin, not an attack)."""


def parse_event_line(raw: bytes) -> dict[str, Any] | None:
    """One line of the events file → the event: a dict whose ``event`` is one of TASK_EVENTS (with a dict
    ``task``) or RUN_EVENTS. None for a blank line; MalformedLine or UnknownEvent for a line to count and skip."""
    if not raw.strip():
        return None
    try:
        event = _decode_json(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise MalformedLine from None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise MalformedLine
    if event.get("v") != EVENT_SCHEMA_VERSION:
        raise UnknownEvent
    kind = event["event"]
    if kind in TASK_EVENTS:
        if not isinstance(event.get("task"), dict):
            raise MalformedLine
    elif kind not in RUN_EVENTS:
        raise UnknownEvent
    return event


def task_event_values(kind: str, task: dict[str, Any]) -> dict[str, Any]:
    """The task fields a task event carries (status, exit and every well-typed field Flow keeps).

    Like nextflow.py, a completed task with a non-zero exit is FAILED."""
    status = TASK_EVENTS[kind]
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
            value = value[:MAX_TEXT] if type(value) is str else None
        else:
            value = parse_number(value)
        if value is not None:
            values[target] = value
    return values


def parse_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A string from untrusted JSON, cut to ``limit`` characters; anything else gives None."""
    return value[:limit] if isinstance(value, str) else None


def parse_number(value: Any) -> float | None:
    """A finite number from untrusted JSON (bools, NaN and infinities give None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


# --- log lines, trace rows and their values -----------------------------------------------------------------------

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


__all__ = [
    "EVENT_SCHEMA_VERSION", "MAX_ERROR", "MAX_TEXT", "RUN_EVENTS", "TASK_EVENTS", "LogEvent", "LogLine",
    "MalformedLine", "UnknownEvent", "classify_log_line", "hash_from_workdir", "log_time_ms", "parse_cached",
    "parse_duration_ms", "parse_event_line", "parse_exit", "parse_int", "parse_log_line", "parse_memory_bytes",
    "parse_number", "parse_percent", "parse_submitted", "parse_task_completed", "parse_text", "parse_trace_row",
    "parse_trace_time", "split_task_name", "task_event_values",
]
