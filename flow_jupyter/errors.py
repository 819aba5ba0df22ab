"""FlowError: the one exception type services raise for a client mistake or a refused action.

Handlers render it as ``{"error": {"reason", "message", "field"}}`` with its status. It derives from tornado's
HTTPError only so that tornado hands it to ``write_error`` with the right status; services never use tornado.
"""
from __future__ import annotations

from tornado.web import HTTPError


class FlowError(HTTPError):
    def __init__(self, status: int, reason: str, message: str, field: str | None = None,
                 errors: list[dict] | None = None):
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.message = message
        self.field = field
        self.errors = errors  # every problem, when there is more than one (e.g. all bad params of a form)

    def as_json(self) -> dict:
        error: dict = {"reason": self.reason, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.errors is not None:
            error["errors"] = self.errors
        return {"error": error}


def not_found(kind: str, field: str | None = None) -> FlowError:
    """Used both for missing objects and for objects the caller may not see: no existence oracle."""
    return FlowError(404, "not_found", f"No such {kind}.", field)


def bad_request(message: str, field: str | None = None, reason: str = "invalid") -> FlowError:
    return FlowError(400, reason, message, field)


def forbidden(message: str) -> FlowError:
    return FlowError(403, "forbidden", message)


def conflict(message: str, field: str | None = None, reason: str = "conflict") -> FlowError:
    return FlowError(409, reason, message, field)
