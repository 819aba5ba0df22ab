"""Base handler: authentication, Flow's JSON error body, and access to the host's services."""
from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web


class FlowAPIError(web.HTTPError):
    """An error a client can act on: rendered as ``{"error": {"reason", "message", "field"}}``."""

    def __init__(self, status: int, reason: str, message: str, field: str | None = None):
        super().__init__(status, message)
        self.flow_reason = reason
        self.message = message
        self.field = field


class FlowHandler(APIHandler):
    """Every Flow handler derives from this; each verb also carries ``@web.authenticated`` + ``@authorized``."""

    auth_resource = "flow"

    @property
    def flow(self) -> Any:
        """The host's services (settings, health, …), set up once by the extension app or the hub service."""
        return self.settings["flow"]

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, FlowAPIError):
            error = {"reason": exc.flow_reason, "message": exc.message}
            if exc.field is not None:
                error["field"] = exc.field
        else:
            message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
            error = {"reason": _reason_code(status_code), "message": message}
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": error}))


def _reason_code(status: int) -> str:
    return {
        400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
        409: "conflict", 413: "too_large", 500: "internal_error", 503: "unavailable",
    }.get(status, "error")
