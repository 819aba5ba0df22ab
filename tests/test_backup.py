"""`flow-jupyter backup` / `restore`: a Flow store survives the round trip through a backup with nothing lost, and
restore refuses — before writing a byte — anything that could mix or lose data.

Every story runs on the embedded SQLite and on PostgreSQL (the `database_url` fixture), through the real CLI.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import inspect, select

from flow_jupyter.backup import PgConnection, database_is_empty, pg_dump_argv, pg_restore_argv
from flow_jupyter.data.files import register_file
from flow_jupyter.data.safeopen import check_identity
from flow_jupyter.data.storage import Storage
from flow_jupyter.db.database import Database, alembic_config
from flow_jupyter.db.models import DataFile, Origin, Project, Sample, Upload, UploadState, User, Visibility

SECRET = "s3cret-pw"


def flow(*args: str | Path) -> subprocess.CompletedProcess:
    """The real CLI in a child process; FLOW_* from the caller's environment must not pick the store."""
    env = {k: v for k, v in os.environ.items() if k not in ("FLOW_ROOT", "FLOW_DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "flow_jupyter", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under a root by relative path → sha256, leaving out the SQLite database itself."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("flow.sqlite")}


def rows(url: str) -> dict[str, list[dict]]:
    """Users, projects, samples, data files and uploads, column by column, in primary-key order."""
    database = Database(url)
    try:
        with database.session() as session:
            return {model.__tablename__: [
                {c.key: getattr(obj, c.key) for c in inspect(model).column_attrs}
                for obj in session.scalars(select(model).order_by(*inspect(model).primary_key))
            ] for model in (User, Project, Sample, DataFile, Upload)}
    finally:
        database.dispose()


def head_revision(url: str) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def stored_revision(url: str) -> str:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


@dataclass
class Store:
    root: Path
    url: str
    database: Database
    partial: Path

    def args(self) -> list[str]:
        return [f"--root={self.root}", f"--database-url={self.url}"]


@pytest.fixture
def store(flow_root: Path, database_url: str) -> Iterator[Store]:
    """A real Flow store: two users, a project with samples, data files on disk (nested, non-ASCII, pipeline
    output, config, media), a zip awaiting pick-up, and an unfinished upload in uploads/.partial."""
    database = Database(database_url)
    database.migrate()
    storage = Storage(flow_root)
    storage.prepare()

    def put(relative: str, data: bytes) -> tuple[str, str]:
        path = storage.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return relative, hashlib.sha256(data).hexdigest()

    with database.session() as session:
        alice = User(name="alice", is_admin=True)
        bjorn = User(name="Bjørn", quota_bytes=10 << 30)
        session.add_all([alice, bjorn])
        session.flush()
        project = Project(name="CLIP-seq", description="Ångström resolution™", owner_id=alice.id,
                          visibility=Visibility.public)
        session.add(project)
        session.flush()
        s1 = Sample(project_id=project.id, name="S1", meta={"organism": "Homo sapiens", "lane": 1})
        s2 = Sample(project_id=project.id, name="Zelle-ü", meta={})
        session.add_all([s1, s2])
        session.flush()
        files = [
            ("reads_R1.fastq.gz", s1.id, Origin.upload, os.urandom(300_000)),
            ("Probe_Ångström_µ.fastq", s2.id, Origin.upload, "@r1\nACGT\n+\nIIII\n".encode() * 100),
        ]
        for filename, sample_id, origin, data in files:
            relative, digest = put(storage.new_relative_path(filename), data)
            register_file(session, owner_id=alice.id, project_id=project.id, sample_id=sample_id,
                          filename=filename, storage_path=relative, size=len(data), sha256=digest, origin=origin,
                          stored=(storage.root / relative).stat())
        report = b"<html>MultiQC</html>"
        relative, digest = put(f"executions/{uuid.uuid4()}/results/multiqc/multiqc_report.html", report)
        register_file(session, owner_id=bjorn.id, project_id=project.id, sample_id=None,
                      filename="multiqc_report.html", storage_path=relative, size=len(report), sha256=digest,
                      origin=Origin.output, execution_id=7)
        put("configs/site.config", b"process.executor = 'slurm'\n")
        put("media/avatars/bjørn.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        put("zips/bulk-1.zip", b"PK rebuildable")
        upload_id = str(uuid.uuid4())
        partial = storage.partial_path(upload_id)
        partial.write_bytes(b"first half of a big file")
        session.add(Upload(id=upload_id, owner_id=bjorn.id, project_id=project.id, filename="big.bam",
                           size=1 << 30, offset=24, state=UploadState.active,
                           expires_at=datetime.now(timezone.utc) + timedelta(days=7)))
    # The "server" keeps its engine open: on SQLite the newest rows are still in the write-ahead log.
    yield Store(flow_root, database_url, database, partial)
    database.dispose()


@contextmanager
def empty_postgres_database(postgres_url: str) -> Iterator[str]:
    """A new database on the test cluster (role flow has CREATEDB), dropped afterwards."""
    name = f"flowrestore_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Target:
    root: Path
    url: str
    args: list[str]


@pytest.fixture
def target(request, store: Store, tmp_path: Path) -> Iterator[Target]:
    """An empty new root and an empty new database of the store's kind, as a replacement server gets them.
    On SQLite only --root is given: the database is the root's flow.sqlite by default."""
    root = tmp_path / "new-root"
    if store.url.startswith("sqlite"):
        yield Target(root, f"sqlite:///{root / 'flow.sqlite'}", [f"--root={root}"])
        return
    with empty_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield Target(root, url, [f"--root={root}", f"--database-url={url}"])


def test_a_backup_restored_into_an_empty_root_and_database_loses_nothing(store: Store, target: Target,
                                                                          tmp_path: Path) -> None:
    before_rows = rows(store.url)
    before_files = tree(store.root)
    dest = tmp_path / "backups" / "monday"
    dest.parent.mkdir()
    if store.url.startswith("sqlite"):
        assert Path(f"{store.root}/flow.sqlite-wal").stat().st_size > 0  # rows still in the live server's WAL

    backup = flow("backup", dest, *store.args())

    assert backup.returncode == 0, backup.stderr
    assert "backup: 5 files" in backup.stdout and "revision" in backup.stdout
    manifest = json.loads((dest / "manifest.json").read_text())
    backed_up = {e["path"]: e["sha256"] for e in manifest["files"]}
    expected = {p: h for p, h in before_files.items() if not p.startswith(("zips/", "uploads/.partial/"))}
    assert backed_up == expected
    assert manifest["database"]["kind"] == store.url.split(":")[0].split("+")[0]
    assert manifest["database"]["revision"] == head_revision(store.url)
    assert manifest["database"]["sha256"] == sha256(dest / manifest["database"]["path"])
    assert not any(p.name.startswith("flow.sqlite") for p in (dest / "files").rglob("*"))
    for relative in backed_up:  # independent copies, not links to the live files
        assert (dest / "files" / relative).stat().st_ino != (store.root / relative).stat().st_ino
    assert not list(tmp_path.joinpath("backups").glob(".monday*")), "the staging directory is gone"

    restore = flow("restore", dest, *target.args)

    assert restore.returncode == 0, restore.stderr
    assert f"-> {target.root}" in restore.stdout
    assert tree(target.root) == expected
    after_rows = rows(target.url)
    assert [u["state"] for u in after_rows["uploads"]] == [UploadState.expired]
    assert "1 unfinished upload(s) marked expired" in restore.stdout
    for row in before_rows["uploads"]:
        row["state"] = UploadState.expired
    identity = ("stat_inode", "stat_mtime_ns")  # restored bytes are new files: their identity is recorded anew
    strip = lambda table: [{k: v for k, v in row.items() if k not in identity} for row in table]  # noqa: E731
    assert {name: strip(table) for name, table in after_rows.items()} == \
        {name: strip(table) for name, table in before_rows.items()}
    assert stored_revision(target.url) == head_revision(target.url)
    for row in after_rows["datafiles"]:  # every registered file is back, byte for byte, and servable as itself
        assert sha256(target.root / row["storage_path"]) == row["sha256"]
        info = (target.root / row["storage_path"]).stat()
        check_identity(info, row["stat_inode"], row["stat_mtime_ns"], row["size"])


def test_restore_into_a_root_that_is_not_empty_is_refused_and_writes_nothing(store: Store, target: Target,
                                                                              tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert flow("backup", dest, *store.args()).returncode == 0
    target.root.mkdir()
    (target.root / "notes.txt").write_text("someone else's store")

    done = flow("restore", dest, *target.args)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"restore failed: target root {target.root} is not empty (notes.txt and 0 more); restore only into an "
        "empty root"]
    assert "Traceback" not in done.stderr
    assert [p.name for p in target.root.iterdir()] == ["notes.txt"]
    assert database_is_empty(target.url)


def test_restore_into_a_database_that_has_tables_is_refused(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert flow("backup", dest, *store.args()).returncode == 0
    empty_root = tmp_path / "empty-root"

    done = flow("restore", dest, f"--root={empty_root}", f"--database-url={store.url}")

    assert done.returncode == 1
    assert "the target database is not empty" in done.stderr
    assert not empty_root.exists()


def test_a_tampered_backup_is_refused_before_anything_is_written(store: Store, target: Target,
                                                                 tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert flow("backup", dest, *store.args()).returncode == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    victim = dest / "files" / next(e["path"] for e in manifest["files"] if "Ångström" in e["path"])
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size
    victim.write_bytes(bytes(data))

    done = flow("restore", dest, *target.args)

    assert done.returncode == 1
    assert "is damaged" in done.stderr and "Probe_Ångström_µ.fastq does not match its sha256" in done.stderr
    assert "nothing was restored" in done.stderr
    assert not target.root.exists()
    assert database_is_empty(target.url)


def test_a_damaged_database_dump_is_refused_too(store: Store, target: Target, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert flow("backup", dest, *store.args()).returncode == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    with open(dest / manifest["database"]["path"], "ab") as dump:
        dump.write(b"\0")

    done = flow("restore", dest, *target.args)

    assert done.returncode == 1 and f"{manifest['database']['path']} does not match" in done.stderr
    assert not target.root.exists() and database_is_empty(target.url)


def test_a_restore_that_fails_half_way_leaves_the_empty_target_as_it_found_it(store: Store, target: Target,
                                                                            tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert flow("backup", dest, *store.args()).returncode == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    dump = dest / manifest["database"]["path"]
    dump.write_bytes(b"not a database at all")  # e.g. written by a broken tool: checksums match, content is junk
    manifest["database"].update(size=dump.stat().st_size, sha256=sha256(dump))
    (dest / "manifest.json").write_text(json.dumps(manifest))

    done = flow("restore", dest, *target.args)

    assert done.returncode == 1, done.stdout
    assert "nothing was kept" in done.stderr and "Traceback" not in done.stderr
    assert not target.root.exists(), "the files restored before the database failed were removed again"
    assert database_is_empty(target.url)


def test_a_backup_from_a_newer_flow_jupyter_is_refused(store: Store, target: Target, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert flow("backup", dest, *store.args()).returncode == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["database"]["revision"] = "9999_from_the_future"
    (dest / "manifest.json").write_text(json.dumps(manifest))

    done = flow("restore", dest, *target.args)

    assert done.returncode == 1
    assert "schema revision 9999_from_the_future is unknown to flow_jupyter" in done.stderr
    assert not target.root.exists() and database_is_empty(target.url)


def test_backup_refuses_a_destination_that_is_not_empty(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / "keep.me").write_text("x")

    done = flow("backup", dest, *store.args())

    assert done.returncode == 1
    assert done.stderr.strip() == f"backup failed: destination {dest} exists and is not an empty directory"
    assert [p.name for p in dest.iterdir()] == ["keep.me"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "flow-root"]


def test_backup_into_an_existing_empty_directory_works_like_a_new_one(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "mounted-backup-disk"
    dest.mkdir()

    done = flow("backup", dest, *store.args())

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["database", "files", "manifest.json"]


def test_an_unfinished_backup_without_manifest_cannot_be_restored(store: Store, target: Target,
                                                                   tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    assert flow("backup", dest, *store.args()).returncode == 0
    (dest / "manifest.json").unlink()  # as if the backup had crashed before its last step

    done = flow("restore", dest, *target.args)

    assert done.returncode == 1 and "is not a complete Flow backup (no manifest.json)" in done.stderr
    assert not target.root.exists() and database_is_empty(target.url)


def test_a_backup_of_one_database_kind_is_not_restored_into_the_other(flow_root: Path, postgres_url: str,
                                                                      tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{flow_root / 'flow.sqlite'}"
    Database(sqlite_url).migrate()
    dest = tmp_path / "backup"
    assert flow("backup", dest, f"--root={flow_root}").returncode == 0

    with empty_postgres_database(postgres_url) as url:
        done = flow("restore", dest, f"--root={tmp_path / 'new'}", f"--database-url={url}")
        assert database_is_empty(url)

    assert done.returncode == 1
    assert "the backup holds a sqlite database but the target is postgresql" in done.stderr
    assert not (tmp_path / "new").exists()


def test_the_postgresql_password_reaches_pg_dump_and_pg_restore_only_through_the_environment(
        tmp_path: Path) -> None:
    conn = PgConnection.from_url(f"postgresql+psycopg2://flow:{SECRET}@db.example:5433/flow db'x?sslmode=require")

    for argv in (pg_dump_argv(conn, tmp_path / "out.pgdump"), pg_restore_argv(conn, tmp_path / "in.pgdump")):
        assert not any(SECRET in item for item in argv)
        assert {"--host=db.example", "--port=5433", "--username=flow", "--no-owner"} <= set(argv)
        assert "--dbname=dbname='flow db\\'x'" in argv  # a database name is never read as connection options
    assert conn.env()["PGPASSWORD"] == SECRET and conn.env()["PGSSLMODE"] == "require"
    assert Path(pg_dump_argv(conn, tmp_path / "x")[0]).name == "pg_dump"
