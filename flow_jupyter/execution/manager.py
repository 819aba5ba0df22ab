"""The execution manager: the host's asyncio loop that turns execution rows into Nextflow runs and back.

No broker: every ~0.5 s (at once after a launch or cancel, see `wake`) one tick (on a worker thread, never on the
event loop) claims pending rows, plans and submits them, polls the monitor of every active run from its persisted
state and offsets, and settles runs whose backend job ended. All it needs is in the database and the run directories, so the first tick after a restart reconciles every
non-terminal row with reality (head job alive? run dir says finished?).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, defer

from .. import permissions
from ..db.models import Execution, PipelineVersion, ProcessExecution
from ..errors import FlowError
from ..pipelines import forms, registry
from ..seams import Host
from . import inputs
from .backends import Backend, BackendJob, BackendState, Resources, backend_named
from .launch import RunPlan, plan_run
from .monitor import Monitor
from .publish import register_published
from .runfiles import run_files
from .runstate import RunState, TaskRecord
from .service import MANAGER_KEY, to_datetime, with_notes
from .status import ACTIVE, CANCELLED, FAILED, FINAL, LOST, PENDING, RUNNING, SUBMITTED, SUCCEEDED

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
CLAIM_BATCH = 8
UPSERT_BATCH = 1000  # rows per statement: 15 values each stays under SQLite's 32,766 variables
RETRY_SECONDS = 10.0
_BACKEND_STATUS = {BackendState.COMPLETED: SUCCEEDED, BackendState.FAILED: FAILED,
                   BackendState.CANCELLED: CANCELLED}


def now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime | None) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    if moment is None:
        return now()
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclasses.dataclass
class _Followed:
    """An active run's Monitor kept between rounds, with the offsets and notes last committed for it."""

    monitor: Monitor
    offsets: dict | None
    notes: dict


def _describe(exc: FlowError) -> str:
    """A refusal as one line for the execution's error: the message, and each field with its own message (a launch
    checked again at submission, e.g. a path that now leads out of the run directory)."""
    details = "; ".join(f"{e.get('field') or ''}: {e.get('message')}" for e in (exc.errors or [])[:5])
    return f"{exc.message} {details}".strip() if details else exc.message


