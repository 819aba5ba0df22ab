"""Deferred zips: a bulk download built as a background job into ``zips/``, picked up later, expired after a while.

The job is a BackgroundJob row (kind ``zip``): created after the same checks as a streamed zip, built on a small pool
of its own (rights checked again, as the owner, at build time), written beside its final name and renamed into
place, so a half-built file is never served. A job is its owner's (`permissions.require_job`); `job_json` is its
public view.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import fsutil, permissions
from ..db.models import BackgroundJob, JobStatus, utcnow
from ..errors import FlowError, not_found
from ..identity import Actor
from .downloads import BULK_ZIP_NAME, zip_plan_for_files
from .refs import owner
from .storage import Storage
from .streaming import Servable, etag_for
from .zipstream import write_zip

log = logging.getLogger(__name__)

ZIP_KIND = "zip"
ZIP_AREA = "zips"

# A small pool of its own: long zip builds must not take the default executor's threads, which serve every
# database call (FlowHost.call). Jobs beyond its size wait as "pending".
_ZIP_JOBS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flow-zip-job")
_RUNNING: set[asyncio.Future[Any]] = set()


def zip_path(storage: Storage, job_id: int) -> Path:
    """Where a job's zip lives; made from the job id, never from stored or client text."""
    return storage.resolve(f"{ZIP_AREA}/{int(job_id)}.zip")


def _partial_path(storage: Storage, job_id: int) -> Path:
    return storage.resolve(f"{ZIP_AREA}/.{int(job_id)}.zip.partial")


def create_zip_job(session: Session, actor: Actor, storage: Storage, ids: Sequence[int]) -> int:
    """Check the request exactly as a streamed zip would, then queue it as a BackgroundJob of kind "zip"."""
    plan = zip_plan_for_files(session, actor, storage, ids)
    job = BackgroundJob(kind=ZIP_KIND, owner_id=actor.user_id, status=JobStatus.pending,
                        args={"files": list(dict.fromkeys(int(i) for i in ids)), "filename": plan.filename})
    session.add(job)
    session.flush()
    return job.id


def start_zip_job(host: Any, job_id: int) -> asyncio.Future[Any]:
    """Build the job's zip on the zip worker pool; the row records progress, so nobody needs to await this."""
    future = asyncio.get_running_loop().run_in_executor(_ZIP_JOBS, build_zip_job, host, job_id)
    _RUNNING.add(future)
    future.add_done_callback(_RUNNING.discard)
    return future


