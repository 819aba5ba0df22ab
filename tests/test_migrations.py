"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL; running them
again is a no-op (as on every server start); and a database populated at ANY earlier revision comes to the same
schema as a new one, with every row kept. Revisions come from the script directory, never from a hard-coded id, so
a new migration is tested from every revision before it without touching this file.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Integer, MetaData, Table, func, inspect, select

from flow_jupyter.db import Database
from flow_jupyter.db.database import alembic_config
from flow_jupyter.db.models import Base, DataFile, Project, User

SCRIPTS = ScriptDirectory.from_config(alembic_config("sqlite://"))
HEAD = SCRIPTS.get_current_head()
#: Every revision from the first to the one before head, oldest first.
EARLIER = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))][:-1]


def test_the_migrations_form_one_line_of_history() -> None:
    """One head, and every revision reachable from it: a branch (two migrations off one parent) fails here."""
    assert SCRIPTS.get_heads() == [HEAD]
    assert len(EARLIER) + 1 == len(list(SCRIPTS.walk_revisions())) and EARLIER[0] == SCRIPTS.get_base()


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
    assert revision == HEAD


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
    """0004 is the last revision whose SQLite tables could hand out a deleted id again (0005 made them
    AUTOINCREMENT); the way down and up again must keep the high-water marks."""
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


# --- a database populated at every earlier revision, upgraded to head ------------------------------------------------

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
T1 = T0 + timedelta(hours=2)


@pytest.mark.parametrize("revision", EARLIER)
def test_a_populated_database_upgrades_from_every_earlier_revision_to_the_schema_of_a_new_one(
        database_url: str, revision: str) -> None:
    db = Database(database_url)
    try:
        new_schema = fresh_head_schema(db)
        _migrate_to(db, revision)
        with db.engine.begin() as connection:
            inserted = populate(connection)

        _migrate_to(db, "head")

        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                    Base.metadata)
            upgraded_schema = schema_of(connection)
            tables = reflect(connection)
            kept = {name: stored_rows(connection, tables[name], rows) for name, rows in inserted.items()}
        with db.session() as session:  # the head models read the old rows and add new ones beside them
            alice = session.scalars(select(User).where(User.name == "alice")).one()
            project = session.scalars(select(Project).where(Project.name == "reads")).one()
            newer = DataFile(owner_id=alice.id, project_id=project.id, filename="after-upgrade", size=0,
                             sha256="0" * 64, storage_path="uploads/after-upgrade")
            session.add(newer)
            session.flush()
    finally:
        db.dispose()

    assert current == HEAD
    assert diff == []
    assert upgraded_schema == new_schema
    assert {"users", "groups", "memberships", "projects", "shares", "samples", "datafiles", "uploads",
            "background_jobs"} <= set(inserted)
    for name, rows in inserted.items():
        assert kept[name] == sorted(map(comparable, rows), key=repr), name
    assert project.owner_id == alice.id and not alice.is_admin
    assert newer.id > max(row["id"] for row in inserted["datafiles"])


def fresh_head_schema(db: Database) -> dict[str, Any]:
    """The schema a new database gets; then every table is dropped again, leaving the database empty."""
    db.migrate()
    with db.engine.begin() as connection:
        schema = schema_of(connection)
        reflect_all = MetaData()
        reflect_all.reflect(connection)
        reflect_all.drop_all(connection)
    return schema


def reflect(connection: Connection) -> dict[str, Table]:
    """The tables as the database has them now (the ORM describes head, not the revision under test)."""
    metadata = MetaData()
    metadata.reflect(connection)
    return dict(metadata.tables)


def schema_of(connection: Connection) -> dict[str, Any]:
    """Everything a migration decides, as the database reports it: per table its columns (in order, with type,
    nullability and default), primary key, indexes, unique, check and foreign-key constraints; on SQLite also which
    tables never reuse ids (AUTOINCREMENT)."""
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": [(c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                        for c in inspector.get_columns(table)],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(table)),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "checks": sorted((c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)),
            "foreign_keys": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"],
                                    tuple(f["referred_columns"]), f["options"].get("ondelete"))
                                   for f in inspector.get_foreign_keys(table)),
        }
    if connection.dialect.name == "sqlite":
        created = connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
        schema["sqlite autoincrement"] = sorted(name for name, sql in created if "AUTOINCREMENT" in sql)
    return schema


