"""Deferred zips: a bulk download built as a background job into ``zips/``, picked up later, expired after a while.

The job is a BackgroundJob row (kind ``zip``), created after the same checks as a streamed zip. It is durable: the
host's zip `JobRunner` (jobs.py) claims it with a lease and builds it on the host's "zip" pool; a job whose host
crashed or stalled is claimed again and rebuilt from scratch. The build checks rights again, as the owner, writes
into a partial file of its own beside the final name (``.<id>.zip.<attempt>.partial``, so two attempts never share a
file) and the rename into place happens in the transaction that records success, only while the claim is held: a
half-built file is never served, and a host that lost its claim never replaces the zip another built. A job is its
owner's (`permissions.require_job`); `job_json` is its public view.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import fsutil, jobs, permissions
from ..db.models import BackgroundJob, JobStatus, utcnow
from ..errors import FlowError, not_found
from ..identity import Actor
from .downloads import BULK_ZIP_NAME, zip_plan_for_files
from .refs import owner
from .storage import Storage
from .streaming import Servable, etag_for
from .zipstream import write_zip

if TYPE_CHECKING:
    from ..config import FlowSettings

log = logging.getLogger(__name__)

ZIP_KIND = "zip"
ZIP_AREA = "zips"
#: The host's periodic task that claims and builds zip jobs (`jobs.JobRunner.name`).
ZIP_TASK = f"{ZIP_KIND}-jobs"
_FINAL = re.compile(r"^(\d+)\.zip$")
_PARTIAL = re.compile(r"^\.(\d+)\.zip(?:\.[0-9a-f]+)?\.partial$")  # with or without the attempt's token


def zip_path(storage: Storage, job_id: int) -> Path:
    """Where a job's zip lives; made from the job id, never from stored or client text."""
    return storage.resolve(f"{ZIP_AREA}/{int(job_id)}.zip")


def _partial_path(storage: Storage, job_id: int) -> Path:
    """A new attempt's partial file: its own name, so a stalled attempt never writes into a newer one's file."""
    return storage.resolve(f"{ZIP_AREA}/.{int(job_id)}.zip.{secrets.token_hex(4)}.partial")


def _zip_file_job(name: str) -> int | None:
    """The job a file in zips/ belongs to (its final zip or an attempt's partial), None for anything else."""
    match = _FINAL.match(name) or _PARTIAL.match(name)
    return int(match.group(1)) if match else None


def _remove_partials(storage: Storage, job_id: int) -> None:
    """What earlier attempts at this job left behind (a crash mid-build): the new attempt starts from scratch."""
    with os.scandir(storage.resolve(ZIP_AREA)) as entries:
        stale = [entry.path for entry in entries
                 if (match := _PARTIAL.match(entry.name)) and int(match.group(1)) == job_id]
    for path in stale:
        Path(path).unlink(missing_ok=True)


def create_zip_job(session: Session, actor: Actor, storage: Storage, ids: Sequence[int]) -> int:
    """Check the request exactly as a streamed zip would, then queue it as a BackgroundJob of kind "zip"."""
    plan = zip_plan_for_files(session, actor, storage, ids)
    job = BackgroundJob(kind=ZIP_KIND, owner_id=actor.user_id, status=JobStatus.pending,
                        args={"files": list(dict.fromkeys(int(i) for i in ids)), "filename": plan.filename})
    session.add(job)
    session.flush()
    return job.id


def zip_job_runner(settings: FlowSettings) -> jobs.JobRunner:
    """The host's runner of zip jobs (started by `FlowHost.start_background_work` as the periodic task ZIP_TASK)."""
    return jobs.JobRunner(ZIP_KIND, build_zip_job, workers=settings.zip_workers, max_attempts=settings.zip_attempts,
                          failure_message="Building the zip failed; see the server log.")


def wake_zip_jobs(host: Any) -> None:
    """A zip job was just created: let this host claim it now rather than at the runner's next round."""
    jobs.wake(host, ZIP_TASK)


