"""What a JSON view shows for the rows it refers to: a user's name beside an owner id, an execution's uuid instead of
its internal id (the API names executions by uuid only).

A page of views loads them with `preload` — one query per kind for the whole page — and a single view looks up
what is missing. Both are remembered for the session: user names and execution uuids never change, and ids are
never handed out again, so nothing remembered can go stale.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ..db.models import Execution, User

_USER_NAMES = "flow.user_names"
_EXECUTION_UUIDS = "flow.execution_uuids"
Column = InstrumentedAttribute[Any]


def preload(session: Session, *, users: Iterable[int | None] = (), executions: Iterable[int | None] = ()) -> None:
    """Load the names of these user ids and the uuids of these execution ids, one query per kind."""
    _load(session, _USER_NAMES, users, User.id, User.name)
    _load(session, _EXECUTION_UUIDS, executions, Execution.id, Execution.uuid)


def owner(session: Session, user_id: int | None) -> dict[str, Any]:
    """The owner fields of every owned resource: ``owner_id`` and ``owner_name``."""
    return {"owner_id": user_id, "owner_name": user_name(session, user_id)}


def user_name(session: Session, user_id: int | None) -> str | None:
    return _get(session, _USER_NAMES, user_id, User.id, User.name)


def execution_uuid(session: Session, execution_id: int | None) -> str | None:
    """The public id of an execution row (None for none, or for one deleted since)."""
    return _get(session, _EXECUTION_UUIDS, execution_id, Execution.id, Execution.uuid)


def _known(session: Session, kind: str) -> dict[int, Any]:
    return session.info.setdefault(kind, {})


def _load(session: Session, kind: str, ids: Iterable[int | None], id_column: Column, value_column: Column) -> None:
    known = _known(session, kind)
    wanted = {i for i in ids if i is not None and i not in known}
    if not wanted:
        return
    found = dict(session.execute(select(id_column, value_column).where(id_column.in_(wanted))).all())
    known.update({i: found.get(i) for i in wanted})


def _get(session: Session, kind: str, row_id: int | None, id_column: Column, value_column: Column) -> Any:
    if row_id is None:
        return None
    known = _known(session, kind)
    if row_id not in known:
        _load(session, kind, [row_id], id_column, value_column)
    return known[row_id]
