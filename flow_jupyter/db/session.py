"""Engine creation for the two supported databases.

SQLite (the embedded default) gets WAL journaling, a busy timeout and foreign keys on every connection, so readers
never block the writer and concurrent writers wait instead of failing. PostgreSQL (the hub) gets ``pool_pre_ping``
so a restarted database server does not surface as errors on the first request after it.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..config import FlowSettings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def redact(url: str) -> str:
    """The URL with any password hidden, for logs and health reports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as the scheme only
        return url.split(":", 1)[0] + ":…"


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg2 here (the driver Flow installs), whatever SQLAlchemy's default is."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, settings: FlowSettings | None = None) -> Engine:
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
