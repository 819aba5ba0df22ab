"""Work a host does in the background, and why each kind of it survives a crash, a restart and a second replica.

**Periodic tasks** (`PeriodicTasks`, the beat replacement): each task runs on a worker thread at its own interval,
never overlapping itself; a failing run is logged and retried at the next tick, never taking the server down.
`wake` runs one now (a job was just created; the host just started).

**Durable background jobs** (`JobRunner`): a job is a BackgroundJob row, built by whichever host holds its claim
lease (db/leases.py). Its states:

- ``pending``, unclaimed: queued. Every few seconds (and at once when a job is created or the host starts) each
  host's runner claims as many as it has free threads in its pool (``host.pool(kind, n)``), oldest first.
- ``pending``/``running`` with a fresh claim: its host builds it. The runner marks it ``running`` (counting the
  attempt) and renews the claims of the jobs it is building on every tick. A build whose claim was not renewed
  (another host took it over after this one stalled past the lease) is told to stop, and records nothing.
- ``pending``/``running`` whose lease expired, or whose claimant was a process on this machine that is gone (a crash,
  a restart): abandoned, and claimed like a new job. The new build starts from scratch; a kind's build removes what
  an earlier attempt left (for zips: the stale partial file). After ``max_attempts`` starts the job is ``failed``.
- ``succeeded`` / ``failed``: final, claim released. The transaction that records success is the one that publishes
  the result (`Built.publish`, e.g. the rename of a zip into place), guarded by the claim: a host that lost its
  claim can neither record nor publish, so a job is never built twice to the end by racing hosts.
- A host that closes tells its builds to stop and gives their jobs back (``pending``, unclaimed), so another
  replica or the next start takes them at once.

**Cleanups need no lease** (expire-uploads, expire-zips): every removal is decided row by row by a guarded UPDATE
(``… WHERE state = active AND expires_at < now`` for an upload, under the upload's file lock so a chunk being
written is left alone; the job row's ``expired`` mark for a zip) or by removing a file in a way that tolerates its
being gone already, and a leftover in zips/ is swept only when no waiting, running or still-available job owns it.
Two replicas running one at the same moment thus do the same idempotent work twice at worst: nothing is removed that
either would keep, and nothing is counted twice. A lease would only serialise that harmless overlap.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, update
from tornado.ioloop import IOLoop, PeriodicCallback

from .db import leases
from .db.models import BackgroundJob, JobStatus, utcnow
from .errors import FlowError

if TYPE_CHECKING:
    from .seams import Host

log = logging.getLogger(__name__)

#: Seconds between a runner's rounds at most (renewing its claims, claiming abandoned jobs); a quarter of the lease
#: when that is shorter, so a claim is renewed several times before it could expire.
JOB_POLL_SECONDS = 5.0
ACTIVE = (JobStatus.pending, JobStatus.running)


@dataclass
class PeriodicTask:
    name: str
    interval_seconds: float
    run: Callable[[Host], Any]  # run(host) -> anything worth logging (e.g. a count)
    stop: Callable[[], None] | None = None  # called when the host stops its tasks (e.g. to stop running builds)


class PeriodicTasks:
    def __init__(self, host: Host, tasks: list[PeriodicTask]):
        self.host = host
        self.tasks = tasks
        self._callbacks: list[PeriodicCallback] = []
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._loop: IOLoop | None = None

    def start(self) -> None:
        self._loop = IOLoop.current()
        for task in self.tasks:
            callback = PeriodicCallback(functools.partial(self._tick, task), task.interval_seconds * 1000, jitter=0.1)
            callback.start()
            self._callbacks.append(callback)

    def stop(self) -> None:
        for callback in self._callbacks:
            callback.stop()
        self._callbacks.clear()
        self._loop = None
        for task in self.tasks:
            if task.stop is not None:
                task.stop()

    def wake(self, name: str) -> None:
        """Run a task now instead of at its next tick (thread-safe); one running already runs once more after."""
        loop, task = self._loop, self._task(name)
        if loop is not None:
            loop.add_callback(self._tick, task)

    async def run_now(self, name: str) -> Any:
        """Run one task immediately and return what it returned (tests, admin tools)."""
        task = self._task(name)
        return await asyncio.to_thread(task.run, self.host)

    def _task(self, name: str) -> PeriodicTask:
        return next(t for t in self.tasks if t.name == name)

    async def _tick(self, task: PeriodicTask) -> None:
        if task.name in self._running:  # a slow run is never overlapped by the next tick
            self._again.add(task.name)
            return
        self._running.add(task.name)
        try:
            result = await asyncio.to_thread(task.run, self.host)
            if result:
                log.info("Flow periodic task %s: %s", task.name, result)
        except FlowError as exc:  # e.g. the database is unreachable: one line per tick, no traceback
            log.warning("Flow periodic task %s: %s", task.name, exc.message)
        except Exception:  # logged with traceback; the next tick tries again
            log.exception("Flow periodic task %s failed", task.name)
        finally:
            self._running.discard(task.name)
        if task.name in self._again:
            self._again.discard(task.name)
            self.wake(task.name)


class Abandoned(Exception):
    """Raised by a build told to stop (its claim was taken over, or its host is closing): it records nothing."""


@dataclass
class Built:
    """What a finished build hands back: the job's result, and how to publish or throw away what it made."""

    result: dict[str, Any]
    #: Run inside the transaction that records success (after the claim was checked); raising undoes the record.
    publish: Callable[[], None]
    #: Run when success could not be recorded (the claim was lost, or publishing failed).
    discard: Callable[[], None]


