"""Registering what a run published as data files whose bytes can no longer change.

A run directory belongs to the pipeline: a later resume publishes into it again (Nextflow replaces the files), and
its tasks can write or plant links anywhere in it. So an output's bytes are not served from there. At registration
the published file (a published symlink counts as the file it points to, when that is inside the run directory)
is opened without following links, hashed, and hard-linked into Flow's store (``outputs/…``; copied when the store
is on another filesystem). Nextflow replacing the published file later leaves the stored link alone, and a file
that then turns up changed is registered as a new data file naming the one it replaces. Files published outside
the run directory, and links that leave it, are not registered (and logged).

Registration is two halves, so that reading a multi-GB output never holds a write transaction (on SQLite: the whole
database's write lock) or the manager's thread: :func:`hash_published` is filesystem work only — confine, stat,
store and sha256 each file, no session — and runs on the host's bounded ``hash`` pool; :func:`register_hashed`
then writes the rows in a short transaction, only stat-ing the stored bytes to confirm they are the ones hashed.
A file still being written while it is read (its stat differs before and after) is reported not yet stable and
left for a later round.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session

from ..data.files import register_file
from ..data.safeopen import open_beneath, relative_inside, signed64
from ..data.storage import Storage
from ..db.models import DataFile, Execution, Origin
from ..fsutil import hash_stream
from .outputs import expand_published

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileIdentity:
    """Which bytes a name held: the same device, inode, size and mtime means nobody wrote to or swapped them.
    (ctime is left out on purpose: hard-linking the file into the store changes it.)"""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileIdentity:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class Known(Protocol):
    """What an earlier round knew of a published file: a :class:`HashedOutput` or a :class:`Seen`."""

    @property
    def size(self) -> int: ...

    @property
    def mtime_ns(self) -> int | None: ...

    @property
    def inode(self) -> int | None: ...


@dataclass(frozen=True)
class Seen:
    """A published file as an already registered data file recorded it (see :func:`registered_outputs`)."""

    size: int
    mtime_ns: int | None
    inode: int | None


@dataclass(frozen=True)
class HashedOutput:
    """One published file after :func:`hash_published`: where the run published it, the identity of the bytes that
    were read, their checksum and where their copy in Flow's store is.

    ``sha256`` (and ``stored``) are None when the file changed while it was read: it is not yet stable, nothing of
    it was kept, and its ``destination`` should be hashed again in a later round."""

    destination: str  #: as the run's publish event named it (what the manager waits on)
    run_path: str  #: the published path, relative to the run directory
    real_path: str  #: the regular file it stands for (a published link's target), relative to the run directory
    source: FileIdentity  #: the run directory's file as it was read
    sha256: str | None
    stored: str | None = None  #: storage-relative path of the bytes put in Flow's store
    stored_identity: FileIdentity | None = None  #: those stored bytes as they were right after hashing

    @property
    def stable(self) -> bool:
        return self.sha256 is not None

    @property
    def size(self) -> int:
        return self.source.size

    @property
    def mtime_ns(self) -> int:
        return self.source.mtime_ns

    @property
    def inode(self) -> int:
        return self.source.inode

    @property
    def filename(self) -> str:
        return Path(self.run_path).name


def _previous(session: Session, execution: Execution, run_path: str) -> DataFile | None:
    """The newest data file registered for this run-directory path by any execution of the directory (a resume
    shares it); files registered before run_path was recorded are found by their old storage path."""
    same_dir = select(Execution.id).where(Execution.run_dir == execution.run_dir)
    legacy = f"{execution.run_dir}/{run_path}"
    return session.scalars(
        select(DataFile).where(DataFile.execution_id.in_(same_dir),
                               or_(DataFile.run_path == run_path, DataFile.storage_path == legacy))
        .order_by(DataFile.id.desc()).limit(1)).first()


#: Large reads: sha256 releases the GIL per call, so few big calls let a hash thread keep pace beside busy Python
#: threads (1 MiB pieces made a 2 GiB output take several times longer next to the manager's other work).
HASH_CHUNK = 16 << 20


def _store(source: Any, source_path: Path, target: Path) -> tuple[str, int]:
    """Put the opened file's bytes at ``target`` (a hard link, else a copy) and return (sha256, size)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    linked = False
    try:
        os.link(source_path, target, follow_symlinks=False)
        mine, theirs = os.fstat(source.fileno()), os.stat(target, follow_symlinks=False)
        linked = (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
        if not linked:  # the name was swapped between open and link: keep what was opened
            target.unlink()
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise
    if linked:
        digest, size = hash_stream(source, chunk=HASH_CHUNK)
        return digest.hexdigest(), size
    with open(target, "xb") as out:
        digest, size = hash_stream(source, copy_to=out, chunk=HASH_CHUNK)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _discard(target: Path) -> None:
    """Remove stored bytes nobody will register, with the directory ``new_relative_path`` made for them."""
    target.unlink(missing_ok=True)
    shutil.rmtree(target.parent, ignore_errors=True)


def _lexical(run_dir: Path, destination: str) -> str | None:
    """Where the run published a file, relative to the run directory, as the pipeline named it (the last component
    is kept even when it is a link: publishDir's default mode publishes links into the work directory)."""
    if not destination:
        return None
    path = Path(os.path.normpath(destination))
    inside = relative_inside(run_dir, path)
    if inside is None:  # the run directory reached through a link in its ancestors
        inside = relative_inside(run_dir, Path(os.path.realpath(path.parent)) / path.name)
    return inside


def _published(run_dir: Path, destination: str) -> Iterator[tuple[str, str]]:
    """(published run path, real run path) of each regular file one destination stands for."""
    published = _lexical(run_dir, destination)
    if published is None:
        return
    for real in expand_published(run_dir, [str(run_dir / published)]):
        real_rel = relative_inside(run_dir, real)
        base = Path(os.path.realpath(run_dir / published))
        inner = relative_inside(base, real) if base != real else None
        if real_rel is not None:
            yield (published if inner is None else f"{published}/{inner}", real_rel)


def published_files(run_dir: Path, destinations: list[str]) -> list[tuple[str, str]]:
    """(published run path, real run path) of each regular file published under ``run_dir``: a file as it is, a
    directory as the files in it (bounded); a link counts as its target when that stays in the run directory."""
    return [pair for destination in destinations for pair in _published(run_dir, destination)]


def _unchanged(known: Known | None, info: os.stat_result) -> bool:
    """The file is still the one an earlier round hashed: same size and mtime (and inode, when that is known)."""
    if known is None or known.mtime_ns is None or (isinstance(known, HashedOutput) and not known.stable):
        return False
    same_inode = known.inode is None or signed64(known.inode) == signed64(info.st_ino)
    return known.size == info.st_size and known.mtime_ns == info.st_mtime_ns and same_inode


def _hash_one(storage: Storage, run_dir: Path, destination: str, run_path: str, real_path: str,
              known: Known | None) -> HashedOutput | None:
    """Store and hash one published file; None when it cannot be read (logged) or is unchanged since ``known``."""
    try:
        source, before = open_beneath(run_dir, real_path)
    except OSError as exc:
        log.warning("Flow: not registering %s published at %s: %s", run_path, run_dir, exc)
        return None
    with source:
        if _unchanged(known, before):
            return None
        relative = storage.new_relative_path(Path(run_path).name, area="outputs")
        target = storage.resolve(relative)
        digest, size = _store(source, run_dir / real_path, target)
        after = os.fstat(source.fileno())
    identity = FileIdentity.of(before)
    if FileIdentity.of(after) != identity or size != before.st_size:
        _discard(target)  # written to while it was read: what was stored is neither the old nor the new file
        return HashedOutput(destination, run_path, real_path, FileIdentity.of(after), None)
    return HashedOutput(destination, run_path, real_path, identity, digest, relative,
                        FileIdentity.of(os.stat(target, follow_symlinks=False)))


def hash_published(storage: Storage, run_dir: Path, destinations: list[str],
                   known: Mapping[str, Known] | None = None) -> list[HashedOutput]:
    """Every regular file the run published under ``run_dir`` stored and hashed (blocking, no database: run it on
    a worker pool, outside any transaction, then pass the result to :func:`register_hashed`).

    Confinement is the same as ever: destinations outside the run directory, and links that leave it, yield
    nothing. A file whose size, mtime (and inode) match ``known[run_path]`` — an earlier round's result, or
    :func:`registered_outputs` — is not read again and is left out: its bytes are registered already. A file that
    changes while it is read comes back with ``stable`` False and nothing stored; hash its destination again later.
    """
    known = known or {}
    hashed: list[HashedOutput] = []
    for destination in destinations:
        for run_path, real_path in _published(run_dir, destination):
            item = _hash_one(storage, run_dir, destination, run_path, real_path, known.get(run_path))
            if item is not None:
                hashed.append(item)
    return hashed


def unstable_destinations(hashed: list[HashedOutput]) -> set[str]:
    """The destinations to hash again in a later round: those with a file that changed while it was read. Every
    other destination handed to :func:`hash_published` is done once its result is registered (including one that
    yielded no file: outside the run directory, gone, or unchanged)."""
    return {item.destination for item in hashed if not item.stable}


def registered_outputs(session: Session, execution: Execution) -> dict[str, Seen]:
    """``known`` for :func:`hash_published` from the database: the identity each run path's newest data file of
    this run directory was registered with (a resume republishing an unchanged hard-linked output is not re-read).
    A read; call it in a short session before hashing."""
    same_dir = select(Execution.id).where(Execution.run_dir == execution.run_dir)
    rows = session.execute(
        select(DataFile.run_path, DataFile.size, DataFile.stat_mtime_ns, DataFile.stat_inode)
        .where(DataFile.execution_id.in_(same_dir), DataFile.run_path.is_not(None))
        .order_by(DataFile.id)).all()
    return {run_path: Seen(size, mtime_ns, inode) for run_path, size, mtime_ns, inode in rows if run_path}


def _register(session: Session, storage: Storage, execution: Execution,
              hashed: list[HashedOutput]) -> list[DataFile]:
    registered: list[DataFile] = []
    for item in hashed:
        if item.sha256 is None or item.stored is None or item.stored_identity is None:
            continue  # not yet stable: a later round hashes it again
        previous = _previous(session, execution, item.run_path)
        if previous is not None and previous.storage_path == item.stored:
            continue  # this very result was registered already (a repeated call must not remove its bytes)
        target = storage.resolve(item.stored)
        try:
            info = os.stat(target, follow_symlinks=False)
        except OSError as exc:
            log.warning("Flow: not registering %s of execution %s: its stored copy is gone (%s)", item.run_path,
                        execution.uuid, exc)
            continue
        if FileIdentity.of(info) != item.stored_identity:
            # A hard link shares the run directory's inode: a task rewrote the published file in place after it
            # was hashed. The checksum no longer describes the bytes, so they are not registered.
            log.warning("Flow: not registering %s of execution %s: it changed after it was hashed", item.run_path,
                        execution.uuid)
            _discard(target)
            continue
        if previous is not None and previous.sha256 == item.sha256 and previous.size == item.size:
            _discard(target)  # published again unchanged (a resume): nothing new
            continue
        event.listen(session, "after_rollback", lambda _s, t=target: t.unlink(missing_ok=True), once=True)
        registered.append(register_file(
            session, owner_id=execution.owner_id, project_id=execution.project_id, sample_id=None,
            filename=item.filename, storage_path=item.stored, size=item.size, sha256=item.sha256,
            origin=Origin.output, execution_id=execution.id, stored=info, run_path=item.run_path,
            replaces_id=previous.id if previous is not None else None))
    return registered


def register_hashed(session: Session, storage: Storage, execution: Execution, hashed: list[HashedOutput]) -> int:
    """Output data-file rows for what :func:`hash_published` found (once each; a changed re-publish as a new version
    naming the one it replaces); returns how many were registered. The short transaction half: it reads no file
    content, it only stats each stored copy to confirm it is still the bytes that were hashed. Unstable items are
    skipped; a stored copy left unregistered (unchanged, or changed since) is removed."""
    return len(_register(session, storage, execution, hashed))


def register_published(session: Session, storage: Storage, execution: Execution,
                       destinations: list[str]) -> list[DataFile]:
    """Output data files for what ``execution`` published: :func:`hash_published` then :func:`register_hashed`.

    For callers that want both at once (tests, scripts). It reads every file while ``session`` may hold a write
    transaction, so the execution manager does not use it: it hashes on the host's ``hash`` pool, outside any
    session, and registers the result in a later, short transaction."""
    hashed = hash_published(storage, storage.resolve(execution.run_dir), destinations)
    return _register(session, storage, execution, hashed)