class ExecutionManager:
    """Drives executions for one host; `start`/`stop` from the host, `tick` does one round (blocking)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._backends: dict[str, Backend] = {}
        self._retry_at: dict[int, float] = {}
        self._monitors: dict[int, _Followed] = {}
        self._status_at: dict[int, float] = {}
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._first_round = True
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        from tornado.ioloop import IOLoop

        IOLoop.current().spawn_callback(self._run)

    def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    def wake(self) -> None:
        """Start the next round now (a launch or cancel just landed); safe from any thread."""
        if self._loop is not None and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        self._loop, self._wakeup = asyncio.get_running_loop(), asyncio.Event()
        while not self._stopping:
            try:
                await asyncio.to_thread(self.tick)
            except asyncio.CancelledError:
                raise
            except FlowError as exc:  # e.g. the database is down: health reports it; retry next round
                log.debug("Flow execution manager: %s", exc.message)
            except Exception:  # one bad round must not end the manager
                log.exception("Flow execution manager: tick failed")
            try:
                await asyncio.wait_for(self._wakeup.wait(), TICK_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._wakeup.clear()

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = backend_named(name, self.host.settings)
        return self._backends[name]

    # --- one round -----------------------------------------------------------------------------------------------

    def tick(self) -> None:
        if self._stopping:
            return
        self.host.ensure_schema()
        for execution_id in self._claim():
            self._submit(execution_id)
        with self.host.db.session() as session:
            active = session.scalars(select(Execution.id).where(Execution.status.in_(ACTIVE))
                                     .order_by(Execution.id)).all()
        for execution_id in active:
            try:
                self._follow(execution_id)
            except Exception:
                log.exception("Flow execution manager: following execution %s failed", execution_id)
        self._first_round = False

    def _claim(self) -> list[int]:
        """Pending rows this host now owns (status 'submitted'): SKIP LOCKED on PostgreSQL, a guarded UPDATE on
        SQLite, so two hosts never submit one execution twice."""
        due = time.monotonic()
        claimed: list[int] = []
        with self.host.db.session() as session:
            query = select(Execution).where(Execution.status == PENDING).order_by(Execution.id).limit(CLAIM_BATCH)
            if session.get_bind().dialect.name == "postgresql":
                rows = session.scalars(query.with_for_update(skip_locked=True)).all()
                for row in rows:
                    if self._retry_at.get(row.id, 0) <= due:
                        row.status = SUBMITTED
                        claimed.append(row.id)
            else:
                for execution_id in session.scalars(query.with_only_columns(Execution.id)).all():
                    if self._retry_at.get(execution_id, 0) > due:
                        continue
                    done = cast(CursorResult, session.execute(
                        update(Execution).where(Execution.id == execution_id, Execution.status == PENDING)
                        .values(status=SUBMITTED)))
                    if done.rowcount == 1:
                        claimed.append(execution_id)
        return claimed

    def _submit(self, execution_id: int) -> None:
        """Plan, write and submit one claimed execution; a scheduler outage puts it back to pending."""
        try:
            with self.host.db.session() as session:
                execution = session.get_one(Execution, execution_id)
                plan = self._plan(session, execution)
                plan.write()
                execution_uuid = execution.uuid
                backend_name = execution.backend
            job = self.backend(backend_name).submit(plan.launch(execution_uuid))
        except FlowError as exc:
            with self.host.db.session() as session:
                execution = session.get_one(Execution, execution_id)
                waited = (now() - _aware(execution.created_at)).total_seconds()
                if exc.status == 503 and waited < self.host.settings.launch_retry_seconds:
                    # The scheduler is down: keep the launch, say why it waits, try again shortly.
                    execution.status = PENDING
                    execution.monitor_state = with_notes(execution.monitor_state, backend_error=exc.message)
                    self._retry_at[execution_id] = time.monotonic() + RETRY_SECONDS
                else:
                    execution.status, execution.finished_at = FAILED, now()
                    execution.error = _describe(exc) if exc.status != 503 else (
                        f"Gave up after {waited:.0f} s waiting for the scheduler: {exc.message}")
            return
        except Exception as exc:
            log.exception("Flow execution manager: submitting execution %s failed", execution_id)
            with self.host.db.session() as session:
                execution = session.get_one(Execution, execution_id)
                execution.status, execution.finished_at, execution.error = FAILED, now(), f"Submit failed: {exc}"
            return
        self._retry_at.pop(execution_id, None)
        with self.host.db.session() as session:
            execution = session.get_one(Execution, execution_id)
            execution.backend_job = job.to_json()
            execution.submitted_at = now()
            execution.error = None
            execution.monitor_state = with_notes(execution.monitor_state, backend_error=None)

    def _plan(self, session: Session, execution: Execution) -> RunPlan:
        """The run plan, with data-file references resolved again as the owner (rights may have changed)."""
        actor = permissions.actor_for_owner(session, execution.owner_id)
        storage = self.host.storage
        version = session.get_one(PipelineVersion, execution.pipeline_version_id)
        run_dir = storage.resolve(execution.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        checked = forms.check(session, actor, storage, self.host.settings, version, execution.params or {},
                              run_dir=run_dir)
        params = inputs.write_sheets(version.samplesheet_schema, checked, run_dir)
        resources = Resources.from_json(execution.resources) if execution.resources else None
        resume = execution.session_id if execution.resumed_from_id is not None else None
        return plan_run(pipeline_dir=registry.version_dir(storage, version), run_dir=run_dir, params=params,
                        executor=execution.backend, resources=resources, resume_session=resume,
                        files=run_files(execution))

    # --- following a run -------------------------------------------------------------------------------------

    def _follow(self, execution_id: int) -> None:
        """One round for one active run: cancel if asked, read what its files added, ask the backend, settle.

        The run's Monitor stays in memory between rounds (``_monitors``), so a round that finds nothing new costs a
        few stat calls, not a decode of the stored state. The stored state is read again only when its offsets are
        not the ones this manager last committed (first round after a restart, another host wrote, a round failed).
        """
        kept: _Followed | None = None
        with self.host.db.session() as session:
            execution = session.get_one(Execution, execution_id, options=[defer(Execution.monitor_state)])
            if execution.status not in ACTIVE:
                self._monitors.pop(execution_id, None)
                return
            run_dir = self.host.storage.resolve(execution.run_dir)
            backend = self.backend(execution.backend)
            if execution.backend_job is None:
                # Claimed, then a host stopped before recording the job. Only the first round after start-up judges
                # this (later, the row may be another replica's submission in flight).
                if not self._first_round:
                    return
                job = backend.find(execution.uuid, run_dir)
                if job is None:
                    execution.status = PENDING
                    return
                execution.backend_job = job.to_json()
            job = BackendJob.from_json(execution.backend_job)
            # Taken out while this round mutates it: if the round fails, nothing half-applied is kept.
            followed = self._monitors.pop(execution_id, None)
            if followed is None or followed.offsets != execution.monitor_offsets:
                stored = execution.monitor_state or {}
                state = RunState.from_dict(stored) if stored else None
                monitor = Monitor(run_dir, state, execution.monitor_offsets, files=run_files(execution))
                # The manager's own notes ride along in monitor_state under MANAGER_KEY (RunState ignores them).
                followed = _Followed(monitor, execution.monitor_offsets, dict(stored.get(MANAGER_KEY) or {}))
            monitor, old_notes = followed.monitor, followed.notes
            notes = dict(old_notes)
            if execution.cancel_requested and not notes.get("cancel_sent"):
                backend.cancel(job)
                notes["cancel_sent"] = True
            changed = self._poll(session, execution, monitor)
            info = None
            if self._backend_due(execution_id, monitor.state, execution.cancel_requested):
                try:
                    info = backend.status(job)
                except FlowError as exc:  # scheduler unreachable: keep following the files, decide later
                    notes["backend_error"] = exc.message
            if info is not None:
                notes.pop("backend_error", None)
                eta = info.queue_eta.isoformat() if info.queue_eta else None
                if eta != notes.get("queue_eta"):
                    notes["queue_eta"] = eta
                if info.status.terminal or info.status == BackendState.UNKNOWN:
                    changed = self._poll(session, execution, monitor) or changed  # the final words of the run
                    self._settle(execution, monitor.state, info, job)
            monitor.forget_finished()  # their rows and data files are written in this transaction
            offsets = monitor.offsets
            if changed or notes != old_notes or offsets != execution.monitor_offsets \
                    or execution.status in FINAL:
                execution.monitor_state = {**monitor.state.to_dict(), MANAGER_KEY: notes}
                execution.monitor_offsets = offsets
            if execution.status not in FINAL:
                kept = _Followed(monitor, offsets, notes)
        # Only what was committed is kept: after a failed round the next one reads the stored state again.
        if kept is None:
            self._status_at.pop(execution_id, None)
        else:
            self._monitors[execution_id] = kept

    def _backend_due(self, execution_id: int, state: RunState, cancel_requested: bool) -> bool:
        """Ask the scheduler about a run every `backend_poll_seconds` (one squeue per run per round would load a
        real controller with hundreds of calls a second), at once when its events say it ended or a cancel was
        asked for, and on the first round after a start."""
        due = time.monotonic()
        if (state.status in FINAL or cancel_requested
                or self._status_at.get(execution_id, 0.0) <= due):
            self._status_at[execution_id] = due + self.host.settings.backend_poll_seconds
            return True
        return False

    def _poll(self, session: Session, execution: Execution, monitor: Monitor) -> bool:
        changes = monitor.poll()
        while changes.more:
            more = monitor.poll()
            changes.tasks.update(more.tasks)
            changes.published.extend(more.published)
            changes.run_changed = changes.run_changed or more.run_changed or bool(more)
            changes.more = more.more
        if not changes and not changes.run_changed:
            return False
        state = monitor.state
        execution.run_name = state.run_name or execution.run_name
        if state.session_id:
            execution.session_id = state.session_id
        execution.started_at = execution.started_at or to_datetime(state.started)
        if state.status == RUNNING and execution.status == SUBMITTED:
            execution.status = RUNNING
        self._upsert_tasks(session, execution, changes.tasks)
        self._register_published(session, execution, changes.published)
        return True

    def _upsert_tasks(self, session: Session, execution: Execution, tasks: dict[str, TaskRecord]) -> None:
        """One INSERT … ON CONFLICT DO UPDATE per batch of changed tasks (SQLite and PostgreSQL both have it), not
        an ORM round trip per task: a burst of thousands of task events is absorbed in a few statements."""
        if not tasks:
            return
        rows = [{
            "execution_id": execution.id, "task_key": key[:64], "task_id": task.task_id, "name": task.name,
            "process": task.process, "tag": task.tag, "native_id": task.native_id[:255] if task.native_id else None,
            "status": task.status, "exit": task.exit, "submitted_at": to_datetime(task.submit),
            "started_at": to_datetime(task.start), "finished_at": to_datetime(task.complete),
            "cpu_percent": task.cpu_percent, "peak_rss": task.peak_rss, "workdir": task.workdir,
        } for key, task in tasks.items()]
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        for start in range(0, len(rows), UPSERT_BATCH):
            statement = insert(ProcessExecution).values(rows[start:start + UPSERT_BATCH])
            updated = {column: statement.excluded[column] for column in rows[0]
                       if column not in ("execution_id", "task_key")}
            session.execute(statement.on_conflict_do_update(index_elements=["execution_id", "task_key"],
                                                            set_=updated))

    def _register_published(self, session: Session, execution: Execution, published: list[dict[str, Any]]) -> None:
        """Published files under this execution's run dir become output data files of its project (publish.py)."""
        destinations = [str(item.get("destination") or "") for item in published]
        register_published(session, self.host.storage, execution, destinations)

    def _settle(self, execution: Execution, state: RunState, info, job: BackendJob) -> None:
        """The backend job ended (or vanished): decide the outcome from the monitor, else from the backend."""
        external_cancel = (info.status == BackendState.CANCELLED and not execution.cancel_requested
                           and state.status != SUCCEEDED)
        if external_cancel:
            # Someone stopped the head job behind Flow's back (scancel, a node failure Slurm reports as cancelled).
            status = CANCELLED
            detail = f": {info.reason}" if info.reason else ""
            execution.error = (f"The head job ({job.backend} job {job.job_id}) was cancelled outside Flow{detail}.")
        elif state.status in FINAL:
            status = state.status
        elif info.status == BackendState.UNKNOWN:
            status = LOST
            execution.error = execution.error or f"The run's head job is gone without an outcome ({info.reason})."
        else:
            status = _BACKEND_STATUS[info.status]
        if execution.cancel_requested and status != SUCCEEDED:
            status = CANCELLED
        execution.status = status
        execution.finished_at = to_datetime(state.finished) or now()
        execution.exit_status = state.exit_status if state.exit_status is not None else info.exit_code
        if status == FAILED:
            execution.error = state.error_message or execution.error or f"Nextflow exited with {info.exit_code}."
