"""Downloading to a file: streamed in pieces (never whole in memory), with progress, into ``<name>.part`` that is
renamed only once complete and checked.

A data file's bytes carry its sha256 as ETag, so an interrupted download resumes with ``Range`` guarded by
``If-Range``: if the file changed meanwhile the server sends it whole and the client starts over. The finished
file is compared with the recorded sha256. Other downloads (logs, MultiQC data) simply start over on failure.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests

from ..fsutil import hash_file
from .errors import FlowError
from .http import Transport, unreachable
from .progress import Progress, ProgressArg

PIECE = 1024 * 1024
STREAM_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def download_to(transport: Transport, api_path: str, dest: Path, *, size: int | None = None,
                sha256: str | None = None, progress: ProgressArg = True) -> Path:
    """Stream ``api_path`` into ``dest``. With ``sha256`` (a data file) interruptions resume and the result is
    verified; without, each retry starts from the first byte."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumable = sha256 is not None
    failures = 0
    with Progress(progress, size, dest.name) as bar:
        while True:
            have = part.stat().st_size if resumable and part.exists() else 0
            if have and size is not None and have >= size:  # left whole by an earlier attempt
                if have == size and (digest := hash_file(part)[0].hexdigest()) == sha256:
                    return _finish(part, dest, sha256, digest)
                part.unlink()
                have = 0
            headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'} if have else {}
            try:
                response = transport.request("GET", api_path, headers=headers, stream=True, ok=(416,))
                with response:
                    if response.status_code == 416:  # the file shrank under the part: start over
                        part.unlink(missing_ok=True)
                        failures += 1
                        if failures > transport.settings.retries:
                            raise FlowError.from_response(response)
                        continue
                    append = response.status_code == 206
                    hasher = hash_file(part)[0] if append else hashlib.sha256()
                    done = have if append else 0
                    total = size if size is not None else _length(response, done)
                    with open(part, "ab" if append else "wb") as out:
                        for piece in response.iter_content(PIECE):
                            out.write(piece)
                            hasher.update(piece)
                            done += len(piece)
                            bar.update_to(done, total)
                return _finish(part, dest, sha256, hasher.hexdigest())
            except STREAM_ERRORS as exc:
                failures += 1
                if failures > transport.settings.retries:
                    raise unreachable(transport.url(api_path), exc, failures) from exc
                transport.sleep(transport.delay(failures - 1))


def _length(response: requests.Response, start: int) -> int | None:
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _finish(part: Path, dest: Path, sha256: str | None, digest: str) -> Path:
    if sha256 is not None and digest != sha256:
        part.unlink(missing_ok=True)
        raise FlowError(f"{dest.name} arrived with a different sha256 than the server recorded; it was not kept. "
                        "Download it again.", reason="checksum_mismatch")
    os.replace(part, dest)
    return dest
