"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and running them
again is a no-op (as on every server start)."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from flow_jupyter.db import Database
from flow_jupyter.db.models import Base


def test_migrations_match_the_models_and_are_idempotent(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        db.migrate()
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            tables = set(inspect(connection).get_table_names())
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        db.dispose()

    assert diff == []
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    assert revision == "0004"


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(flow_root) -> None:
    db = Database(f"sqlite:///{flow_root / 'flow.sqlite'}")
    try:
        with db.engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert (pragma("journal_mode"), pragma("foreign_keys"), pragma("busy_timeout")) == ("wal", 1, 30000)
    finally:
        db.dispose()
