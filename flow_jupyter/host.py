"""What both hosts (the single-user extension and the hub service) set up once and hand to every handler."""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .config import FlowSettings
from .data.storage import Storage
from .db import Database, leases
from .errors import FlowError
from .health import CachedHealth
from .identity import Actor, Identity, resolve
from .jobs import PeriodicTask, PeriodicTasks
from .metrics import POOLS
from .pipelines.registry import ensure_bundled

if TYPE_CHECKING:
    from .execution.manager import ExecutionManager

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class FlowHost:
    """The one implementation of `seams.Host`: both hosts build it from their settings."""

    settings: FlowSettings
    health: CachedHealth = field(init=False)
    db: Database = field(init=False)
    storage: Storage = field(init=False)

    def __post_init__(self) -> None:
        self.settings.root.mkdir(parents=True, exist_ok=True)
        self.health = CachedHealth(self.settings)
        self.storage = Storage(self.settings.root_dir)
        self.storage.prepare()
        self.db = Database(self.settings.resolved_database_url())
        self.periodic: PeriodicTasks | None = None
        self.manager: ExecutionManager | None = None
        POOLS.watch("flow", self.db.engine)
        self._migrated = False
        self._migrate_lock = threading.Lock()
        #: This process's name in claim leases (db/leases.py): unique per process, recognisably dead once it is gone.
        self.host_id = leases.host_identity(self.settings.host_id)
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pools_lock = threading.Lock()
        try:
            self.ensure_schema()
        except FlowError as exc:  # keep Jupyter up; health reports the database, the API answers 503
            log.error("Flow: %s", exc.message)

    def ensure_schema(self) -> None:
        """Migrate the database once; retried on later calls while the database is unreachable."""
        if self._migrated:
            return
        with self._migrate_lock:
            if self._migrated:
                return
            try:
                self.db.migrate()
                with self.db.session() as session:
                    ensure_bundled(session, self.settings)
            except OperationalError as exc:
                raise FlowError(503, "database_unavailable", f"Flow's database is unavailable: "
                                f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}") from None
            self._migrated = True

    def start_background_work(self) -> None:
        """On the host's event loop: housekeeping (expired uploads, old bulk-download zips), the runner that claims
        and builds deferred zips (jobs.JobRunner, on this host's "zip" pool) and the execution manager that launches
        and follows runs."""
        from .data.zipjobs import expire_zips, zip_job_runner
        from .data.uploads import expire_uploads
        from .execution.manager import ExecutionManager

        interval = self.settings.upload_cleanup_interval
        zips = zip_job_runner(self.settings)
        self.periodic = PeriodicTasks(self, [
            PeriodicTask("expire-uploads", interval, expire_uploads),
            PeriodicTask("expire-zips", interval, lambda host: expire_zips(host, host.settings.zip_expiry_seconds)),
            zips.task(self.settings.claim_lease_seconds),
        ])
        self.periodic.start()
        self.periodic.wake(zips.name)  # zips a crash or a restart left half-built are claimed now, not in a round
        self.manager = ExecutionManager(self)
        self.manager.start()

    def run_as(self, identity: Identity, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a service function ``fn(session, actor, *args)`` in one transaction (blocking; see `call`)."""
        self.ensure_schema()
        with self.db.session() as session:
            actor: Actor = resolve(session, identity)
            return fn(session, actor, *args, **kwargs)

    async def call(self, identity: Identity, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run_as` on a worker thread, so the event loop never waits on the database or the filesystem."""
        return await asyncio.to_thread(self.run_as, identity, fn, *args, **kwargs)

    def wake_manager(self) -> None:
        if self.manager is not None:
            self.manager.wake()

    def pool(self, name: str, max_workers: int) -> ThreadPoolExecutor:
        """A bounded pool of this host's, by name: long work (hashing, zips, following runs) never takes the default
        executor's threads, which serve every database call (`call`), and `close` shuts every one down."""
        with self._pools_lock:
            existing = self._pools.get(name)
            if existing is None:
                existing = self._pools[name] = ThreadPoolExecutor(max_workers=max(1, max_workers),
                                                                  thread_name_prefix=f"flow-{name}")
            return existing

    def close(self) -> None:
        if self.manager is not None:
            self.manager.stop()
        if self.periodic is not None:
            self.periodic.stop()
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
        self.db.dispose()


SessionFn = Callable[[Session, Actor], Any]
