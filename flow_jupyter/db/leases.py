"""Claim leases: which host owns a row (an execution it submits and follows, a background job it builds), until when.

A host claims a row by writing its id and the time into ``claimed_by``/``claimed_at``, renews all its claims with
one UPDATE every few seconds (`renew`), and gives them up when the work is done (`release`). A row whose lease is
older than ``lease_seconds`` is free for another host: the one that held it crashed, hung or lost its database. A
claim of a process on this same machine that is provably gone (its pid is dead or belongs to another process, or the
machine rebooted since) is free at once, so a restarted single host picks its runs up without waiting for the lease.

Every claim is a guarded UPDATE (``… WHERE id IN (…) AND <still free>``): SQLite runs writers one at a time, and
PostgreSQL re-checks the WHERE clause on the row a concurrent claimer just changed, so two hosts never both win a row.
Lease times are the hosts' clocks (kept by NTP on any cluster); a skew much smaller than the lease is harmless.
"""
from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from ..procinfo import boot_id, process_start_ticks

_SEPARATOR = "|"


def _boot_id() -> str:
    try:
        return boot_id()[:8]
    except OSError:
        return "noboot"


def _start_ticks(pid: int) -> str | None:
    ticks = process_start_ticks(pid)
    return None if ticks is None else str(ticks)


def host_identity(name: str = "") -> str:
    """``machine|boot|pid|start ticks|name``: unique per process, and enough to tell whether it still lives."""
    pid = os.getpid()
    label = (name or secrets.token_hex(3))[:40]
    return _SEPARATOR.join([socket.gethostname()[:60], _boot_id(), str(pid), _start_ticks(pid) or "0", label])


def claimant_is_dead(claimed_by: str) -> bool:
    """True only when the claimant ran on this machine and is provably gone; a remote host's claim waits for its
    lease to expire."""
    parts = claimed_by.split(_SEPARATOR)
    if len(parts) != 5 or parts[0] != socket.gethostname()[:60]:
        return False
    machine_boot, pid, ticks = parts[1], parts[2], parts[3]
    if machine_boot != _boot_id():
        return True  # this machine rebooted since the claim
    if not pid.isdigit():
        return False
    return _start_ticks(int(pid)) != ticks


def _now() -> datetime:
    return datetime.now(timezone.utc)


def free_condition(model: Any, session: Session, lease_seconds: float, among: ColumnElement[bool],
                   now: datetime | None = None) -> ColumnElement[bool]:
    """Rows of ``model`` (matching ``among``) that nobody holds: unclaimed, lease expired, or a dead local claimant."""
    moment = now or _now()
    claimants = session.scalars(select(model.claimed_by).where(among, model.claimed_by.is_not(None))
                                .distinct()).all()
    dead = [claimant for claimant in claimants if claimant_is_dead(claimant)]
    conditions = [model.claimed_by.is_(None), model.claimed_at < moment - timedelta(seconds=lease_seconds)]
    if dead:
        conditions.append(model.claimed_by.in_(dead))
    return or_(*conditions)


def claim(session: Session, model: Any, host_id: str, lease_seconds: float, among: ColumnElement[bool],
          limit: int, order_by: Any = None, include_own: bool = False) -> list[int]:
    """Claim up to ``limit`` free rows of ``model`` matching ``among`` for ``host_id``; the ids won, oldest first.

    Only free rows are candidates: the rows this host holds already are kept by `renew`, so a host holding more
    than ``limit`` rows still reaches every free one, batch after batch. ``include_own`` also offers this host's own
    rows that ``among`` still matches (a caller that excludes the ones it works on, to pick up orphaned claims)."""
    moment = _now()
    free = free_condition(model, session, lease_seconds, among, moment)
    if include_own:
        free = or_(free, model.claimed_by == host_id)
    candidates = session.scalars(select(model.id).where(among, free).order_by(order_by if order_by is not None
                                                                                else model.id).limit(limit)).all()
    if not candidates:
        return []
    won = session.scalars(update(model).where(model.id.in_(candidates), among, free)
                          .values(claimed_by=host_id, claimed_at=moment).returning(model.id)
                          .execution_options(synchronize_session=False)).all()
    return sorted(won)


def renew(session: Session, model: Any, host_id: str, among: ColumnElement[bool]) -> set[int]:
    """Renew every claim of this host (one UPDATE); the ids still held. A row missing here was taken over by another
    host while this one stalled for longer than the lease: stop working on it."""
    return set(session.scalars(update(model).where(model.claimed_by == host_id, among)
                               .values(claimed_at=_now()).returning(model.id)
                               .execution_options(synchronize_session=False)).all())


def release(session: Session, model: Any, host_id: str, ids: Iterable[int]) -> None:
    """Give up this host's claims on ``ids`` (the work is done, or it goes back to waiting for any host)."""
    chosen = list(ids)
    if chosen:
        session.execute(update(model).where(model.id.in_(chosen), model.claimed_by == host_id)
                        .values(claimed_by=None, claimed_at=None).execution_options(synchronize_session=False))
