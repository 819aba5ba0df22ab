"""Serving stored bytes over HTTP, as pure byte streaming: safe names, headers, conditional and Range requests
(RFC 9110), and opening a stored file so that it is the one Flow registered.

No database and no permissions: callers (data/downloads.py, the handlers) decide what may be served and hand over a
`Servable`. Every path comes from a stored row through ``Storage.resolve`` (never from the client) and is opened
without following a final symlink, so a tampered row or a symlink planted under the root cannot make Flow serve a
file from outside it.
"""
from __future__ import annotations

import email.utils
import mimetypes
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from ..db.models import DataFile
from ..errors import FlowError
from .safeopen import OutsideDirectory, check_identity, open_beneath
from .storage import Storage, safe_filename

CHUNK_SIZE = 1 << 20
"""Bytes per read and per write to the client: large enough for throughput, small enough for flat memory."""


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
COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".br", ".z"}


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


__all__ = [
    "CHUNK_SIZE", "Plan", "RangeNotSatisfiable", "Servable", "ascii_filename", "content_disposition",
    "content_type", "datafile_target", "etag_for", "http_date", "open_regular", "open_servable", "parse_range",
    "plan_response", "portable_name", "read_at",
]
