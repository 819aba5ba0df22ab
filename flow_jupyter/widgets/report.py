"""ReportViewer: a run's report (MultiQC's, or any HTML it published) inside the notebook.

The report is served by the API (``/flow/api/executions/<id>/reports/<path>``), under the Jupyter server's base
URL, with a CSP ``sandbox`` header; the iframe is sandboxed too (scripts for MultiQC's plots, popups and
downloads for its export buttons, but no same-origin access), so a report can never act as the user in Jupyter.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
from traitlets import Unicode

from .common import note_html, resolve_client, try_or_show
from .monitor import _client_of

SANDBOX = "allow-scripts allow-popups allow-downloads"


def iframe_html(src: str, height: str, title: str = "report") -> str:
    return (f'<iframe sandbox="{SANDBOX}" src="{html.escape(src, quote=True)}" title="{html.escape(title)}" '
            f'style="width:100%;height:{html.escape(height)};border:1px solid #ddd" loading="lazy"></iframe>')


class ReportViewer(widgets.VBox):
    """The reports of an execution, one at a time in a sandboxed iframe (MultiQC's first when there is one)."""

    height = Unicode("800px", help="Height of the report frame (any CSS length).")

    def __init__(self, execution: Any, path: str | None = None, *, client: Any = None, height: str | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.client = resolve_client(client if client is not None else _client_of(execution))
        if height is not None:
            self.height = height
        self.execution = self.client.execution(execution) if isinstance(execution, str) else execution
        self.reports: list[dict[str, Any]] = []
        self._src: str | None = None
        self.picker = widgets.Dropdown(description="Report", options=[])
        self.frame = widgets.HTML()
        self.message = widgets.HTML()
        self.children = [self.picker, self.message, self.frame]
        self.picker.observe(lambda change: self.show(change["new"]), names="value")
        self.observe(lambda _: self.show(self.picker.value), names="height")
        self.load(path)

    def load(self, path: str | None = None) -> None:
        """Ask the server which reports the run has and show ``path`` (default: MultiQC's, else the first)."""
        reports = try_or_show(lambda: list(self.execution.reports()), self.message)
        if reports is None:
            return
        self.reports = reports
        if not self.reports:
            self.picker.layout.display = "none"
            self.message.value = note_html("This execution has no report (yet): reports appear when the run has "
                                           "published them.")
            self.frame.value = ""
            return
        self.picker.layout.display = None
        self.picker.options = [(r.get("display") or r["path"], r["path"]) for r in self.reports]
        wanted = path or next((r["path"] for r in self.reports if "multiqc" in r["path"].lower()),
                              self.reports[0]["path"])
        if self.picker.value == wanted:
            self.show(wanted)
        else:
            self.picker.value = wanted

    @property
    def src(self) -> str | None:
        """The URL path the iframe loads (with the Jupyter server's base URL)."""
        return self._src

    def show(self, path: str | None) -> None:
        if not path:
            return
        self._src = self.execution.report_url(path)
        self.frame.value = iframe_html(self._src, self.height, title=path)
        self.message.value = ""
