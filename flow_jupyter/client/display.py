"""How client objects show up in a notebook: a registry of richer views, and the plain views the client owns.

The client never imports a UI. A UI package (``flow_jupyter.widgets``) registers a view for a client class with
:func:`register_display` when it is imported; an object's ``_ipython_display_`` then shows that view, and falls back
to the static summary (HTML and text, from this module) when none is registered — so the client works, and shows
something useful, without ipywidgets.

So that a notebook that only imports the client still gets the live widgets, the first display without a
registered view loads the ``flow_jupyter.displays`` entry points once: each names a function that calls
:func:`register_display` (Flow's own points at ``flow_jupyter.widgets:register_displays``). A view whose package
cannot be imported (ipywidgets missing) is skipped.
"""
from __future__ import annotations

import html
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "flow_jupyter.displays"
"""Entry points naming functions that register displays (called without arguments)."""

Factory = Callable[[Any], Any]
"""Builds what IPython should display for one object (a widget, or anything with a rich repr)."""

_factories: dict[type, Factory] = {}
_entry_points_loaded = False


def register_display(cls: type, factory: Factory | None) -> None:
    """Show instances of ``cls`` (and its subclasses) in a notebook as ``factory(obj)``; None removes the view."""
    if factory is None:
        _factories.pop(cls, None)
    else:
        _factories[cls] = factory


def display_factory(obj: Any) -> Factory | None:
    """The view registered for ``obj``'s class (the nearest in its MRO), after the entry points had their turn."""
    _load_entry_points()
    for cls in type(obj).__mro__:
        if cls in _factories:
            return _factories[cls]
    return None


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register = point.load()
        except ImportError as error:  # the view's UI library is not installed here: the plain view stays
            log.debug("display %s not loaded: %s", point.name, error)
            continue
        register()


def show(obj: Any, plain: Callable[[], dict[str, str]]) -> None:
    """Display ``obj`` as its registered view, else as the mime bundle ``plain()`` returns."""
    from IPython.display import display

    factory = display_factory(obj)
    if factory is not None:
        display(factory(obj))
    else:
        display(plain(), raw=True)


# --- the plain views ------------------------------------------------------------------------------------------

def execution_text(run: Any) -> str:
    counts = ", ".join(f"{count} {bucket}" for bucket, count in (run.raw.get("progress") or {}).items() if count)
    name = f"{run.pipeline or 'pipeline'} {run.version or ''}".strip()
    text = f"Execution {run.id} ({name}): {run.status}"
    if counts:
        text += f" — tasks: {counts}"
    if run.error:
        text += f"\n  error: {run.error}"
    return text


def execution_html(run: Any) -> str:
    rows = [("id", run.id), ("pipeline", f"{run.pipeline or ''} {run.version or ''}".strip()),
            ("status", run.status), ("backend", run.backend or ""), ("started", run.started_at or ""),
            ("finished", run.finished_at or "")]
    counts = {bucket: count for bucket, count in (run.raw.get("progress") or {}).items() if count}
    if counts:
        rows.append(("tasks", ", ".join(f"{count} {bucket}" for bucket, count in counts.items())))
    if run.error:
        rows.append(("error", run.error))
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                   f"{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def sweep_bundle(sweep: Any) -> dict[str, str]:
    """A sweep as its table (:meth:`Sweep.frame`)."""
    frame = sweep.frame()
    return {"text/plain": frame.to_string(), "text/html": frame.to_html()}


def show_execution(run: Any) -> None:
    """An Execution's ``_ipython_display_``: its registered view (the live monitor), else its summary."""
    show(run, run._repr_mimebundle_)


def show_sweep(sweep: Any) -> None:
    """A Sweep's ``_ipython_display_``: its registered view (the combined monitor), else its table."""
    show(sweep, lambda: sweep_bundle(sweep))
