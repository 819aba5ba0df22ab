"""File-system helpers every layer shares: atomic writes that survive a crash, and sha256 of files and streams.

An atomic write puts the bytes in a temporary file beside the target, fsyncs it, renames it onto the target and
fsyncs the directory: a reader sees the old file or the new one, never half of one, also after a power cut. The
temporary file is created like ``open(path, "w")`` would (mode 0666 minus the umask), so a run file Flow writes stays
readable by the account its job runs as.

Standard library only: the notebook client (``flow_jupyter.client``), which must import without the server's
dependencies, uses the hashing helpers too.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Protocol

CHUNK = 1 << 20
"""Bytes per read when hashing or copying: large enough for throughput, small enough for flat memory."""


class Readable(Protocol):
    """A binary file open for reading."""

    def readinto(self, buffer: bytearray, /) -> int | None: ...


class Writable(Protocol):
    """A blocking binary file open for writing (its ``write`` takes what it can and says how much)."""

    def write(self, data: memoryview, /) -> int: ...


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in ``path`` durable (the entry lives in the directory, not in the file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """``os.replace`` made durable: the target's directory (and the source's, when another) is fsynced after."""
    source, target = Path(source), Path(target)
    os.replace(source, target)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically and durably; ``mode`` (e.g. 0o755) is set before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, _CREATE_FLAGS, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if mode is not None:
            os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
                      mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode(encoding), mode=mode)


def atomic_write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 2,
                      ensure_ascii: bool = True) -> None:
    """``value`` as JSON with a final newline, written atomically."""
    atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=ensure_ascii) + "\n")


def hash_stream(stream: Readable, hasher: Any = None, *, copy_to: Writable | None = None,
                chunk: int = CHUNK) -> tuple[Any, int]:
    """Feed what is left of ``stream`` to ``hasher`` (a new sha256 by default), also writing each piece to
    ``copy_to`` when given; returns the hasher (still open for more) and the number of bytes read. Blocking."""
    hasher = hashlib.sha256() if hasher is None else hasher
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    size = 0
    while n := stream.readinto(buffer):
        piece = view[:n]
        hasher.update(piece)
        if copy_to is not None:
            while piece:
                piece = piece[copy_to.write(piece):]
        size += n
    return hasher, size


def hash_file(path: str | os.PathLike[str], hasher: Any = None, *, chunk: int = CHUNK) -> tuple[Any, int]:
    """:func:`hash_stream` of the file at ``path``."""
    with open(path, "rb") as handle:
        return hash_stream(handle, hasher, chunk=chunk)


def sha256_file(path: str | os.PathLike[str], *, chunk: int = CHUNK) -> str:
    """The sha256 hex digest of the file at ``path`` (blocking: call it on a worker thread)."""
    return hash_file(path, chunk=chunk)[0].hexdigest()


__all__ = ["CHUNK", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "fsync_dir", "hash_file",
           "hash_stream", "replace", "sha256_file"]
