"""Waiting for something to happen in a test: poll what can be observed (the API, the database, a file, a process)
until a condition holds, instead of sleeping for a guessed while.

A fixed sleep is either too short on a loaded machine (a flaky failure) or too long everywhere else (a slow suite);
a poll with a generous deadline is neither. The deadline is there so that a condition that never comes fails the
test with a sentence and the last thing seen, rather than hanging until the suite's timeout.

    detail = wait_for(lambda: api_get(run), until=lambda d: d["status"] == "succeeded", what="the run to succeed")
    await wait_for_async(lambda: user.get(f"jobs/{job}"), until=lambda r: r.json["status"] == "succeeded",
                         what="the zip job to end")
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: What a test may wait for by default: long enough for a loaded CI machine, short enough to fail before pytest's.
DEFAULT_TIMEOUT = 60.0


class WaitTimeout(AssertionError):
    """The condition did not hold within the deadline (an AssertionError, so pytest reports it as a failure)."""


def _give_up(what: str, timeout: float, last: object) -> WaitTimeout:
    seen = repr(last)
    if len(seen) > 2000:
        seen = seen[:2000] + "…"
    return WaitTimeout(f"gave up after {timeout:g} s waiting for {what}; last seen: {seen}")


def wait_for(probe: Callable[[], T], until: Callable[[T], object] = bool, *, what: str,
             timeout: float = DEFAULT_TIMEOUT, interval: float = 0.1) -> T:
    """Call ``probe()`` every ``interval`` seconds until ``until(value)`` is true, and return that value.

    ``what`` completes the sentence "waiting for …" in the failure raised (WaitTimeout) after ``timeout`` seconds.
    The probe is always called at least once, and once more at the deadline, so a slow probe is not cut short."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _give_up(what, timeout, value)
        time.sleep(interval)


async def wait_for_async(probe: Callable[[], T | Awaitable[T]], until: Callable[[T], object] = bool, *, what: str,
                         timeout: float = DEFAULT_TIMEOUT, interval: float = 0.1) -> T:
    """The same on the event loop: the probe may be a plain function or return an awaitable (an API call); the
    loop keeps running between probes, so the server under test in the same loop makes progress."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _give_up(what, timeout, value)
        await asyncio.sleep(interval)
