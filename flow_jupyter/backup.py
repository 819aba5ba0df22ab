"""Backup and restore of a Flow store: the database plus the files under the root's data areas.

A backup is a directory::

    manifest.json            written last: its presence marks a complete backup
    database/flow.sqlite     SQLite online backup (consistent while the server runs), or
    database/flow.pgdump     pg_dump --format=custom
    files/<relative path>    independent copies (never links) of uploads/ executions/ pipelines/ configs/ media/

The manifest holds the sha256 of every file and of the dump, so a restore can prove the backup intact before it
writes anything. Plain functions, no CLI: ``flow-jupyter backup|restore`` (cli.py) call `create_backup` and
`restore_backup`. External programs (pg_dump, pg_restore) run through `proc.run` with an argv; the PostgreSQL
password travels only in PGPASSWORD.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, cast

from sqlalchemy import CursorResult, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from . import fsutil
from ._version import __version__
from .data.storage import AREAS
from .db.session import make_engine
from .fsutil import fsync_dir, hash_file, hash_stream
from .proc import CommandError, run

FORMAT = "flow-jupyter-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: zips/ is left out: bulk-download zips are rebuilt on demand from the files that are backed up.
BACKED_UP_AREAS = tuple(area for area in AREAS if area != "zips")
#: Bytes of unfinished uploads: a client cannot resume them against a restored server, so they are not kept.
PARTIAL_DIR = PurePosixPath("uploads/.partial")
SQLITE_DUMP = "database/flow.sqlite"
PG_DUMP = "database/flow.pgdump"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
#: pg_dump/pg_restore of a large hub database can take hours; a hung one still ends eventually.
PG_TIMEOUT = 24 * 3600.0
#: SQLAlchemy URL query keys that libpq also understands, passed on as environment variables.
PG_QUERY_ENV = {
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}


class BackupError(Exception):
    """A backup or restore was refused or failed; the message is one line meant for the operator."""


def failure_message(exc: BaseException) -> str:
    """One line for the CLI: a refusal's own message; anything unexpected also names its type."""
    text_ = str(exc).strip()
    first = text_.splitlines()[0] if text_ else ""
    return first if isinstance(exc, BackupError) else f"{type(exc).__name__}: {first}"


# --- databases ------------------------------------------------------------------------------------------------


def database_kind(url: str) -> str:
    """'sqlite' or 'postgresql': the only databases Flow runs on, hence the only ones it backs up."""
    try:
        backend = make_url(url).get_backend_name()
    except Exception:
        raise BackupError("the database URL cannot be parsed") from None
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up or restore a {backend} database (only sqlite and postgresql)")
    return backend


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; an in-memory database has nothing to back up or restore into."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("the SQLite database is in memory; there is no file to back up or restore")
    return Path(database).expanduser().absolute()


def _libpq_quote(value: str) -> str:
    """A libpq connection-string value in single quotes, so a database name is never read as options."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class PgConnection:
    """Where pg_dump/pg_restore connect, taken from the SQLAlchemy URL Flow itself uses."""

    dbname: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str) -> PgConnection:
        parsed = make_url(url)
        if not parsed.database:
            raise BackupError("the PostgreSQL URL names no database")
        query = {key: (value[-1] if isinstance(value, tuple) else value) for key, value in parsed.query.items()}
        host = parsed.host or query.get("host")  # ?host=/run/postgresql selects a Unix socket directory
        extra = {env: str(query[key]) for key, env in PG_QUERY_ENV.items() if key in query}
        return cls(parsed.database, host, parsed.port, parsed.username, parsed.password, extra)

    def options(self) -> list[str]:
        """Connection options as argv items (``--opt=value`` so no value can pose as another option)."""
        argv = []
        if self.host:
            argv.append(f"--host={self.host}")
        if self.port:
            argv.append(f"--port={self.port}")
        if self.user:
            argv.append(f"--username={self.user}")
        argv.append("--no-password")  # never prompt: a missing password must fail, not hang
        argv.append(f"--dbname=dbname={_libpq_quote(self.dbname)}")
        return argv

    def env(self) -> dict[str, str]:
        """This process's environment plus the password: the one secret never put on a command line."""
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        env.update(self.extra_env)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


def pg_tool(name: str) -> str:
    """pg_dump/pg_restore: the one on PATH, else the newest of Debian's /usr/lib/postgresql/<version>/bin."""
    if found := shutil.which(name):
        return found
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if os.access(p, os.X_OK)),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    if not versions:
        raise BackupError(f"{name} not found on PATH; install the PostgreSQL client programs")
    return str(versions[-1])


