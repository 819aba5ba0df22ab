"""Uploading a file with tus 1.0.0 (see docs/uploads.md): create, then PATCH it chunk by chunk from disk.

A chunk is read from the file piece by piece while requests sends it, so neither the file nor a chunk is ever in
memory whole. When a PATCH fails — the connection dropped, the server restarted, a 5xx, a 409 because the server
is still finishing the interrupted request — the client asks the server with HEAD how many bytes it keeps
(acknowledged bytes are durable; bytes of an interrupted chunk may be kept too) and goes on from there, with
back-off, up to ``retries`` times in a row without progress. A running sha256 of what the server holds is kept
in step, so the finished file is checked against the server's checksum without reading the file twice.
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import FlowError
from .http import Transport
from .progress import Progress, ProgressArg

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
PIECE = 1024 * 1024
PATCH_READ_TIMEOUT = 600.0  # the answer to a last chunk comes after the server fsyncs and registers the file


@dataclass
class UploadResult:
    datafile_id: int
    sha256: str  # of the bytes this client sent, to compare with the server's
    url: str


def encode_metadata(values: dict[str, str]) -> str:
    """tus Upload-Metadata: ``key base64(value)`` pairs separated by commas."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode('ascii')}" for key, value in values.items())


class _RunningHash:
    """sha256 of the file's first ``position`` bytes, kept where the server's offset is."""

    def __init__(self, handle: IO[bytes]):
        self.handle = handle
        self.hasher = hashlib.sha256()
        self.position = 0

    def at(self, offset: int) -> Any:
        """A copy of the hash state after ``offset`` bytes (reading the file only after a resume moved it)."""
        if offset < self.position:  # the server lost bytes it had acknowledged: start over
            self.hasher, self.position = hashlib.sha256(), 0
        if offset > self.position:
            self.handle.seek(self.position)
            while self.position < offset:
                piece = self.handle.read(min(PIECE, offset - self.position))
                if not piece:
                    raise FlowError(f"{Path(self.handle.name).name} became shorter while it was uploaded.",
                                    reason="file_changed")
                self.hasher.update(piece)
                self.position += len(piece)
        return self.hasher.copy()

    def commit(self, hasher: Any, position: int) -> None:
        self.hasher, self.position = hasher, position


class _ChunkBody:
    """``length`` bytes of the file from ``start``, read as requests sends them (it calls ``read`` with its own
    block size); ``len()`` gives requests the Content-Length."""

    def __init__(self, handle: IO[bytes], start: int, length: int, hasher: Any, progress: Progress):
        self.handle, self.start, self.length = handle, start, length
        self.hasher = hasher
        self.progress = progress
        self.sent = 0
        self._reported = start

    def __len__(self) -> int:
        return self.length

    def read(self, size: int | None = -1) -> bytes:
        remaining = self.length - self.sent
        if remaining <= 0:
            return b""
        size = remaining if size is None or size < 0 else min(size, remaining)
        self.handle.seek(self.start + self.sent)
        data = self.handle.read(size)
        if not data:
            raise FlowError(f"{Path(self.handle.name).name} became shorter while it was uploaded.",
                            reason="file_changed")
        self.hasher.update(data)
        self.sent += len(data)
        position = self.start + self.sent
        if position - self._reported >= PIECE or self.sent == self.length:
            self._reported = position
            self.progress.update_to(position)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while piece := self.read(PIECE):
            yield piece


def upload_file(transport: Transport, path: str | Path, project: int, *, sample: int | None = None,
                filename: str | None = None, progress: ProgressArg = True,
                chunk_size: int | None = None) -> UploadResult:
    """Upload ``path`` into project ``project`` (optionally attached to ``sample``); returns the new data file's
    id once the server registered it. Raises FlowError when the server refuses (quota, rights, checksum) or stays
    unreachable for ``retries`` attempts in a row."""
    path = Path(path)
    size = path.stat().st_size
    chunk_size = max(1, chunk_size or transport.settings.chunk_size)
    metadata = {"filename": filename or path.name, "project": str(int(project))}
    if sample is not None:
        metadata["sample"] = str(int(sample))
    created = transport.request("POST", "uploads", headers={
        "Tus-Resumable": TUS_VERSION, "Upload-Length": str(size), "Upload-Metadata": encode_metadata(metadata)})
    location = transport.url(created.headers["Location"])
    with open(path, "rb") as handle, Progress(progress, size, metadata["filename"]) as bar:
        running = _RunningHash(handle)
        done = created.headers.get("Flow-DataFile-Id")
        offset = int(created.headers.get("Upload-Offset") or 0)
        try:
            while done is None:
                offset, done = _send_from(transport, location, handle, size, offset, chunk_size, running, bar)
        except KeyboardInterrupt:
            _terminate(transport, location)
            raise
        bar.update_to(size)
        return UploadResult(int(done), running.at(size).hexdigest(), location)


def _send_from(transport: Transport, location: str, handle: IO[bytes], size: int, offset: int, chunk_size: int,
               running: _RunningHash, bar: Progress) -> tuple[int, str | None]:
    """PATCH chunks from ``offset`` until the file is complete or a request fails; after a failure, wait, ask the
    server for its offset and return it, so the caller goes on from there. Returns (offset, data file id)."""
    failures = 0
    while True:
        length = min(chunk_size, size - offset)
        body = _ChunkBody(handle, offset, length, running.at(offset), bar)
        try:
            response = transport.request(
                "PATCH", location, data=body, retry=False, ok=(409,),
                timeout=(transport.settings.timeout, max(transport.settings.timeout, PATCH_READ_TIMEOUT)),
                headers={"Tus-Resumable": TUS_VERSION, "Content-Type": OFFSET_CONTENT_TYPE,
                         "Upload-Offset": str(offset)})
        except FlowError as exc:
            if exc.status is not None and exc.status < 500:
                raise  # refused for good: rights, quota, a whole-file checksum mismatch, an expired upload
            response = None
        if response is not None and response.status_code != 409:
            new_offset = int(response.headers["Upload-Offset"])
            if new_offset == offset + body.sent:
                running.commit(body.hasher, new_offset)
            done = response.headers.get("Flow-DataFile-Id")
            if done is not None or new_offset >= size:
                return new_offset, done
            offset, failures = new_offset, 0
            continue
        # Interrupted, a server error, or 409 (the server is still finishing the interrupted request, or the
        # offset moved): back off, then continue from what the server holds.
        failures += 1
        if failures > transport.settings.retries:
            raise FlowError(f"The upload to {location} made no progress in {failures} attempts; the server keeps "
                            f"the first {offset} bytes.", reason="upload_stalled")
        transport.sleep(transport.delay(failures - 1))
        offset, done = server_offset(transport, location)
        bar.update_to(offset)
        if done is not None:
            return offset, done


def server_offset(transport: Transport, location: str) -> tuple[int, str | None]:
    """HEAD: how many bytes the server keeps, and the data file once the upload is complete."""
    head = transport.request("HEAD", location, headers={"Tus-Resumable": TUS_VERSION})
    return int(head.headers["Upload-Offset"]), head.headers.get("Flow-DataFile-Id")


def _terminate(transport: Transport, location: str) -> None:
    """Interrupted by the user: give the upload up so its declared size stops counting against the quota."""
    try:
        transport.request("DELETE", location, headers={"Tus-Resumable": TUS_VERSION}, retry=False, ok=(404, 409))
    except FlowError:
        pass
