"""The incremental run monitor: a run directory's files → a small, persistable run state.

Nextflow writes three things into a run directory while it runs, and all three only grow:

- the events file from Flow's Nextflow plugin (``nf_plugin/FlowEventsObserver.groovy``): one JSON object per line,
  structured and authoritative;
- the trace file (``-with-trace``): one TSV row per finished task;
- ``.nextflow.log``: free text, but the only source when the plugin could not load (a site's own newer Nextflow).

nextflow.py's ``get_execution`` re-reads the whole log on every poll, so a poll of a 100k-task run costs seconds of
CPU. Here every source is a `Tail` (tailing.py) that reads only the bytes appended since a stored offset, each line
goes through a pure parser (parsers.py), and a poll applies just those lines to a `RunState` (runstate.py). Offsets
and state are plain JSON-able values the caller persists, so a restarted server resumes where it stopped instead of
re-reading gigabytes.

The events file is written by a process running user pipelines on shared storage: it is untrusted. Lines that are
not JSON objects, have wrong types or are huge are skipped and counted (``malformed_lines``, ``oversized_lines``);
nothing in it can raise out of :meth:`Monitor.poll`.

Events are authoritative. Trace rows and log lines describe tasks only while no event has been seen (``mode`` is
``"trace+log"``); run-level facts from the log (session id, run name, abort cause, end of run) are always read,
because the log is the only place they appear when Nextflow fails before the plugin loads.

This module knows no database and no tornado. ``watch`` is the async poll loop.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .parsers import (
    MAX_ERROR,
    TASK_EVENTS,
    LogEvent,
    MalformedLine,
    UnknownEvent,
    classify_log_line,
    log_time_ms,
    parse_event_line,
    parse_exit,
    parse_int,
    parse_log_line,
    parse_text,
    parse_trace_row,
    split_task_name,
    task_event_values,
)
from .runfiles import RunFiles
from .runstate import BUCKET, FINAL_RANK, PROGRESS_BUCKETS, TASK_FIELDS, TASK_RANK, RunState, TaskRecord
from .status import FINAL
from .tailing import MAX_LINE, POLL_BUDGET, Tail, TailPosition

#: An abort for one of these causes is the user's (or the scheduler's) cancel, not a pipeline failure.
CANCEL_SIGNALS = frozenset({"SIGTERM", "SIGINT", "SIGHUP", "SIGKILL", "SIGUSR2", "SIGQUIT"})


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


class Monitor:
    """Follows one run directory: ``poll()`` reads what the three sources appended and applies it to ``state``.

    ``state`` and ``offsets`` are what the caller persists (``state.to_dict()`` and ``offsets``, both JSON) to
    resume after a restart without re-reading the files.
    """

    def __init__(self, run_dir: str | os.PathLike[str], state: RunState | None = None,
                 offsets: dict[str, dict[str, int]] | None = None, *, files: RunFiles = RunFiles(),
                 max_line: int = MAX_LINE, clock: Any = time.time) -> None:
        self.run_dir = Path(run_dir)
        self.state = state or RunState()
        offsets = offsets or {}
        self._tails = {
            name: Tail(self.run_dir / filename, TailPosition.from_dict(offsets.get(name)), max_line=max_line)
            for name, filename in (("events", files.events), ("trace", files.trace), ("log", files.log))
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
            done = [key for key, task in state.tasks.items() if TASK_RANK[task.status] == FINAL_RANK]
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
        try:
            event = parse_event_line(raw)
        except UnknownEvent:
            self.state.unknown_events += 1
            return
        except MalformedLine:
            self.state.malformed_lines += 1
            return
        if event is None:
            return
        kind = event["event"]
        if kind in TASK_EVENTS:
            applied = self._update_task(task_event_values(kind, event["task"]), changes, overwrite=True)
        else:
            applied = self._apply_run_event(kind, event, changes)
        if not applied:
            self.state.malformed_lines += 1
            return
        if self.state.mode != "events":
            self.state.mode = "events"
            changes.run_changed = True
        if self.state.run_name is None or self.state.session_id is None:
            self._fill_run_names(event, changes)

    def _apply_run_event(self, kind: str, event: dict[str, Any], changes: Changes) -> bool:
        state = self.state
        when = parse_int(event.get("time"))
        if kind == "flow_create":
            if state.status in FINAL or state.flow_outcome:
                # A resumed run appending to the same file: a new session starts.
                state.flow_outcome, state.finished, state.error_message, state.exit_status = {}, None, None, None
            state.resumed = event.get("resumed") if isinstance(event.get("resumed"), bool) else state.resumed
            state.work_dir = parse_text(event.get("work_dir")) or state.work_dir
            state.launch_dir = parse_text(event.get("launch_dir")) or state.launch_dir
            state.nextflow_version = parse_text(event.get("nextflow_version"), 64) or state.nextflow_version
            state.started = state.started or when
            changes.run_changed = True
        elif kind == "flow_begin":
            state.started = state.started or when
        elif kind in ("process_create", "process_terminate"):
            process = parse_text(event.get("process"))
            if process is None:
                return False
            if process not in state.processes:
                state.processes[process] = dict.fromkeys(PROGRESS_BUCKETS, 0)
                changes.processes.add(process)
        elif kind == "file_publish":
            destination = parse_text(event.get("destination"))
            if destination is None:
                return False
            if destination not in self._published:
                item = {"destination": destination, "source": parse_text(event.get("source")), "time": when}
                self._published.add(destination)
                state.published.append(item)
                state.published_count += 1
                changes.published.append(item)
        elif kind == "flow_error":
            message = parse_text(event.get("error_message"), MAX_ERROR)
            state.flow_outcome.setdefault("error", message)
            state.error_message = state.error_message or message
            changes.run_changed = True
        elif kind == "flow_complete":
            success = event.get("success")
            if not isinstance(success, bool):
                return False
            state.flow_outcome["success"] = success
            state.flow_outcome["error"] = parse_text(event.get("error_message"), MAX_ERROR) or state.flow_outcome.get(
                "error")
            state.exit_status = parse_exit(event.get("exit_status"))
            if not success:
                state.error_message = state.flow_outcome["error"] or state.error_message
            stats = event.get("stats")
            if isinstance(stats, dict):
                state.stats = {str(k)[:64]: number for k, v in stats.items() if (number := parse_int(v)) is not None}
            state.finished = when or state.finished
            changes.run_changed = True
        return True

    def _fill_run_names(self, event: dict[str, Any], changes: Changes) -> None:
        for name in ("run_name", "session_id"):
            value = parse_text(event.get(name), 128)
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
        if row is None or row.get("status") not in TASK_RANK:
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
            facts.setdefault("abort_cause", data["cause"][:MAX_ERROR])
        elif event.kind in ("error", "launch_error"):
            facts.setdefault("error", data["message"][:MAX_ERROR])
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
        if status not in TASK_RANK:
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
            if TASK_RANK[status] > TASK_RANK[task.status]:
                task.status = status
        for name, value in values.items():
            if value is not None and name in TASK_FIELDS and (overwrite or getattr(task, name) is None):
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
            counts[BUCKET[old_status]] -= 1
        counts[BUCKET[task.status]] += 1
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
        if monitor.state.status in FINAL:
            return
        if deadline is not None and loop.time() >= deadline:
            return
        if not changes.more:
            await asyncio.sleep(interval)


def load(run_dir: str | os.PathLike[str], state: dict[str, Any] | None = None,
         offsets: dict[str, dict[str, int]] | None = None) -> Monitor:
    """A Monitor from what the caller persisted (``state.to_dict()`` and ``offsets``, e.g. JSON columns)."""
    return Monitor(run_dir, RunState.from_dict(state) if state else None, offsets)


__all__ = ["CANCEL_SIGNALS", "Changes", "Monitor", "load", "watch"]
