"""Reading the complete lines appended to a growing file since a stored byte offset.

Nextflow's three outputs in a run directory (the plugin's events, the trace file, the log) only grow, so the
monitor never re-reads one: a :class:`Tail` reads the bytes appended since its :class:`TailPosition` and hands out
the complete lines among them. Positions are plain ints the caller persists, so a restarted server resumes where it
stopped. Files are opened beneath the run directory without following links (data/safeopen.py): a task could plant
a link to make Flow read another file. No parsing here; the lines are bytes.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..data.safeopen import open_beneath

MAX_LINE = 1 << 20
"""Longest line (bytes) a Tail hands out; longer ones are skipped to the next newline and counted."""
CHUNK = 1 << 18
"""Bytes read per system call."""
POLL_BUDGET = 64 << 20
"""Bytes one read takes from a file at most, so catching up after a long outage never blocks for long; the rest
comes on the next read (``TailRead.more``)."""
HEAD_BYTES = 64
"""Bytes at the start of a file fingerprinted to notice a replacement that reused the inode number."""


@dataclass
class TailPosition:
    """Where a Tail stopped: all ints, persisted by the caller between polls and across server restarts.

    ``inode`` and the head fingerprint tell "the same file, grown" from "a new file" (Nextflow rotates
    ``.nextflow.log`` on a resumed run; an operator may replace a file). ``skipping`` is 1 while the Tail is inside an
    oversized line whose end has not been written yet.
    """

    offset: int = 0
    inode: int = 0
    head_len: int = 0
    head_crc: int = 0
    skipping: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> TailPosition:
        """Tolerant: a missing or damaged record starts the file from the beginning."""
        if not isinstance(data, dict):
            return cls()
        values = {f.name: data.get(f.name) for f in fields(cls)}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()):
            return cls()
        return cls(**values)  # type: ignore[arg-type]  # every value was just checked to be an int


@dataclass
class TailRead:
    """What one :meth:`Tail.read` found."""

    lines: list[bytes]
    restarted: bool = False
    """The file was truncated or replaced since the stored position, and was read again from its start."""
    oversized: int = 0
    more: bool = False
    """The byte budget ran out before the end of the file."""


class Tail:
    """Reads the complete lines appended to a file since a stored byte offset.

    A partial last line stays in the file for the next read (the offset stops at its start), so a line written in two
    pieces is handed out once, whole. Lines longer than ``max_line`` are consumed up to their newline but not handed
    out. The file is never read whole: a read costs the new bytes plus, at most, one partial line re-read.
    """

    def __init__(self, path: str | os.PathLike[str], position: TailPosition | None = None, *,
                 max_line: int = MAX_LINE, chunk: int = CHUNK) -> None:
        self.path = Path(path)
        self.position = position or TailPosition()
        self.max_line = max_line
        self.chunk = chunk

    def read(self, max_bytes: int = POLL_BUDGET) -> TailRead:
        """New complete lines (without their newline); a missing file is simply "nothing yet"."""
        try:
            # Beneath its directory, never through a link: a task could plant one to make Flow read another file.
            handle, _info = open_beneath(self.path.parent, self.path.name)
        except OSError:
            return TailRead([])
        with handle:
            pos = self.position
            stat = os.fstat(handle.fileno())
            restarted = self._replaced(handle, stat)
            if restarted:
                pos.offset, pos.skipping, pos.head_len, pos.head_crc = 0, 0, 0, 0
            pos.inode = stat.st_ino
            if pos.head_len < HEAD_BYTES and stat.st_size > pos.head_len:
                head = os.pread(handle.fileno(), HEAD_BYTES, 0)
                pos.head_len, pos.head_crc = len(head), zlib.crc32(head)
            if stat.st_size <= pos.offset:
                return TailRead([], restarted)
            handle.seek(pos.offset)
            return self._scan(handle, max_bytes, restarted)

    def _replaced(self, handle: Any, stat: os.stat_result) -> bool:
        pos = self.position
        if pos.offset == 0 and pos.head_len == 0:
            return False
        if pos.inode and stat.st_ino != pos.inode:
            return True
        if stat.st_size < pos.offset or stat.st_size < pos.head_len:
            return True
        return pos.head_len > 0 and zlib.crc32(os.pread(handle.fileno(), pos.head_len, 0)) != pos.head_crc

    def _scan(self, handle: Any, max_bytes: int, restarted: bool) -> TailRead:
        pos = self.position
        lines: list[bytes] = []
        oversized = 0
        consumed = pos.offset      # first byte not yet handed out or skipped
        pending = b""              # bytes of an unfinished line
        read = 0
        eof = False
        while read < max_bytes:
            chunk = handle.read(self.chunk)
            if not chunk:
                eof = True
                break
            read += len(chunk)
            if pos.skipping:
                newline = chunk.find(b"\n")
                if newline < 0:
                    consumed += len(chunk)
                    continue
                consumed += newline + 1
                pos.skipping = 0
                chunk = chunk[newline + 1:]
            data = pending + chunk if pending else chunk
            parts = data.split(b"\n")
            pending = parts.pop()
            for part in parts:
                consumed += len(part) + 1
                if len(part) > self.max_line:
                    oversized += 1
                else:
                    lines.append(part)
            if len(pending) > self.max_line:
                oversized += 1
                pos.skipping = 1
                consumed += len(pending)
                pending = b""
        pos.offset = consumed
        return TailRead(lines, restarted, oversized, more=not eof and read >= max_bytes)


__all__ = ["CHUNK", "HEAD_BYTES", "MAX_LINE", "POLL_BUDGET", "Tail", "TailPosition", "TailRead"]
