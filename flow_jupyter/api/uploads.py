"""Resumable uploads over tus 1.0.0 at /flow/api/uploads (core + creation, creation-with-upload, checksum,
termination, expiration), so stock tus clients (tuspy, tus-js-client/Uppy) work unchanged. See docs/uploads.md.

Bodies stream to the partial file (`@stream_request_body`): nothing is buffered whole. Who may write is decided in
`prepare()`, before a byte of the body is read; the rules live in flow_jupyter/data/tus.py (the protocol) and
flow_jupyter/data/uploads.py (storage). A body with a Content-Length is read by `prepare()` itself, straight from
the connection into the writer's large buffers (`IOStream.read_into`), which the host's uploads pool writes and
hashes while the next one fills; a chunked body goes through tornado's `data_received`. The collection also answers
at ``/flow/api/uploads/``, and OPTIONS — a CORS preflight, which carries no credentials — answers without
authentication, with the tus capability headers only.
"""
from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError
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
#: Request headers a tus client sends: a CORS preflight must allow them next to Jupyter's own.
TUS_REQUEST_HEADERS = ("tus-resumable, upload-length, upload-offset, upload-metadata, upload-checksum, "
                       "upload-defer-length, x-http-method-override")


@dataclass
class _Filling:
    """The buffer a Content-Length body is being read into: received up to ``filled``, handed to the writer up to
    ``handed``."""

    view: memoryview
    buffer: bytearray
    handed: int = 0
    filled: int = 0


