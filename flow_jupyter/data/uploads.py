"""Resumable uploads (tus 1.0.0) as plain Python, the storage side: upload rows, partial files, chunk writing,
completion into a DataFile, termination, expiry.

The protocol itself (headers, Upload-Metadata, checksums, the offset and length rules, 460) is data/tus.py; the HTTP
layer (api/uploads.py) parses headers with it and streams bodies into a `ChunkWriter`. Every storage rule lives
here, so the periodic expiry job and tests use the same code.

Durability and concurrency rules, in the order they matter:

* **The acknowledged offset lives beside the bytes, not in the database.** A chunk's bytes are written with
  ``pwrite`` at the acknowledged offset, fsynced, and only then is the new offset recorded in the upload's *ack
  record* (16 bytes in its lock file: the offset and its complement, written and fdatasynced) and the chunk
  answered. So a chunk costs no database commit, and the offset a client is told never exceeds what is on disk.
  The row's ``offset`` is written at completion and termination; a record-less upload (made before this scheme)
  falls back to it.
* **The file length decides, bounded by the record.** The acknowledged offset is ``min(record, file length)``:
  bytes past the record (a crash mid-body, a discarded chunk) were never acknowledged and are truncated away
  before the next write; a file shorter than its record (a file system that lost acknowledged bytes) lowers the
  record to what is really there. A torn read of the record (a HEAD racing an acknowledgement) is detected by its
  complement and read again.
* Only the holder of a non-blocking ``fcntl.flock`` on the lock file writes the partial file or the record (works
  across processes and server replicas sharing the Flow root). Termination, expiry and completion take it too, and
  the upload's state is re-read in a fresh transaction *after* the lock is taken, so two PATCH requests at the same
  offset give exactly one 204 and one 409, and nobody writes to an upload that ended meanwhile.
* Received bytes are written and hashed on the host's uploads pool (`ChunkWriter`), in order, while the event loop
  goes on receiving; the acknowledging fsync waits for the writes (and for the hash only of a chunk that carried an
  Upload-Checksum). The whole file's sha256 is fed as data arrives and catches up behind the acknowledgements, so
  completion costs no extra read (after a restart, completion re-reads the file once).
* Completion is idempotent: the target path is recorded before the partial file is renamed onto it, and the
  DataFile is created in the same transaction that marks the upload completed, guarded by ``state = active``.
* Expiry counts from the last acknowledgement: the record's modification time, so chunks need no database write
  to keep an upload alive either.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import logging
import os
import struct
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
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


def _state(session: Session, actor: Actor, upload_id: str) -> UploadState | None:
    """The upload's state right now (None: its row is gone, e.g. with its project)."""
    return session.scalar(select(Upload.state).where(Upload.id == upload_id, permissions.own_uploads(actor)))


# --- the acknowledged offset: the ack record beside the bytes ---------------------------------------------------

_ACK = struct.Struct("<QQ")  # offset, offset ^ _ACK_MASK: a torn or foreign record never passes for an offset
_ACK_MASK = (1 << 64) - 1


def _lock_path(storage: Any, upload_id: str) -> Path:
    """The upload's lock file, beside its partial file (the partial itself moves away on completion). It also
    holds the upload's ack record."""
    partial = storage.partial_path(upload_id)
    return partial.with_name(partial.name + ".lock")


def _read_ack(fd: int) -> int | None:
    """The offset in the ack record of the open lock file ``fd``; None when no chunk was acknowledged yet.
    A record that does not check out is read again (it may have been read mid-write), then taken as absent."""
    for _ in range(3):
        raw = os.pread(fd, _ACK.size, 0)
        if len(raw) < _ACK.size:
            return None
        offset, check = _ACK.unpack(raw)
        if check == offset ^ _ACK_MASK:
            return offset
    log.warning("Flow: an upload's ack record is damaged; its offset falls back to the database's")
    return None


