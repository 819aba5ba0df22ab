"""Registering what a run published as data files whose bytes can no longer change.

A run directory belongs to the pipeline: a later resume publishes into it again (Nextflow replaces the files), and
its tasks can write or plant links anywhere in it. So an output's bytes are not served from there. At registration
the published file (a published symlink counts as the file it points to, when that is inside the run directory)
is opened without following links, hashed, and hard-linked into Flow's store (``outputs/…``; copied when the store
is on another filesystem). Nextflow replacing the published file later leaves the stored link alone, and a file
that then turns up changed is registered as a new data file naming the one it replaces. Files published outside
the run directory, and links that leave it, are not registered (and logged).
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session

from ..data.files import register_file
from ..data.safeopen import open_beneath, relative_inside
from ..data.storage import Storage
from ..db.models import DataFile, Execution, Origin
from ..fsutil import hash_stream
from .outputs import expand_published

log = logging.getLogger(__name__)


def _previous(session: Session, storage: Storage, execution: Execution, run_path: str) -> DataFile | None:
    """The newest data file registered for this run-directory path by any execution of the directory (a resume
    shares it); files registered before run_path was recorded are found by their old storage path."""
    same_dir = select(Execution.id).where(Execution.run_dir == execution.run_dir)
    legacy = f"{execution.run_dir}/{run_path}"
    return session.scalars(
        select(DataFile).where(DataFile.execution_id.in_(same_dir),
                               or_(DataFile.run_path == run_path, DataFile.storage_path == legacy))
        .order_by(DataFile.id.desc()).limit(1)).first()


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
        digest, size = hash_stream(source)
        return digest.hexdigest(), size
    with open(target, "xb") as out:
        digest, size = hash_stream(source, copy_to=out)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


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


def published_files(run_dir: Path, destinations: list[str]) -> list[tuple[str, str]]:
    """(published run path, real run path) of each regular file published under ``run_dir``: a file as it is, a
    directory as the files in it (bounded); a link counts as its target when that stays in the run directory."""
    found: list[tuple[str, str]] = []
    for destination in destinations:
        published = _lexical(run_dir, destination)
        if published is None:
            continue
        for real in expand_published(run_dir, [str(run_dir / published)]):
            real_rel = relative_inside(run_dir, real)
            base = Path(os.path.realpath(run_dir / published))
            inner = relative_inside(base, real) if base != real else None
            if real_rel is not None:
                found.append((published if inner is None else f"{published}/{inner}", real_rel))
    return found


def register_published(session: Session, storage: Storage, execution: Execution,
                       destinations: list[str]) -> list[DataFile]:
    """Output data files for what ``execution`` published (once each; a changed re-publish as a new version)."""
    run_dir = storage.resolve(execution.run_dir)
    registered: list[DataFile] = []
    for run_path, real_path in published_files(run_dir, destinations):
        path = run_dir / run_path
        try:
            source, _info = open_beneath(run_dir, real_path)
        except OSError as exc:
            log.warning("Flow: not registering %s of execution %s: %s", run_path, execution.uuid, exc)
            continue
        with source:
            relative = storage.new_relative_path(path.name, area="outputs")
            target = storage.resolve(relative)
            digest, size = _store(source, run_dir / real_path, target)
        previous = _previous(session, storage, execution, run_path)
        if previous is not None and previous.sha256 == digest and previous.size == size:
            target.unlink(missing_ok=True)  # published again unchanged (a resume): nothing new
            shutil.rmtree(target.parent, ignore_errors=True)
            continue
        event.listen(session, "after_rollback", lambda _s, t=target: t.unlink(missing_ok=True), once=True)
        registered.append(register_file(
            session, owner_id=execution.owner_id, project_id=execution.project_id, sample_id=None,
            filename=path.name, storage_path=relative, size=size, sha256=digest, origin=Origin.output,
            execution_id=execution.id, stored=os.stat(target), run_path=run_path,
            replaces_id=previous.id if previous is not None else None))
    return registered
