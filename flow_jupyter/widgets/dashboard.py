"""dashboard(): everything in one tabbed widget — data, uploads, launches and recent executions."""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
from traitlets import Int

from .browser import DataBrowser
from .common import note_html, resolve_client, status_html, try_or_show
from .launcher import PipelineLauncher
from .monitor import ExecutionMonitor
from .uploader import Uploader

TAB_TITLES = ("Data", "Upload", "Launch", "Executions")


class RecentExecutions(widgets.VBox):
    """The newest executions you can see; choosing one opens its monitor."""

    limit = Int(20, help="How many executions are listed.")

    def __init__(self, client: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.client = resolve_client(client)
        self.executions: list[Any] = []
        self.listing = widgets.HTML()
        self.picker = widgets.Dropdown(description="Open", options=[("—", "")], value="")
        self.refresh_button = widgets.Button(icon="refresh", tooltip="Reload", layout=widgets.Layout(width="40px"))
        self.monitor_area = widgets.VBox()
        self.children = [widgets.HBox([self.picker, self.refresh_button]), self.listing, self.monitor_area]
        self.picker.observe(lambda change: self.show(change["new"]), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        runs = try_or_show(lambda: list(self.client.executions()), self.listing)
        if runs is None:
            return
        runs.sort(key=lambda e: _created(e), reverse=True)
        self.executions = runs[: self.limit]
        current = self.picker.value
        self.picker.options = [("—", "")] + [(f"{e.id[:8]} · {e.status}", e.id) for e in self.executions]
        self.picker.value = current if current in {e.id for e in self.executions} else ""
        if not self.executions:
            self.listing.value = note_html("No executions yet: launch one from the Launch tab.")
            return
        rows = "".join(
            f"<tr><td><code>{html.escape(e.id[:8])}</code></td><td>{html.escape(_pipeline(e))}</td>"
            f"<td>{status_html(e.status)}</td><td>{html.escape(str(_created(e)))}</td></tr>"
            for e in self.executions)
        self.listing.value = f"<table><tr><th>id</th><th>pipeline</th><th>status</th><th>created</th></tr>{rows}</table>"

    def show(self, execution_id: str) -> ExecutionMonitor | None:
        """Open the monitor of one execution ("" closes it)."""
        for old in self.monitor_area.children:
            old.close()
        self.monitor_area.children = ()
        if not execution_id:
            return None
        monitor = ExecutionMonitor(execution_id, client=self.client)
        self.monitor_area.children = (monitor,)
        return monitor


def dashboard(client: Any = None) -> widgets.Tab:
    """A Tab with a DataBrowser, an Uploader, a PipelineLauncher and the recent executions; tabs reload when shown."""
    client = resolve_client(client)
    browser = DataBrowser(client)
    uploader = Uploader(client)
    launcher = PipelineLauncher(client=client)
    recent = RecentExecutions(client)
    tab = widgets.Tab(children=[browser, uploader, launcher, recent], titles=TAB_TITLES)

    def shown(change: dict[str, Any]) -> None:
        if change["new"] == 0:
            browser.refresh()
        elif change["new"] == 3:
            recent.refresh()

    tab.observe(shown, names="selected_index")
    return tab


def _created(execution: Any) -> str:
    raw = getattr(execution, "raw", None) or {}
    return getattr(execution, "created_at", None) or raw.get("created_at") or ""


def _pipeline(execution: Any) -> str:
    name = getattr(execution, "pipeline", None)
    if isinstance(name, str):
        return name
    raw = getattr(execution, "raw", None) or {}
    return str(raw.get("pipeline_version", ""))
