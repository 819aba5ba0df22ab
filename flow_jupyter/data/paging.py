"""Keyset pagination: `?after=<cursor>&limit=n`, so page 10,000 costs what page 1 costs.

A listing is ordered by a key of one or more columns ending in the id (``(id)``, or ``(filename, id)`` for a
name search); the cursor is that key of the page's last row, as opaque URL-safe text. The next page is
``WHERE key > cursor ORDER BY key LIMIT n`` — one index range scan on both SQLite and PostgreSQL.

Lists computed in memory (a repository's git refs, a run's reports) page the same way over a stable, unique sort
key (`page_sorted`), so a client follows ``next`` alike for every list.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.orm import QueryableAttribute, Session

from ..errors import bad_request

MAX_ID = 2**31 - 1
T = TypeVar("T")


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None, types: Sequence[type]) -> list[Any] | None:
    """The key values of a cursor made by `encode_cursor` for a key of these types; 400 for anything else."""
    if raw in (None, ""):
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    valid = (
        isinstance(values, list) and len(values) == len(types)
        and all(type(v) is t for v, t in zip(values, types))
        and all(0 <= v <= MAX_ID for v in values if type(v) is int)
    )
    if not valid:
        raise bad_request("'after' is not a cursor returned by this API.", field="after", reason="bad_cursor")
    return values


Key = Sequence[ColumnElement[Any] | QueryableAttribute[Any]]


def page(session: Session, query: Select, key: Key, after: str | None, limit: int,
         render: Callable[[Any], dict], row_key: Callable[[Any], Sequence[Any]] | None = None,
         key_types: Sequence[type] = (int,),
         prefetch: Callable[[Sequence[Any]], None] | None = None) -> dict[str, Any]:
    """One page of ``query`` (already filtered) in ``key`` order after the cursor, and the next page's cursor.

    ``prefetch(rows)`` runs once before the rows are rendered: it loads what the views refer to (owner names,
    execution uuids) for the whole page in one query each, never one per row."""
    values = decode_cursor(after, key_types)
    if values is not None:
        query = query.where(tuple_(*key) > tuple_(*values) if len(key) > 1 else key[0] > values[0])
    rows = session.scalars(query.order_by(*key).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if prefetch is not None and rows:
        prefetch(rows)
    last_key = (row_key or (lambda row: (row.id,)))(rows[-1]) if rows else None
    cursor = encode_cursor(last_key) if more and last_key is not None else None
    return {"items": [render(row) for row in rows], "next": cursor}


def page_sorted(items: Iterable[T], key: Callable[[T], tuple], after: str | None, limit: int,
                render: Callable[[T], dict], key_types: Sequence[type]) -> dict[str, Any]:
    """One page of a list computed in memory, in ``key`` order after the cursor (``key`` is unique per item and of
    ``key_types``), with the same opaque cursors as a database page."""
    values = decode_cursor(after, key_types)
    ordered = sorted(items, key=key)
    if values is not None:
        start = tuple(values)
        ordered = [item for item in ordered if key(item) > start]
    chunk = ordered[:limit]
    more = len(ordered) > limit
    return {"items": [render(item) for item in chunk], "next": encode_cursor(key(chunk[-1])) if more else None}


def prefix_range(column: ColumnElement[Any] | QueryableAttribute[Any], prefix: str) -> list[ColumnElement[bool]]:
    """``column`` starts with ``prefix``, as a range on code points (binary order on SQLite, "C" collation on
    PostgreSQL): served by a plain b-tree index, case-sensitive on both, no LIKE wildcards to escape."""
    conditions = [column >= prefix]
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        conditions.append(column < prefix[:-1] + chr(last + 1))
    return conditions
