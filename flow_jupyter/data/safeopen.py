"""Opening files under a directory without ever following a symbolic link, and checking that stored bytes are
still the ones Flow registered.

A run directory is written by the pipeline's tasks, so anything in it may be a link planted to make Flow serve
another user's file or a system file. Resolving a path and then opening it leaves a window in which a component can
be swapped; here every component is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so the file
opened is the one inside the directory, whatever happens meanwhile. Blocking: call from a worker thread.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import FlowError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class OutsideDirectory(FileNotFoundError):
    """The name leads out of the directory (a ``..``, an absolute path or a symbolic link on the way)."""


def _parts(relative: str) -> list[str]:
    pure = PurePosixPath(relative)
    if pure.is_absolute() or not relative or "\x00" in relative:
        raise OutsideDirectory(relative)
    parts = [part for part in pure.parts if part != "."]
    if not parts or ".." in parts:
        raise OutsideDirectory(relative)
    return parts


def open_beneath(directory: Path, relative: str) -> tuple[BinaryIO, os.stat_result]:
    """The regular file ``relative`` inside ``directory``, opened for reading, and its stat.

    Raises :class:`OutsideDirectory` (a FileNotFoundError) when any component is a symbolic link or the name leaves
    the directory, FileNotFoundError when it is not there, IsADirectoryError/OSError for anything not a regular
    file (a FIFO would block a reader forever: it is opened non-blocking and refused).
    """
    parts = _parts(relative)
    fd = os.open(directory, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (40, 20):  # ELOOP: a link; ENOTDIR: a file (or a link to one) where a folder is
                    raise OutsideDirectory(relative) from None
                raise
            os.close(fd)
            fd = child
        try:
            file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno == 40:
                raise OutsideDirectory(relative) from None
            raise
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(file_fd)
        raise IsADirectoryError(relative) if stat.S_ISDIR(info.st_mode) else OSError(f"{relative}: not a file")
    os.set_blocking(file_fd, True)
    return os.fdopen(file_fd, "rb", buffering=0), info


def relative_inside(directory: Path, path: Path) -> str | None:
    """``path`` (already free of links, e.g. from realpath) relative to ``directory``; None when outside it."""
    try:
        return str(Path(path).relative_to(directory))
    except ValueError:
        return None


def signed64(number: int) -> int:
    """An inode (unsigned 64-bit) as the signed BIGINT both databases store."""
    return number - (1 << 64) if number >= (1 << 63) else number


def check_identity(info: os.stat_result, inode: int | None, mtime_ns: int | None, size: int) -> None:
    """FlowError 409 ``file_changed`` when the opened file is not the one registered (swapped or rewritten).
    Files registered before identities were recorded are checked by size alone."""
    changed = info.st_size != size or (inode is not None and signed64(info.st_ino) != inode) or (
        mtime_ns is not None and info.st_mtime_ns != mtime_ns)
    if changed:
        raise FlowError(409, "file_changed", "The stored bytes of this data file changed after Flow registered "
                        "them, so they are not served; ask an admin to check the store.")
