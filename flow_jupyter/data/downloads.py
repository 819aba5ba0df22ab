"""Downloads: permission-checked single files (with byte ranges) and bulk zips, streamed or built as background jobs.

Plain Python, no tornado: api/downloads.py only translates HTTP to these calls. Every path served here comes from a
stored row through ``Storage.resolve`` (never from the client) and is opened without following a final symlink, so a
tampered row or a symlink planted under the root cannot make Flow serve a file from outside it.
"""
from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import mimetypes
import os
import posixpath
import re
import stat
import threading
import unicodedata
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db.models import BackgroundJob, DataFile, JobStatus, Project, Sample, User, utcnow
from ..errors import FlowError, not_found
from ..identity import Actor, Identity, resolve
from ..permissions import require_datafile, require_project, visible_datafiles, visible_projects
from .safeopen import OutsideDirectory, check_identity, open_beneath
from .storage import MAX_NAME_BYTES, Storage, safe_filename

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
"""Bytes per read and per write to the client: large enough for throughput, small enough for flat memory."""
MAX_BULK_FILES = 10_000
MAX_DB_ID = 2**31 - 1
ZIP_KIND = "zip"
ZIP_AREA = "zips"
BULK_ZIP_NAME = "flow-download.zip"
_ID_BATCH = 500  # ids per IN (...) query: well under SQLite's variable limit

BULK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["files"],
    "properties": {
        "files": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BULK_FILES,
            "items": {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID},
        },
        "deferred": {"type": "boolean"},
    },
}


# --- Names that leave Flow ----------------------------------------------------------------------------------------

# Lookalikes of a path separator that Unicode's compatibility fold (NFKC) leaves alone but that other software maps
# to "/" or "\\" anyway: Windows "best fit" code-page conversion (U+2215, U+2044, U+2216; U+00A5 and U+20A9 are 0x5C,
# the backslash, in the Japanese and Korean code pages) and plain visual confusion in a file manager.
_SEPARATOR_LOOKALIKES = frozenset("\u2044\u2215\u2216\u2571\u2572\u29f8\u29f9\u3033\u3035\u00a5\u20a9\u0338\u20e5")
_UNSAFE_AFTER_FOLD = frozenset('/\\:*?"<>|.') | frozenset(map(chr, range(32))) | {"\x7f"} | _SEPARATOR_LOOKALIKES
_DOT_RUN = re.compile(r"\.{2,}")
_NOT_QUOTABLE = re.compile(r'[^\x20-\x7e]|["\\%]')
_WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$",
                              *(f"{kind}{n}" for kind in ("COM", "LPT") for n in "0123456789")})


def _unsafe_char(char: str) -> bool:
    """True for a character that is, or folds under NFKC into, a separator, a dot, a control or a Windows-reserved
    character (full-width ``．／＼：``, U+2024 one-dot leader, ``℀`` → ``a/c``, ``½`` → ``1⁄2``). An ASCII dot itself
    is fine: dots are judged as runs, after this."""
    if char == ".":
        return False
    return char in _UNSAFE_AFTER_FOLD or any(c in _UNSAFE_AFTER_FOLD for c in unicodedata.normalize("NFKC", char))


def portable_name(name: str, fallback: str = "download") -> str:
    """A name that stays one harmless path component wherever it lands: what the exact stored name becomes in a zip
    entry and (before its ASCII fold) in ``filename=``. Every tool that applies NFKC or a best-fit code page on the way
    (browsers, unzip, Windows) must see no separator, no ``..`` and no reserved or device name.

    Stored names keep their lookalikes (see storage.safe_filename); only names leaving Flow pass through here, so a
    researcher's exact name is never rewritten in the database and ``filename*`` can still carry it."""
    name = "".join("_" if _unsafe_char(c) else c for c in safe_filename(name, fallback))
    name = _DOT_RUN.sub(".", name).rstrip(". ").lstrip(". ")  # Windows drops trailing dots and spaces itself
    stem = unicodedata.normalize("NFKC", name).split(".", 1)[0].rstrip(" ").upper()
    if stem in _WINDOWS_DEVICES:  # CON.txt, nul, COM¹ (NFKC: COM1) open a device on Windows, not a file
        name = "_" + name
    return safe_filename(name, fallback) if name.strip("_") else fallback


