"""Downloads: one data file (with Range), bulk and project zips streamed as they are made, deferred zip jobs.

Rights are checked in data/downloads.py before the first byte (bytes: data/streaming.py, zips: data/zipstream.py,
deferred zips: data/zipjobs.py); these handlers only speak HTTP. Every download is
served with ``Content-Security-Policy: sandbox`` and ``nosniff`` as an attachment, so a stored HTML file can never
run in Jupyter's origin.
"""
from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..data import downloads, streaming, zipjobs, zipstream
from ..errors import FlowError
from ..metrics import DOWNLOAD_BYTES
from .base import FlowHandler


class DownloadHandler(FlowHandler):
    """Shared by every download: the sandboxing headers and the two ways of sending bytes."""

    _zip: zipstream.ThreadedStream | None = None

    @property
    def content_security_policy(self) -> str:
        return "sandbox"  # never allow-same-origin: downloaded HTML must not read the Jupyter cookie

    def _attachment_headers(self, filename: str, media_type: str) -> None:
        self.set_header("Content-Type", media_type)
        self.set_header("Content-Disposition", streaming.content_disposition(filename))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox")

    async def serve_file(self, target: streaming.Servable, include_body: bool) -> None:
        """Answer GET/HEAD for one stored file: conditional requests, a single byte range, streamed in chunks."""
        handle, info = await asyncio.to_thread(streaming.open_servable, target)
        try:
            plan = streaming.plan_response(self.request.headers, info.st_size, target.etag, info.st_mtime)
            self.set_header("ETag", target.etag)
            self.set_header("Last-Modified", streaming.http_date(info.st_mtime))
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("Cache-Control", "private, no-cache")
            if plan.status == 304:
                self.set_status(304)
                self.finish()
                return
            if plan.status == 416:
                self.set_header("Content-Range", f"bytes */{info.st_size}")
                error = FlowError(416, "range_not_satisfiable",
                                  f"The requested range is outside the file ({info.st_size} bytes).")
                self.write_json(error.as_json(), 416)
                return
            media_type = streaming.content_type(target.filename)
            self._attachment_headers(target.filename, media_type)
            if plan.status == 206:
                self.set_header("Content-Range", f"{plan.content_range}/{info.st_size}")
            self.set_status(plan.status)
            self.set_header("Content-Length", plan.length)
            if include_body and plan.length:
                if not await self._send_range(handle, plan.start, plan.length):
                    return  # client went away
            self.finish(set_content_type=media_type)
        finally:
            await asyncio.to_thread(handle.close)

    async def _send_range(self, handle: Any, start: int, length: int) -> bool:
        """Send ``length`` bytes from ``start``, reading the next chunk on a thread while this one is written, so
        neither the event loop nor the socket waits on the disk. False if the client disconnected."""
        end = start + length
        offset = start
        pending: asyncio.Future[bytes] | None = asyncio.ensure_future(
            asyncio.to_thread(streaming.read_at, handle, offset, min(streaming.CHUNK_SIZE, length)))
        try:
            while pending is not None:
                data = await pending
                pending = None
                if not data:
                    raise OSError(f"{self.request.path}: stored file shrank while being sent")
                offset += len(data)
                if offset < end:
                    pending = asyncio.ensure_future(asyncio.to_thread(
                        streaming.read_at, handle, offset, min(streaming.CHUNK_SIZE, end - offset)))
                self.write(data)
                try:
                    await self.flush()
                except StreamClosedError:
                    return False
                DOWNLOAD_BYTES.inc(len(data))
            return True
        finally:
            if pending is not None:  # never close the file under a read still running on a thread
                await asyncio.gather(pending, return_exceptions=True)

    async def stream_zip(self, plan: zipstream.ZipPlan) -> None:
        """Send a zip made while it is sent (chunked; no Content-Length, no Range: use a deferred job for those)."""
        self._attachment_headers(plan.filename, "application/zip")
        self.set_header("Cache-Control", "no-store")
        self._zip = zipstream.zip_stream(plan)
        self._zip.start()
        try:
            async for chunk in self._zip.chunks():
                self.write(chunk)
                try:
                    await self.flush()
                except StreamClosedError:
                    return
                DOWNLOAD_BYTES.inc(len(chunk))
        except Exception:
            if self._headers_written:
                # Too late for an error response: drop the connection so the client sees a failed transfer
                # instead of a cleanly terminated, truncated zip.
                stream = getattr(self.request.connection, "stream", None)
                if stream is not None:
                    stream.close()
            raise
        finally:
            self._zip.cancel()
        self.finish(set_content_type="application/zip")

    def on_connection_close(self) -> None:
        if self._zip is not None:
            self._zip.cancel()
        super().on_connection_close()


class FileContentHandler(DownloadHandler):
    """GET/HEAD /flow/api/files/<id>/content: the bytes of one data file the caller may view."""

    async def _target(self, datafile_id: str) -> streaming.Servable:
        return await self.call(downloads.datafile_servable, self.flow.storage, int(datafile_id))

    @web.authenticated
    @authorized
    async def get(self, datafile_id: str) -> None:
        await self.serve_file(await self._target(datafile_id), include_body=True)

    @web.authenticated
    @authorized
    async def head(self, datafile_id: str) -> None:
        await self.serve_file(await self._target(datafile_id), include_body=False)


class BulkDownloadHandler(DownloadHandler):
    """POST /flow/api/downloads {"files": [ids], "deferred"?}: a streamed zip, or 202 and a zip job."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body(downloads.BULK_SCHEMA)
        ids = [int(i) for i in body["files"]]
        if body.get("deferred"):
            job_id = await self.call(zipjobs.create_zip_job, self.flow.storage, ids)
            zipjobs.wake_zip_jobs(self.flow)
            self.set_header("Location", self.request.path.rsplit("/", 1)[0] + f"/jobs/{job_id}")
            self.write_json({"job": job_id, "status": "pending"}, 202)
            return
        plan = await self.call(downloads.zip_plan_for_files, self.flow.storage, ids)
        await self.stream_zip(plan)


class ProjectDownloadHandler(DownloadHandler):
    """GET /flow/api/projects/<id>/download: every data file of the project the caller can see, as a zip."""

    @web.authenticated
    @authorized
    async def get(self, project_id: str) -> None:
        plan = await self.call(downloads.zip_plan_for_project, self.flow.storage, int(project_id))
        await self.stream_zip(plan)


class JobHandler(FlowHandler):
    """GET /flow/api/jobs/<id>: a background job's status, for its owner only (404 for anyone else)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.write_json(await self.call(zipjobs.get_job, int(job_id)))


class JobContentHandler(DownloadHandler):
    """GET/HEAD /flow/api/jobs/<id>/content: the built zip of a deferred download (Range, ETag as for files)."""

    async def _target(self, job_id: str) -> streaming.Servable:
        return await self.call(zipjobs.job_servable, self.flow.storage, int(job_id))

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        await self.serve_file(await self._target(job_id), include_body=True)

    @web.authenticated
    @authorized
    async def head(self, job_id: str) -> None:
        await self.serve_file(await self._target(job_id), include_body=False)


default_handlers: list[tuple] = [
    (r"/flow/api/files/(\d+)/content", FileContentHandler),
    (r"/flow/api/downloads", BulkDownloadHandler),
    (r"/flow/api/projects/(\d+)/download", ProjectDownloadHandler),
    (r"/flow/api/jobs/(\d+)", JobHandler),
    (r"/flow/api/jobs/(\d+)/content", JobContentHandler),
]
