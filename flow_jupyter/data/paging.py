"""Keyset pagination: `?after=<cursor>&limit=n` over ascending ids, so page 10,000 costs what page 1 costs."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from ..errors import bad_request

MAX_ID = 2**31 - 1


def parse_cursor(raw: str | None) -> int:
    if raw in (None, ""):
        return 0
    if not raw.isdigit() or int(raw) > MAX_ID:
        raise bad_request("'after' is not a cursor returned by this API.", field="after", reason="bad_cursor")
    return int(raw)


def page(session: Session, query: Select, id_column: Any, after: str | None, limit: int,
         render: Callable[[Any], dict]) -> dict[str, Any]:
    """One page of ``query`` (already filtered) after the cursor, and the cursor of the next page (or None)."""
    rows: Sequence[Any] = session.scalars(
        query.where(id_column > parse_cursor(after)).order_by(id_column).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [render(row) for row in rows], "next": str(rows[-1].id) if more and rows else None}
