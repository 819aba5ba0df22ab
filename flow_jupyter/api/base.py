"""Base handler: authentication, identity, JSON bodies and errors, paging — what every resource handler shares."""
from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jsonschema
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..errors import FlowError, bad_request
from ..identity import Identity
from ..metrics import observe_request

T = TypeVar("T")
_STATUS_REASONS = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 500: "internal_error", 503: "unavailable", 507: "insufficient_storage",
}


class FlowHandler(APIHandler):
    """Every Flow handler derives from this; each verb also carries ``@web.authenticated`` + ``@authorized``."""

    auth_resource = "flow"

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        self._flow_started = time.perf_counter()
        super().initialize(*args, **kwargs)

    def on_finish(self) -> None:
        # Labelled by handler class (one per route), not by path: object ids must not explode the series count.
        observe_request(self.request.method or "", type(self).__name__, self.get_status(), self._flow_started)
        super().on_finish()

    @property
    def flow(self) -> Any:
        """The host's services (settings, db, storage, health), set up once by the extension or the hub service."""
        return self.settings["flow"]

    @property
    def identity(self) -> Identity:
        """The caller. Single-user: the Jupyter server's user, admin of their own store."""
        header = self.flow.settings.test_identity_header
        if header:
            name = self.request.headers.get(header)
            if name:
                return Identity(name=name)
        # The single-user store belongs to the account running Jupyter. (Token-only requests get a fresh
        # anonymous Jupyter user each time, so that name cannot identify anyone.)
        return Identity(name=getpass.getuser(), is_admin=True)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the service ``fn(session, actor, *args)`` for the caller on a worker thread."""
        return await self.flow.call(self.identity, fn, *args, **kwargs)

    def json_body(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The request body as JSON, validated against ``schema``; 400 naming the first bad field otherwise."""
        try:
            body = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Request body is not valid JSON.", reason="malformed_json") from None
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=lambda e: list(e.path))
        if errors:
            raise _schema_error(errors[0])
        return body

    def int_argument(self, name: str, default: int | None = None, minimum: int = 0,
                     maximum: int | None = None) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad_request(f"'{name}' must be an integer.", field=name) from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f" and {maximum}" if maximum is not None else ""
            raise bad_request(f"'{name}' must be between {minimum}{bound}.", field=name)
        return value

    def page_limit(self) -> int:
        settings = self.flow.settings
        return self.int_argument("limit", settings.page_size_default, 1, settings.page_size_max)  # type: ignore

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body, default=str))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, FlowError):  # a client's mistake, not a server fault: one short line
            self.log.info("%s %s -> %s %s", self.request.method, self.request.path, value.status, value.reason)
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        if isinstance(exc, FlowError):
            self.finish(json.dumps(exc.as_json()))
            return
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            message = self._reason
        error = {"reason": _STATUS_REASONS.get(status_code, "error"), "message": message}
        self.finish(json.dumps({"error": error}))


def _schema_error(error: jsonschema.ValidationError) -> FlowError:
    pointer = "/" + "/".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        field = pointer.rstrip("/") + "/" + extra[0] if extra else pointer
        return bad_request(f"Unknown field '{extra[0] if extra else '?'}'.", field=field, reason="unknown_field")
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return bad_request(f"'{missing}' is required.", field=pointer.rstrip("/") + "/" + missing,
                           reason="missing_field")
    return bad_request(f"{pointer}: {error.message}", field=pointer, reason="invalid_field")
