"""Refresh a widget in the background without ever blocking the kernel.

Each round has two halves: ``fetch`` talks to the API (blocking HTTP, so it always runs on a worker thread) and
``apply`` updates widgets from what was fetched and says whether to go on. Inside a kernel the rounds are an asyncio
task on the kernel's own loop, so widget updates happen on the kernel's thread between cells; with no running loop
(a plain script, a test thread) a daemon thread does both halves. Either way the poller stops when ``apply``
returns False, when :meth:`stop` is called, or when the process exits.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import error_html, is_connection_problem

log = logging.getLogger(__name__)


class Poller:
    def __init__(self, fetch: Callable[[], Any], apply: Callable[[Any], bool], interval: float,
                 on_error: Callable[[BaseException], bool] | None = None):
        """``on_error`` sees every exception of a round and returns whether to keep polling (default: stop)."""
        self._fetch = fetch
        self._apply = apply
        self._on_error = on_error
        self.interval = interval
        self._stopped = threading.Event()
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        if self._task is not None:
            return not self._task.done()
        return self._thread is not None and self._thread.is_alive()

    @property
    def mode(self) -> str | None:
        """``asyncio`` or ``thread`` once started."""
        return "asyncio" if self._task is not None else "thread" if self._thread is not None else None

    def start(self) -> None:
        if self.running:
            return
        self._stopped.clear()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._task = loop.create_task(self._run_async())
        else:
            self._thread = threading.Thread(target=self._run_thread, name="flow-widget-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        task = self._task
        if task is not None and not task.done():
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop has closed: the task is gone with it
                pass

    def _round_failed(self, error: BaseException) -> bool:
        if self._on_error is None:
            log.warning("widget refresh failed: %s", error)
            return False
        return self._on_error(error)

    async def _run_async(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            try:
                fetched = await loop.run_in_executor(None, self._fetch)
                go_on = not self._stopped.is_set() and self._apply(fetched)
            except asyncio.CancelledError:
                return
            except Exception as error:  # a widget must never raise into the kernel's loop
                go_on = self._round_failed(error)
            if not go_on:
                return
            await asyncio.sleep(self.interval)

    def _run_thread(self) -> None:
        while not self._stopped.is_set():
            try:
                go_on = self._apply(self._fetch())
            except Exception as error:
                go_on = self._round_failed(error)
            if not go_on:
                return
            self._stopped.wait(self.interval)


if TYPE_CHECKING:  # pragma: no cover
    class _PolledWidget:
        """What PolledView needs of the widget it is mixed into (its own halves and traits, and the box's API)."""

        interval: float
        message: Any

        def _fetch(self) -> Any: ...

        def _apply(self, fetched: Any) -> bool: ...

        def observe(self, handler: Callable[[dict[str, Any]], None], names: str) -> None: ...

        def close(self) -> None: ...
else:
    _PolledWidget = object


class PolledView(_PolledWidget):
    """The life cycle every live widget shares, mixed in before its ipywidgets box. The widget brings ``_fetch`` and
    ``_apply`` (the two halves of a round), an ``interval`` trait and a ``message`` HTML widget."""

    def _init_polling(self) -> None:
        self._poller = self._new_poller()
        self.observe(lambda change: setattr(self._poller, "interval", change["new"]), names="interval")

    def _new_poller(self) -> Poller:
        return Poller(self._fetch, self._apply, self.interval, on_error=self._poll_failed)

    @property
    def polling(self) -> bool:
        return self._poller.running

    def stop(self) -> None:
        self._poller.stop()

    def close(self) -> None:
        self.stop()
        super().close()

    def refresh(self) -> bool:
        """Fetch and show once, here and now; True while there is more to follow."""
        return self._apply(self._fetch())

    def _poll_failed(self, error: BaseException) -> bool:
        """Show a failed round; keep polling through a passing outage, but not once the run is gone or forbidden."""
        self.message.value = error_html(error)
        return is_connection_problem(error) and getattr(error, "status", None) not in (401, 403, 404)
