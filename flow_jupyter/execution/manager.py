"""The execution manager: one host's loop that turns execution rows into Nextflow runs and back.

No broker, and nothing that only lives in memory: every ~0.5 s (at once after a launch or cancel, see `wake`) one
round on the manager's thread

- renews this host's claim leases and claims free rows (db/leases.py): new launches, and the runs of a host that
  died or hung (its lease expired, or it was a process on this machine that is gone);
- hands claimed launches to the *scheduler lane* (plan, write, submit — a submission that may hang on a stalled
  controller never blocks the round), and keeps a launch ``pending`` until the backend has really accepted it;
- starts one *status query* per round for every active run of a backend (``Backend.statuses``: one ``squeue`` for
  all of them, jittered after start-up, backing off while the controller is unreachable), also on the scheduler
  lane;
- follows every active run on a bounded pool (`follow_workers`): new lines of its files become task rows and run
  progress, published outputs are checksummed on the host's hash pool outside any transaction and registered in a
  short one, and a run whose head job ended (as the last status query said) is settled.

A run directory that takes long to read (a stalled NFS mount) holds one follow thread; a multi-GB output holds one
hash thread; a hung scheduler holds the scheduler lane. None of them holds the others. After a restart every row is
judged again from the database and the run directories (`Backend.find` adopts a head job submitted just before a
crash), so there is no separate reconcile step that could fail once and never be tried again.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
import time
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, defer

from .. import permissions
from ..db import leases
from ..db.models import Execution, PipelineVersion, ProcessExecution
from ..errors import FlowError
from ..metrics import SCHEDULER_REACHABLE
from ..pipelines import forms, registry
from ..seams import Host
from . import inputs
from .backends import Backend, BackendJob, BackendState, JobInfo, Resources, backend_named
from .backends.base import read_head_file
from .launch import RunPlan, plan_run
from .monitor import Monitor
from .publish import HashedOutput, hash_published, register_hashed, registered_outputs, unstable_destinations
from .runfiles import run_files
from .runstate import RunState, TaskRecord
from .service import MANAGER_KEY, to_datetime, with_notes
from .status import ACTIVE, ExecutionStatus, CANCELLED, FAILED, FINAL, LOST, PENDING, RUNNING, SUBMITTED, SUCCEEDED

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
CLAIM_BATCH = 200
UPSERT_BATCH = 1000  # rows per statement: 15 values each stays under SQLite's 32,766 variables
RETRY_SECONDS = 10.0
#: Status queries asked for at once (a run's events say it ended, a cancel) are still at least this far apart.
MIN_QUERY_GAP_SECONDS = 1.0
UNFINISHED_TASKS = ("NEW", "SUBMITTED", "RUNNING")
NOT_FINAL = (PENDING, SUBMITTED, RUNNING)
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


@dataclasses.dataclass
class _Lane:
    """What the scheduler told about one backend: the newest answer per job id, and whether it is reachable."""

    infos: dict[str, JobInfo] = dataclasses.field(default_factory=dict)
    error: str | None = None
    due: float = 0.0
    backoff: float = 0.0
    last: float = 0.0


def _describe(exc: FlowError) -> str:
    """A refusal as one line for the execution's error: the message, and each field with its own message (a launch
    checked again at submission, e.g. a path that now leads out of the run directory)."""
    details = "; ".join(f"{e.get('field') or ''}: {e.get('message')}" for e in (exc.errors or [])[:5])
    return f"{exc.message} {details}".strip() if details else exc.message


class ExecutionManager:
    """Drives the executions this host holds; `start`/`stop` from the host, `tick` does one round (blocking)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        settings = host.settings
        self._backends: dict[str, Backend] = {}
        self._monitors: dict[int, _Followed] = {}
        self._held: set[int] = set()
        self._renew_due = 0.0
        self._retry_at: dict[int, float] = {}
        self._submitting: dict[int, Future] = {}
        self._cancelling: dict[int, Future] = {}
        self._cancelled: set[int] = set()
        self._following: dict[int, tuple[Future, float]] = {}
        self._slow: set[int] = set()
        self._hashing: dict[int, Future] = {}
        self._jobs: dict[int, tuple[str, BackendJob]] = {}
        self._lanes: dict[str, _Lane] = {}
        self._lanes_lock = threading.Lock()
        self._query: Future | None = None
        self._query_wanted = False
        self._first_query = time.monotonic() + random.uniform(0.0, max(0.0, settings.scheduler_start_jitter_seconds))
        self.rounds = 0
        self._task: asyncio.Task | None = None
        self._stopping = False
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
        """Start the next round now (a launch or cancel just landed, a status query answered); safe from any
        thread."""
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

    def _pool(self, name: str):
        settings = self.host.settings
        sizes = {"follow": settings.follow_workers, "hash": settings.hash_workers}
        return self.host.pool(name, sizes.get(name, 1))

    # --- one round -----------------------------------------------------------------------------------------------

    def tick(self) -> None:
        if self._stopping:
            return
        self.host.ensure_schema()
        self._claim()
        with self.host.db.session() as session:
            rows = session.execute(select(Execution.id, Execution.status).where(
                Execution.claimed_by == self.host.host_id, Execution.status.in_(NOT_FINAL))
                .order_by(Execution.id)).all()
        pending = [execution_id for execution_id, status in rows if status == PENDING]
        active = [execution_id for execution_id, status in rows if status in ACTIVE]
        for execution_id in pending:
            self._start_submit(execution_id)
        self._collect()
        self._start_query()
        for execution_id in active:
            self._start_follow(execution_id)
        gone = set(self._jobs) - set(active)
        for execution_id in gone:
            self._jobs.pop(execution_id, None)
        self.rounds += 1

    def _claim(self) -> None:
        """Renew this host's leases now and then, and claim what nobody holds (new launches, a dead host's runs)."""
        settings, host_id = self.host.settings, self.host.host_id
        moment = time.monotonic()
        with self.host.db.session() as session:
            if moment >= self._renew_due:
                held = leases.renew(session, Execution, host_id, Execution.status.in_(NOT_FINAL))
                for execution_id in self._held - held:  # settled, or taken over while this host stalled
                    self._forget(execution_id)
                self._held = held
                self._renew_due = moment + max(1.0, settings.claim_lease_seconds / 4)
            won = leases.claim(session, Execution, host_id, settings.claim_lease_seconds,
                               Execution.status.in_(NOT_FINAL), CLAIM_BATCH)
            self._held.update(won)

    def _forget(self, execution_id: int) -> None:
        self._monitors.pop(execution_id, None)
        self._jobs.pop(execution_id, None)
        self._retry_at.pop(execution_id, None)

    def _collect(self) -> None:
        """Log what the lanes' finished work raised (each records its own outcome in the database)."""
        for table in (self._submitting, self._cancelling):
            for execution_id, future in list(table.items()):
                if future.done():
                    del table[execution_id]
                    if future.exception() is not None:
                        log.error("Flow execution manager: execution %s: %s", execution_id, future.exception())
        for execution_id, (future, _started) in list(self._following.items()):
            if future.done():
                del self._following[execution_id]
                self._slow.discard(execution_id)
                error = future.exception()
                if error is not None:
                    log.error("Flow execution manager: following execution %s failed", execution_id,
                              exc_info=error)

    # --- submitting ------------------------------------------------------------------------------------------

    def _start_submit(self, execution_id: int) -> None:
        if execution_id in self._submitting or self._retry_at.get(execution_id, 0.0) > time.monotonic():
            return
        self._submitting[execution_id] = self._pool("scheduler-submit").submit(self._submit, execution_id)

    def _submit(self, execution_id: int) -> None:
        """Plan, write and submit one claimed launch (on the scheduler lane). It stays ``pending`` until the backend
        accepted it; a head job already in the backend for it (a submission that timed out but went through, a host
        that crashed before recording its job) is adopted, never submitted twice."""
        host_id = self.host.host_id
        try:
            with self.host.db.session() as session:
                execution = session.get_one(Execution, execution_id)
                if execution.status != PENDING or execution.claimed_by != host_id:
                    return
                run_dir = self.host.storage.resolve(execution.run_dir)
                backend = self.backend(execution.backend)
                execution_uuid = execution.uuid
                # A head job this launch recorded before its host stopped: adopt it, whatever became of it.
                recorded = read_head_file(run_dir, execution_uuid) is not None
                plan = None if recorded else self._plan(session, execution)
            job = backend.find(execution_uuid, run_dir) if recorded else None
            if job is None:
                if plan is None:  # recorded, but for another backend: plan afresh
                    with self.host.db.session() as session:
                        plan = self._plan(session, session.get_one(Execution, execution_id))
                plan.write()
                job = backend.submit(plan.launch(execution_uuid))
        except FlowError as exc:
            self._submit_failed(execution_id, exc)
            return
        except Exception as exc:
            log.exception("Flow execution manager: submitting execution %s failed", execution_id)
            with self.host.db.session() as session:
                execution = session.get_one(Execution, execution_id)
                if execution.status == PENDING:
                    execution.status, execution.finished_at = FAILED, now()
                    execution.error = f"Submit failed: {exc}"
                    execution.claimed_by = None
            return
        self._retry_at.pop(execution_id, None)
        cancel_now = False
        with self.host.db.session() as session:
            execution = session.get_one(Execution, execution_id)
            recorded_job = execution.backend_job
            if recorded_job is not None and recorded_job.get("job_id") != job.job_id:
                # Another attempt's head job is the run's already (a replica that took over). The backend's lock
                # in the run directory stops this one before it touches the run; it is not recorded.
                log.warning("Flow execution manager: execution %s already has head job %s; not recording %s",
                            execution.uuid, recorded_job.get("job_id"), job.job_id)
                return
            execution.backend_job = job.to_json()
            execution.submitted_at = execution.submitted_at or now()
            if execution.status == PENDING:
                execution.status = SUBMITTED
                execution.error = None
                execution.monitor_state = with_notes(execution.monitor_state, backend_error=None)
            elif execution.status == CANCELLED:
                cancel_now = True  # cancelled while its submission was in flight
        if cancel_now:
            self.backend(job.backend).cancel(job)
        self.wake()

    def _submit_failed(self, execution_id: int, exc: FlowError) -> None:
        """A scheduler outage keeps the launch pending (claimed, retried); a refusal fails it."""
        with self.host.db.session() as session:
            execution = session.get_one(Execution, execution_id)
            if execution.status != PENDING:
                return
            waited = (now() - _aware(execution.created_at)).total_seconds()
            if exc.status == 503 and waited < self.host.settings.launch_retry_seconds:
                execution.monitor_state = with_notes(execution.monitor_state, backend_error=exc.message)
                self._retry_at[execution_id] = time.monotonic() + RETRY_SECONDS
            else:
                execution.status, execution.finished_at, execution.claimed_by = FAILED, now(), None
                execution.error = _describe(exc) if exc.status != 503 else (
                    f"Gave up after {waited:.0f} s waiting for the scheduler: {exc.message}")

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
                        files=run_files(execution), settings=self.host.settings)

    # --- asking the scheduler ---------------------------------------------------------------------------------

    def _lane(self, backend_name: str) -> _Lane:
        with self._lanes_lock:
            return self._lanes.setdefault(backend_name, _Lane())

    def want_status(self) -> None:
        """Ask the scheduler in the next round (a run's events say it ended, a cancel was sent)."""
        self._query_wanted = True

    def _start_query(self) -> None:
        """One status query per backend for all of this host's active runs, on the scheduler lane."""
        if self._query is not None:
            if not self._query.done():
                return
            if self._query.exception() is not None:
                log.error("Flow execution manager: status query failed", exc_info=self._query.exception())
            self._query = None
        moment = time.monotonic()
        if moment < self._first_query or not self._jobs:
            return
        by_backend: dict[str, list[BackendJob]] = {}
        for backend_name, job in list(self._jobs.values()):
            lane = self._lane(backend_name)
            due = lane.due <= moment or (self._query_wanted and not lane.error
                                         and moment - lane.last >= MIN_QUERY_GAP_SECONDS)
            if due:
                by_backend.setdefault(backend_name, []).append(job)
        if not by_backend:
            return
        self._query_wanted = False
        self._query = self._pool("scheduler-status").submit(self._ask, by_backend)

    def _ask(self, by_backend: dict[str, list[BackendJob]]) -> None:
        poll = self.host.settings.backend_poll_seconds
        for backend_name, jobs in by_backend.items():
            lane = self._lane(backend_name)
            started = time.monotonic()
            try:
                infos = self.backend(backend_name).statuses(jobs)
            except FlowError as exc:  # unreachable: back off, keep following the files, decide later
                lane.backoff = min(max(lane.backoff * 2, poll), self.host.settings.scheduler_backoff_max_seconds)
                lane.error, lane.due, lane.last = exc.message, time.monotonic() + lane.backoff, started
                SCHEDULER_REACHABLE.labels(backend_name).set(0)
                continue
            SCHEDULER_REACHABLE.labels(backend_name).set(1)
            with self._lanes_lock:
                lane.infos = {job.job_id: infos[job.job_id] for job in jobs if job.job_id in infos}
                lane.error, lane.backoff, lane.last = None, 0.0, started
                lane.due = time.monotonic() + poll
        self.wake()

    def _info(self, backend_name: str, job: BackendJob) -> tuple[JobInfo | None, str | None]:
        """The newest status of a job, and the scheduler's error when it could not be asked."""
        lane = self._lane(backend_name)
        with self._lanes_lock:
            return lane.infos.get(job.job_id), lane.error

    # --- following a run -------------------------------------------------------------------------------------

    def _start_follow(self, execution_id: int) -> None:
        running = self._following.get(execution_id)
        if running is not None:
            if time.monotonic() - running[1] > self.host.settings.follow_timeout_seconds \
                    and execution_id not in self._slow:
                self._slow.add(execution_id)
                log.warning("Flow execution manager: reading the run directory of execution %s takes longer "
                            "than %.0f s; the other runs go on", execution_id,
                            self.host.settings.follow_timeout_seconds)
            return
        future = self._pool("follow").submit(self._follow, execution_id)
        self._following[execution_id] = (future, time.monotonic())

    def _follow(self, execution_id: int) -> None:
        """One round for one active run: cancel if asked, read what its files added, register what its outputs'
        checksums are ready for, and settle when the scheduler said the head job ended.

        The run's Monitor stays in memory between rounds (``_monitors``), so a round that finds nothing new costs a
        few stat calls, not a decode of the stored state. The stored state is read again only when its offsets are
        not the ones this manager last committed (first round after a restart or a takeover, a round failed).
        Published outputs waiting for their checksum ride along in the notes (``publishing``), committed with the
        offsets that consumed them, so a crash between the two loses none.
        """
        kept: _Followed | None = None
        with self.host.db.session() as session:
            execution = session.get_one(Execution, execution_id, options=[defer(Execution.monitor_state)])
            if execution.status not in ACTIVE or execution.claimed_by != self.host.host_id:
                self._forget(execution_id)
                return
            run_dir = self.host.storage.resolve(execution.run_dir)
            if execution.backend_job is None:  # not possible since submitted means accepted; be safe
                execution.status = PENDING
                return
            job = BackendJob.from_json(execution.backend_job)
            self._jobs[execution_id] = (execution.backend, job)
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
            if execution.cancel_requested:
                self._send_cancel(session, execution, job, notes)
            changed = self._poll(session, execution, monitor, notes)
            self._register_outputs(session, execution, run_dir, notes)
            info, scheduler_error = self._info(execution.backend, job)
            if info is not None and info.status.terminal:
                successor = self.backend(execution.backend).successor(job, info)
                if successor is not None:  # the recorded head job was a duplicate; follow the one that runs
                    log.warning("Flow execution manager: execution %s runs as %s job %s, not %s", execution.uuid,
                                successor.backend, successor.job_id, job.job_id)
                    execution.backend_job = successor.to_json()
                    self._jobs[execution_id] = (execution.backend, successor)
                    self.want_status()
                    info = None
            if scheduler_error is not None:
                notes["backend_error"] = scheduler_error
            elif info is not None:
                notes.pop("backend_error", None)
                notes.pop("queue_eta", None)
                if info.queue_eta is not None:
                    notes["queue_eta"] = info.queue_eta.isoformat()
            if monitor.state.status in FINAL:
                self.want_status()
            if info is not None and (info.status.terminal or info.status == BackendState.UNKNOWN):
                changed = self._poll(session, execution, monitor, notes) or changed  # the final words of the run
                self._register_outputs(session, execution, run_dir, notes)
                if not notes.get("publishing") and execution_id not in self._hashing:
                    self._settle(session, execution, monitor.state, info, job)
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
            self._forget(execution_id)
        else:
            self._monitors[execution_id] = kept

    def _send_cancel(self, session: Session, execution: Execution, job: BackendJob, notes: dict) -> None:
        """Ask the backend to stop the head job and this run's own unfinished task jobs (once; retried while the
        scheduler is unreachable), on the scheduler lane."""
        execution_id = execution.id
        if notes.get("cancel_sent"):
            return
        if execution_id in self._cancelled:
            notes["cancel_sent"] = True
            self._cancelled.discard(execution_id)
            self.want_status()
            return
        if execution_id in self._cancelling:
            return
        task_ids = [native for native in session.scalars(
            select(ProcessExecution.native_id).where(ProcessExecution.execution_id == execution_id,
                                                     ProcessExecution.status.in_(UNFINISHED_TASKS),
                                                     ProcessExecution.native_id.is_not(None))).all() if native]
        backend = self.backend(execution.backend)

        def cancel() -> None:
            backend.cancel(job, task_ids)
            self._cancelled.add(execution_id)
            self.wake()

        self._cancelling[execution_id] = self._pool("scheduler-submit").submit(cancel)

    def _poll(self, session: Session, execution: Execution, monitor: Monitor, notes: dict) -> bool:
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
        if changes.published:
            waiting = list(notes.get("publishing") or [])
            for item in changes.published:
                destination = str(item.get("destination") or "")
                if destination and destination not in waiting:
                    waiting.append(destination)
            notes["publishing"] = waiting
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

    def _register_outputs(self, session: Session, execution: Execution, run_dir: Path, notes: dict) -> None:
        """Published files become output data files in two steps: their checksums on the hash pool (no transaction
        open, not on this thread), then, in a later round, their rows in this short transaction."""
        execution_id = execution.id
        future = self._hashing.get(execution_id)
        if future is not None:
            if not future.done():
                return
            del self._hashing[execution_id]
            try:
                asked, hashed = future.result()
            except Exception:
                log.exception("Flow execution manager: checksumming outputs of execution %s failed", execution_id)
                return
            register_hashed(session, self.host.storage, execution, hashed)
            done = set(asked) - unstable_destinations(hashed)
            notes["publishing"] = [d for d in notes.get("publishing") or [] if d not in done]
            if not notes["publishing"]:
                notes.pop("publishing")
        waiting = list(notes.get("publishing") or [])
        if waiting and execution_id not in self._hashing:
            known = registered_outputs(session, execution)
            self._hashing[execution_id] = self._pool("hash").submit(self._hash, run_dir, waiting, known)

    def _hash(self, run_dir: Path, destinations: list[str], known: dict) -> tuple[list[str], list[HashedOutput]]:
        """On the hash pool: store and checksum what a run published (no session open)."""
        try:
            return destinations, hash_published(self.host.storage, run_dir, destinations, known)
        finally:
            self.wake()

    def _settle(self, session: Session, execution: Execution, state: RunState, info: JobInfo,
                job: BackendJob) -> None:
        """The backend job ended (or vanished): decide the outcome from the monitor, else from the backend; every
        task row still unfinished ends ``ABORTED`` (Nextflow's own word for a task that ended with its run)."""
        external_cancel = (info.status == BackendState.CANCELLED and not execution.cancel_requested
                           and state.status != SUCCEEDED)
        if external_cancel:
            # Someone stopped the head job behind Flow's back (scancel, a node failure Slurm reports as cancelled).
            status = CANCELLED
            detail = f": {info.reason}" if info.reason else ""
            execution.error = (f"The head job ({job.backend} job {job.job_id}) was cancelled outside Flow{detail}.")
        elif state.status in FINAL:
            status = ExecutionStatus(state.status)
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
        execution.claimed_by = None
        if status == FAILED:
            execution.error = state.error_message or execution.error or f"Nextflow exited with {info.exit_code}."
        session.execute(update(ProcessExecution)
                        .where(ProcessExecution.execution_id == execution.id,
                               ProcessExecution.status.in_(UNFINISHED_TASKS))
                        .values(status="ABORTED", finished_at=execution.finished_at)
                        .execution_options(synchronize_session=False))

