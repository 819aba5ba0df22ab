"""SweepMonitor: several executions (a parameter sweep) in one table with one combined progress bar.

One polling round reads every run's detail; the table shows only the parameters that differ between the runs,
since those are what the sweep varies.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
from traitlets import Float

from .common import TERMINAL_STATUSES, note_html, resolve_client, status_html, try_or_show
from .monitor import DONE_BUCKETS, _client_of
from ..execution.status import FAILED, LOST
from .poller import PolledView


def varying_params(params_by_run: list[dict[str, Any]]) -> list[str]:
    """Names of the parameters whose value is not the same in every run (missing counts as a value)."""
    names: list[str] = []
    for params in params_by_run:
        names.extend(n for n in params if n not in names)
    missing = object()
    return [n for n in names if len({repr(p.get(n, missing)) for p in params_by_run}) > 1]


class SweepMonitor(PolledView, widgets.VBox):
    """A live table of several executions; :meth:`refresh` does one round, :meth:`cancel_all` stops them all."""

    interval = Float(1.0, help="Seconds between two refreshes while any run is active.")

    def __init__(self, executions: Any, client: Any = None, *, autostart: bool = True,
                 interval: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        runs = list(executions)
        self.client = resolve_client(client if client is not None else
                                     (_client_of(executions) or (_client_of(runs[0]) if runs else None)))
        if interval is not None:
            self.interval = interval
        self.executions = [self.client.execution(r) if isinstance(r, str) else r for r in runs]
        self.details: list[dict[str, Any]] = []
        self.header = widgets.HTML()
        self.progress = widgets.IntProgress(value=0, min=0, max=max(len(runs), 1), description="runs",
                                            layout=widgets.Layout(width="50%"))
        self.tasks_progress = widgets.IntProgress(value=0, min=0, max=1, description="tasks",
                                                  layout=widgets.Layout(width="50%"))
        self.table = widgets.HTML()
        self.cancel_button = widgets.Button(description="Cancel all", icon="stop", button_style="danger")
        self.message = widgets.HTML()
        self.children = [self.header, self.progress, self.tasks_progress, self.table, self.cancel_button,
                         self.message]
        self.cancel_button.on_click(lambda _: try_or_show(self.cancel_all, self.message))
        self._init_polling()
        self.refresh()
        if autostart and not self.finished:
            self._poller.start()

    @property
    def statuses(self) -> list[str]:
        return [d["status"] for d in self.details]  # an execution's JSON always has one (Execution.status)

    @property
    def finished(self) -> bool:
        return bool(self.details) and all(s in TERMINAL_STATUSES for s in self.statuses)

    def _fetch(self) -> list[dict[str, Any]]:
        return [dict(e.refresh().detail) for e in self.executions]

    def _apply(self, details: list[dict[str, Any]]) -> bool:
        self.details = details
        done_runs = sum(1 for d in details if d.get("status") in TERMINAL_STATUSES)
        self.progress.value = done_runs
        failed = any(d.get("status") in (FAILED, LOST) for d in details)
        self.progress.bar_style = "danger" if failed else "success" if done_runs == len(details) else "info"
        totals = [sum((d.get("progress") or {}).values()) for d in details]
        dones = [sum((d.get("progress") or {}).get(b, 0) for b in DONE_BUCKETS) for d in details]
        self.tasks_progress.max = max(sum(totals), 1)
        self.tasks_progress.value = sum(dones)
        by_status: dict[str, int] = {}
        for status in self.statuses:
            by_status[status] = by_status.get(status, 0) + 1
        self.header.value = (f"<b>{len(details)} executions</b>: "
                             + ", ".join(f"{n} {html.escape(s)}" for s, n in sorted(by_status.items())))
        varying = varying_params([d.get("params") or {} for d in details])
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ["execution", *varying, "status", "tasks"])
        rows = []
        for detail, done, total in zip(details, dones, totals):
            cells = [f"<code>{html.escape(detail['id'][:8])}</code>"]
            cells += [html.escape(_short((detail.get("params") or {}).get(n, ""))) for n in varying]
            cells += [status_html(detail.get("status")), f"{done}/{total}"]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        self.table.value = f"<table>{'<tr>' + head + '</tr>'}{''.join(rows)}</table>"
        self.cancel_button.disabled = self.finished
        return not self.finished

    def cancel_all(self) -> None:
        for execution, detail in zip(self.executions, self.details):
            if detail.get("status") not in TERMINAL_STATUSES:
                execution.cancel()
        self.message.value = note_html("Cancel requested for every active run.")
        self.refresh()


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
