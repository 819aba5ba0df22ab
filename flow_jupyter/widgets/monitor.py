"""ExecutionMonitor: one run, live — status, progress per process, recent tasks, the log's tail, cancel and resume.

Every ~0.5 s (trait :attr:`ExecutionMonitor.interval`) a :class:`Poller` asks the API for the run's detail, a page
of its tasks and the log from where it stopped reading (the log endpoint's ``next`` offset), then updates the
widgets. Polling stops once the run has ended and its log is read to the end, or when the widget is closed.
:meth:`ExecutionMonitor.refresh` does one round synchronously, for scripts and tests.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import ipywidgets as widgets
from traitlets import Float, Int

from ..execution.status import TASK_FINAL, TASK_STATUSES
from .common import (BAR_STYLES, TERMINAL_STATUSES, api_get, is_connection_problem, note_html, resolve_client,
                     status_html, try_or_show)
from .poller import PolledView

DONE_BUCKETS = tuple(status for status in TASK_STATUSES if status in TASK_FINAL)
TASK_COLUMNS = ("process", "tag", "status", "exit", "native_id", "cpu_percent", "peak_rss")


@dataclass
class Snapshot:
    """What one polling round fetched."""

    execution_id: str
    detail: dict[str, Any]
    tasks: list[dict[str, Any]]
    log: dict[str, Any] | None
    pipeline: str | None = None


class ExecutionMonitor(PolledView, widgets.VBox):
    """A live view of one execution; :meth:`cancel` and :meth:`resume` act on it through the API."""

    interval = Float(0.5, help="Seconds between two refreshes while the run is active.")
    log_lines = Int(40, help="Lines of the Nextflow log shown (the newest ones).")
    log_tail_bytes = Int(64 * 1024, help="On the first refresh, read at most this many bytes from the end of a "
                                         "long log instead of all of it.")
    task_rows = Int(20, help="Tasks shown in the table; with more tasks, the running (or failed) ones are shown.")

    def __init__(self, execution: Any, client: Any = None, *, autostart: bool = True,
                 interval: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.client = resolve_client(client if client is not None else _client_of(execution))
        if interval is not None:
            self.interval = interval
        self.execution = self.client.execution(execution) if isinstance(execution, str) else execution
        self.detail: dict[str, Any] = {}
        self.tasks: list[dict[str, Any]] = []
        self.log_text = ""
        """The log lines shown, as plain text."""
        self.resumed_from: list[str] = []
        """Ids of the runs this monitor followed before a resume switched it to the new one."""
        self._log_next = 0  # the log endpoint's `next`: where the following read starts
        self._log_started = False
        self._last_log: dict[str, Any] | None = None
        self._pipeline: str | None = None
        self._process_bars: dict[str, tuple[widgets.IntProgress, widgets.HTML]] = {}
        self._process_counts: dict[str, tuple[int, int]] = {}

        self.header = widgets.HTML()
        self.status_line = widgets.HTML()
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="tasks",
                                            layout=widgets.Layout(width="60%"))
        self.progress_label = widgets.HTML()
        self.processes = widgets.VBox()
        self.task_table = widgets.HTML()
        self.log_view = widgets.HTML()
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="danger")
        self.resume_button = widgets.Button(description="Resume", icon="play", disabled=True,
                                            tooltip="Run again with -resume: finished tasks come from the cache")
        self.refresh_button = widgets.Button(icon="refresh", tooltip="Refresh now", layout=widgets.Layout(width="40px"))
        self.message = widgets.HTML()
        self.children = [
            self.header, self.status_line,
            widgets.HBox([self.progress, self.progress_label]),
            self.processes,
            widgets.HBox([self.cancel_button, self.resume_button, self.refresh_button]),
            self.message,
            widgets.Accordion(children=[self.task_table, self.log_view], titles=("Tasks", "Log"),
                              selected_index=None),
        ]
        # a button shows a server refusal instead of raising it into the kernel
        self.cancel_button.on_click(lambda _: try_or_show(self.cancel, self.message))
        self.resume_button.on_click(lambda _: try_or_show(self.resume, self.message))
        self.refresh_button.on_click(lambda _: try_or_show(self.refresh, self.message))
        self._init_polling()
        self.refresh()
        if autostart:
            self.start()

    # --- polling --------------------------------------------------------------------------------------------

    @property
    def execution_id(self) -> str:
        return self.execution.id

    @property
    def status(self) -> str | None:
        return self.detail.get("status")

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def start(self) -> None:
        """Poll in the background (on the kernel's event loop when there is one, else on a daemon thread)."""
        if not self.finished or not self._log_complete:
            self._poller.start()

    def _fetch(self) -> Snapshot:
        execution = self.execution
        execution_id = execution.id
        detail = dict(execution.refresh().detail)  # keeps the Execution object the user holds current too
        tasks = self._fetch_tasks(execution_id, detail)
        log = None
        if not self._log_complete_for(detail):
            offset = self._log_next
            log = api_get(self.client, f"executions/{execution_id}/log", offset=offset)
            if not self._log_started and log["size"] - log["offset"] > self.log_tail_bytes:
                # a long log: its tail is what matters, so skip ahead (the first partial line is dropped below)
                log = api_get(self.client, f"executions/{execution_id}/log",
                              offset=log["size"] - self.log_tail_bytes)
                log["skipped"] = True
        return Snapshot(execution_id, detail, tasks, log, self._pipeline_label())

    def _pipeline_label(self) -> str | None:
        """``demo 1.0`` — looked up once (the API names only the version's id), on the fetching thread."""
        if self._pipeline is None:
            try:
                name = getattr(self.execution, "pipeline", None)
                version = getattr(self.execution, "version", None)
            except Exception as error:
                if not is_connection_problem(error):
                    raise
                name = version = None
            self._pipeline = " ".join(str(p) for p in (name, version) if isinstance(p, str)) or ""
        return self._pipeline

    def _fetch_tasks(self, execution_id: str, detail: dict[str, Any]) -> list[dict[str, Any]]:
        path = f"executions/{execution_id}/tasks"
        if (detail.get("task_count") or 0) > self.task_rows:
            focus = "failed" if detail.get("status") in TERMINAL_STATUSES else "running"
            focused = api_get(self.client, path, status=focus, limit=self.task_rows)["items"]
            if focused:
                return focused
        return api_get(self.client, path, limit=self.task_rows)["items"]

    @property
    def _log_complete(self) -> bool:
        return self._log_complete_for(self.detail) and self._log_started

    def _log_complete_for(self, detail: dict[str, Any]) -> bool:
        return bool(self._last_log and self._last_log.get("complete")) and detail.get("status") in TERMINAL_STATUSES

    def _apply(self, snapshot: Snapshot) -> bool:
        if snapshot.execution_id != self.execution.id:
            return True  # fetched for the run followed before a resume: drop it
        self.detail = snapshot.detail
        self.tasks = snapshot.tasks
        self._show_detail(snapshot.detail, snapshot.pipeline)
        self._show_tasks(snapshot.tasks, snapshot.detail)
        if snapshot.log is not None:
            self._follow_log(snapshot.log)
        return not (self.finished and self._log_complete)

    # --- showing --------------------------------------------------------------------------------------------

    def _show_detail(self, detail: dict[str, Any], pipeline: str | None) -> None:
        name = detail.get("run_name") or "(not started)"
        self.header.value = (f"<b>{html.escape(pipeline or 'Execution')}</b> · {html.escape(name)} · "
                             f"<code>{html.escape(detail['id'])}</code> · {html.escape(detail.get('backend') or '')}")
        parts = [status_html(detail.get("status"))]
        if detail.get("cancel_requested") and detail.get("status") not in TERMINAL_STATUSES:
            parts.append("cancel requested")
        eta = _queue_eta(detail.get("queue_eta"))
        if eta:
            parts.append(eta)
        for label, key in (("started", "started_at"), ("finished", "finished_at")):
            if detail.get(key):
                parts.append(f"{label} {html.escape(_clock(detail[key]))}")
        if detail.get("exit_status") not in (None, 0):
            parts.append(f"exit status {detail['exit_status']}")
        error = detail.get("error") or detail.get("backend_error")
        if error:
            parts.append(f'<span style="color:#dc3545">{html.escape(str(error))}</span>')
        self.status_line.value = " · ".join(parts)

        progress = detail.get("progress") or {}
        total = sum(progress.values())
        done = sum(progress.get(bucket, 0) for bucket in DONE_BUCKETS)
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.progress.bar_style = BAR_STYLES.get(detail.get("status", ""), "info" if total else "")
        self.progress_label.value = _counts_text(progress, total)
        for process, counts in (detail.get("processes") or {}).items():
            self._show_process(process, counts)
        finished = detail.get("status") in TERMINAL_STATUSES
        self.cancel_button.disabled = finished
        self.resume_button.disabled = not (finished and detail.get("session_id"))

    def _show_process(self, process: str, counts: dict[str, int]) -> None:
        if process not in self._process_bars:
            bar = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="40%"))
            label = widgets.HTML()
            self._process_bars[process] = (bar, label)
            self.processes.children = (*self.processes.children, widgets.HBox([
                widgets.HTML(f"<code>{html.escape(process)}</code>", layout=widgets.Layout(width="220px")),
                bar, label]))
        bar, label = self._process_bars[process]
        total = sum(counts.values())
        bar.max = max(total, 1)
        bar.value = sum(counts.get(bucket, 0) for bucket in DONE_BUCKETS)
        bar.bar_style = "danger" if counts.get("failed") else "success" if bar.value == total and total else ""
        label.value = _counts_text(counts, total)
        self._process_counts[process] = (bar.value, total)

    @property
    def process_progress(self) -> dict[str, tuple[int, int]]:
        """process → (done, total) as the bars show it."""
        return dict(self._process_counts)

    def _show_tasks(self, tasks: list[dict[str, Any]], detail: dict[str, Any]) -> None:
        if not tasks:
            self.task_table.value = note_html("No tasks yet.")
            return
        head = "".join(f"<th>{c}</th>" for c in TASK_COLUMNS)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(task.get(c)))}</td>" for c in TASK_COLUMNS) + "</tr>"
            for task in tasks)
        count = detail.get("task_count") or len(tasks)
        note = f"<br>{note_html(f'showing {len(tasks)} of {count} tasks')}" if count > len(tasks) else ""
        self.task_table.value = f'<table class="flow-tasks"><tr>{head}</tr>{rows}</table>{note}'

    def _follow_log(self, log: dict[str, Any]) -> None:
        if self._log_started and log["offset"] != self._log_next:
            return  # a stale or repeated chunk (a manual refresh raced the poller)
        text = log.get("text") or ""
        if log.get("skipped"):
            text = text.split("\n", 1)[1] if "\n" in text else ""
            self.log_text = "… (earlier lines skipped)\n"
        self._log_started = True
        self._last_log = log
        self._log_next = log["next"]
        if text:
            lines = (self.log_text + text).splitlines()[-self.log_lines:]
            self.log_text = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
            self.log_view.value = (f'<pre style="max-height:300px;overflow:auto;font-size:85%">'
                                   f"{html.escape(self.log_text)}</pre>")

    # --- actions --------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the server to stop the run (a pending run is cancelled at once)."""
        self.execution.cancel()
        self.message.value = note_html("Cancel requested.")
        self.refresh()
        self.start()

    def resume(self, **param_changes: Any) -> Any:
        """Start the run again with ``-resume`` (optionally changed params) and follow the new execution."""
        new = self.execution.resume(**param_changes)
        self.stop()
        self.resumed_from.append(self.execution.id)
        self.execution = new
        self.detail, self.tasks, self.log_text = {}, [], ""
        self._log_next, self._log_started, self._last_log, self._pipeline = 0, False, None, None
        self._process_bars.clear()
        self._process_counts.clear()
        self.processes.children = ()
        self.log_view.value = ""
        self.message.value = note_html(f"Resumed as {new.id}.")
        self._poller = self._new_poller()
        self.refresh()
        self.start()
        return new


def _client_of(execution: Any) -> Any:
    for name in ("client", "_client"):
        client = getattr(execution, name, None)
        if client is not None:
            return client
    return None


def _counts_text(counts: dict[str, int], total: int) -> str:
    done = sum(counts.get(bucket, 0) for bucket in DONE_BUCKETS)
    extra = [f"{counts[k]} {k}" for k in ("running", "submitted", "cached", "failed") if counts.get(k)]
    return f"{done}/{total}" + (f" ({', '.join(extra)})" if extra else "")


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _clock(value: str) -> str:
    moment = _parse_time(value)
    return moment.astimezone().strftime("%H:%M:%S") if moment else value


def _queue_eta(value: str | None) -> str:
    """``queued; expected to start 14:05 (in 3 min)`` from Slurm's estimate."""
    moment = _parse_time(value) if value else None
    if moment is None:
        return ""
    seconds = (moment - datetime.now(timezone.utc)).total_seconds()
    when = "now" if seconds < 60 else f"in {int(seconds // 60)} min"
    return f"queued; expected to start {moment.astimezone().strftime('%H:%M')} ({when})"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
