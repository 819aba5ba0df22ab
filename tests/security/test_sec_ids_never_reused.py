"""Issue 14, A.4: ids are never reused. A stale reference — a saved sample sheet, a launch parameter, a share, a
client's Flow-DataFile-Id — must never come to name a different object, so no table hands out the id of a deleted
row again: not right away, not after a restart, not after a backup is restored, and not on a database migrated from
revision 0004 (where SQLite, without AUTOINCREMENT, did exactly that). Every story runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from alembic import command
from serverproc import Server, running
from sqlalchemy import Integer, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flow_jupyter.backup import create_backup, restore_backup
from flow_jupyter.data.storage import Storage
from flow_jupyter.db.database import Database, alembic_config
from flow_jupyter.db.models import (
    BackgroundJob,
    Base,
    DataFile,
    Execution,
    Group,
    Pipeline,
    PipelineVersion,
    ProcessExecution,
    Project,
    Sample,
    Share,
    User,
)

# --- a world with one row of everything, and a new row for any table on demand -------------------------------------


@dataclass
class World:
    """Ids of the parents every new row hangs from."""

    user: int
    project: int
    pipeline: int
    version: int
    execution: int


_unique = itertools.count(1)


def _name(prefix: str) -> str:
    return f"{prefix}-{next(_unique)}"


#: For every table with an integer id: how to make one more row of it, with nothing referring to it yet.
NEW_ROW: dict[str, Callable[[World], Base]] = {
    "users": lambda w: User(name=_name("user")),
    "groups": lambda w: Group(name=_name("group")),
    "projects": lambda w: Project(name=_name("project"), owner_id=w.user),
    "shares": lambda w: Share(object_type="datafile", object_id=next(_unique), user_id=w.user, created_by_id=w.user),
    "samples": lambda w: Sample(project_id=w.project, name=_name("sample"), meta={}),
    "datafiles": lambda w: DataFile(owner_id=w.user, project_id=w.project, filename=_name("reads.fastq"), size=0,
                                    sha256="0" * 64, storage_path=f"uploads/{uuid.uuid4()}"),
    "background_jobs": lambda w: BackgroundJob(kind="cleanup", args={}),
    "pipelines": lambda w: Pipeline(name=_name("pipeline"), source="/pipelines/x"),
    "pipeline_versions": lambda w: PipelineVersion(pipeline_id=w.pipeline, ref=_name("v"), path="/pipelines/x"),
    "executions": lambda w: Execution(uuid=str(uuid.uuid4()), owner_id=w.user, project_id=w.project,
                                      pipeline_version_id=w.version, run_dir=f"/runs/{uuid.uuid4()}"),
    "process_executions": lambda w: ProcessExecution(execution_id=w.execution, task_key=_name("task")),
}
MODEL = {mapper.local_table.name: mapper.class_ for mapper in Base.registry.mappers}


def integer_id_tables() -> set[str]:
    return {t.name for t in Base.metadata.sorted_tables
            if len(t.primary_key.columns) == 1 and isinstance(t.primary_key.columns[0].type, Integer)}


def make_world(db: Database) -> World:
    with db.session() as session:
        user = _add(session, User(name="alice"))
        project = _add(session, Project(name="reads", owner_id=user))
        pipeline = _add(session, Pipeline(name="demo", source="/pipelines/demo"))
        version = _add(session, PipelineVersion(pipeline_id=pipeline, ref="main", path="/pipelines/demo"))
        execution = _add(session, Execution(uuid=str(uuid.uuid4()), owner_id=user, project_id=project,
                                            pipeline_version_id=version, run_dir="/runs/first"))
    return World(user, project, pipeline, version, execution)


def _add(session: Session, row: Base) -> int:
    session.add(row)
    session.flush()
    return row.id


def add_row(db: Database, world: World, table: str) -> int:
    with db.session() as session:
        return _add(session, NEW_ROW[table](world))


def delete_row(db: Database, table: str, row_id: int) -> None:
    with db.session() as session:
        session.delete(session.get(MODEL[table], row_id))


def add_then_delete_the_newest_of_each(db: Database, world: World) -> dict[str, int]:
    """In every table, a new row that is then deleted: the id SQLite without AUTOINCREMENT hands out next."""
    deleted = {table: add_row(db, world, table) for table in NEW_ROW}
    for table, row_id in deleted.items():
        delete_row(db, table, row_id)
    return deleted


def reused(db: Database, world: World, deleted: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Tables whose next new row got an id not above the deleted one: {table: (deleted id, new id)}."""
    fresh = {table: add_row(db, world, table) for table in deleted}
    return {table: (deleted[table], fresh[table]) for table in deleted if fresh[table] <= deleted[table]}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