class _HashingSink:
    """Write-only, non-seekable file wrapper that hashes as it goes (zipfile then writes strictly forward)."""

    def __init__(self, raw: BinaryIO, stop: threading.Event):
        self.raw = raw
        self.stop = stop
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        if self.stop.is_set():
            raise jobs.Abandoned()
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data) or len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()


def build_zip_job(host: Any, job_id: int, stop: threading.Event) -> jobs.Built:
    """Build the zip of a job this host has claimed (blocking, on the zip pool; `jobs.JobRunner` calls it).

    Starts from scratch (partial files of earlier attempts are removed), checks rights again as the owner, writes
    and fsyncs a partial file of its own and hands back the rename into place, which the runner does only while
    it still holds the claim. Raises jobs.Abandoned between chunks once ``stop`` is set."""
    _remove_partials(host.storage, job_id)
    with host.db.session() as session:
        job = session.get_one(BackgroundJob, job_id)
        actor = permissions.actor_for_owner(session, job.owner_id)
        plan = zip_plan_for_files(session, actor, host.storage, job.args["files"])
        filename = job.args.get("filename") or plan.filename
    partial = _partial_path(host.storage, job_id)
    try:
        with open(partial, "xb") as raw:
            sink = _HashingSink(raw, stop)
            write_zip(sink, plan.entries)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    result = {"filename": filename, "size": sink.size, "sha256": sink.sha256.hexdigest(), "files": len(plan.entries)}
    return jobs.Built(result, publish=lambda: fsutil.replace(partial, zip_path(host.storage, job_id)),
                      discard=lambda: partial.unlink(missing_ok=True))


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


def _unlink(path: str | os.PathLike[str]) -> bool:
    """Remove a file; False if it was gone already (another replica's clean-up removed it first)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def expire_zips(host: Any, max_age_seconds: float) -> int:
    """Delete deferred zips finished more than ``max_age_seconds`` ago (their jobs are marked expired), and
    leftovers in zips/ of that age that no pending, running or available job owns. Returns how many files this
    call removed. Blocking: run it on a worker thread.

    Safe to run on several replicas at once (no lease, see jobs.py): marking a job expired twice writes the same
    value, a file another replica removed first is skipped and not counted, and a building job's files are kept."""
    cutoff = utcnow() - timedelta(seconds=max_age_seconds)
    removed = 0
    host.ensure_schema()
    with host.db.session() as session:
        finished = session.scalars(select(BackgroundJob).where(
            BackgroundJob.kind == ZIP_KIND, BackgroundJob.status == JobStatus.succeeded,
            BackgroundJob.finished_at <= cutoff)).all()
        for job in finished:
            if (job.result or {}).get("expired"):
                continue
            removed += _unlink(zip_path(host.storage, job.id))
            job.result = {**(job.result or {}), "expired": True}
        # Files of jobs waiting, building or still available are never swept, whatever their age.
        keep = {job_id for job_id, status, result in session.execute(
            select(BackgroundJob.id, BackgroundJob.status, BackgroundJob.result).where(
                BackgroundJob.kind == ZIP_KIND, BackgroundJob.status != JobStatus.failed))
            if status != JobStatus.succeeded or not (result or {}).get("expired")}
    with os.scandir(host.storage.resolve(ZIP_AREA)) as entries:
        leftovers = [entry for entry in entries if (job_id := _zip_file_job(entry.name)) is not None
                     and job_id not in keep and entry.is_file(follow_symlinks=False)]
    for entry in leftovers:
        try:
            modified = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if datetime.fromtimestamp(modified, timezone.utc) <= cutoff:
            removed += _unlink(entry.path)
    return removed


__all__ = ["ZIP_AREA", "ZIP_KIND", "ZIP_TASK", "build_zip_job", "create_zip_job", "expire_zips", "get_job",
           "job_json", "job_servable", "wake_zip_jobs", "zip_job_runner", "zip_path"]