def _write_ack(fd: int, offset: int) -> None:
    """Record ``offset`` as acknowledged and make it durable (the bytes below it were fsynced before)."""
    os.pwrite(fd, _ACK.pack(offset, offset ^ _ACK_MASK), 0)
    os.fdatasync(fd)


def _on_disk(storage: Any, upload_id: str) -> int | None:
    """The partial file's length; None when there is none (nothing written yet, or moved by a completion)."""
    try:
        return storage.partial_path(upload_id).stat().st_size
    except FileNotFoundError:
        return None


def _acknowledged(storage: Any, view: UploadView) -> tuple[int, float | None]:
    """An active upload's acknowledged offset, read without its lock — min(ack record, file length) — and when the
    last chunk was acknowledged (the record's mtime; None without a record). Without a partial file the record
    stands alone: an interrupted completion moved the bytes (completion checks the moved file)."""
    try:
        fd = os.open(_lock_path(storage, view.id), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        recorded, when = None, None
    else:
        try:
            recorded = _read_ack(fd)
            when = os.fstat(fd).st_mtime if recorded is not None else None
        finally:
            os.close(fd)
    acked = view.offset if recorded is None else recorded
    on_disk = _on_disk(storage, view.id)
    return (acked if on_disk is None else min(acked, on_disk)), when


def current_upload(host: Any, identity: Identity, upload_id: str) -> UploadView:
    """The caller's upload as the protocol sees it (blocking): an active one's offset is its acknowledged bytes and
    its expiry counts from its last acknowledged chunk."""
    view = host.run_as(identity, get_upload, upload_id)
    if view.state != UploadState.active:
        return view
    offset, when = _acknowledged(host.storage, view)
    expires = view.expires_at
    if when is not None:
        expires = max(expires, datetime.fromtimestamp(when, timezone.utc)
                      + timedelta(seconds=host.settings.upload_expiry_seconds))
    return replace(view, offset=offset, expires_at=expires)


# --- running whole-file hashes ----------------------------------------------------------------------------------


class _RunningHashes:
    """sha256 of each upload's acknowledged prefix, kept while chunks arrive in order in this process, so the
    last chunk does not need the whole file re-read. Lost on restart (completion then re-reads the file).

    An entry is the hash and the lane that feeds it: a chunk is acknowledged without waiting for its bytes to be
    hashed (only an Upload-Checksum waits), the next chunk goes on feeding the same lane, and completion waits for
    it. A writer *takes* the entry and puts it back when its chunk is acknowledged; a discarded chunk's bytes were
    fed already, so its writer drops the hash instead, and completion re-reads the file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, Any, _Lane]] = {}

    def take(self, upload_id: str, offset: int) -> tuple[Any, _Lane] | None:
        """The hash of the first ``offset`` bytes and its lane, now the caller's; None when this process does
        not have it (a restart, another replica, a discarded chunk)."""
        with self._lock:
            entry = self._entries.pop(upload_id, None)
        return (entry[1], entry[2]) if entry and entry[0] == offset else None

    def store(self, upload_id: str, offset: int, hasher: Any, lane: _Lane) -> None:
        with self._lock:
            self._entries[upload_id] = (offset, hasher, lane)

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._entries.pop(upload_id, None)


RUNNING_HASHES = _RunningHashes()


#: Bytes per pwrite. Larger writes into the page cache measured up to 9× the CPU per byte on Linux 6.x (1 MiB and
#: up; 256 KiB and below stay at ~0.2 s/GiB), so a buffer is written in slices of this size.
WRITE_SLICE = 256 << 10


def _write_at(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset``, in `WRITE_SLICE` pieces (loops over short writes). Tests replace it to
    fake a full disk."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:written + WRITE_SLICE], offset + written)
    return written


def _writeback_starter() -> Callable[[int, int, int], None] | None:
    """Linux's sync_file_range(SYNC_FILE_RANGE_WRITE): start writing a range to disk without waiting for it (the
    standard library has no binding). None where it is not available: the acknowledging fsync does it all."""
    name = ctypes.util.find_library("c")
    function = getattr(ctypes.CDLL(name, use_errno=True), "sync_file_range", None) if name else None
    if function is None:
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]

    def start(fd: int, offset: int, count: int) -> None:
        function(fd, offset, count, 2)  # SYNC_FILE_RANGE_WRITE; a failure only leaves the work to fsync

    return start


_START_WRITEBACK = _writeback_starter()


class _Lane:
    """Runs what is submitted one after the other, in order, on a shared pool — without holding a pool thread
    while it waits for its turn (a lane has at most one task on the pool, which drains its queue)."""

    def __init__(self, pool: Executor):
        self._pool = pool
        self._lock = threading.Lock()
        self._queue: deque[tuple[Callable[[], None], Future[None]]] = deque()
        self._draining = False

    def submit(self, work: Callable[[], None]) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            self._queue.append((work, future))
            if self._draining:
                return future
            self._draining = True
        try:
            self._pool.submit(self._drain)
        except RuntimeError as exc:  # the host is shutting its pools down
            self._fail(exc)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                work, future = self._queue.popleft()
            try:
                work()
            except BaseException as exc:  # handed to whoever waits for this piece
                future.set_exception(exc)
            else:
                future.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            pending, self._queue, self._draining = list(self._queue), deque(), False
        for _, future in pending:
            future.set_exception(exc)


# --- streaming a chunk --------------------------------------------------------------------------------------------


class BufferPool:
    """Receive buffers kept for reuse between requests (at most ``keep``): a fresh multi-MiB buffer costs zeroing
    and a page fault per page on first touch, several times per chunk. Made and kept by whoever serves the uploads
    (the web application), so it lives and dies with it."""

    def __init__(self, keep: int = 16):
        self.keep = keep
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> bytearray:
        with self._lock:
            while self._free:
                buffer = self._free.pop()
                if len(buffer) == size:
                    return buffer
        return bytearray(size)

    def give(self, buffers: list[bytearray]) -> None:
        with self._lock:
            room = self.keep - len(self._free)
            self._free.extend(buffers[:max(0, room)])


@dataclass(frozen=True)
class Buffers:
    """How a chunk's body is staged: ``count`` buffers of ``size`` bytes in flight at most (FlowSettings
    upload_buffers and upload_buffer_bytes), and writeback started every ``writeback`` bytes (0: never)."""

    size: int = 1 << 20
    count: int = 8
    writeback: int = 16 << 20

    @classmethod
    def of(cls, settings: Any) -> Buffers:
        return cls(size=max(64 << 10, settings.upload_buffer_bytes), count=max(1, settings.upload_buffers),
                   writeback=max(0, settings.upload_writeback_bytes))


class ChunkWriter:
    """One PATCH (or creation-with-upload) body being written to an upload's partial file.

    Received bytes are handed over on the event loop — as tornado's pieces (`write`) or as whole buffers filled
    straight from the socket (`buffer` + `write`) — and written and hashed on the host's uploads pool: one lane
    ``pwrite``s them in order (starting their writeback as it goes), another feeds the hashes (the running sha256,
    an Upload-Checksum); hashlib and pwrite release the GIL, so receiving, writing and hashing overlap. At most
    ``Buffers.count`` buffers' worth is in flight: `write` returns a future to wait for before reading more.
    Everything that can take long (fsync, truncate, database) is in `commit`/`discard`/`finish`, which callers run
    on a worker thread; `commit` first waits for the write lane (and the hash lane only for an Upload-Checksum),
    `finish` for the hash lane too. The hash lane outlives the request: it is the upload's, kept with its running
    hash (`RUNNING_HASHES`) for the next chunk.
    """

    def __init__(self, host: Any, identity: Identity, view: UploadView, fd: int, lock: int,
                 checksum: tuple[str, bytes] | None, pool: Executor, buffers: Buffers | None = None,
                 buffer_pool: BufferPool | None = None):
        self.host = host
        self.identity = identity
        self.view = view
        self.fd = fd  # the partial file; -1 when every byte is already acknowledged
        self.lock = lock  # the lock file: holds the flock and the ack record
        self.start = view.offset
        self.position = view.offset  # end of the bytes handed over so far
        self.checksum = checksum
        self.chunk_hash = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        running = RUNNING_HASHES.take(view.id, view.offset)
        if running is None and view.offset == 0:
            running = hashlib.sha256(), _Lane(pool)
        self.file_hash: Any | None = running[0] if running else None
        self._hashes = running[1] if running else _Lane(pool)
        self.buffers = buffers or Buffers()
        self.buffer_pool = buffer_pool or BufferPool(keep=0)
        self.overflow = False
        self.error: OSError | None = None
        self._writes = _Lane(pool)
        self._last_write: Future[None] = _DONE
        # The lane may still be hashing the previous chunk: waiting for this marker waits for that too.
        self._last_hash: Future[None] = self._hashes.submit(lambda: None) if running else _DONE
        self._held = 0  # pieces in flight: buffers handed out, bytes objects handed over
        self._room: Future[None] | None = None  # resolved when a piece comes back
        self._mutex = threading.Lock()
        self._unsynced = 0  # written since writeback was last started (write lane only)

    @property
    def received(self) -> int:
        return self.position - self.start

    def buffer(self) -> bytearray | Future[None]:
        """A buffer to receive the next piece of the body into, or — when ``Buffers.count`` pieces are in flight —
        a future to wait for before asking again. Hand it back full (or at the body's end) with ``write(view,
        buffer)``."""
        with self._mutex:
            if self._held < self.buffers.count:
                self._held += 1
                return self.buffer_pool.take(self.buffers.size)
            if self._room is None:
                self._room = Future()
            return self._room

    def write(self, data: bytes | memoryview, buffer: bytearray | None = None) -> Future[None] | None:
        """Hand over a received piece, in order. ``buffer``: ``data`` ends the use of that buffer (from `buffer`),
        which goes back once written and hashed; without it, ``data`` is either a ``bytes`` piece of its own
        (tornado's, counted in flight) or an earlier part of a buffer still being filled (a memoryview). Past the
        declared length nothing is written (413 at commit); after a write error nothing more is.
        Returns a future when too many pieces are in flight: read no more of the body until it is done."""
        counted = buffer is not None or isinstance(data, bytes)
        if isinstance(data, bytes):
            with self._mutex:
                self._held += 1
        if self.overflow or self.error is not None or len(data) > self.view.size - self.position or self.fd < 0:
            self.overflow = self.overflow or self.error is None
            if counted:
                self._returned(buffer)
            return None
        offset = self.position
        self.position += len(data)
        UPLOAD_BYTES.inc(len(data))
        self._last_write = written = self._writes.submit(lambda: self._write(data, offset))
        if self.chunk_hash is not None or self.file_hash is not None:
            self._last_hash = self._hashes.submit(lambda: self._hash(data))
        if counted:
            self._when_done(written, self._last_hash, buffer)
        with self._mutex:
            if self._held > self.buffers.count and isinstance(data, bytes):
                if self._room is None:
                    self._room = Future()
                return self._room
        return None

    def _when_done(self, written: Future[None], hashed: Future[None], buffer: bytearray | None) -> None:
        """Count the piece back (and its buffer) once it is both written and hashed."""
        left = [2]

        def one_done(_future: Future[None]) -> None:
            with self._mutex:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self._returned(buffer)

        written.add_done_callback(one_done)
        hashed.add_done_callback(one_done)

    def _returned(self, buffer: bytearray | None) -> None:
        if buffer is not None:
            self.buffer_pool.give([buffer])
        with self._mutex:
            self._held -= 1
            room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    def _write(self, data: bytes | memoryview, offset: int) -> None:
        """On the write lane: pwrite the piece; every ``Buffers.writeback`` bytes, start writing them to disk."""
        if self.error is not None:
            return
        try:
            _write_at(self.fd, data, offset)
        except OSError as exc:
            self.error = exc
            return
        self._unsynced += len(data)
        if self.buffers.writeback and self._unsynced >= self.buffers.writeback and _START_WRITEBACK is not None:
            _START_WRITEBACK(self.fd, offset + len(data) - self._unsynced, self._unsynced)
            self._unsynced = 0

    def _hash(self, data: bytes | memoryview) -> None:
        """On the hash lane: feed the piece to the chunk's and the file's hashes."""
        if self.chunk_hash is not None:
            self.chunk_hash.update(data)
        if self.file_hash is not None:
            self.file_hash.update(data)

    def catch_up(self, *, hashes: bool = True) -> None:
        """Wait until every handed-over byte is written and — with ``hashes`` — hashed (blocking). The lanes run
        in order, so their last pieces being done means all are."""
        self._last_write.result()
        if hashes:
            self._last_hash.result()

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
        ``partial_ok``: the connection dropped mid-body; keep what arrived unless a checksum was promised.

        The order is what makes an acknowledgement true: the bytes are fsynced, then the ack record is written
        and fdatasynced, then (by the caller) the chunk is answered. No database commit, and no waiting for the
        file's hash (only for an Upload-Checksum): the running sha256 catches up behind, for completion."""
        self.catch_up(hashes=self.checksum is not None)
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
            self._keep_hash()
            return self.view
        os.fsync(self.fd)
        if self.host.run_as(self.identity, _state, self.view.id) != UploadState.active:
            # Removed under us without the lock (its project was deleted): these bytes are nobody's.
            self.discard()
            raise conflict("The upload changed while this chunk was written; read the offset again with HEAD.",
                           field="Upload-Offset", reason="offset_mismatch")
        if self.start == 0:  # the first acknowledgement: the new partial and lock files' names must last too
            fsutil.fsync_dir(self.host.storage.partial_path(self.view.id).parent)
        _write_ack(self.lock, self.position)
        self.start = self.position
        self._keep_hash()
        expires = datetime.now(timezone.utc) + timedelta(seconds=self.host.settings.upload_expiry_seconds)
        self.view = replace(self.view, offset=self.position, expires_at=expires)
        return self.view

    def _keep_hash(self) -> None:
        """Put the running hash back for the next chunk (its bytes are exactly the acknowledged ones)."""
        if self.file_hash is not None:
            RUNNING_HASHES.store(self.view.id, self.start, self.file_hash, self._hashes)

    def finish(self) -> UploadView:
        """Complete the upload if every byte is acknowledged (blocking; call while still holding the lock)."""
        if self.view.offset < self.view.size or self.view.state != UploadState.active:
            return self.view
        digest = None
        if self.file_hash is not None:
            self.catch_up()
            digest = self.file_hash.hexdigest()
        return complete_upload(self.host, self.identity, self.view.id, digest)

    def close(self) -> None:
        """Close the partial file — once nothing queued still writes to it — then release the lock (closing its
        descriptor drops the flock)."""
        try:
            self._last_write.result()
        except BaseException:  # noqa: BLE001 - nothing acknowledges these bytes any more
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.lock >= 0:
            os.close(self.lock)
            self.lock = -1


_DONE: Future[None] = Future()
_DONE.set_result(None)


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


def _repair(upload_id: str, data: int, lock: int, fallback: int) -> int:
    """With the lock held: the acknowledged offset, after making the partial file agree with it. Bytes past the
    record were never acknowledged (cut off); a file shorter than the record lost acknowledged bytes (the record
    comes down to what is there — what HEAD already says — and a client at another offset gets 409)."""
    recorded = _read_ack(lock)
    acked = fallback if recorded is None else recorded
    on_disk = os.fstat(data).st_size
    if on_disk > acked:
        os.ftruncate(data, acked)
        os.fsync(data)
    elif on_disk < acked:
        log.warning("Flow: upload %s has %d of its %d acknowledged bytes on disk; it resumes from there",
                    upload_id, on_disk, acked)
        _write_ack(lock, on_disk)
        RUNNING_HASHES.drop(upload_id)
        return on_disk
    return acked


def open_chunk(host: Any, identity: Identity, upload_id: str, offset: int, *, pool: Executor,
               checksum: tuple[str, bytes] | None = None, content_length: int | None = None,
               buffers: Buffers | None = None, buffer_pool: BufferPool | None = None) -> ChunkWriter | UploadView:
    """Get ready to write a chunk at ``offset`` (blocking): checks, lock, acknowledged offset, repair of the tail.
    ``pool`` (the host's uploads pool) writes and hashes the bytes, into ``buffers`` taken from ``buffer_pool``.

    Returns the upload itself instead of a writer when it is already complete (a repeated final PATCH)."""
    view = host.run_as(identity, _check_writable, upload_id)
    check_offset(offset, view.offset if view.state == UploadState.completed else _acknowledged(host.storage, view)[0])
    check_body_length(content_length, view.size - offset)
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
        data = os.open(host.storage.partial_path(view.id), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                       0o600)
        acked = _repair(view.id, data, lock, fresh.offset)
        check_offset(offset, acked)
        fresh = replace(fresh, offset=acked)
        if acked >= fresh.size:  # every byte is in: completion (by the caller, holding the lock) sorts it out
            os.close(data)
            data = -1
        return ChunkWriter(host, identity, fresh, data, lock, checksum, pool, buffers, buffer_pool)
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


def _terminate_row(session: Session, actor: Actor, upload_id: str, offset: int | None = None) -> None:
    """Mark the upload terminated, with the offset it had reached (the row's offset is only written at the end)."""
    values: dict[str, Any] = {"state": UploadState.terminated}
    if offset is not None:
        values["offset"] = offset
    session.execute(update(Upload).where(Upload.id == upload_id, permissions.own_uploads(actor),
                                         Upload.state == UploadState.active)
                    .values(**values).execution_options(synchronize_session=False))


def complete_upload(host: Any, identity: Identity, upload_id: str, digest: str | None = None) -> UploadView:
    """Turn a fully received upload into a DataFile (blocking; idempotent; the caller holds the upload's lock).

    ``digest`` is the running sha256 when this process saw every chunk; otherwise the file is re-read. A declared
    whole-file sha256 that does not match terminates the upload (its bytes are removed) and raises 460: the bytes
    are wrong, resuming cannot fix them, so the client must start over."""
    storage = host.storage
    view = current_upload(host, identity, upload_id)
    if view.state == UploadState.completed:
        return view
    if view.offset < view.size:
        raise conflict(f"Only {view.offset} bytes of this upload are acknowledged; resume from there.",
                       field="Upload-Offset", reason="offset_mismatch")
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
    view = current_upload(host, identity, upload_id)
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
        offset = current_upload(host, identity, view.id).offset
        host.run_as(identity, _terminate_row, view.id, offset)
        _forget(host.storage, view.id)
    finally:
        os.close(lock)


def expire_uploads(host: Any, now: datetime | None = None) -> int:
    """Mark active uploads idle past their Upload-Expires as expired and delete their bytes; returns how many.

    Uploads being written right now (their lock is held) are left for the next run. The row's ``expires_at`` is
    only the creation's; one whose ack record says a chunk came later is moved forward instead (chunks write no
    row)."""
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
            last = os.fstat(lock).st_mtime if _read_ack(lock) is not None else None
            if last is not None:
                alive_until = datetime.fromtimestamp(last, timezone.utc) + timedelta(
                    seconds=host.settings.upload_expiry_seconds)
                if alive_until >= now:
                    with host.db.session() as session:
                        session.execute(update(Upload).where(Upload.id == upload_id)
                                        .values(expires_at=alive_until).execution_options(synchronize_session=False))
                    continue
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