def ascii_filename(name: str, fallback: str = "download") -> str:
    """The ``filename=`` fallback for clients without RFC 6266 ``filename*``: the portable name folded to ASCII
    (compatibility forms and accents decomposed, anything else non-ASCII, quotes, backslashes and percent signs
    replaced), so it is a quotable token with no separator or ``..`` in it whatever the client does to it."""
    portable = portable_name(name, fallback)
    decomposed = "".join(c for c in unicodedata.normalize("NFKD", portable) if not unicodedata.combining(c))
    return portable_name(_NOT_QUOTABLE.sub("_", decomposed), fallback)


# --- Headers --------------------------------------------------------------------------------------------------

_COMPRESSION_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
                      "compress": "application/x-compress", "br": "application/x-brotli"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".br", ".z"}


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """A Content-Disposition that no filename can break: an ASCII ``filename=`` fallback for old clients (see
    ascii_filename) plus the exact stored name, percent-encoded UTF-8, in ``filename*`` (RFC 6266 / RFC 8187); the
    browser applies its own download-name rules to that one, as it must for any server."""
    name = safe_filename(filename, fallback="download")
    return f"{disposition}; filename=\"{ascii_filename(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


def content_type(filename: str) -> str:
    """The media type guessed from the name. Compressed files are the compressed type (never Content-Encoding:
    clients would silently decompress a .fastq.gz), unknown ones application/octet-stream."""
    mime, encoding = mimetypes.guess_type(filename, strict=False)
    if encoding:
        return _COMPRESSION_TYPES.get(encoding, "application/octet-stream")
    return mime or "application/octet-stream"


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(int(timestamp), usegmt=True)


def etag_for(sha256: str) -> str:
    return f'"{sha256}"'


# --- Conditional and range requests (RFC 9110) ------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to answer: 200 (whole), 206 (one range), 304 (not modified) or 416 (unsatisfiable range)."""

    status: int
    start: int = 0
    length: int = 0

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.start + self.length - 1}"


_RANGE_SPEC = re.compile(r"^\s*(\d{0,19})\s*-\s*(\d{0,19})\s*$")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, length)`` of a single byte range, or None to send the whole file (no Range, another unit, a
    syntax error, or several ranges — which we answer with the whole file rather than multipart/byteranges)."""
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.match(spec)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last n bytes
        wanted = int(last)
        if wanted == 0 or size == 0:
            raise RangeNotSatisfiable
        start = max(0, size - wanted)
        return start, size - start
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored, like any malformed Range
    if start >= size:
        raise RangeNotSatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return start, end - start + 1


def _etag_listed(header: str, etag: str) -> bool:
    """Weak comparison against an If-None-Match list (``*`` matches anything)."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _not_modified(headers: Mapping[str, str], etag: str, mtime: float) -> bool:
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:  # takes precedence over If-Modified-Since
        return _etag_listed(if_none_match, etag)
    since = headers.get("If-Modified-Since")
    if not since:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(mtime) <= when.timestamp()


def _range_allowed(if_range: str | None, etag: str, mtime: float) -> bool:
    """If-Range: honour the Range only when the client's copy is this exact representation."""
    if not if_range:
        return True
    value = if_range.strip()
    if value.startswith(("\"", "W/")):
        return value == etag  # strong comparison: a weak tag never matches
    return value == http_date(mtime)


def plan_response(headers: Mapping[str, str], size: int, etag: str, mtime: float) -> Plan:
    """Evaluate If-None-Match / If-Modified-Since, then Range / If-Range, in RFC 9110's order."""
    if _not_modified(headers, etag, mtime):
        return Plan(304)
    whole = Plan(200, 0, size)
    if not _range_allowed(headers.get("If-Range"), etag, mtime):
        return whole
    try:
        wanted = parse_range(headers.get("Range"), size)
    except RangeNotSatisfiable:
        return Plan(416)
    if wanted is None:
        return whole
    return Plan(206, *wanted)


# --- Opening stored files ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Servable:
    """A stored file the caller may have, resolved under the Flow root, with its public name and ETag.

    With ``root`` the file is opened as ``relative`` beneath it without following any link (a run directory, or
    the Flow root for data files); with ``identity`` (inode, mtime_ns, size as registered) it must still be the
    registered file."""

    path: Path
    filename: str
    etag: str
    root: Path | None = None
    relative: str | None = None
    identity: tuple[int | None, int | None, int] | None = None


