"""Resumable uploads (tus 1.0.0) as plain Python, the storage side: upload rows, partial files, chunk writing,
completion into a DataFile, termination, expiry.

The protocol itself (headers, Upload-Metadata, checksums, the offset and length rules, 460) is data/tus.py; the HTTP
layer (api/uploads.py) parses headers with it and streams bodies into a `ChunkWriter`. Every storage rule lives
here, so the periodic expiry job and tests use the same code.

Durability and concurrency rules, in the order they matter:

* The database offset is the truth a client sees. A chunk's bytes are written with ``pwrite`` at that offset,
  fsynced, and only then is the offset advanced — with a conditional UPDATE on the old offset — so an
  acknowledged chunk survives ``kill -9`` and a lost race can never move the offset twice.
* Only the holder of a non-blocking ``fcntl.flock`` on the partial file writes to it (works across processes and
  server replicas sharing the Flow root). The offset is re-read in a fresh transaction *after* the lock is taken,
  so two PATCH requests at the same offset give exactly one 204 and one 409.
* Bytes past the acknowledged offset (a crash between write and commit, a discarded chunk) are truncated away
  before the next write.
* Completion is idempotent: the target path is recorded before the partial file is renamed onto it, and the
  DataFile is created in the same transaction that marks the upload completed, guarded by ``state = active``.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from .. import fsutil, permissions
from ..db.models import DataFile, Sample, Upload, UploadState, User
from ..errors import FlowError, conflict, not_found
from ..identity import Actor, Identity
from ..metrics import UPLOAD_BYTES, UPLOADS_COMPLETED
from ..permissions import require_project
from .files import register_file
from .tus import (
    CHECKSUM_ALGORITHMS,
    NewUpload,
    check_body_length,
    check_offset,
    chunk_checksum_mismatch,
    file_checksum_mismatch,
)

log = logging.getLogger(__name__)

# --- what handlers and tests see ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadView:
    id: str
    owner_id: int
    project_id: int
    sample_id: int | None
    filename: str
    size: int
    offset: int
    state: UploadState
    expires_at: datetime
    tus_metadata: str
    datafile_id: int | None
    sha256: str | None

    @property
    def remaining(self) -> int:
        return self.size - self.offset


def _view(upload: Upload) -> UploadView:
    return UploadView(
        id=upload.id, owner_id=upload.owner_id, project_id=upload.project_id, sample_id=upload.sample_id,
        filename=upload.filename, size=upload.size, offset=upload.offset, state=upload.state,
        expires_at=upload.expires_at.astimezone(timezone.utc), tus_metadata=(upload.meta or {}).get("tus", ""),
        datafile_id=upload.datafile_id, sha256=upload.sha256,
    )


def _upload_id(raw: str) -> str:
    """The canonical form of a client-supplied upload id; 404 (not 400) for anything malformed."""
    try:
        parsed = uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError):
        raise not_found("upload") from None
    if str(parsed) != raw.lower():
        raise not_found("upload")
    return str(parsed)


def _load(session: Session, actor: Actor, upload_id: str, *, lock: bool = False) -> Upload:
    """The caller's own upload. Uploads are personal: someone else's (even an admin's view of it) is 404."""
    return permissions.require_upload_owner(
        actor, session.get(Upload, _upload_id(upload_id), with_for_update=lock or None))


def _visible(upload: Upload) -> None:
    """Terminated and expired uploads are gone, as far as the protocol is concerned."""
    if upload.state not in (UploadState.active, UploadState.completed):
        raise not_found("upload")


def get_upload(session: Session, actor: Actor, upload_id: str) -> UploadView:
    """HEAD: an active or completed upload of the caller."""
    upload = _load(session, actor, upload_id)
    _visible(upload)
    return _view(upload)


def quota_usage(session: Session, user_id: int) -> int:
    """Bytes counted against a user: their data files plus the declared sizes of their unfinished uploads."""
    files = session.scalar(select(func.coalesce(func.sum(DataFile.size), 0)).where(DataFile.owner_id == user_id))
    uploads = session.scalar(select(func.coalesce(func.sum(Upload.size), 0)).where(
        Upload.owner_id == user_id, Upload.state == UploadState.active))
    return int(files or 0) + int(uploads or 0)


def create_upload(session: Session, actor: Actor, request: NewUpload, *, settings: Any, storage: Any,
                  now: datetime | None = None) -> UploadView:
    """Create an upload after the permission, quota and free-space checks. Its partial file is made on the
    first write, so a creation that fails to commit leaves nothing on disk."""
    require_project(session, actor, request.project_id, "edit")
    if request.sample_id is not None:
        sample = session.get(Sample, request.sample_id)
        if sample is None or sample.project_id != request.project_id:
            raise not_found("sample in this project", field="Upload-Metadata/sample")
    # Lock the user row (PostgreSQL) so two concurrent creations cannot both squeeze under the quota.
    user = session.scalars(select(User).where(User.id == actor.user_id).with_for_update()).one()
    quota = user.quota_bytes if user.quota_bytes is not None else settings.default_quota_bytes
    if quota and quota > 0:
        used = quota_usage(session, actor.user_id)
        if used + request.length > quota:
            raise FlowError(413, "quota_exceeded", f"This upload needs {request.length} bytes but only "
                            f"{max(quota - used, 0)} of your {quota}-byte quota are left.", "Upload-Length")
    free = storage.free_bytes()
    if free - request.length < settings.min_free_upload_bytes:
        raise FlowError(507, "insufficient_storage", "The server does not have enough free disk space for this "
                        "upload.", "Upload-Length")
    now = now or datetime.now(timezone.utc)
    upload = Upload(
        id=str(uuid.uuid4()), owner_id=actor.user_id, project_id=request.project_id, sample_id=request.sample_id,
        filename=request.filename, size=request.length, offset=0, sha256=request.sha256,
        meta={"tus": request.tus_metadata}, state=UploadState.active,
        expires_at=now + timedelta(seconds=settings.upload_expiry_seconds),
    )
    session.add(upload)
    session.flush()
    return _view(upload)


def _check_writable(session: Session, actor: Actor, upload_id: str) -> UploadView:
    """PATCH pre-check: the caller's live upload, in a project they may still edit."""
    upload = _load(session, actor, upload_id)
    _visible(upload)
    if upload.state == UploadState.active:
        require_project(session, actor, upload.project_id, "edit")
    return _view(upload)


def _advance(session: Session, actor: Actor, upload_id: str, old: int, new: int, expires_at: datetime) -> UploadView:
    """Move the offset forward, only if nobody moved it since the chunk began (conditional UPDATE)."""
    done = session.execute(
        update(Upload).where(Upload.id == upload_id, permissions.own_uploads(actor), Upload.offset == old,
                             Upload.state == UploadState.active)
        .values(offset=new, expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult, done).rowcount != 1:
        raise conflict("The upload changed while this chunk was written; read the offset again with HEAD.",
                       field="Upload-Offset", reason="offset_mismatch")
    return get_upload(session, actor, upload_id)


def _set_offset(session: Session, actor: Actor, upload_id: str, offset: int) -> None:
    session.execute(update(Upload).where(Upload.id == upload_id, permissions.own_uploads(actor))
                    .values(offset=offset).execution_options(synchronize_session=False))


# --- running whole-file hashes ----------------------------------------------------------------------------------


class _RunningHashes:
    """sha256 of each upload's acknowledged prefix, kept while chunks arrive in order in this process, so the
    last chunk does not need the whole file re-read. Lost on restart (completion then re-reads the file)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, Any]] = {}

    def resume(self, upload_id: str, offset: int) -> Any | None:
        """A private copy of the hash at ``offset`` (a discarded chunk must not spoil the stored one)."""
        if offset == 0:
            return hashlib.sha256()
        with self._lock:
            entry = self._entries.get(upload_id)
        return entry[1].copy() if entry and entry[0] == offset else None

    def store(self, upload_id: str, offset: int, hasher: Any | None) -> None:
        with self._lock:
            if hasher is None:
                self._entries.pop(upload_id, None)
            else:
                self._entries[upload_id] = (offset, hasher)

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._entries.pop(upload_id, None)


RUNNING_HASHES = _RunningHashes()
#: Hashes uploads' bytes behind the event loop (see ChunkWriter); a batch waits for its writer's previous one.
_HASHERS = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)),
                              thread_name_prefix="flow-upload-hash")


def _write_at(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset`` (loops over short writes). Tests replace it to fake a full disk."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)
    return written


# --- streaming a chunk --------------------------------------------------------------------------------------------


class ChunkWriter:
    """One PATCH (or creation-with-upload) body being written to an upload's partial file.

    `write` is called on the event loop with each received piece (≤ 1 MiB, see api/uploads.py): a pwrite, cheaper
    than a thread hop per piece. Hashing (the running sha256, an Upload-Checksum) costs as much again,
    so it runs behind, on a small thread pool, in batches of ``HASH_BATCH`` bytes (hashlib releases the GIL):
    receiving and hashing overlap instead of taking turns on the event loop. Everything that can take long
    (fsync, truncate, database, re-hashing) is in `commit`/`discard`/`finish`, which callers run on a worker thread;
    `commit` first waits for the hashes to catch up.
    """

    #: Written bytes handed to the hashing pool at once; at most two batches wait (the body is read no further).
    HASH_BATCH = 2 << 20

    def __init__(self, host: Any, identity: Identity, view: UploadView, fd: int, lock: int,
                 checksum: tuple[str, bytes] | None):
        self.host = host
        self.identity = identity
        self.view = view
        self.fd = fd  # the partial file; -1 when every byte is already acknowledged
        self.lock = lock
        self.start = view.offset
        self.position = view.offset
        self.checksum = checksum
        self.chunk_hash = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        self.file_hash = RUNNING_HASHES.resume(view.id, view.offset)
        self.overflow = False
        self.error: OSError | None = None
        self._unhashed: list[bytes] = []  # written, not yet handed to the hashing pool
        self._unhashed_bytes = 0
        self._hashing: Future[None] | None = None  # the last batch handed to the hashing pool

    @property
    def received(self) -> int:
        return self.position - self.start

    def write(self, data: bytes) -> Future[None] | None:
        """Append a received piece. Past the declared length nothing is written; an OSError stops writing.
        Returns a future when the hashing lags two batches behind: read no more of the body until it is
        done, so memory stays bounded."""
        if self.overflow or self.error is not None:
            return None
        if len(data) > self.view.size - self.position or self.fd < 0:
            self.overflow = True
            return None
        try:
            _write_at(self.fd, data, self.position)
        except OSError as exc:
            self.error = exc
            return None
        self.position += len(data)
        UPLOAD_BYTES.inc(len(data))
        if self.chunk_hash is None and self.file_hash is None:
            return None
        self._unhashed.append(data)
        self._unhashed_bytes += len(data)
        if self._unhashed_bytes < self.HASH_BATCH:
            return None
        previous = self._hashing
        self._hashing = _HASHERS.submit(self._hash, self._unhashed, previous)
        self._unhashed, self._unhashed_bytes = [], 0
        return previous if previous is not None and not previous.done() else None

    def _hash(self, pieces: list[bytes], after: Future[None] | None = None) -> None:
        """Feed written pieces to the hashes, after the batch before them (on the hashing pool: that batch was
        submitted first, so it is running or done; or in `catch_up`)."""
        if after is not None:
            after.result()
        for data in pieces:
            if self.chunk_hash is not None:
                self.chunk_hash.update(data)
            if self.file_hash is not None:
                self.file_hash.update(data)

    def catch_up(self) -> None:
        """Wait until every written byte is hashed (blocking)."""
        if self._hashing is not None:
            hashing, self._hashing = self._hashing, None
            hashing.result()
        pieces, self._unhashed, self._unhashed_bytes = self._unhashed, [], 0
        self._hash(pieces)

    def discard(self) -> None:
        """Forget every byte of this request: the file goes back to the acknowledged offset (blocking)."""
        if self.fd < 0:
            return
        os.ftruncate(self.fd, self.start)
        os.fsync(self.fd)
        self.position = self.start

    def commit(self, *, partial_ok: bool = False) -> UploadView:
        """Make the received bytes durable and acknowledge them (blocking). Raises FlowError — after discarding —
        for an overflow (413), a write error (507 for a full disk), or a checksum mismatch (460).
        ``partial_ok``: the connection dropped mid-body; keep what arrived unless a checksum was promised."""
        self.catch_up()
        if self.overflow:
            self.discard()
            raise FlowError(413, "too_large", f"The body is longer than the {self.view.size - self.start} bytes "
                            "left in this upload; nothing of it was kept.", "Content-Length")
        if self.error is not None:
            self.discard()
            if self.error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise FlowError(507, "insufficient_storage", "The server's disk is full; the chunk was discarded. "
                                "Resume later from the same offset.", "Upload-Offset")
            raise FlowError(500, "write_failed", "The chunk could not be written; it was discarded.")
        if self.checksum is not None and self.chunk_hash is not None:
            if partial_ok or self.chunk_hash.digest() != self.checksum[1]:
                self.discard()
                if partial_ok:
                    return self.view
                raise chunk_checksum_mismatch(self.checksum[0])
        if self.received == 0:
            return self.view
        os.fsync(self.fd)
        expires = datetime.now(timezone.utc) + timedelta(seconds=self.host.settings.upload_expiry_seconds)
        try:
            view = self.host.run_as(self.identity, _advance, self.view.id, self.start, self.position, expires)
        except FlowError:
            # Someone moved the offset under us (e.g. expiry, termination): our bytes are not acknowledged.
            RUNNING_HASHES.drop(self.view.id)
            raise
        RUNNING_HASHES.store(view.id, view.offset, self.file_hash)
        self.start = view.offset
        self.view = view
        return view

    def finish(self) -> UploadView:
        """Complete the upload if every byte is acknowledged (blocking; call while still holding the lock)."""
        if self.view.offset < self.view.size or self.view.state != UploadState.active:
            return self.view
        digest = self.file_hash.hexdigest() if self.file_hash is not None else None
        return complete_upload(self.host, self.identity, self.view.id, digest)

    def close(self) -> None:
        """Close the partial file, then release the lock (closing its descriptor drops the flock)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.lock >= 0:
            os.close(self.lock)
            self.lock = -1


def _lock_path(storage: Any, upload_id: str) -> Path:
    """The upload's lock file, beside its partial file (the partial itself moves away on completion)."""
    partial = storage.partial_path(upload_id)
    return partial.with_name(partial.name + ".lock")


def _lock(storage: Any, upload_id: str) -> int:
    """Take the upload's exclusive lock without waiting; 409 if another request (in any process) holds it.

    Whoever holds it re-reads the upload's state afterwards, so a lock file unlinked once the upload reached a
    final state cannot let two writers in."""
    fd = os.open(_lock_path(storage, upload_id), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise conflict("Another request is writing to this upload; read the offset with HEAD and retry.",
                       field="Upload-Offset", reason="upload_busy") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _forget(storage: Any, upload_id: str) -> None:
    """Remove what an upload in a final state leaves behind: its bytes, its lock file, its running hash."""
    storage.partial_path(upload_id).unlink(missing_ok=True)
    _lock_path(storage, upload_id).unlink(missing_ok=True)
    RUNNING_HASHES.drop(upload_id)


def open_chunk(host: Any, identity: Identity, upload_id: str, offset: int, *,
               checksum: tuple[str, bytes] | None = None,
               content_length: int | None = None) -> ChunkWriter | UploadView:
    """Get ready to write a chunk at ``offset`` (blocking): checks, lock, fresh offset, repair of the tail.

    Returns the upload itself instead of a writer when it is already complete (a repeated final PATCH)."""
    view = host.run_as(identity, _check_writable, upload_id)
    check_offset(offset, view.offset)
    check_body_length(content_length, view.remaining)
    if view.state == UploadState.completed:
        return view
    if content_length and host.storage.free_bytes() - content_length < host.settings.min_free_upload_bytes:
        raise FlowError(507, "insufficient_storage", "The server does not have enough free disk space for this "
                        "chunk.", "Content-Length")
    lock = _lock(host.storage, view.id)
    data = -1
    try:
        fresh = host.run_as(identity, get_upload, view.id)  # a new transaction: sees what the last holder committed
        if fresh.state != UploadState.active:
            raise conflict(f"Upload-Offset {offset} is not the upload's offset {fresh.offset}; read it with HEAD.",
                           field="Upload-Offset", reason="offset_mismatch")
        check_offset(offset, fresh.offset)
        if fresh.offset < fresh.size:  # at == size the bytes may already have moved: completion sorts that out
            data = os.open(host.storage.partial_path(view.id), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                           0o600)
            on_disk = os.fstat(data).st_size
            if on_disk > fresh.offset:  # bytes written but never acknowledged (crash, discarded chunk)
                os.ftruncate(data, fresh.offset)
            elif on_disk < fresh.offset:
                # Acknowledged bytes are missing (the file system lost them): tell the truth, make the client resume.
                host.run_as(identity, _set_offset, view.id, on_disk)
                RUNNING_HASHES.drop(view.id)
                raise conflict(f"Only {on_disk} bytes of this upload are on disk; resume from there.",
                               field="Upload-Offset", reason="offset_mismatch")
        return ChunkWriter(host, identity, fresh, data, lock, checksum)
    except BaseException:
        if data >= 0:
            os.close(data)
        os.close(lock)
        raise


# --- completion, termination, expiry ------------------------------------------------------------------------------


def _begin_completion(session: Session, actor: Actor, upload_id: str, target: str) -> tuple[UploadView, str | None]:
    """Record where the file will go before it moves, so an interrupted completion can be finished later."""
    upload = _load(session, actor, upload_id, lock=True)
    if upload.state == UploadState.completed:
        return _view(upload), None
    _visible(upload)
    meta = dict(upload.meta or {})
    if not meta.get("target"):
        meta["target"] = target
        upload.meta = meta
    return _view(upload), meta["target"]


def _register(session: Session, actor: Actor, upload_id: str, digest: str,
              stored: os.stat_result | None = None) -> UploadView:
    """Create the DataFile (with the identity of its stored bytes) and mark the upload completed in one
    transaction, exactly once."""
    upload = _load(session, actor, upload_id, lock=True)
    if upload.state == UploadState.completed:
        return _view(upload)
    _visible(upload)
    datafile = register_file(
        session, owner_id=upload.owner_id, project_id=upload.project_id, sample_id=upload.sample_id,
        filename=upload.filename, storage_path=upload.meta["target"], size=upload.size, sha256=digest,
        stored=stored,
    )
    done = session.execute(
        update(Upload).where(Upload.id == upload.id, Upload.state == UploadState.active)
        .values(state=UploadState.completed, datafile_id=datafile.id, offset=upload.size)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult, done).rowcount != 1:  # lost a race: roll back our DataFile, the winner's stands
        raise conflict("The upload was completed or removed concurrently.", reason="upload_changed")
    session.refresh(upload)
    return _view(upload)


def _terminate_row(session: Session, actor: Actor, upload_id: str) -> None:
    session.execute(update(Upload).where(Upload.id == upload_id, permissions.own_uploads(actor),
                                         Upload.state == UploadState.active)
                    .values(state=UploadState.terminated).execution_options(synchronize_session=False))


def complete_upload(host: Any, identity: Identity, upload_id: str, digest: str | None = None) -> UploadView:
    """Turn a fully received upload into a DataFile (blocking; idempotent; the caller holds the upload's lock).

    ``digest`` is the running sha256 when this process saw every chunk; otherwise the file is re-read. A declared
    whole-file sha256 that does not match terminates the upload (its bytes are removed) and raises 460: the bytes
    are wrong, resuming cannot fix them, so the client must start over."""
    storage = host.storage
    view = host.run_as(identity, get_upload, upload_id)
    if view.state == UploadState.completed:
        return view
    view, target = host.run_as(identity, _begin_completion, upload_id, storage.new_relative_path(view.filename))
    if target is None:
        return view
    partial = storage.partial_path(view.id)
    dest = storage.resolve(target)
    if partial.exists():
        if partial.stat().st_size != view.size:
            raise conflict("The upload's bytes on disk do not match its length; read the offset with HEAD.",
                           field="Upload-Offset", reason="offset_mismatch")
        digest = digest or fsutil.sha256_file(partial)
        source = partial
    elif dest.exists() and dest.stat().st_size == view.size:  # moved before a crash; not yet registered
        digest = fsutil.sha256_file(dest)
        source = None
    elif view.size == 0:
        digest = hashlib.sha256().hexdigest()
        source = None
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.touch()
    else:
        raise FlowError(500, "upload_lost", "The upload's bytes are missing on the server.")
    if view.sha256 and digest != view.sha256:
        host.run_as(identity, _terminate_row, view.id)
        dest.unlink(missing_ok=True)
        _forget(storage, view.id)
        raise file_checksum_mismatch()
    if source is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fsutil.replace(source, dest)
    try:
        done = host.run_as(identity, _register, view.id, digest, os.stat(dest))
    except FlowError as exc:
        if exc.reason != "upload_changed":
            raise
        done = host.run_as(identity, get_upload, view.id)
        return done
    _forget(storage, view.id)
    UPLOADS_COMPLETED.inc()
    return done


def settle_upload(host: Any, identity: Identity, upload_id: str) -> UploadView:
    """HEAD's view, finishing first a completion that was interrupted (every byte acknowledged, no DataFile yet).

    If another request holds the lock it is doing exactly that, and the current state is returned."""
    view = host.run_as(identity, get_upload, upload_id)
    if view.state != UploadState.active or view.offset < view.size:
        return view
    try:
        lock = _lock(host.storage, view.id)
    except FlowError:
        return view
    try:
        return complete_upload(host, identity, view.id)
    finally:
        os.close(lock)


def terminate_upload(host: Any, identity: Identity, upload_id: str) -> None:
    """tus termination (blocking): the upload is gone and its bytes removed. A complete upload is a DataFile now
    and is deleted through the data-files API instead (409)."""
    view = host.run_as(identity, get_upload, upload_id)
    if view.state == UploadState.completed:
        raise conflict(f"This upload is complete; delete data file {view.datafile_id} instead.",
                       reason="upload_completed")
    lock = _lock(host.storage, view.id)
    try:
        host.run_as(identity, _terminate_row, view.id)
        _forget(host.storage, view.id)
    finally:
        os.close(lock)


def expire_uploads(host: Any, now: datetime | None = None) -> int:
    """Mark active uploads idle past their Upload-Expires as expired and delete their bytes; returns how many.

    Uploads being written right now (their lock is held) are left for the next run."""
    now = now or datetime.now(timezone.utc)
    host.ensure_schema()
    with host.db.session() as session:
        candidates = session.execute(
            select(Upload.id, Upload.meta).where(Upload.state == UploadState.active, Upload.expires_at < now)
        ).all()
    expired = 0
    for upload_id, meta in candidates:
        try:
            lock = _lock(host.storage, upload_id)
        except FlowError:
            continue
        try:
            with host.db.session() as session:
                done = session.execute(
                    update(Upload).where(Upload.id == upload_id, Upload.state == UploadState.active,
                                         Upload.expires_at < now)
                    .values(state=UploadState.expired).execution_options(synchronize_session=False)
                )
            if done.rowcount != 1:
                continue
            target = (meta or {}).get("target")
            if target:  # a completion that moved the bytes but never registered them
                host.storage.resolve(target).unlink(missing_ok=True)
            _forget(host.storage, upload_id)
            expired += 1
        finally:
            os.close(lock)
    if expired:
        log.info("Flow: expired %d unfinished upload(s)", expired)
    return expired
