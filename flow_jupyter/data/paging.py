"""Keyset pagination: `?after=<cursor>&limit=n`, so page 10,000 costs what page 1 costs.

A listing is ordered by a key of one or more columns ending in the id (``(id)``, or ``(filename, id)`` for a
name search); the cursor is that key of the page's last row, as opaque URL-safe text. The next page is
``WHERE key > cursor ORDER BY key LIMIT n`` — one index range scan on both SQLite and PostgreSQL.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.orm import Session

from ..errors import bad_request

MAX_ID = 2**31 - 1


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
        and 0 <= values[-1] <= MAX_ID
    )
    if not valid:
        raise bad_request("'after' is not a cursor returned by this API.", field="after", reason="bad_cursor")
    return values


def page(session: Session, query: Select, key: Sequence[ColumnElement], after: str | None, limit: int,
         render: Callable[[Any], dict], row_key: Callable[[Any], Sequence[Any]] | None = None,
         key_types: Sequence[type] = (int,)) -> dict[str, Any]:
    """One page of ``query`` (already filtered) in ``key`` order after the cursor, and the next page's cursor."""
    values = decode_cursor(after, key_types)
    if values is not None:
        query = query.where(tuple_(*key) > tuple_(*values) if len(key) > 1 else key[0] > values[0])
    rows = session.scalars(query.order_by(*key).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last_key = (row_key or (lambda row: (row.id,)))(rows[-1]) if rows else None
    return {"items": [render(row) for row in rows], "next": encode_cursor(last_key) if more and rows else None}


def prefix_range(column: ColumnElement, prefix: str) -> list[ColumnElement[bool]]:
    """``column`` starts with ``prefix``, as a range on code points (binary order on SQLite, "C" collation on
    PostgreSQL): served by a plain b-tree index, case-sensitive on both, no LIKE wildcards to escape."""
    conditions = [column >= prefix]
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        conditions.append(column < prefix[:-1] + chr(last + 1))
    return conditions