#: build(host, job id, stop) -> Built; raises FlowError (the job fails with its message), Abandoned (``stop`` was
#: set: check it between chunks of work), or anything else (the job fails; logged). Runs on the kind's pool.
Build = Callable[["Host", int, threading.Event], Built]


class JobRunner:
    """Claims, builds and finishes the BackgroundJob rows of one kind on this host (see the module docstring)."""

    def __init__(self, kind: str, build: Build, *, workers: int, max_attempts: int, failure_message: str):
        self.kind = kind
        self.name = f"{kind}-jobs"
        self.build = build
        self.workers = max(1, workers)
        self.max_attempts = max(1, max_attempts)
        self.failure_message = failure_message
        self._lock = threading.Lock()  # guards _building; held while claiming, so one process never claims twice
        self._building: dict[int, threading.Event] = {}  # job id -> its build's stop signal
        self._stopping = threading.Event()

    def task(self, lease_seconds: float) -> PeriodicTask:
        return PeriodicTask(self.name, min(JOB_POLL_SECONDS, max(0.5, lease_seconds / 4)), self.tick, self.stop)

    def building(self) -> set[int]:
        with self._lock:
            return set(self._building)

    def tick(self, host: Host) -> int:
        """One round (blocking): renew the claims of the builds running here, stop those whose claim was taken
        over, and claim and start jobs for the free threads. Returns how many were started."""
        if self._stopping.is_set():
            return 0
        host.ensure_schema()
        with self._lock:
            running = dict(self._building)
        if running:
            with host.db.session() as session:
                held = leases.renew(session, BackgroundJob, host.host_id,
                                    and_(self._among(), BackgroundJob.id.in_(list(running))))
            for job_id, stop in running.items():
                if job_id not in held:
                    stop.set()  # taken over (or just finished: then the signal is never read)
        started = 0
        pool = host.pool(self.kind, self.workers)
        for job_id, stop in self._claim(host, self.workers):
            try:
                pool.submit(self._work, host, job_id, stop)
            except RuntimeError:  # the pool was shut down: the host is closing
                self._unregister(job_id)
                with host.db.session() as session:
                    leases.release(session, BackgroundJob, host.host_id, [job_id])
                continue
            started += 1
        return started

    def stop(self) -> None:
        """The host is closing: tell every build to stop (each gives its job back) and claim nothing more."""
        self._stopping.set()
        with self._lock:
            for stop in self._building.values():
                stop.set()

    # --- internals ---------------------------------------------------------------------------------------------

    def _among(self) -> ColumnElement[bool]:
        return and_(BackgroundJob.kind == self.kind, BackgroundJob.status.in_(ACTIVE))

    def _claim(self, host: Host, most: int) -> list[tuple[int, threading.Event]]:
        """Claim up to ``most`` jobs, never more than the free threads, and register them as building here."""
        with self._lock:
            free = min(most, self.workers - len(self._building))
            if free <= 0 or self._stopping.is_set():
                return []
            among = self._among()
            if self._building:  # this host's own claims of jobs it is not building are orphans: claimable again
                among = and_(among, BackgroundJob.id.not_in(list(self._building)))
            with host.db.session() as session:
                won = leases.claim(session, BackgroundJob, host.host_id, host.settings.claim_lease_seconds, among,
                                   free, order_by=BackgroundJob.id, include_own=True)
            claimed = [(job_id, threading.Event()) for job_id in won]
            self._building.update(claimed)
            return claimed

    def _unregister(self, job_id: int) -> None:
        with self._lock:
            self._building.pop(job_id, None)

    def _work(self, host: Host, job_id: int, stop: threading.Event) -> None:
        """A pool thread: build the job, then claim the next waiting one while this thread is free."""
        while True:
            try:
                self._run(host, job_id, stop)
            except Exception:  # e.g. the database went away mid-way: the claim lapses and the job is taken again
                log.exception("Flow %s job %s: could not be run", self.kind, job_id)
            finally:
                self._unregister(job_id)
            try:
                claimed = self._claim(host, 1)
            except Exception:
                log.exception("Flow %s jobs: claiming the next job failed", self.kind)
                return
            if not claimed:
                return
            job_id, stop = claimed[0]

    def _run(self, host: Host, job_id: int, stop: threading.Event) -> None:
        args = self._start(host, job_id)
        if args is None:
            return
        try:
            built = self.build(host, job_id, stop)
        except Abandoned:
            if self._stopping.is_set():
                self._give_back(host, job_id, args)
            else:
                log.warning("Flow %s job %s was taken over by another host; this build stopped", self.kind, job_id)
            return
        except FlowError as exc:
            self._finish(host, job_id, JobStatus.failed, None, exc.message + (f" ({exc.field})" if exc.field else ""))
            return
        except Exception:
            log.exception("Flow %s job %s failed", self.kind, job_id)
            self._finish(host, job_id, JobStatus.failed, None, self.failure_message)
            return
        try:
            recorded = self._finish(host, job_id, JobStatus.succeeded, built.result, None, built.publish)
        except Exception:
            built.discard()
            log.exception("Flow %s job %s: publishing its result failed", self.kind, job_id)
            self._finish(host, job_id, JobStatus.failed, None, self.failure_message)
            return
        if not recorded:
            built.discard()
            log.warning("Flow %s job %s was taken over by another host; its result was dropped", self.kind, job_id)

    def _start(self, host: Host, job_id: int) -> dict[str, Any] | None:
        """Mark a claimed job ``running`` and count the attempt; its args before this attempt, or None when the
        claim is gone or the job has had its attempts (then it is failed)."""
        with host.db.session() as session:
            job = session.get(BackgroundJob, job_id)
            if job is None or job.claimed_by != host.host_id or job.status not in ACTIVE:
                return None
            args = dict(job.args or {})
            attempt = int(args.get("attempts", 0)) + 1
            mine = and_(BackgroundJob.id == job_id, BackgroundJob.claimed_by == host.host_id,
                        BackgroundJob.status.in_(ACTIVE))
            if attempt > self.max_attempts:
                session.execute(update(BackgroundJob).where(mine).values(
                    status=JobStatus.failed, finished_at=utcnow(), claimed_by=None, claimed_at=None,
                    error=f"The job was interrupted {self.max_attempts} times (its server stopped while running "
                    "it); ask for it again.").execution_options(synchronize_session=False))
                return None
            started = session.scalars(update(BackgroundJob).where(mine).values(
                status=JobStatus.running, started_at=utcnow(), claimed_at=utcnow(), args={**args, "attempts": attempt})
                .returning(BackgroundJob.id).execution_options(synchronize_session=False)).first()
            return args if started is not None else None

    def _finish(self, host: Host, job_id: int, status: JobStatus, result: dict[str, Any] | None, error: str | None,
                publish: Callable[[], None] | None = None) -> bool:
        """Record the outcome if this host still holds the job, publishing inside the same transaction."""
        with host.db.session() as session:
            recorded = session.scalars(update(BackgroundJob).where(
                BackgroundJob.id == job_id, BackgroundJob.claimed_by == host.host_id,
                BackgroundJob.status == JobStatus.running,
            ).values(status=status, result=result, error=error, finished_at=utcnow(), claimed_by=None,
                     claimed_at=None).returning(BackgroundJob.id).execution_options(synchronize_session=False)).first()
            if recorded is None:
                return False
            if publish is not None:
                publish()
        return True

    def _give_back(self, host: Host, job_id: int, args: dict[str, Any]) -> None:
        """The host is closing: the job waits again, unclaimed, and this attempt does not count."""
        try:
            with host.db.session() as session:
                session.execute(update(BackgroundJob).where(
                    BackgroundJob.id == job_id, BackgroundJob.claimed_by == host.host_id,
                    BackgroundJob.status == JobStatus.running,
                ).values(status=JobStatus.pending, args=args, claimed_by=None, claimed_at=None)
                    .execution_options(synchronize_session=False))
        except Exception:  # the claim lapses instead (or is seen dead at the next start)
            log.warning("Flow %s job %s: could not give it back while closing", self.kind, job_id, exc_info=True)


def wake(host: Any, name: str) -> None:
    """Run the host's periodic task ``name`` now, if the host runs background work (a job was just created)."""
    periodic = getattr(host, "periodic", None)
    if isinstance(periodic, PeriodicTasks):
        periodic.wake(name)