def open_servable(target: Servable) -> tuple[BinaryIO, os.stat_result]:
    """Open what ``target`` names (blocking: call on a worker thread); FlowError when it is not what Flow stored."""
    if target.root is None or target.relative is None:
        handle, info = open_regular(target.path)
    else:
        try:
            handle, info = open_beneath(target.root, target.relative)
        except OutsideDirectory:
            raise FlowError(409, "file_changed", "This file's path now leads through a symbolic link; Flow does not "
                            "follow it.") from None
        except FileNotFoundError:
            raise FlowError(500, "file_missing", "The stored bytes of this file are missing.") from None
        except OSError:
            raise FlowError(500, "bad_storage_path", "Stored path cannot be served.") from None
    if target.identity is not None:
        try:
            check_identity(info, *target.identity)
        except FlowError:
            handle.close()
            raise
    return handle, info


def datafile_target(storage: Storage, datafile: DataFile, filename: str | None = None) -> Servable:
    """How a data file's registered bytes are opened: beneath the Flow root, no link followed, identity checked."""
    return Servable(storage.resolve(datafile.storage_path), filename or datafile.filename, etag_for(datafile.sha256),
                    root=storage.root, relative=datafile.storage_path,
                    identity=(datafile.stat_inode, datafile.stat_mtime_ns, datafile.size))


