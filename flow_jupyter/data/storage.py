"""Storage layout under the Flow root, and the only code that turns stored relative paths into real paths.

Paths never come from clients: a stored file's path is made here (``uploads/YYYY/MM/<uuid>/<safe name>``) and
every resolution is checked to stay under the root after symlinks are resolved.
"""
from __future__ import annotations

import os
import re
import unicodedata
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ..errors import FlowError

AREAS = ("uploads", "outputs", "executions", "pipelines", "configs", "media", "zips")
MAX_NAME_BYTES = 255
# C0/C1 controls (U+0085 is a newline to some readers), Windows-reserved punctuation, line/paragraph separators and
# the bidi embedding/override/isolate marks that make "evil\u202etxt.exe" display as "evilexe.txt".
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]')


def safe_filename(name: str, fallback: str = "unnamed") -> str:
    """A display/storage name with no path in it: the last path component, no control, bidi-override or reserved
    characters, no leading dots, at most 255 UTF-8 bytes (extension kept). Never used to build a path by itself.

    NFC only, on purpose: this is the exact name a researcher sees and gets back (``filename*``), and part of stored
    paths, so compatibility lookalikes (full-width ``．．／``, U+2215) are kept here — to POSIX they are ordinary
    characters. They are neutralised where a name leaves Flow (streaming.portable_name: headers, zip entries)."""
    name = unicodedata.normalize("NFC", str(name)).replace("\x00", "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if not name or set(name) <= {".", "_"}:
        name = fallback
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = dot + ext if dot and len(ext.encode()) <= 16 else ""
        stem = name[: len(name) - len(ext)] if ext else name
        budget = MAX_NAME_BYTES - len(ext.encode())
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
        name = stem + ext
    return name


class Storage:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def prepare(self) -> None:
        for area in AREAS:
            (self.root / area).mkdir(parents=True, exist_ok=True)
        (self.root / "uploads" / ".partial").mkdir(exist_ok=True)

    def partial_path(self, upload_id: str) -> Path:
        """Where an unfinished upload's bytes live; the id is a server-made UUID, checked here anyway."""
        return self.resolve(f"uploads/.partial/{uuid.UUID(upload_id)}")

    def new_relative_path(self, filename: str, area: str = "uploads") -> str:
        now = datetime.now(timezone.utc)
        return f"{area}/{now:%Y}/{now:%m}/{uuid.uuid4()}/{safe_filename(filename)}"

    def resolve(self, relative: str) -> Path:
        """The real path of a stored relative path; refuses anything that would leave the root."""
        if not relative or "\x00" in relative or os.path.isabs(relative):
            raise FlowError(500, "bad_storage_path", "Stored path is invalid.")
        path = (self.root / relative).resolve()
        if path != self.root and self.root not in path.parents:
            raise FlowError(500, "bad_storage_path", "Stored path leaves the Flow root.")
        return path

    def free_bytes(self) -> int:
        import shutil

        return shutil.disk_usage(self.root).free