# --- the stories ---------------------------------------------------------------------------------------------------


def test_the_stories_cover_every_table_with_an_integer_id() -> None:
    assert set(NEW_ROW) == integer_id_tables()


def test_no_table_hands_out_the_id_of_a_deleted_row(database: Database) -> None:
    world = make_world(database)
    deleted = add_then_delete_the_newest_of_each(database, world)

    assert reused(database, world, deleted) == {}


def test_no_table_hands_out_a_deleted_id_after_a_restart(database: Database, database_url: str) -> None:
    world = make_world(database)
    deleted = add_then_delete_the_newest_of_each(database, world)
    database.dispose()  # the server stops; a new one opens the same database and migrates it (a no-op)

    restarted = Database(database_url)
    try:
        restarted.migrate()
        assert reused(restarted, world, deleted) == {}
    finally:
        restarted.dispose()


def test_every_integer_id_comes_from_a_sequence_or_sqlite_autoincrement(database: Database) -> None:
    """PostgreSQL's sequences never go back (nothing to migrate there); SQLite needs AUTOINCREMENT on each table."""
    with database.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            defaults = {t: c["default"] or "" for t in integer_id_tables()
                        for c in inspect(connection).get_columns(t) if c["name"] == "id"}
            assert {t for t, default in defaults.items() if not default.startswith("nextval(")} == set()
        else:
            created = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master").all())
            assert {t for t in integer_id_tables() if "AUTOINCREMENT" not in created[t]} == set()


def test_a_restored_backup_never_hands_out_a_deleted_id(database: Database, database_url: str, flow_root: Path,
                                                        tmp_path: Path, request) -> None:
    Storage(flow_root).prepare()
    world = make_world(database)
    deleted = add_then_delete_the_newest_of_each(database, world)
    create_backup(flow_root, database_url, tmp_path / "backup")

    with empty_database_like(database_url, tmp_path, request) as target_url:
        restore_backup(tmp_path / "backup", tmp_path / "new-root", target_url)
        restored = Database(target_url)
        try:
            assert reused(restored, world, deleted) == {}
        finally:
            restored.dispose()


def test_a_deleted_data_file_id_is_never_handed_out_again_through_the_api(tmp_path: Path, flow_root: Path,
                                                                          database_url: str) -> None:
    """A client keeps the Flow-DataFile-Id of a file its owner deleted; neither the same server nor a restarted one
    ever gives that id to a new file, so the stale id stays 'not found' instead of naming someone's new data."""
    server = Server(tmp_path, flow_root, database_url)
    with running(server):
        project = _api(server, "POST", "projects", json={"name": "reads"}).json()["id"]
        kept = upload(server, project, b"ACGT\n")
        stale = upload(server, project, b"TTTT\n")
        assert _api(server, "DELETE", f"files/{stale}").status_code == 204
        after_delete = upload(server, project, b"GGGG\n")
        assert _api(server, "DELETE", f"files/{after_delete}").status_code == 204

    restarted = Server(tmp_path, flow_root, database_url)
    with running(restarted):
        after_restart = upload(restarted, project, b"CCCC\n")
        gone = [_api(restarted, "GET", f"files/{i}").status_code for i in (stale, after_delete)]
        assert _api(restarted, "GET", f"files/{kept}").status_code == 200

    assert kept < stale < after_delete < after_restart
    assert gone == [404, 404]


def test_a_database_migrated_from_0004_keeps_every_row_and_continues_above_the_old_ids(database_url: str) -> None:
    db = Database(database_url)
    try:
        _migrate(db, "0004")
        old = fill_revision_0004(db)
        before = snapshot(db)

        db.migrate()

        after = snapshot(db)
        with db.engine.connect() as connection:
            enforced = connection.dialect.name != "sqlite" or connection.exec_driver_sql(
                "PRAGMA foreign_keys").scalar() == 1
        world = World(old["users"][0], old["projects"][0], old["pipelines"][0], old["pipeline_versions"][0],
                      old["executions"][0])
        fresh = {table: add_row(db, world, table) for table in NEW_ROW}
        orphan_refused = _refuses(db, Sample(project_id=10_000, name="orphan", meta={}))
    finally:
        db.dispose()

    assert_nothing_lost(before, after)
    assert enforced and orphan_refused  # foreign keys are enforced again on the migrated database
    assert {t: i for t, i in fresh.items() if i <= max(old[t])} == {}
    # Ids still named elsewhere (a share, a file's execution) are not handed out even though their rows are gone.
    assert fresh["datafiles"] > old["shared_deleted_file"] and fresh["executions"] > old["deleted_execution"]