def pg_dump_argv(conn: PgConnection, out: Path) -> list[str]:
    """pg_dump in custom format (compressed, restorable table by table); ownership is the restorer's."""
    return [pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={out}", *conn.options()]


def pg_restore_argv(conn: PgConnection, dump: Path) -> list[str]:
    """pg_restore in one transaction, so a failed restore leaves the target database as empty as it was.

    --no-owner/--no-acl: the restoring role owns everything, as the hub's service account should; roles of the
    source cluster need not exist on the target.
    """
    return [pg_tool("pg_restore"), "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error",
            *conn.options(), str(dump)]


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def _connect_sqlite(path: Path) -> sqlite3.Connection:
    """An existing SQLite file (mode=rw: never create an empty one by accident)."""
    return sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=30)


def _sqlite_revision(path: Path) -> str | None:
    con = _connect_sqlite(path)
    try:
        rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    return ",".join(sorted(r[0] for r in rows)) or None


def _sql_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    except SQLAlchemyError as exc:
        if "alembic_version" in str(exc):
            return None
        raise BackupError(f"cannot read the database: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    return ",".join(sorted(r[0] for r in rows)) or None


def database_is_empty(url: str) -> bool:
    """True when the database has no tables at all (a missing SQLite file is empty too)."""
    if database_kind(url) == "sqlite":
        path = sqlite_path(url)
        if not path.exists():
            return True
        con = _connect_sqlite(path)
        try:
            return con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0
        finally:
            con.close()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(text(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )).scalar_one()
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot connect to the target database: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    return count == 0


# --- files ------------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> tuple[int, str]:
    digest, size = hash_file(path)
    return size, digest.hexdigest()


def _copy_hashing(src: Path, dst: Path) -> tuple[int, str]:
    """Stream ``src`` into a new file ``dst`` (a real copy, never a link) and return the size and sha256 of exactly
    the bytes written, so a file that changes while it is copied is still described truthfully."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            digest, size = hash_stream(fin, copy_to=fout)
            fout.flush()
            os.fsync(fout.fileno())
        except BaseException:
            dst.unlink(missing_ok=True)  # created above with "x": it is ours to remove
            raise
    shutil.copystat(src, dst)
    return size, digest.hexdigest()


def _walk(root: Path, skip: set[Path]) -> Iterator[tuple[str, Path]]:
    """(relative posix path, real path) of every file and symlink in the backed-up areas, never following a
    symlink below an area (Nextflow work dirs are full of them); an area that is itself a symlink is followed."""
    for area in BACKED_UP_AREAS:
        top = root / area
        if not top.is_dir():
            continue
        stack = [top]
        while stack:
            directory = stack.pop()
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
            for entry in entries:
                path = Path(entry.path)
                rel = PurePosixPath(path.relative_to(root).as_posix())
                if rel == PARTIAL_DIR or path in skip:
                    continue
                if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                    yield str(rel), path
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(path)


def _link_target(link: Path, root: Path) -> str:
    """A symlink's target; an absolute one into the root becomes relative, so it still works in a new root."""
    target = os.readlink(link)
    if os.path.isabs(target):
        for base in {str(root), str(root.resolve())}:
            if os.path.commonpath([base, target]) == base:
                return os.path.relpath(target, start=os.path.dirname(link))
    return target


def _safe_relative(rel: Any) -> PurePosixPath:
    """A manifest path, checked: relative, no '..', inside a backed-up area, not an unfinished upload."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise BackupError(f"manifest has an invalid path {rel!r}")
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or "." in rel.split("/") or path.parts[0] not in BACKED_UP_AREAS:
        raise BackupError(f"manifest path {rel!r} is outside Flow's data areas")
    if path == PARTIAL_DIR or PARTIAL_DIR in path.parents:
        raise BackupError(f"manifest path {rel!r} is an unfinished upload")
    return path


# --- summaries ------------------------------------------------------------------------------------------------


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Summary:
    """What a backup or restore did, for the one-paragraph report the CLI prints."""

    location: Path
    files: int
    bytes: int
    database_kind: str
    revision: str | None
    notes: tuple[str, ...] = ()

    def describe(self, action: str) -> str:
        """E.g. 'backup: 12 files, 3.4 GiB, sqlite database at revision 0001 -> /backups/2024-05-01'."""
        text_ = (f"{action}: {self.files} files, {human_bytes(self.bytes)}, {self.database_kind} database at "
                 f"revision {self.revision or 'none'} -> {self.location}")
        return "\n".join([text_, *(f"  note: {n}" for n in self.notes)])


# --- backup -----------------------------------------------------------------------------------------------------


def _check_destination(dest: Path, root: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"destination {dest} exists and is not an empty directory")
    resolved = dest.resolve()
    for area in BACKED_UP_AREAS:
        top = (root / area).resolve()
        if resolved == top or top in resolved.parents:
            raise BackupError(f"destination {dest} is inside the Flow root's {area}/, which is backed up itself")
    if not dest.parent.is_dir():
        raise BackupError(f"the directory {dest.parent} that should hold the backup does not exist")


def _finish(staging: Path, dest: Path) -> None:
    """Make the staged backup appear at ``dest`` with the manifest last: one rename when ``dest`` did not exist;
    when it is an existing empty directory (perhaps a mount point) the parts move in and the manifest follows."""
    if staging.parent == dest.parent:
        os.rename(staging, dest)
    else:
        for part in ("database", "files"):
            if (staging / part).exists():
                os.rename(staging / part, dest / part)
        os.rename(staging / MANIFEST, dest / MANIFEST)
        staging.rmdir()
    fsync_dir(dest.parent)


def create_backup(root: Path, database_url: str, dest: Path) -> Summary:
    """Back up the store at ``root`` with its database into the new directory ``dest``."""
    root = Path(root).absolute()
    dest = Path(dest).expanduser().absolute()
    kind = database_kind(database_url)
    _check_destination(dest, root)
    # Stage beside dest (one atomic rename at the end); inside it when dest is an existing empty directory.
    holder = dest if dest.exists() else dest.parent
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.incomplete-", dir=holder))
    try:
        (staging / "database").mkdir()
        (staging / "files").mkdir()
        # Database first, files after: a file finished meanwhile is a harmless extra; a row without its file would
        # be worse, and uploads finishing during a backup are far more common than deletions.
        skip: set[Path] = set()
        if kind == "sqlite":
            db_file = sqlite_path(database_url)
            live = [db_file, *(db_file.with_name(db_file.name + s) for s in SQLITE_SIDE_FILES)]
            skip = set(live) | {p.resolve() for p in live}
            dump_rel = SQLITE_DUMP
            revision: str | None = _backup_sqlite(db_file, staging / dump_rel)
        else:
            dump_rel = PG_DUMP
            revision = _sql_revision(database_url)
            if revision is None:
                raise BackupError("the database has no Flow schema (no alembic_version table); nothing to back up")
            conn = PgConnection.from_url(database_url)
            try:
                run(pg_dump_argv(conn, staging / dump_rel), env=conn.env(), timeout=PG_TIMEOUT)
            except CommandError as exc:
                raise BackupError(f"pg_dump {exc.summary()}") from None
        dump_size, dump_sha = _sha256(staging / dump_rel)

        entries: list[dict[str, Any]] = []
        total = 0
        for rel, path in _walk(root, skip):
            out = staging / "files" / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                entries.append({"path": rel, "symlink": _link_target(path, root)})
                continue
            try:
                size, sha = _copy_hashing(path, out)
            except FileNotFoundError:  # deleted by the running server after it was listed: not part of the store
                out.unlink(missing_ok=True)
                continue
            entries.append({"path": rel, "size": size, "sha256": sha})
            total += size
        entries.sort(key=lambda e: e["path"])

        files = sum(1 for e in entries if "sha256" in e)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "flow_jupyter_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "database": {"kind": kind, "revision": revision, "path": dump_rel, "size": dump_size,
                         "sha256": dump_sha},
            "areas": list(BACKED_UP_AREAS),
            "totals": {"files": files, "bytes": total},
            "files": entries,
        }
        with open(staging / MANIFEST, "x", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)  # ASCII-escaped: file names that are not valid UTF-8 survive
            f.flush()
            os.fsync(f.fileno())
        _finish(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Summary(dest, files, total + dump_size, kind, revision)


def _backup_sqlite(db_file: Path, out: Path) -> str:
    """SQLite's online backup API: a consistent snapshot even while the server writes (WAL readers never block
    writers). The copy is switched to a rollback journal so it is one self-contained file."""
    if not db_file.is_file():
        raise BackupError(f"no SQLite database at {db_file}")
    src = _connect_sqlite(db_file)
    dst = sqlite3.connect(out)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        if (check := dst.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
            raise BackupError(f"the database copy fails SQLite's quick_check: {check}")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from None
    finally:
        dst.close()
        src.close()
    revision = _sqlite_revision(out)
    if revision is None:
        raise BackupError("the database has no Flow schema (no alembic_version table); nothing to back up")
    return revision


# --- restore ----------------------------------------------------------------------------------------------------


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of a complete backup, checked for shape; a directory without one is an unfinished backup."""
    path = Path(src) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{src} is not a complete Flow backup (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{path} is not a Flow backup manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BackupError(f"backup format version {manifest.get('format_version')} is not supported "
                              f"by flow_jupyter {__version__} (it reads version {FORMAT_VERSION})")
        db = manifest["database"]
        if db["kind"] not in ("sqlite", "postgresql") or db["path"] not in (SQLITE_DUMP, PG_DUMP):
            raise BackupError(f"{path} describes an unknown database dump")
        for entry in manifest["files"]:
            _safe_relative(entry["path"])
            if "symlink" in entry and (not isinstance(entry["symlink"], str) or "\x00" in entry["symlink"]):
                raise BackupError(f"{path} has an invalid symlink entry")
            if "symlink" not in entry and not (isinstance(entry["size"], int) and isinstance(entry["sha256"], str)):
                raise BackupError(f"{path} has a file entry without size or sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"{path} is damaged or not a Flow backup manifest ({type(exc).__name__})") from None
    return manifest


def verify_backup(src: Path, manifest: dict[str, Any]) -> None:
    """Check the dump and every file against the manifest (size and sha256); raise naming the first damage."""
    src = Path(src)
    expected = [(manifest["database"]["path"], manifest["database"]["size"], manifest["database"]["sha256"])]
    expected += [(e["path"], e["size"], e["sha256"]) for e in manifest["files"] if "symlink" not in e]
    damaged: list[str] = []
    for rel, size, sha in expected:
        path = src / rel if rel in (SQLITE_DUMP, PG_DUMP) else src / "files" / rel
        if path.is_symlink() or not path.is_file():
            damaged.append(f"{rel} is missing")
        elif path.stat().st_size != size or _sha256(path) != (size, sha):
            damaged.append(f"{rel} does not match its sha256 in the manifest")
    if damaged:
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise BackupError(f"backup {src} is damaged: {damaged[0]}{more}; nothing was restored")


def _check_revision_known(revision: str | None, url: str) -> None:
    """Refuse a backup whose schema is newer than this flow_jupyter knows how to run."""
    from alembic.script import ScriptDirectory

    from .db.database import alembic_config

    if revision is None:
        return
    scripts = ScriptDirectory.from_config(alembic_config(url))
    for rev in revision.split(","):
        try:
            scripts.get_revision(rev)
        except Exception:
            raise BackupError(f"the backup's schema revision {rev} is unknown to flow_jupyter {__version__}; "
                              "restore it with the version that made it or a newer one") from None


def _root_leftovers(root: Path, allowed: set[Path]) -> list[Path]:
    """Files (and symlinks) under ``root`` other than ``allowed``: empty directories do not count."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise BackupError(f"target root {root} exists and is not a directory")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath) / name
            if path not in allowed:
                found.append(path)
    return found


class _Undo:
    """What a restore created, so a failure half-way leaves the (previously empty) target as it found it."""

    def __init__(self) -> None:
        self.created: list[Path] = []

    def makedirs(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir()
            self.created.append(d)

    def rollback(self) -> None:
        for path in reversed(self.created):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except OSError:
                pass


def restore_backup(src: Path, root: Path, database_url: str) -> Summary:
    """Restore the backup ``src`` into an empty ``root`` and an empty database, then migrate it to the newest
    schema. Every check (kinds, emptiness, checksums) runs before the first byte is written."""
    from .db.database import Database
    from .db.models import Upload, UploadState

    src = Path(src).expanduser().absolute()
    root = Path(root).absolute()
    manifest = read_manifest(src)
    kind = database_kind(database_url)
    source_kind = manifest["database"]["kind"]
    if source_kind != kind:
        raise BackupError(f"the backup holds a {source_kind} database but the target is {kind}; "
                          f"restore into a {source_kind} database")
    _check_revision_known(manifest["database"]["revision"], database_url)
    allowed: set[Path] = set()
    if kind == "sqlite":
        db_file = sqlite_path(database_url)
        allowed = {db_file} | {db_file.with_name(db_file.name + s) for s in SQLITE_SIDE_FILES}
    if leftovers := _root_leftovers(root, allowed):
        raise BackupError(f"target root {root} is not empty ({leftovers[0].relative_to(root)} and "
                          f"{len(leftovers) - 1} more); restore only into an empty root")
    if not database_is_empty(database_url):
        raise BackupError("the target database is not empty; restore only into a database without tables")
    verify_backup(src, manifest)

    undo = _Undo()
    total = 0
    files = 0
    try:
        undo.makedirs(root)
        for entry in manifest["files"]:
            rel = _safe_relative(entry["path"])
            target = root.joinpath(*rel.parts)
            undo.makedirs(target.parent)
            if "symlink" in entry:
                os.symlink(entry["symlink"], target)
                undo.created.append(target)
                continue
            size, sha = _copy_hashing(src / "files" / rel, target)
            undo.created.append(target)
            if (size, sha) != (entry["size"], entry["sha256"]):
                raise BackupError(f"{rel} changed while it was being restored; nothing was kept")
            total += size
            files += 1
        dump = src / manifest["database"]["path"]
        if kind == "sqlite":
            _restore_sqlite(dump, sqlite_path(database_url), manifest["database"]["sha256"], undo)
        else:
            conn = PgConnection.from_url(database_url)
            try:
                run(pg_restore_argv(conn, dump), env=conn.env(), timeout=PG_TIMEOUT)
            except CommandError as exc:
                raise BackupError(f"pg_restore {exc.summary()}; nothing was kept") from None
    except BaseException:
        undo.rollback()
        raise

    notes: list[str] = []
    database = Database(database_url)
    try:
        database.migrate()
        # Their bytes were not backed up; resuming them would append to nothing and corrupt the file.
        with database.session() as session:
            expired = cast(CursorResult, session.execute(
                update(Upload).where(Upload.state == UploadState.active).values(state=UploadState.expired)
            )).rowcount
        if expired:
            notes.append(f"{expired} unfinished upload(s) marked expired (their bytes are not in backups)")
        shas = {entry["path"]: entry["sha256"] for entry in manifest["files"] if "sha256" in entry}
        with database.session() as session:
            _refresh_file_identities(session, root, shas)
    except SQLAlchemyError as exc:
        raise BackupError(f"restored, but migrating the database failed: {_first_line(exc)}") from None
    finally:
        database.dispose()
    revision = _sqlite_revision(sqlite_path(database_url)) if kind == "sqlite" else _sql_revision(database_url)
    before = manifest["database"]["revision"]
    if before != revision:
        notes.append(f"schema migrated from revision {before} to {revision}")
    return Summary(root, files, total + manifest["database"]["size"], kind, revision, tuple(notes))


def _refresh_file_identities(session: Any, root: Path, shas: dict[str, str]) -> None:
    """Restored bytes are new files (new inodes): record their identity again, so that they are served — but only
    for data files whose restored bytes are proven to be the registered ones (manifest sha256 = row sha256)."""
    from .data.safeopen import signed64
    from .db.models import DataFile

    for datafile in session.scalars(select(DataFile).where(DataFile.stat_inode.is_not(None)).execution_options(
            yield_per=1000)):
        if shas.get(datafile.storage_path) != datafile.sha256:
            continue
        try:
            info = os.stat(root / datafile.storage_path, follow_symlinks=False)
        except OSError:
            continue
        datafile.stat_inode, datafile.stat_mtime_ns = signed64(info.st_ino), info.st_mtime_ns


def _restore_sqlite(dump: Path, db_file: Path, sha: str, undo: _Undo) -> None:
    """Copy the backed-up SQLite file into place under a temporary name, then rename it over the (empty) target;
    a stale -wal/-shm of the empty target would otherwise be replayed into the restored file."""
    undo.makedirs(db_file.parent)
    staged = db_file.with_name(f".{db_file.name}.restoring")
    staged.unlink(missing_ok=True)  # left by an earlier crashed restore
    _size, copied = _copy_hashing(dump, staged)
    undo.created.append(staged)
    if copied != sha:
        raise BackupError("the database dump changed while it was being restored; nothing was kept")
    try:
        con = _connect_sqlite(staged)
        try:
            check = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the backed-up SQLite database cannot be read: {exc}; nothing was kept") from None
    if check != "ok":
        raise BackupError(f"the backed-up SQLite database fails quick_check: {check}; nothing was kept")
    for suffix in SQLITE_SIDE_FILES:
        db_file.with_name(db_file.name + suffix).unlink(missing_ok=True)
    existed = db_file.exists()
    fsutil.replace(staged, db_file)
    undo.created.remove(staged)
    if not existed:
        undo.created.append(db_file)