class _HashingSink:
    """Write-only, non-seekable file wrapper that hashes as it goes (zipfile then writes strictly forward)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data) or len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()


def _finish_job(host: Any, job_id: int, status: JobStatus, result: dict | None, error: str | None) -> None:
    with host.db.session() as session:
        job = session.get(BackgroundJob, job_id)
        if job is not None:
            job.status, job.result, job.error, job.finished_at = status, result, error, utcnow()


def build_zip_job(host: Any, job_id: int) -> None:
    """Run one deferred zip job to the end (blocking). Rights are checked again, as the owner, at build time; the
    zip is written beside its final name and renamed into place, so a half-built file is never served."""
    with host.db.session() as session:
        claimed = session.execute(
            update(BackgroundJob)
            .where(BackgroundJob.id == job_id, BackgroundJob.kind == ZIP_KIND,
                   BackgroundJob.status == JobStatus.pending)
            .values(status=JobStatus.running, started_at=utcnow())
        ).rowcount
    if not claimed:
        return  # someone else runs it, or it is not a pending zip job
    partial = _partial_path(host.storage, job_id)
    try:
        with host.db.session() as session:
            job = session.get_one(BackgroundJob, job_id)
            actor = permissions.actor_for_owner(session, job.owner_id)
            plan = zip_plan_for_files(session, actor, host.storage, job.args["files"])
        with open(partial, "wb") as raw:
            sink = _HashingSink(raw)
            write_zip(sink, plan.entries)
            raw.flush()
            os.fsync(raw.fileno())
        fsutil.replace(partial, zip_path(host.storage, job_id))
        result = {"filename": job.args.get("filename") or plan.filename, "size": sink.size,
                  "sha256": sink.sha256.hexdigest(), "files": len(plan.entries)}
        _finish_job(host, job_id, JobStatus.succeeded, result, None)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, FlowError):
            message = exc.message + (f" ({exc.field})" if exc.field else "")
        else:
            log.exception("Flow: zip job %s failed", job_id)
            message = "Building the zip failed; see the server log."
        _finish_job(host, job_id, JobStatus.failed, None, message)


def job_json(job: BackgroundJob) -> dict[str, Any]:
    result = dict(job.result) if job.result else None
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status.value,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "result": result,
        "error": job.error,
    }


def get_job(session: Session, actor: Actor, job_id: int) -> dict[str, Any]:
    job = permissions.require_job(session, actor, job_id)
    return {**job_json(job), **owner(session, job.owner_id)}


def job_servable(session: Session, actor: Actor, storage: Storage, job_id: int) -> Servable:
    """The finished zip of the caller's own job; 409 while it is not built, 410 once expired."""
    job = permissions.require_job(session, actor, job_id)
    if job.kind != ZIP_KIND:
        raise not_found("job")
    if job.status in (JobStatus.pending, JobStatus.running):
        raise FlowError(409, "job_not_ready", f"The zip is still being built (status {job.status.value}).")
    if job.status == JobStatus.failed:
        raise FlowError(409, "job_failed", f"The zip could not be built: {job.error}")
    result = job.result or {}
    if result.get("expired"):
        raise FlowError(410, "zip_expired", "This zip has expired; ask for a new one.")
    return Servable(zip_path(storage, job.id), result.get("filename") or BULK_ZIP_NAME, etag_for(result["sha256"]))


_ZIP_FILE = re.compile(r"^\.?(\d+)\.zip(\.partial)?$")


def expire_zips(host: Any, max_age_seconds: float) -> int:
    """Delete deferred zips finished more than ``max_age_seconds`` ago (their jobs are marked expired), and
    leftovers in zips/ of that age that no pending or running job owns. Returns how many files were removed.
    Blocking: run it on a worker thread."""
    cutoff = utcnow() - timedelta(seconds=max_age_seconds)
    removed = 0
    with host.db.session() as session:
        jobs = session.scalars(select(BackgroundJob).where(
            BackgroundJob.kind == ZIP_KIND, BackgroundJob.status == JobStatus.succeeded,
            BackgroundJob.finished_at <= cutoff)).all()
        for job in jobs:
            if (job.result or {}).get("expired"):
                continue
            path = zip_path(host.storage, job.id)
            if path.exists():
                path.unlink()
                removed += 1
            job.result = {**(job.result or {}), "expired": True}
        # Files of jobs still building or still available are never swept, whatever their age.
        keep = {job_id for job_id, status, result in session.execute(
            select(BackgroundJob.id, BackgroundJob.status, BackgroundJob.result).where(
                BackgroundJob.kind == ZIP_KIND, BackgroundJob.status != JobStatus.failed))
            if status != JobStatus.succeeded or not (result or {}).get("expired")}
    with os.scandir(host.storage.resolve(ZIP_AREA)) as entries:
        leftovers = [e for e in entries if (m := _ZIP_FILE.match(e.name)) and int(m.group(1)) not in keep
                     and e.is_file(follow_symlinks=False)]
    for entry in leftovers:
        if datetime.fromtimestamp(entry.stat(follow_symlinks=False).st_mtime, timezone.utc) <= cutoff:
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


__all__ = ["ZIP_AREA", "ZIP_KIND", "build_zip_job", "create_zip_job", "expire_zips", "get_job", "job_json",
           "job_servable", "start_zip_job", "zip_path"]