# --- the 0004 database ---------------------------------------------------------------------------------------------


def _migrate(db: Database, revision: str) -> None:
    config = alembic_config(db.url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def fill_revision_0004(db: Database) -> dict[str, Any]:
    """Rows in every table of revision 0004 (its tables reflected, not today's models), and two deletions that left
    their ids named elsewhere: a shared data file and an execution a data file came from. Returns the ids."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids: dict[str, Any] = {}
    with db.engine.begin() as connection:
        tables = sa.MetaData()
        tables.reflect(connection)

        def add(table: str, **values: Any) -> int:
            new_id = connection.execute(tables.tables[table].insert().values(**values)).inserted_primary_key[0]
            ids.setdefault(table, []).append(new_id)
            return new_id

        alice, bob, carol = (add("users", name=n, is_admin=False, created_at=now) for n in ("alice", "bob", "carol"))
        lab = add("groups", name="lab", created_at=now)
        connection.execute(tables.tables["memberships"].insert().values(user_id=bob, group_id=lab, role="member"))
        project = add("projects", name="rna", description="", owner_id=alice, group_id=lab, visibility="group",
                      created_at=now, updated_at=now)
        add("projects", name="dna", description="", owner_id=bob, group_id=None, visibility="private",
            created_at=now, updated_at=now)
        sample = add("samples", project_id=project, name="S1", metadata={"lane": 1}, created_at=now)
        pipeline = add("pipelines", name="demo", source="/p", description="", bundled=True, curated=True,
                       created_by_id=None, created_at=now)
        version = add("pipeline_versions", pipeline_id=pipeline, ref="main", commit="abc", path="/p",
                      schema={"type": "object"}, created_at=now)
        execution = add("executions", uuid=str(uuid.uuid4()), owner_id=alice, project_id=project,
                        pipeline_version_id=version, params={"input": 1}, status="succeeded", backend="local",
                        run_dir="/runs/1", created_at=now, cancel_requested=False)
        resumed = add("executions", uuid=str(uuid.uuid4()), owner_id=alice, project_id=project,
                      pipeline_version_id=version, params={}, status="failed", backend="local", run_dir="/runs/2",
                      resumed_from_id=execution, created_at=now, cancel_requested=False)
        add("process_executions", execution_id=execution, task_key="1", status="COMPLETED")
        files = [add("datafiles", owner_id=alice, project_id=project, sample_id=sample if n == 0 else None,
                     filename=f"f{n}.fastq", file_type="fastq", size=n, sha256="0" * 64, storage_path=f"uploads/f{n}",
                     origin="upload" if n < 2 else "output", execution_id=resumed if n == 2 else None,
                     created_at=now) for n in range(4)]
        connection.execute(tables.tables["uploads"].insert().values(
            id=str(uuid.uuid4()), owner_id=alice, project_id=project, sample_id=sample, filename="f0.fastq", size=0,
            offset=0, metadata={}, state="completed", datafile_id=files[0], created_at=now, expires_at=now))
        add("shares", object_type="project", object_id=project, user_id=carol, group_id=None, level="view",
            created_by_id=alice, created_at=now)
        add("shares", object_type="datafile", object_id=files[3], user_id=None, group_id=lab, level="edit",
            created_by_id=alice, created_at=now)
        add("background_jobs", owner_id=alice, kind="zip", args={"files": files}, status="succeeded", created_at=now)
        # The newest file and the newest execution go; a share and a file still name them.
        datafiles, executions = tables.tables["datafiles"], tables.tables["executions"]
        connection.execute(datafiles.delete().where(datafiles.c.id == files[3]))
        connection.execute(executions.update().where(executions.c.id == execution).values(resumed_from_id=None))
        connection.execute(executions.delete().where(executions.c.id == resumed))
    ids["datafiles"].remove(files[3])
    ids["executions"].remove(resumed)
    return {**ids, "shared_deleted_file": files[3], "deleted_execution": resumed}


def snapshot(db: Database) -> dict[str, Any]:
    """Every row of every table, and every index, unique constraint, check and foreign key, by table."""
    with db.engine.connect() as connection:
        schema = inspect(connection)
        tables = sa.MetaData()
        tables.reflect(connection)
        rows = {name: [dict(r._mapping) for r in connection.execute(select(t).order_by(*t.primary_key.columns))]
                for name, t in tables.tables.items() if name != "alembic_version"}
        shape = {name: {
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in schema.get_indexes(name)),
            "uniques": sorted((u["name"], tuple(u["column_names"])) for u in schema.get_unique_constraints(name)),
            "checks": sorted(c["name"] for c in schema.get_check_constraints(name)),
            "foreign_keys": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"],
                                    f["options"].get("ondelete")) for f in schema.get_foreign_keys(name)),
            "primary_key": tuple(schema.get_pk_constraint(name)["constrained_columns"]),
        } for name in rows}
    return {"rows": rows, "shape": shape}


NEW_DATAFILE_COLUMNS = {"stat_inode", "stat_mtime_ns", "run_path", "replaces_id"}
#: Revision 0006: claim leases.
LEASE_COLUMNS = {"claimed_by", "claimed_at"}
NEW_COLUMNS = {"datafiles": NEW_DATAFILE_COLUMNS, "executions": LEASE_COLUMNS, "background_jobs": LEASE_COLUMNS}


def assert_nothing_lost(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The same rows with the same values (data files, executions and background jobs gain the new, empty columns),
    and the same schema apart from the new columns' indexes and foreign key and the index of outputs by execution."""
    assert set(after["rows"]) == set(before["rows"])
    for table, rows in before["rows"].items():
        added = NEW_COLUMNS.get(table, set())
        assert [{k: v for k, v in row.items() if k not in added} for row in after["rows"][table]] == rows, table
        assert all(row[k] is None for row in after["rows"][table] for k in added)
    expected = {table: dict(shape) for table, shape in before["shape"].items()}
    files = expected["datafiles"]
    files["indexes"] = sorted([*files["indexes"], ("ix_datafiles_replaces_id", ("replaces_id",), False),
                               ("ix_datafiles_execution_id_id", ("execution_id", "id"), False)])
    files["foreign_keys"] = sorted([*files["foreign_keys"],
                                    ("fk_datafiles_replaces_id_datafiles", ("replaces_id",), "datafiles", "SET NULL")])
    for table in ("executions", "background_jobs"):
        expected[table]["indexes"] = sorted([*expected[table]["indexes"],
                                             (f"ix_{table}_claimed_by", ("claimed_by",), False)])
    assert after["shape"] == expected


def _refuses(db: Database, row: Base) -> bool:
    try:
        with db.session() as session:
            session.add(row)
    except IntegrityError:
        return True
    return False


# --- helpers: a second empty database, the HTTP API of a server process ---------------------------------------------


@contextmanager
def empty_database_like(url: str, tmp_path: Path, request) -> Iterator[str]:
    """An empty database of the same kind for a restore: a new SQLite file, or a new PostgreSQL database."""
    if url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'new-root' / 'flow.sqlite'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = f"flowsec_{uuid.uuid4().hex[:12]}"
    superuser = sa.make_url(base).set(username="postgres", password=None, database="postgres")
    admin = sa.create_engine(superuser, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER flow'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _api(server: Server, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {**server.headers("alice"), **kw.pop("headers", {})}
    return requests.request(method, f"{server.base}/flow/api/{path}", headers=headers, timeout=60, **kw)


def upload(server: Server, project: int, data: bytes) -> int:
    """A small file through tus (create, then one chunk); returns the id the server gives the client."""
    meta = ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}"
                    for k, v in {"filename": "reads.fastq", "project": project}.items())
    created = _api(server, "POST", "uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
                                                       "Upload-Metadata": meta})
    assert created.status_code == 201, created.text
    done = requests.patch(server.base + created.headers["Location"], data=data, timeout=60, headers={
        **server.headers("alice"), "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0"})
    assert done.status_code == 204, done.text
    return int(done.headers["Flow-DataFile-Id"])
