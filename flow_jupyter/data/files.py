"""Data files: registration (from uploads and pipeline outputs), listing with filters and keyset paging, rename,
move between projects, delete. Every query is filtered by permissions.visible_datafiles."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .. import permissions
from ..db.models import DataFile, Execution, Origin, Project
from ..errors import bad_request
from ..identity import Actor
from . import refs
from .lookup import sample_in_project, valid_id
from .paging import page, prefix_range
from .safeopen import signed64
from .storage import Storage, safe_filename

# Compound extensions first, so "reads.fastq.gz" is "fastq", not "gz".
FILE_TYPES = [
    (".fastq.gz", "fastq"), (".fq.gz", "fastq"), (".fastq", "fastq"), (".fq", "fastq"),
    (".fasta.gz", "fasta"), (".fa.gz", "fasta"), (".fasta", "fasta"), (".fa", "fasta"), (".fna", "fasta"),
    (".bam", "bam"), (".sam", "sam"), (".cram", "cram"), (".bai", "bai"), (".vcf.gz", "vcf"), (".vcf", "vcf"),
    (".bed", "bed"), (".gtf", "gtf"), (".gff", "gff"), (".gff3", "gff"), (".csv", "csv"), (".tsv", "tsv"),
    (".html", "html"), (".json", "json"), (".yaml", "yaml"), (".yml", "yaml"), (".txt", "text"),
    (".zip", "zip"), (".tar.gz", "archive"), (".gz", "gzip"), (".pdf", "pdf"), (".png", "image"),
]


def file_type(filename: str) -> str:
    lower = filename.lower()
    for suffix, kind in FILE_TYPES:
        if lower.endswith(suffix):
            return kind
    return PurePosixPath(lower).suffix.lstrip(".")[:32]


def register_file(
    session: Session,
    *,
    owner_id: int,
    project_id: int,
    sample_id: int | None,
    filename: str,
    storage_path: str,
    size: int,
    sha256: str,
    origin: Origin = Origin.upload,
    execution_id: int | None = None,
    stored: os.stat_result | None = None,
    run_path: str | None = None,
    replaces_id: int | None = None,
) -> DataFile:
    """Create the DataFile row for bytes already in place under ``storage_path`` (the caller checked rights).

    ``stored`` is the stat of those bytes: their inode and mtime are kept so that serving them later can tell the
    registered bytes from a file swapped or rewritten since (data/safeopen.py). A registered data file never
    changes under its id: a changed output is registered anew, naming the one it ``replaces``."""
    datafile = DataFile(
        owner_id=owner_id, project_id=project_id, sample_id=sample_id, filename=filename,
        file_type=file_type(filename), size=size, sha256=sha256, storage_path=storage_path, origin=origin,
        execution_id=execution_id, run_path=run_path, replaces_id=replaces_id,
        stat_inode=signed64(stored.st_ino) if stored is not None else None,
        stat_mtime_ns=stored.st_mtime_ns if stored is not None else None,
    )
    session.add(datafile)
    session.flush()
    return datafile


def store_bytes(session: Session, storage: Storage, *, owner_id: int, project_id: int, sample_id: int | None,
                filename: str, content: bytes, origin: Origin = Origin.upload) -> DataFile:
    """Write small content Flow made itself (e.g. a saved sample sheet) and register it; the bytes are in place,
    fsynced, before the row exists, and removed again if the transaction does not commit."""
    name = safe_filename(filename)
    relative = storage.new_relative_path(name)
    path = storage.resolve(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
        stored = os.fstat(handle.fileno())
    event.listen(session, "after_rollback", lambda _s: path.unlink(missing_ok=True), once=True)
    return register_file(session, owner_id=owner_id, project_id=project_id, sample_id=sample_id, filename=name,
                         storage_path=relative, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                         origin=origin, stored=stored)


def datafile_json(session: Session, datafile: DataFile) -> dict[str, Any]:
    """The public view of a data file (never its storage path); ``execution`` is the uuid of the run that published
    it, if any."""
    return {
        "id": datafile.id,
        "filename": datafile.filename,
        "type": datafile.file_type,
        "size": datafile.size,
        "sha256": datafile.sha256,
        "project": datafile.project_id,
        "sample": datafile.sample_id,
        **refs.owner(session, datafile.owner_id),
        "origin": datafile.origin.value,
        "execution": refs.execution_uuid(session, datafile.execution_id),
        "replaces": datafile.replaces_id,
        "created_at": datafile.created_at.isoformat(),
    }


def preload_refs(session: Session, datafiles: Sequence[DataFile]) -> None:
    """Owner names and execution uuids of a page of data files, in one query each."""
    refs.preload(session, users=(d.owner_id for d in datafiles), executions=(d.execution_id for d in datafiles))


def datafiles_json(session: Session, datafiles: Sequence[DataFile]) -> list[dict[str, Any]]:
    preload_refs(session, datafiles)
    return [datafile_json(session, datafile) for datafile in datafiles]


def list_files(
    session: Session,
    actor: Actor,
    after: str | None,
    limit: int,
    *,
    project: int | None = None,
    sample: int | None = None,
    name_prefix: str | None = None,
    file_type_: str | None = None,
    execution: str | None = None,
) -> dict[str, Any]:
    """Visible data files, filtered, one keyset page at a time: in id order, or in name order for a name search
    (so the search is one range scan of the (filename, id) index however rare or common the prefix)."""
    query = select(DataFile).where(permissions.visible_datafiles(actor))
    if project is not None:
        query = query.where(DataFile.project_id == valid_id(project, "project", "project"))
    if sample is not None:
        query = query.where(DataFile.sample_id == valid_id(sample, "sample", "sample"))
    if file_type_:
        query = query.where(DataFile.file_type == file_type_)
    if execution:  # the outputs of one run, by the execution's public id
        query = query.where(DataFile.execution_id.in_(select(Execution.id).where(Execution.uuid == execution[:36])))
    render = lambda row: datafile_json(session, row)  # noqa: E731
    prefetch = lambda rows: preload_refs(session, rows)  # noqa: E731
    if name_prefix:
        query = query.where(*prefix_range(DataFile.filename, name_prefix))
        return page(session, query, [DataFile.filename, DataFile.id], after, limit, render,
                    row_key=lambda row: (row.filename, row.id), key_types=(str, int), prefetch=prefetch)
    return page(session, query, [DataFile.id], after, limit, render, prefetch=prefetch)


def get_file(session: Session, actor: Actor, datafile_id: int) -> dict[str, Any]:
    return datafile_json(session, permissions.require_datafile(session, actor, valid_id(datafile_id, "data file"),
                                                               "view"))


def update_file(session: Session, actor: Actor, datafile_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Rename or attach to a sample (edit rights), or move to another project (see permissions: edit on the
    target, and admin power on the file unless the move stays within one owner's projects). Every check runs
    before anything changes."""
    datafile = permissions.require_datafile(session, actor, valid_id(datafile_id, "data file"), "edit")
    name = _new_filename(body["filename"]) if "filename" in body else None
    target = session.get_one(Project, datafile.project_id)
    moving = "project" in body and body["project"] != datafile.project_id
    if moving:
        target = permissions.require_datafile_move(session, actor, datafile,
                                                   valid_id(body["project"], "project", "/project"))
    sample_id = sample_in_project(session, body["sample"], target) if "sample" in body else None
    if name is not None:
        datafile.filename = name
        datafile.file_type = file_type(name)
    if moving:
        datafile.project_id = target.id
        datafile.sample_id = None
    if "sample" in body:
        datafile.sample_id = sample_id
    session.flush()
    return datafile_json(session, datafile)


def _new_filename(raw: str) -> str:
    name = safe_filename(raw, fallback="")
    if not name:
        raise bad_request("That is not a usable file name.", field="/filename")
    return name


def delete_file(session: Session, actor: Actor, datafile_id: int, storage: Storage) -> None:
    """Delete the row (admin power on the file: see permissions); the bytes go only once the deletion commits."""
    datafile = permissions.require_datafile_delete(session, actor, valid_id(datafile_id, "data file"))
    path = storage.resolve(datafile.storage_path)
    from .shares import drop_shares_of

    drop_shares_of(session, "datafile", datafile.id)
    session.delete(datafile)
    event.listen(session, "after_commit", lambda _session: path.unlink(missing_ok=True), once=True)
