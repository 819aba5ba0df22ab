"""What the monitor knows about a run, as plain data that round-trips through JSON: `RunState` and its tasks.

The execution manager stores a run's state (``RunState.to_dict()``) in the execution row and rebuilds it with
``RunState.from_dict`` after a restart; the API shows its progress. Run statuses are the executions' vocabulary
(execution/status.py); task statuses are Nextflow's own names, and a task only ever moves forward through them
(``TASK_RANK``), because the three sources are read one after the other and may describe a task out of order.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from .status import NEXTFLOW_TASK_STATUSES, TASK_STATUSES

#: Per-process progress buckets: the API's task words, one per Nextflow task status.
PROGRESS_BUCKETS = TASK_STATUSES
#: Nextflow task status → its progress bucket.
BUCKET = dict(zip(NEXTFLOW_TASK_STATUSES, TASK_STATUSES))
#: How far along a task status is; a task's status never moves to a lower rank.
TASK_RANK = {"NEW": 0, "SUBMITTED": 1, "RUNNING": 2, "COMPLETED": 3, "FAILED": 3, "CACHED": 3, "ABORTED": 3}
#: The rank of a finished task.
FINAL_RANK = 3


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


#: The fields a source may set on a task (its key and status are the monitor's to decide).
TASK_FIELDS = frozenset(TaskRecord.__slots__) - {"key", "status"}


@dataclass
class RunState:
    """Everything the monitor knows about a run; ``to_dict``/``from_dict`` round-trip through JSON.

    ``status`` is an execution status (execution/status.py); the monitor moves it to ``running`` and to a final
    status, never to ``lost`` (that is reconciliation's call when a run stops without saying so). ``processes`` maps a
    process name to its counts per bucket of ``PROGRESS_BUCKETS``. ``log_facts`` keeps what the log said about the
    run's end, because the status is decided from events and log together.
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


__all__ = ["BUCKET", "FINAL_RANK", "PROGRESS_BUCKETS", "TASK_FIELDS", "TASK_RANK", "RunState", "TaskRecord"]
