"""The host seam: what a host (the single-user extension, the hub service, a test) hands to handlers, background
jobs and the execution manager.

`FlowHost` is today's one implementation; code below the host takes this Protocol instead, so a second host only has
to provide these members, and mypy checks that every caller asks for nothing more.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .config import FlowSettings
    from .data.storage import Storage
    from .db import Database
    from .health import CachedHealth
    from .identity import Identity

T = TypeVar("T")


class Host(Protocol):
    """Settings, the database, the store and health, set up once; service calls run as a caller."""

    settings: FlowSettings
    db: Database
    storage: Storage
    health: CachedHealth
    host_id: str

    def ensure_schema(self) -> None:
        """Migrate once (retried while the database is unreachable); raises FlowError 503 meanwhile."""

    def run_as(self, identity: Identity, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(session, actor, *args)`` in one transaction, blocking."""

    async def call(self, identity: Identity, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run_as` on a worker thread."""

    def wake_manager(self) -> None:
        """A launch, cancel or resume was stored: let the execution manager look now, not at its next round."""

    def pool(self, name: str, max_workers: int) -> ThreadPoolExecutor:
        """The host's bounded thread pool called ``name`` (made on first use, shut down by the host's close)."""
