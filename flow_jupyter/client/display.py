"""How runs show up in a notebook: the live ExecutionMonitor (a sweep: SweepMonitor) when flow_jupyter.widgets
can be imported, else a static summary (status, pipeline, task counts) as text and HTML."""
from __future__ import annotations

import html
from typing import Any


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


def _monitor(run: Any) -> Any:
    """The widget for ``run``, or None when flow_jupyter.widgets is not importable here."""
    try:
        from flow_jupyter.widgets import ExecutionMonitor
    except ImportError:
        return None
    return ExecutionMonitor(run)


def show_execution(run: Any) -> None:
    from IPython.display import display

    widget = _monitor(run)
    if widget is not None:
        display(widget)
    else:
        display(run._repr_mimebundle_(), raw=True)


def show_sweep(sweep: Any) -> None:
    """The combined monitor of every run when the widgets are importable, else the sweep's table."""
    from IPython.display import display

    try:
        from flow_jupyter.widgets import SweepMonitor
    except ImportError:
        frame = sweep.frame()
        display({"text/plain": frame.to_string(), "text/html": frame.to_html()}, raw=True)
        return
    display(SweepMonitor(sweep))
