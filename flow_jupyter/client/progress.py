"""Progress for transfers and waits: a tqdm bar (tqdm.auto: a widget in notebooks, text in terminals) when asked
for and installed, a caller's callback ``fn(done, total)``, or nothing at all."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

ProgressArg = bool | Callable[[int, int | None], None] | None


class Progress:
    def __init__(self, progress: ProgressArg, total: int | None, description: str, *, unit: str = "B"):
        self.total = total
        self._callback: Callable[[int, int | None], None] | None = progress if callable(progress) else None
        self._bar: Any = None
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # progress is a nicety, never a requirement
                pass
            else:
                scaled = unit == "B"
                self._bar = tqdm(total=total, desc=description, unit=unit, unit_scale=scaled,
                                 unit_divisor=1024 if scaled else 1000, leave=True)

    def update_to(self, done: int, total: int | None = None) -> None:
        """Report the absolute position (it may go back, e.g. when an upload resumes at the server's offset)."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        if self._bar is not None:
            self._bar.update(done - self._bar.n)  # tqdm redraws at most every `mininterval`; deltas may be < 0
        if self._callback is not None:
            self._callback(done, self.total)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def poll_until(done: Callable[[], bool], timeout: float | None, interval: float) -> None:
    """Call ``done`` (one polling round) every ``interval`` seconds until it returns True or ``timeout`` seconds
    pass (None: no limit); the last sleep is cut short so a wait never outlasts its timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        time.sleep(interval if left is None else min(interval, left))