_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def open_regular(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """Open a resolved stored path for reading: no final symlink (closes the swap-after-resolve race), no FIFO
    that would block, no directory or device. Blocking: call it on a worker thread."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise FlowError(500, "file_missing", "The stored bytes of this file are missing.") from None
    except OSError:
        raise FlowError(500, "bad_storage_path", "Stored path cannot be served.") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FlowError(500, "bad_storage_path", "Stored path is not a regular file.")
    if getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)  # O_NONBLOCK was only there to open safely; reads stay plain blocking reads
    return os.fdopen(fd, "rb", buffering=0), info


def read_at(handle: BinaryIO, offset: int, length: int) -> bytes:
    """One chunk at ``offset`` (callers keep a single read in flight per handle)."""
    handle.seek(offset)
    return handle.read(length) or b""


def datafile_servable(session: Session, actor: Actor, storage: Storage, datafile_id: int) -> Servable:
    """The data file's bytes, if the caller may view it (404 otherwise, as if it did not exist)."""
    if datafile_id > MAX_DB_ID:
        raise not_found("data file")
    datafile = require_datafile(session, actor, datafile_id, "view")
    return datafile_target(storage, datafile)


# --- Zips ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipEntry:
    arcname: str
    path: Path
    size: int
    target: Servable | None = None  # a data file's registered bytes, opened and checked like a download


@dataclass(frozen=True)
class ZipPlan:
    """Everything a zip needs, decided (and permission-checked) before its first byte is sent."""

    filename: str
    entries: tuple[ZipEntry, ...]


def _split_extension(name: str) -> tuple[str, str]:
    """``reads.fq.gz`` → (``reads``, ``.fq.gz``): a compression suffix keeps the extension before it."""
    root, ext = posixpath.splitext(name)
    if ext.lower() in _COMPRESSION_SUFFIXES:
        inner_root, inner_ext = posixpath.splitext(root)
        if inner_ext and inner_root:
            return inner_root, inner_ext + ext
    return root, ext


def _numbered(name: str, n: int) -> str:
    stem, ext = _split_extension(name)
    suffix = f" ({n}){ext}"
    budget = MAX_NAME_BYTES - len(suffix.encode())
    return stem.encode()[:budget].decode("utf-8", "ignore") + suffix


def _name_key(name: str) -> str:
    """When two zip entry names are the same file once unpacked: equal after NFKC and case folding (case-insensitive
    disks, and unzip tools that normalise), so neither can overwrite the other."""
    return unicodedata.normalize("NFKC", name).casefold()


def arc_names(items: Sequence[tuple[str, str | None]]) -> list[str]:
    """Names inside the zip for ``(filename, folder or None)`` pairs: each part made portable (portable_name: no
    separator, ``..`` or device name survives NFKC or a best-fit code page, so the folder "/" is the only one), unique
    after case folding and NFKC, ``name (2).ext`` for repeats; a top-level file never takes a folder's name."""
    folders = {_name_key(portable_name(folder, "unnamed")) for _, folder in items if folder}
    used: set[str] = set(folders)
    next_number: dict[str, int] = {}
    names = []
    for filename, folder in items:
        prefix = f"{portable_name(folder, 'unnamed')}/" if folder else ""
        name = portable_name(filename, "unnamed")
        key = _name_key(prefix + name)
        candidate, n = prefix + name, next_number.get(key, 1)
        while _name_key(candidate) in used:
            n += 1
            candidate = prefix + _numbered(name, n)
        next_number[key] = n
        used.add(_name_key(candidate))
        names.append(candidate)
    return names


def _visible_sample_names(session: Session, actor: Actor, sample_ids: set[int]) -> dict[int, str]:
    """Sample names become folders only when the caller can see the sample's project (no name leak through a file
    shared on its own)."""
    names: dict[int, str] = {}
    ids = sorted(sample_ids)
    for i in range(0, len(ids), _ID_BATCH):
        rows = session.execute(
            select(Sample.id, Sample.name).join(Project, Project.id == Sample.project_id)
            .where(Sample.id.in_(ids[i:i + _ID_BATCH]), visible_projects(actor))
        )
        names.update({sid: name for sid, name in rows})
    return names


def _plan(session: Session, actor: Actor, storage: Storage, datafiles: Sequence[DataFile], filename: str,
          fields: Sequence[str | None] | None = None) -> ZipPlan:
    samples = _visible_sample_names(session, actor, {d.sample_id for d in datafiles if d.sample_id is not None})
    names = arc_names([(d.filename, samples.get(d.sample_id) if d.sample_id else None) for d in datafiles])
    entries = []
    for index, (datafile, arcname) in enumerate(zip(datafiles, names)):
        field = fields[index] if fields else None
        target = datafile_target(storage, datafile)
        try:
            handle, info = open_servable(target)  # checked before the first byte is sent
        except FlowError as exc:
            raise FlowError(exc.status, exc.reason, f"Data file {datafile.id}: {exc.message}", field) from None
        handle.close()
        entries.append(ZipEntry(arcname, target.path, info.st_size, target))
    return ZipPlan(filename, tuple(entries))


def zip_plan_for_files(session: Session, actor: Actor, storage: Storage, ids: Sequence[int]) -> ZipPlan:
    """Check every requested id (404 naming ``/files/<index>`` for the first the caller cannot see) before
    anything is sent. Repeated ids are zipped once."""
    found: dict[int, DataFile] = {}
    wanted = list(dict.fromkeys(int(i) for i in ids))
    for i in range(0, len(wanted), _ID_BATCH):
        batch = wanted[i:i + _ID_BATCH]
        found.update((d.id, d) for d in session.scalars(
            select(DataFile).where(DataFile.id.in_(batch), visible_datafiles(actor))))
    first_index: dict[int, int] = {}
    for index, datafile_id in enumerate(ids):
        if int(datafile_id) not in found:
            raise not_found("data file", field=f"/files/{index}")
        first_index.setdefault(int(datafile_id), index)
    datafiles = [found[i] for i in wanted]
    return _plan(session, actor, storage, datafiles, BULK_ZIP_NAME, [f"/files/{first_index[i]}" for i in wanted])


def zip_plan_for_project(session: Session, actor: Actor, storage: Storage, project_id: int) -> ZipPlan:
    """All data files of a project the caller can view, grouped by sample."""
    if project_id > MAX_DB_ID:
        raise not_found("project")
    project = require_project(session, actor, project_id, "view")
    datafiles = session.scalars(
        select(DataFile).where(DataFile.project_id == project.id, visible_datafiles(actor)).order_by(DataFile.id)
    ).all()
    return _plan(session, actor, storage, datafiles, project_zip_name(project.name))


def project_zip_name(project_name: str) -> str:
    """``<project name>.zip``, at most 255 bytes with the extension kept. Exact (safe_filename) so ``filename*`` is
    the project's real name; content_disposition makes the portable ``filename=`` from it."""
    stem = safe_filename(project_name, "project")
    stem = stem.encode()[:MAX_NAME_BYTES - len(".zip")].decode("utf-8", "ignore").rstrip()
    return f"{stem or 'project'}.zip"


def _zip_time(timestamp: float) -> tuple[int, int, int, int, int, int]:
    when = datetime.fromtimestamp(max(timestamp, 315532800), timezone.utc)  # zip dates start in 1980
    return (min(when.year, 2107), when.month, when.day, when.hour, when.minute, when.second)


class StreamCancelled(Exception):
    """The consumer went away (client disconnect): the producer stops at its next write."""


def write_zip(out: Any, entries: Iterable[ZipEntry], compression: int = zipfile.ZIP_STORED) -> None:
    """Write a zip of ``entries`` to ``out`` front to back. ``out`` needs only write() and tell(); without seek()
    zipfile uses data descriptors, so a socket-like sink works. ZIP64 is switched on per entry as sizes need it.
    Stored by default: sequencing files are already compressed. On failure the archive is left without its
    central directory, so a truncated result never looks like a complete zip."""
    archive = zipfile.ZipFile(out, "w", compression=compression, allowZip64=True)
    try:
        for entry in entries:
            handle, info = open_servable(entry.target) if entry.target is not None else open_regular(entry.path)
            with handle:
                member = zipfile.ZipInfo(entry.arcname, date_time=_zip_time(info.st_mtime))
                member.compress_type = compression
                member.file_size = info.st_size
                member.external_attr = (stat.S_IFREG | 0o644) << 16
                with archive.open(member, "w") as target:
                    while chunk := handle.read(CHUNK_SIZE):
                        target.write(chunk)
    except BaseException:
        archive.fp = None  # type: ignore[assignment]  # skip the central directory on close
        raise
    archive.close()


class ThreadedStream:
    """Bytes made by ``produce(sink)`` on a thread of its own, handed to the event loop through a bounded queue
    (at most ``max_chunks`` chunks of ``chunk_size`` wait at any time, so memory stays flat whatever the size).
    ``cancel()`` (client gone) makes the producer's next write raise StreamCancelled."""

    _END = object()

    def __init__(self, produce: Callable[[Any], None], *, chunk_size: int = CHUNK_SIZE, max_chunks: int = 4,
                 name: str = "flow-zip-stream"):
        self._produce = produce
        self._chunk_size = chunk_size
        self._slots = threading.Semaphore(max_chunks)
        self._stop = threading.Event()
        self._buffer = bytearray()
        self._position = 0
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self.thread: threading.Thread | None = None

    # --- producer side (worker thread): the file-like object zipfile writes to
    def write(self, data: bytes) -> int:
        if self._stop.is_set():
            raise StreamCancelled
        size = len(data)
        self._position += size
        if not self._buffer and size >= self._chunk_size:
            self._emit(bytes(data))
        else:
            self._buffer += data
            if len(self._buffer) >= self._chunk_size:
                self._emit(bytes(self._buffer))
                self._buffer.clear()
        return size

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing: chunks leave when full, the rest when the producer returns."""

    def _emit(self, item: bytes) -> None:
        while not self._slots.acquire(timeout=0.5):
            if self._stop.is_set():
                raise StreamCancelled
        if self._stop.is_set():
            raise StreamCancelled
        self._hand_over(item)

    def _hand_over(self, item: Any) -> None:
        assert self._loop is not None and self._queue is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _run(self) -> None:
        try:
            self._produce(self)
            if self._buffer:
                self._emit(bytes(self._buffer))
                self._buffer.clear()
            end: Any = self._END
        except StreamCancelled:
            return
        except BaseException as exc:  # handed to the consumer, which decides how to fail the response
            end = exc
        try:
            self._hand_over(end)
        except RuntimeError:  # event loop closed (server shutting down)
            pass

    # --- consumer side (event loop)
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self.thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self.thread.start()

    async def chunks(self) -> AsyncIterator[bytes]:
        assert self._queue is not None, "start() first"
        while True:
            item = await self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            self._slots.release()
            yield item

    def cancel(self) -> None:
        """Stop the producer; safe to call more than once and after the end."""
        self._stop.set()
        self._slots.release()  # wake a producer waiting for a free slot


def zip_stream(plan: ZipPlan) -> ThreadedStream:
    return ThreadedStream(lambda sink: write_zip(sink, plan.entries))


# --- Deferred zips (background jobs) --------------------------------------------------------------------------------

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
            job = session.get(BackgroundJob, job_id)
            owner = session.get(User, job.owner_id)
            actor = resolve(session, Identity(name=owner.name))
            plan = zip_plan_for_files(session, actor, host.storage, job.args["files"])
        with open(partial, "wb") as raw:
            sink = _HashingSink(raw)
            write_zip(sink, plan.entries)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, zip_path(host.storage, job_id))
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


def _own_job(session: Session, actor: Actor, job_id: int) -> BackgroundJob:
    """A job is its owner's (and, as everything, a Flow admin's): anyone else gets 404, as if it did not exist.
    Admins matter in single-user mode, where each token-only request may carry a new anonymous user name."""
    job = session.get(BackgroundJob, job_id) if job_id <= MAX_DB_ID else None
    if job is None or (job.owner_id != actor.user_id and not actor.is_admin):
        raise not_found("job")
    return job


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
    return job_json(_own_job(session, actor, job_id))


def job_servable(session: Session, actor: Actor, storage: Storage, job_id: int) -> Servable:
    """The finished zip of the caller's own job; 409 while it is not built, 410 once expired."""
    job = _own_job(session, actor, job_id)
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
