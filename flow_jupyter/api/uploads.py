"""Resumable uploads over tus 1.0.0 at /flow/api/uploads (core + creation, creation-with-upload, checksum,
termination, expiration), so stock tus clients (tuspy, tus-js-client/Uppy) work unchanged. See docs/uploads.md.

Bodies stream straight to the partial file (`@stream_request_body`): nothing is buffered whole. Who may write is
decided in `prepare()`, before tornado reads a byte of the body; the rules live in flow_jupyter/data/tus.py (the
protocol) and flow_jupyter/data/uploads.py (storage).
"""
from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.ioloop import PeriodicCallback

from ..data import tus
from ..data import uploads as svc
from ..db.models import UploadState
from ..errors import FlowError, bad_request
from ..metrics import ACTIVE_UPLOADS
from .base import FlowHandler

log = logging.getLogger(__name__)
_salvaging: set[asyncio.Future] = set()  # strong references, so a pending salvage is not garbage-collected

EXPOSED_HEADERS = ", ".join([
    "Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires", "Tus-Resumable",
    "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm", "Flow-DataFile-Id",
])


class TusHandler(FlowHandler):
    """What both tus routes share: version negotiation, auth before the body, streaming into a ChunkWriter."""

    #: A body that sends nothing for this long is cut off, so a dead client cannot hold an upload's lock forever.
    stall_seconds = 120.0
    #: Largest piece tornado hands to `data_received` for a chunk body (tornado's default is 64 KiB).
    read_piece_bytes = 1 << 20
    method_overrides: frozenset[str] = frozenset()

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._writer: svc.ChunkWriter | None = None
        self._location: str | None = None
        self._watchdog: PeriodicCallback | None = None
        self._last_data = 0.0
        self._stream_read_size: int | None = None

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Tus-Resumable", tus.TUS_VERSION)
        self.set_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 412:
            self.set_header("Tus-Version", tus.TUS_VERSION)
        if self._location:  # a creation-with-upload whose chunk failed still created the upload
            self.set_header("Location", self._location)
        super().write_error(status_code, **kwargs)

    # --- before the body ---------------------------------------------------------------------------------------

    async def prepare(self) -> None:  # type: ignore[override]
        override = self.request.headers.get("X-HTTP-Method-Override")
        if override and self.request.method == "POST":
            if override.upper() not in self.method_overrides:
                raise bad_request(f"X-HTTP-Method-Override {override!r} is not supported here.",
                                  field="X-HTTP-Method-Override")
            self.request.method = override.upper()
        await super().prepare()  # Jupyter authentication (token or cookie, XSRF)
        if not self.current_user:
            raise FlowError(403, "forbidden", "Authentication is required.")
        action = HTTP_METHOD_TO_AUTH_ACTION.get(self.request.method or "", "write")
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, action,
                                                                self.auth_resource)):
            raise FlowError(403, "forbidden", f"You may not {action} uploads.")
        if self.request.method != "OPTIONS":
            version = self.request.headers.get("Tus-Resumable")
            if version != tus.TUS_VERSION:
                raise FlowError(412, "unsupported_version", f"This server speaks tus {tus.TUS_VERSION}; send "
                                f"'Tus-Resumable: {tus.TUS_VERSION}'.", "Tus-Resumable")
        await self.prepare_tus()

    async def prepare_tus(self) -> None:
        """Per-route checks that must happen before the body is read."""

    def _body_length(self) -> int | None:
        """The declared body size: Content-Length, None for a chunked body, 0 for none."""
        if "Content-Length" in self.request.headers:
            return tus.parse_count(self.request.headers["Content-Length"], "Content-Length")
        if self.request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return None
        return 0

    def _require_offset_stream(self) -> None:
        media = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != tus.OFFSET_CONTENT_TYPE:
            raise FlowError(415, "unsupported_media_type",
                            f"Chunks must be sent as 'Content-Type: {tus.OFFSET_CONTENT_TYPE}'.", "Content-Type")

    async def _open_stream(self, upload_id: str, offset: int, length: int | None) -> svc.ChunkWriter | svc.UploadView:
        """Lock the upload and get a writer for the coming body (or the finished upload, for a repeated PATCH)."""
        checksum = tus.parse_checksum(self.request.headers.get("Upload-Checksum"))
        opened = await asyncio.to_thread(svc.open_chunk, self.flow, self.identity, upload_id, offset,
                                         checksum=checksum, content_length=length)
        if isinstance(opened, svc.ChunkWriter):
            self._writer = opened
            ACTIVE_UPLOADS.inc()
            # Room for exactly what is left (a chunked body gets a little slack, so overflow earns a clean 413).
            self._connection.set_max_body_size(length if length is not None else opened.view.remaining + 65536)
            self._read_in_larger_pieces()
            self._last_data = self._now()
            self._watchdog = PeriodicCallback(self._check_stall, 5000)
            self._watchdog.start()
            stream = getattr(self.request.connection, "stream", None)
            if stream is None or stream.closed():  # the client left while we were getting ready
                self.on_connection_close()
        return opened

    @property
    def _connection(self) -> HTTP1Connection:
        """The request's connection, where a streamed body's size limit and read sizes live: always HTTP/1.x, the
        only protocol tornado serves."""
        connection = self.request.connection
        if not isinstance(connection, HTTP1Connection):
            raise TypeError(f"a streamed upload needs tornado's HTTP/1.x connection, not {connection!r}")
        return connection

    def _read_in_larger_pieces(self) -> None:
        """Let tornado read this body in pieces of up to ``read_piece_bytes`` instead of 64 KiB: a sixteenth of the
        per-piece Python work (reads, callbacks, writes) for the same bytes. Only this request's connection object
        and, until `on_finish`, its stream are changed; the server-wide parameters are left alone."""
        connection = self._connection
        stream = getattr(connection, "stream", None)
        params = getattr(connection, "params", None)
        if stream is None or params is None or not hasattr(stream, "read_chunk_size"):
            return
        connection.params = copy.copy(params)
        connection.params.chunk_size = max(params.chunk_size, self.read_piece_bytes)
        if self._stream_read_size is None:
            self._stream_read_size = stream.read_chunk_size
        stream.read_chunk_size = max(stream.read_chunk_size, self.read_piece_bytes)

    def _restore_read_size(self) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if self._stream_read_size is not None and stream is not None:
            stream.read_chunk_size = self._stream_read_size
            self._stream_read_size = None

    # --- the body ----------------------------------------------------------------------------------------------

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """Each piece tornado reads (≤ `read_piece_bytes`) goes straight to the partial file; see ChunkWriter.write.
        When its hashing lags behind, tornado waits for the returned future before it reads more of the body."""
        if self._writer is not None and not self._finished:
            room = self._writer.write(chunk)
            self._last_data = self._now()
            if room is not None:
                return asyncio.wrap_future(room)
        return None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _check_stall(self) -> None:
        if self._writer is not None and self._now() - self._last_data > self.stall_seconds:
            log.info("Flow: upload %s stalled; closing the connection", self._writer.view.id)
            self._connection.close()

    # --- after the body ----------------------------------------------------------------------------------------

    async def _commit(self) -> svc.UploadView:
        """Acknowledge the received chunk and complete the upload when it was the last (on a worker thread)."""
        writer = self._take_writer()
        assert writer is not None
        try:
            await asyncio.to_thread(writer.commit)
            return await asyncio.to_thread(writer.finish)
        finally:
            writer.close()

    def _take_writer(self) -> svc.ChunkWriter | None:
        writer, self._writer = self._writer, None
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        if writer is not None:
            ACTIVE_UPLOADS.dec()
        return writer

    def on_connection_close(self) -> None:
        """The client went away mid-body: keep the bytes that arrived (unless a chunk checksum was promised), so a
        resume starts from there rather than from the chunk's beginning."""
        super().on_connection_close()
        writer = self._take_writer()
        if writer is not None:
            task = asyncio.ensure_future(asyncio.to_thread(_salvage, writer))
            _salvaging.add(task)
            task.add_done_callback(_salvaging.discard)

    def on_finish(self) -> None:
        self._restore_read_size()
        writer = self._take_writer()  # only set if something failed between opening and committing
        if writer is not None:
            writer.close()
        super().on_finish()

    def _upload_headers(self, view: svc.UploadView) -> None:
        self.set_header("Upload-Offset", str(view.offset))
        if view.state == UploadState.active:
            self.set_header("Upload-Expires", tus.expires_header(view.expires_at))
        if view.datafile_id is not None:
            self.set_header("Flow-DataFile-Id", str(view.datafile_id))

    def _options(self) -> None:
        self.set_header("Tus-Version", tus.TUS_VERSION)
        self.set_header("Tus-Extension", tus.TUS_EXTENSIONS)
        self.set_header("Tus-Max-Size", str(self.flow.settings.max_upload_bytes))
        self.set_header("Tus-Checksum-Algorithm", ",".join(tus.CHECKSUM_ALGORITHMS))
        self.no_content()


