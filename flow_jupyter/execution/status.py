"""The two status vocabularies of the API, each in one place: an execution's and a task's.

Pure constants (nothing but the standard library), so the server, the client and the widgets all read the same words.

**Executions** — stored and answered as these words::

    pending → submitted → running → succeeded | failed | cancelled,   plus lost

``lost`` only after reconciliation proved that the run is gone without an outcome.

**Tasks** (one Nextflow process execution each) — the API answers ``pending, submitted, running, succeeded, failed,
cached, aborted``: the words of the executions where they mean the same, and the per-process progress buckets
(``progress``, ``processes``) count exactly these. The rows keep Nextflow's own names (``NEW``, ``SUBMITTED``,
``RUNNING``, ``COMPLETED``, ``FAILED``, ``CACHED``, ``ABORTED``), since that is what its trace file, its log and
Flow's plugin report; `task_status` and `stored_task_status` translate at the API's edge and nowhere else.
"""
from __future__ import annotations

import enum


# --- executions ---------------------------------------------------------------------------------------------------
class ExecutionStatus(enum.StrEnum):
    """An execution's status, stored (db.models.Execution.status) and answered as its value.

    ``pending`` covers "waiting for a host" and "a host is submitting it" (the row's ``claimed_by`` tells which);
    ``submitted`` means the backend accepted the head job, nothing less. Member names equal their values, so a member
    and its plain word are interchangeable in comparisons, sets and JSON.
    """

    pending = "pending"
    submitted = "submitted"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    lost = "lost"


PENDING = ExecutionStatus.pending
SUBMITTED = ExecutionStatus.submitted
RUNNING = ExecutionStatus.running
SUCCEEDED = ExecutionStatus.succeeded
FAILED = ExecutionStatus.failed
CANCELLED = ExecutionStatus.cancelled
LOST = ExecutionStatus.lost

EXECUTION_STATUSES = tuple(status.value for status in ExecutionStatus)
#: A backend job exists and the manager follows it.
ACTIVE = (SUBMITTED, RUNNING)
#: The run is over; its status never changes again.
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, LOST})

# --- tasks --------------------------------------------------------------------------------------------------------
CACHED = "cached"
ABORTED = "aborted"

TASK_STATUSES = (PENDING, SUBMITTED, RUNNING, SUCCEEDED, FAILED, CACHED, ABORTED)
#: A task in one of these is done (its process's progress counts it as finished).
TASK_FINAL = frozenset({SUCCEEDED, FAILED, CACHED, ABORTED})

#: Nextflow's names, as stored in process_executions.status, in the same order as TASK_STATUSES.
NEXTFLOW_TASK_STATUSES = ("NEW", "SUBMITTED", "RUNNING", "COMPLETED", "FAILED", "CACHED", "ABORTED")
_TO_API = dict(zip(NEXTFLOW_TASK_STATUSES, TASK_STATUSES))
_TO_STORED = dict(zip(TASK_STATUSES, NEXTFLOW_TASK_STATUSES))


def task_status(stored: str) -> str:
    """The API's word for a stored (Nextflow) task status."""
    return _TO_API.get(stored, stored.lower())


def stored_task_status(status: str) -> str:
    """The stored (Nextflow) name of one of TASK_STATUSES, e.g. for a filter."""
    return _TO_STORED[status]
