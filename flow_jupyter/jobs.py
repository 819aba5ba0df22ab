"""Periodic housekeeping in the host process (the beat replacement): each task runs on a worker thread at its own
interval; a failing run is logged and retried at the next tick, never taking the server down."""
from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tornado.ioloop import PeriodicCallback

if TYPE_CHECKING:
    from .seams import Host

log = logging.getLogger(__name__)


@dataclass
class PeriodicTask:
    name: str
    interval_seconds: float
    run: Callable[[Host], Any]  # run(host) -> anything worth logging (e.g. a count)


class PeriodicTasks:
    def __init__(self, host: Host, tasks: list[PeriodicTask]):
        self.host = host
        self.tasks = tasks
        self._callbacks: list[PeriodicCallback] = []
        self._running: set[str] = set()

    def start(self) -> None:
        for task in self.tasks:
            callback = PeriodicCallback(functools.partial(self._tick, task), task.interval_seconds * 1000, jitter=0.1)
            callback.start()
            self._callbacks.append(callback)

    def stop(self) -> None:
        for callback in self._callbacks:
            callback.stop()
        self._callbacks.clear()

    async def run_now(self, name: str) -> Any:
        """Run one task immediately (tests, admin tools)."""
        task = next(t for t in self.tasks if t.name == name)
        return await asyncio.to_thread(task.run, self.host)

    async def _tick(self, task: PeriodicTask) -> None:
        if task.name in self._running:  # a slow run is never overlapped by the next tick
            return
        self._running.add(task.name)
        try:
            result = await asyncio.to_thread(task.run, self.host)
            if result:
                log.info("Flow periodic task %s: %s", task.name, result)
        except Exception:  # logged with traceback; the next tick tries again
            log.exception("Flow periodic task %s failed", task.name)
        finally:
            self._running.discard(task.name)