def populate(connection: Connection) -> dict[str, list[dict[str, Any]]]:
    """A small lab's worth of rows in every table the current revision has — users in a group, a shared project
    with a sample, an uploaded and an output file, uploads in flight and done, a finished zip job, a pipeline
    version and a run with its task — written as SQL against the reflected tables. Columns a revision does not
    have yet are left out. Returns the rows as written (with the ids the database gave them), per table."""
    tables = reflect(connection)
    inserted: dict[str, list[dict[str, Any]]] = {}

    def add(table_name: str, /, **values: Any) -> Any:
        if table_name not in tables:
            return None
        table = tables[table_name]
        row = {key: value for key, value in values.items() if key in table.c}
        key = connection.execute(table.insert().values(**row)).inserted_primary_key
        if "id" in table.c and "id" not in row:
            row["id"] = key[0]
        inserted.setdefault(table_name, []).append(row)
        return row.get("id")

    alice = add("users", name="alice", is_admin=False, quota_bytes=10 ** 12, created_at=T0)
    bob = add("users", name="bob", is_admin=True, quota_bytes=None, created_at=T0)
    lab = add("groups", name="lab", created_at=T0)
    add("memberships", user_id=alice, group_id=lab, role="admin")
    add("memberships", user_id=bob, group_id=lab, role="member")
    project = add("projects", name="reads", description="MiSeq run 42", owner_id=alice, group_id=lab,
                  visibility="group", created_at=T0, updated_at=T1)
    sample = add("samples", project_id=project, name="s1", metadata={"condition": "treated", "replicate": 1},
                 created_at=T0)
    pipeline = add("pipelines", name="demo", source="bundled:demo", description="The demo pipeline", bundled=True,
                   curated=True, created_by_id=None, created_at=T0)
    version = None if pipeline is None else add(
        "pipeline_versions", pipeline_id=pipeline, ref="v1.0", commit="a" * 40, path="pipelines/demo/v1.0",
        schema={"title": "demo", "definitions": {}}, samplesheet_schema={"type": "array"},
        tower={"reports": {"multiqc_report.html": {"display": "MultiQC"}}}, config_params={"outdir": "results"},
        created_at=T0)
    run = str(uuid.uuid4())
    execution = None if version is None else add(
        "executions", uuid=run, owner_id=alice, project_id=project, pipeline_version_id=version,
        params={"input": "samplesheet.csv", "outdir": "results"}, status="succeeded", backend="slurm",
        backend_job={"backend": "slurm", "job_id": "4242"}, run_dir=f"executions/{run}", session_id=str(uuid.uuid4()),
        run_name="happy_turing", resumed_from_id=None, created_at=T0, submitted_at=T0, started_at=T0, finished_at=T1,
        exit_status=0, error=None, monitor_state={"status": "succeeded"}, monitor_offsets={"events": {"offset": 9}},
        provenance={"notebook": "analysis.ipynb"}, resources={"cpus": 2}, cancel_requested=False)
    if execution is not None:
        add("process_executions", execution_id=execution, task_key="a7/e488dd", task_id=1, name="FASTQC (s1)",
            process="FASTQC", tag="s1", native_id="4243", status="COMPLETED", exit=0, submitted_at=T0,
            started_at=T0, finished_at=T1, cpu_percent=97.5, peak_rss=2 ** 30, workdir="work/a7/e488ddf027a9")
    reads = add("datafiles", owner_id=alice, project_id=project, sample_id=sample, filename="s1_R1.fastq.gz",
                file_type="fastq", size=1234, sha256="1" * 64, storage_path="uploads/1/s1_R1.fastq.gz",
                origin="upload", execution_id=None, created_at=T0)
    add("datafiles", owner_id=alice, project_id=project, sample_id=None, filename="multiqc_report.html",
        file_type="html", size=5678, sha256="2" * 64, storage_path=f"executions/{run}/results/multiqc_report.html",
        origin="output", execution_id=execution, created_at=T1)
    add("shares", object_type="project", object_id=project, user_id=bob, group_id=None, level="edit",
        created_by_id=alice, created_at=T1)
    add("shares", object_type="datafile", object_id=reads, user_id=None, group_id=lab, level="view",
        created_by_id=alice, created_at=T1)
    add("uploads", id=str(uuid.uuid4()), owner_id=bob, project_id=project, sample_id=sample, filename="s1_R2.fastq.gz",
        size=10 ** 9, offset=2 ** 20, sha256=None, metadata={"filename": "s1_R2.fastq.gz"}, state="active",
        datafile_id=None, created_at=T1, expires_at=T1 + timedelta(days=7))
    add("uploads", id=str(uuid.uuid4()), owner_id=alice, project_id=project, sample_id=sample,
        filename="s1_R1.fastq.gz", size=1234, offset=1234, sha256="1" * 64, metadata={}, state="completed",
        datafile_id=reads, created_at=T0, expires_at=T0 + timedelta(days=7))
    add("background_jobs", kind="zip", owner_id=alice, args={"files": [reads]}, status="succeeded",
        result={"path": "zips/reads.zip"}, error=None, created_at=T1, started_at=T1, finished_at=T1)
    return inserted


def stored_rows(connection: Connection, table: Table, written: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows now, reduced to the columns that were written, comparable with what was written."""
    columns = list(written[0])
    rows = connection.execute(select(*(table.c[name] for name in columns))).mappings()
    return sorted((comparable(dict(row)) for row in rows), key=repr)


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """Datetimes as naive UTC: SQLite keeps no zone, PostgreSQL answers in the session's."""
    return {key: value.astimezone(timezone.utc).replace(tzinfo=None)
            if isinstance(value, datetime) and value.tzinfo else value for key, value in row.items()}
