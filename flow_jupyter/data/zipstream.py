"""Zips streamed front to back: entry names that stay harmless wherever the zip is unpacked, the zip writer, and a
thread that makes the bytes while the event loop sends them.

Pure byte streaming: what goes into a zip (a `ZipPlan`) is decided and permission-checked before, by
data/downloads.py; every entry is opened like a single download (streaming.open_servable).
"""
from __future__ import annotations

import asyncio
import posixpath
import stat
import threading
import unicodedata
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .storage import MAX_NAME_BYTES
from .streaming import CHUNK_SIZE, COMPRESSION_SUFFIXES, Servable, open_regular, open_servable, portable_name


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
    if ext.lower() in COMPRESSION_SUFFIXES:
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
        archive.fp = None  # skip the central directory on close
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


__all__ = ["StreamCancelled", "ThreadedStream", "ZipEntry", "ZipPlan", "arc_names", "write_zip", "zip_stream"]
