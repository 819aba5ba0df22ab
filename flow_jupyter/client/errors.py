"""FlowError on the client side: what the server refused (its reason, message, field and every error), or why the
server could not be reached.

A separate class from the server's ``flow_jupyter.errors.FlowError`` (which derives from tornado's HTTPError), so
importing the client never imports the server. The attributes carry the same names, so code that shows an error
does not care which side raised it.
"""
from __future__ import annotations

from typing import Any

_STATUS_REASONS = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 410: "gone", 412: "precondition_failed", 413: "too_large", 415: "unsupported_media_type",
    416: "range_not_satisfiable", 460: "checksum_mismatch", 500: "internal_error", 502: "bad_gateway",
    503: "unavailable", 504: "gateway_timeout", 507: "insufficient_storage",
}


class FlowError(Exception):
    """An error answer of the Flow API (``status`` is its HTTP status) or a transport failure (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "error", field: str | None = None,
                 errors: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.field = field
        self.errors = errors or []  # every problem when there are several (all bad params, all sheet cells)
        self.body = body or {}  # the whole answer: some errors carry more (a launch kept while Slurm is down)

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.reason}: {self.message}{where}"

    def __repr__(self) -> str:
        return f"FlowError(status={self.status!r}, reason={self.reason!r}, message={self.message!r}, " \
               f"field={self.field!r})"

    @classmethod
    def from_response(cls, response: Any) -> "FlowError":
        """The server's ``{"error": {...}}`` body, or — from a proxy or a crash page — the status and a snippet."""
        status = int(response.status_code)
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            pass
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "reason" in error:
            return cls(str(error.get("message") or error["reason"]), status=status, reason=str(error["reason"]),
                       field=error.get("field"), errors=error.get("errors"), body=body)
        text = (getattr(response, "text", "") or "").strip().replace("\n", " ")
        return cls(text[:300] or f"HTTP {status}", status=status, reason=_STATUS_REASONS.get(status, "http_error"))
