"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and running them
again is a no-op (as on every server start)."""
from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Integer, func, inspect, select

from flow_jupyter.db import Database
from flow_jupyter.db.database import alembic_config
from flow_jupyter.db.models import Base, DataFile, Project, User


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
    assert revision == "0005"


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(flow_root) -> None:
    db = Database(f"sqlite:///{flow_root / 'flow.sqlite'}")
    try:
        with db.engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert (pragma("journal_mode"), pragma("foreign_keys"), pragma("busy_timeout")) == ("wal", 1, 30000)
    finally:
        db.dispose()


def integer_id_tables() -> list[str]:
    """Tables whose key is one integer column: the ones whose ids SQLite could hand out again."""
    return sorted(t.name for t in Base.metadata.sorted_tables
                  if len(t.primary_key.columns) == 1 and isinstance(t.primary_key.columns[0].type, Integer))


def test_every_table_with_an_integer_id_never_reuses_ids_on_sqlite(flow_root) -> None:
    """SQLite reflection does not report AUTOINCREMENT, so a later migration that rebuilds a table (alembic batch)
    drops it silently unless it passes table_kwargs={"sqlite_autoincrement": True}: this catches that, and a new
    model that forgot NEVER_REUSE_IDS."""
    db = Database(f"sqlite:///{flow_root / 'flow.sqlite'}")
    try:
        db.migrate()
        with db.engine.connect() as connection:
            created = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all())
    finally:
        db.dispose()

    tables = integer_id_tables()
    assert len(tables) == 11
    assert [t for t in tables if not Base.metadata.tables[t].dialect_options["sqlite"]["autoincrement"]] == []
    assert [t for t in tables if "AUTOINCREMENT" not in created[t]] == []


def _migrate_to(db: Database, revision: str, *, down: bool = False) -> None:
    config = alembic_config(db.url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_downgrading_to_0004_and_upgrading_again_keeps_rows_and_never_reuses_an_id(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        with db.session() as session:
            alice = User(name="alice")
            session.add(alice)
            session.flush()
            project = Project(name="p", owner_id=alice.id)
            session.add(project)
            session.flush()
            files = [DataFile(owner_id=alice.id, project_id=project.id, filename=f"f{n}", size=n, sha256="0" * 64,
                              storage_path=f"uploads/f{n}") for n in range(3)]
            session.add_all(files)
        with db.session() as session:
            session.delete(session.get(DataFile, files[-1].id))  # the newest file: the id SQLite used to reuse

        _migrate_to(db, "0004", down=True)
        _migrate_to(db, "head")

        with db.session() as session:
            kept = session.scalars(select(DataFile.filename).order_by(DataFile.id)).all()
            newer = DataFile(owner_id=alice.id, project_id=project.id, filename="again", size=0, sha256="0" * 64,
                             storage_path="uploads/again")
            session.add(newer)
            session.flush()
            count = session.scalar(select(func.count()).select_from(Project))
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        db.dispose()

    assert kept == ["f0", "f1"] and count == 1
    assert newer.id > files[-1].id
    assert diff == []
