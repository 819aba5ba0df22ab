"""Small pieces every Flow widget shares: finding the client, showing server errors, and status colours.

Widgets are views over :mod:`flow_jupyter.client`: they never decide what is allowed, they show what the server
said. So the one thing each needs is a clear rendering of a server error next to the control it concerns.
"""
from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, TypeVar

from ..execution.status import FINAL

T = TypeVar("T")

TERMINAL_STATUSES = FINAL
"""A run in one of these states never changes again: monitors stop polling it."""

STATUS_COLOURS = {
    "pending": "#6c757d", "submitted": "#0d6efd", "running": "#0d6efd", "succeeded": "#198754",
    "failed": "#dc3545", "cancelled": "#fd7e14", "lost": "#dc3545",
}
BAR_STYLES = {"succeeded": "success", "failed": "danger", "cancelled": "warning", "lost": "danger"}
"""ipywidgets' named progress-bar styles for a run that ended."""


def resolve_client(client: Any = None) -> Any:
    """The given client, or the kernel's default one (found once and cached by :func:`flow_jupyter.client.connect`)."""
    if client is not None:
        return client
    from ..client import connect

    return connect()


def error_text(error: BaseException) -> str:
    """``reason: message (field)`` for a server error, or the exception's own words for anything else."""
    reason = getattr(error, "reason", None)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    field = getattr(error, "field", None)
    text = f"{reason}: {message}" if reason else message
    return f"{text} ({field})" if field else text


def error_html(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else error_text(error)
    return f'<span style="color:#dc3545">{html.escape(text)}</span>'


def note_html(text: str) -> str:
    return f'<span style="color:#6c757d">{html.escape(text)}</span>'


def status_html(status: str | None) -> str:
    """A coloured status badge."""
    status = status or "unknown"
    colour = STATUS_COLOURS.get(status, "#6c757d")
    return (f'<span style="background:{colour};color:white;border-radius:3px;padding:1px 6px">'
            f"{html.escape(status)}</span>")


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def is_connection_problem(error: BaseException) -> bool:
    """Errors a widget shows instead of raising: the server's refusals and a server that cannot be reached."""
    from ..client.errors import FlowError

    return isinstance(error, (FlowError, OSError)) or type(error).__module__.startswith(("requests", "httpx",
                                                                                          "urllib3"))


def try_or_show(action: Callable[[], T], target: Any) -> T | None:
    """``action()``, or None once a server refusal or an unreachable server has been shown in ``target`` (an HTML
    widget): a widget shows what went wrong next to the control it concerns instead of raising it into the kernel.
    Any other exception is a bug and is raised."""
    try:
        return action()
    except Exception as error:
        if not is_connection_problem(error):
            raise
        target.value = error_html(error)
        return None


def offer_projects(client: Any, picker: Any, shown_in: Any, wanted: Any, none_yet: str) -> None:
    """Offer the user's projects in ``picker`` and select ``wanted`` (an id, a name or a Project), else the first.
    What went wrong is shown in ``shown_in``: the server's refusal, a ``wanted`` that is not among them, or
    ``none_yet`` when the user has no project at all."""
    projects = try_or_show(client.projects, shown_in)
    if projects is None:
        return
    picker.options = [(p.name, p.id) for p in projects]
    picker.value = projects[0].id if projects else None
    if wanted is not None:
        ident = getattr(wanted, "id", wanted)
        matches = [p.id for p in projects if ident in (p.id, p.name, str(p.id))]
        if matches:
            picker.value = matches[0]
        else:
            shown_in.value = error_html(f"No project {wanted!r} among those you can see.")
    if not projects:
        shown_in.value = error_html(none_yet)


def api_get(client: Any, path: str, **params: Any) -> Any:
    """GET an API path (relative to ``/flow/api/``) through the client's transport: for what the typed objects do
    not expose, such as one page of an execution's tasks or one chunk of its log with the next offset."""
    return client.transport.get(path, **params)