def _salvage(writer: svc.ChunkWriter) -> None:
    try:
        writer.commit(partial_ok=True)
        writer.finish()
    except FlowError as exc:
        log.info("Flow: interrupted chunk of upload %s not kept: %s", writer.view.id, exc.message)
    except Exception:
        log.exception("Flow: could not keep the interrupted chunk of upload %s", writer.view.id)
    finally:
        writer.close()


@web.stream_request_body
class UploadsHandler(TusHandler):
    """POST creates an upload (optionally with its first chunk); OPTIONS advertises what this server speaks."""

    async def prepare_tus(self) -> None:
        if self.request.method != "POST":
            return
        headers = self.request.headers
        request = tus.new_upload_request(headers.get("Upload-Length"), headers.get("Upload-Defer-Length"),
                                         headers.get("Upload-Metadata"), self.flow.settings.max_upload_bytes)
        length = self._body_length()
        if length != 0:
            self._require_offset_stream()
        view = await self.call(svc.create_upload, request, settings=self.flow.settings, storage=self.flow.storage)
        self._location = url_path_join(self.base_url, "flow/api/uploads", view.id)
        self._created = view
        if length != 0:
            await self._open_stream(view.id, 0, length)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        view = self._created
        if self._writer is not None:
            view = await self._commit()
        elif view.size == 0:  # an empty file is complete as soon as it exists
            view = await asyncio.to_thread(svc.complete_upload, self.flow, self.identity, view.id)
        assert self._location is not None
        self.set_header("Location", self._location)
        self._upload_headers(view)
        self.set_status(201)
        self.finish()

    # jupyter_server types APIHandler.options as plain (-> None); tornado's contract allows a coroutine
    @web.authenticated
    @authorized
    async def options(self) -> None:  # type: ignore[override]
        self._options()