class TusHandler(FlowHandler):
    """What both tus routes share: version negotiation, auth before the body, streaming into a ChunkWriter."""

    #: A body that sends nothing for this long is cut off, so a dead client cannot hold an upload's lock forever.
    stall_seconds = 120.0
    #: Largest piece tornado hands to `data_received` for a chunked body (tornado's default is 64 KiB).
    read_piece_bytes = 1 << 20
    #: A body that pauses this long mid-buffer has what arrived so far written (and kept, should it end there).
    hand_over_seconds = 0.05
    method_overrides: frozenset[str] = frozenset()

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._writer: svc.ChunkWriter | None = None
        self._location: str | None = None
        self._watchdog: PeriodicCallback | None = None
        self._last_data = 0.0
        self._stream_read_size: int | None = None
        self._filling: _Filling | None = None  # see _receive

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
        await super().prepare()  # Jupyter authentication (token or cookie, XSRF), host and origin checks
        if self.request.method == "OPTIONS":
            return  # a CORS preflight carries no credentials; `_options` reveals the protocol and nothing else
        if not self.current_user:
            raise FlowError(403, "forbidden", "Authentication is required.")
        action = HTTP_METHOD_TO_AUTH_ACTION.get(self.request.method or "", "write")
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, action,
                                                                self.auth_resource)):
            raise FlowError(403, "forbidden", f"You may not {action} uploads.")
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
        """Lock the upload and get a writer for the coming body (or the finished upload, for a repeated PATCH).
        A Content-Length body is then read right here (`_receive`); a chunked one arrives in `data_received`."""
        checksum = tus.parse_checksum(self.request.headers.get("Upload-Checksum"))
        settings = self.flow.settings
        pool = self.flow.pool("uploads", settings.upload_workers)
        buffers = svc.Buffers.of(settings)
        kept = self.application.settings.setdefault(  # the application's, so they go when it goes
            "flow_upload_buffers", svc.BufferPool(keep=buffers.count * max(1, settings.upload_workers)))
        opened = await asyncio.to_thread(svc.open_chunk, self.flow, self.identity, upload_id, offset, pool=pool,
                                         checksum=checksum, content_length=length, buffers=buffers,
                                         buffer_pool=kept)
        if isinstance(opened, svc.ChunkWriter):
            self._writer = opened
            ACTIVE_UPLOADS.inc()
            self._last_data = self._now()
            self._watchdog = PeriodicCallback(self._check_stall, 5000)
            self._watchdog.start()
            stream = getattr(self.request.connection, "stream", None)
            if stream is None or stream.closed():  # the client left while we were getting ready
                self.on_connection_close()
            elif length is not None:
                self._connection.set_max_body_size(length)
                await self._receive(opened, stream, length)
            else:
                # Overflowing bytes are read and dropped, so the answer can be the documented 413 (tornado's own
                # limit would cut the connection without any answer).
                self._connection.set_max_body_size(settings.max_upload_bytes)
                self._read_in_larger_pieces()
        return opened

    async def _receive(self, writer: svc.ChunkWriter, stream: IOStream, length: int) -> None:
        """Read a ``length``-byte body straight from the connection into the writer's buffers (one copy, no
        per-piece bytes objects) and hand each to it when full — or, when the client pauses, what has arrived so
        far, so a slow client's bytes are on disk as they come. Then tell tornado the body is consumed.

        tornado reads a body only after `prepare()`, from the request's Content-Length, and sends "100 Continue"
        only then: both are settled here instead. ``_filling`` is what `on_connection_close` keeps if the client
        leaves mid-body."""
        headers = self.request.headers
        if headers.get("Expect", "").lower() == "100-continue":
            stream.write(b"HTTP/1.1 100 (Continue)\r\n\r\n")
            del headers["Expect"]
        left = length
        loop = asyncio.get_running_loop()
        try:
            while left > 0 and self._writer is writer:
                buffer = writer.buffer()
                while isinstance(buffer, Future):
                    await asyncio.wrap_future(buffer)
                    buffer = writer.buffer()
                size = min(len(buffer), left)
                filling = self._filling = _Filling(memoryview(buffer)[:size], buffer)
                while filling.filled < size:
                    # tornado's read futures are asyncio futures (typed as awaitables): done() = no waiting
                    reading = cast("asyncio.Future[int]", stream.read_into(
                        cast(bytearray, filling.view[filling.filled:]), partial=True))
                    if reading.done():
                        filling.filled += reading.result()
                        continue
                    # A client slower than us: what came so far is written if the wait goes on (not at once,
                    # which would cut a fast body into many small pieces).
                    timer = loop.call_later(self.hand_over_seconds, self._hand_over)
                    try:
                        filling.filled += await reading
                    finally:
                        timer.cancel()
                    self._last_data = self._now()
                self._filling = None
                writer.write(filling.view[filling.handed:], buffer)
                left -= size
        except StreamClosedError:
            self.on_connection_close()
            raise web.Finish() from None
        headers["Content-Length"] = "0"  # consumed here: tornado must not read the body again

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
        """A chunked body's pieces (≤ `read_piece_bytes`) as tornado reads them; see ChunkWriter.write. When
        writing and hashing lag behind, tornado waits for the returned future before it reads more of the body."""
        if self._writer is not None and not self._finished:
            room = self._writer.write(chunk)
            self._last_data = self._now()
            if room is not None:
                return asyncio.wrap_future(room)
        return None

    def _hand_over(self) -> None:
        """Hand the writer what the filling buffer received and it does not have yet (see `_receive`)."""
        filling = self._filling
        if filling is not None and self._writer is not None and filling.filled > filling.handed:
            self._writer.write(filling.view[filling.handed:filling.filled])
            filling.handed = filling.filled

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
        self._hand_over()  # a buffer was filling (see _receive): keep what it got
        self._filling = None
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
        """tus' capability discovery, which is also a CORS preflight: answered without credentials, it says what
        the server speaks — and, like Jupyter's own preflight answer, which methods and headers a page may use —
        and nothing else (no upload is looked up, whatever the URL names)."""
        APIHandler.options(self)  # Jupyter's CORS answer: allowed methods and headers, origin if configured
        if "Access-Control-Allow-Headers" not in self.settings.get("headers", {}):
            self.set_header("Access-Control-Allow-Headers",
                            f"accept, content-type, authorization, x-xsrftoken, {TUS_REQUEST_HEADERS}")
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

    # A CORS preflight carries no credentials: the one verb without @web.authenticated/@authorized (listed, with
    # this reason, in tests/test_handlers_auth.py). jupyter_server types APIHandler.options as plain (-> None).
    @allow_unauthenticated
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

    # Unauthenticated like the collection's (see there): the same headers for any id, so it reveals no upload.
    @allow_unauthenticated
    async def options(self, upload_id: str) -> None:  # type: ignore[override]
        self._options()


@web.stream_request_body
class UploadsSlashHandler(UploadsHandler):
    """The collection at ``/flow/api/uploads/``: tus clients are often configured with the endpoint's trailing
    slash (tusd's own is ``/files/``), and Location is absolute, so both spellings create the same uploads."""

    #: Another spelling of that route, not an operation of its own: for the OpenAPI document to leave out.
    openapi_alias_of = UploadsHandler


default_handlers: list[tuple] = [
    (r"/flow/api/uploads", UploadsHandler),
    (r"/flow/api/uploads/", UploadsSlashHandler),
    (r"/flow/api/uploads/([^/]+)", UploadHandler),
]