@web.stream_request_body
class UploadHandler(TusHandler):
    """One upload: HEAD reads its offset, PATCH appends a chunk, DELETE terminates it."""

    method_overrides = frozenset({"PATCH", "DELETE"})

    async def prepare_tus(self) -> None:
        self._done: svc.UploadView | None = None
        if self.request.method != "PATCH":
            return
        self._require_offset_stream()
        offset = tus.parse_count(self.request.headers.get("Upload-Offset"), "Upload-Offset")
        opened = await self._open_stream(self.path_args[0], offset, self._body_length())
        if isinstance(opened, svc.UploadView):
            self._done = opened

    @web.authenticated
    @authorized
    async def head(self, upload_id: str) -> None:
        view = await asyncio.to_thread(svc.settle_upload, self.flow, self.identity, upload_id)
        self._upload_headers(view)
        self.set_header("Upload-Length", str(view.size))
        if view.tus_metadata:
            self.set_header("Upload-Metadata", view.tus_metadata)
        self.set_header("Cache-Control", "no-store")
        self.set_status(200)
        self.finish()

    @web.authenticated
    @authorized
    async def patch(self, upload_id: str) -> None:
        view = self._done if self._done is not None else await self._commit()
        self._upload_headers(view)
        self.no_content()

    @web.authenticated
    @authorized
    async def delete(self, upload_id: str) -> None:
        await asyncio.to_thread(svc.terminate_upload, self.flow, self.identity, upload_id)
        self.no_content()

    # jupyter_server types APIHandler.options as plain (-> None); tornado's contract allows a coroutine
    @web.authenticated
    @authorized
    async def options(self, upload_id: str) -> None:  # type: ignore[override]
        self._options()


default_handlers: list[tuple] = [
    (r"/flow/api/uploads", UploadsHandler),
    (r"/flow/api/uploads/([^/]+)", UploadHandler),
]
