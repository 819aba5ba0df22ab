"""Uploader: put files into a Flow project from the notebook.

Two ways in, because they differ in what they cost:

* **A path** on the machine the kernel runs on (the usual case on a cluster: data already sits on shared disk). The
  client streams it to the server in resumable tus chunks, so any size works; a progress bar follows the bytes.
* **The browser's file chooser** (ipywidgets' ``FileUpload``). The browser sends the *whole* file to the kernel in
  one message and the kernel holds it in memory, so this is only for small files: the limit is the trait
  :attr:`Uploader.browser_limit` and the widget says so next to the button.

Uploads run on a worker thread so the kernel stays free; :meth:`upload_path` does the same work synchronously for
scripts and tests.
"""
from __future__ import annotations

import html
import tempfile
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from traitlets import Int

from .common import error_html, human_size, is_connection_problem, note_html, offer_projects, resolve_client

MiB = 1024 * 1024


class Uploader(widgets.VBox):
    """Upload by path (any size, resumable, with progress) or from the browser (small files only)."""

    browser_limit = Int(32 * MiB, help="Largest file accepted through the browser's file chooser, in bytes. The "
                                       "browser sends such a file whole into the kernel's memory; larger files "
                                       "go through the path field, which streams them in chunks.")

    def __init__(self, client: Any = None, *, project: Any = None, browser_limit: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.client = resolve_client(client)
        if browser_limit is not None:
            self.browser_limit = browser_limit
        self.uploaded: list[Any] = []
        """Every DataFile this widget created, in order."""
        self._worker: threading.Thread | None = None

        self.project_picker = widgets.Dropdown(description="Project", options=[])
        self.path = widgets.Text(description="Path", placeholder="/data/run42/S1_R1.fastq.gz",
                                 layout=widgets.Layout(width="60%"))
        self.upload_button = widgets.Button(description="Upload", icon="upload", button_style="primary")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="",
                                              layout=widgets.Layout(width="60%"))
        self.status = widgets.HTML()
        self.chooser = widgets.FileUpload(multiple=True, description="Browse…")
        self.browser_note = widgets.HTML()
        self.children = [
            self.project_picker,
            widgets.HTML("<b>From a path</b> on the machine running this kernel — any size, resumable:"),
            widgets.HBox([self.path, self.upload_button]),
            widgets.HTML("<b>From your browser</b>:"),
            widgets.HBox([self.chooser, self.browser_note]),
            self.progress,
            self.status,
        ]
        self.observe(lambda _: self._describe_limit(), names="browser_limit")
        self._describe_limit()
        self.upload_button.on_click(lambda _: self.start_upload())
        self.chooser.observe(self._browser_files, names="value")
        self.load_projects(project)

    def _describe_limit(self) -> None:
        self.browser_note.value = note_html(
            f"up to {human_size(self.browser_limit)} per file (the browser sends the whole file into the kernel's "
            "memory); for larger files give a path above.")

    def load_projects(self, project: Any = None) -> None:
        offer_projects(self.client, self.project_picker, self.status, project,
                       none_yet="You have no project to upload into: create one first (client.create_project(name)).")

    # --- path uploads ---------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start_upload(self) -> None:
        """The button: upload the path on a worker thread, so the kernel stays responsive."""
        if self.busy:
            return
        self._worker = threading.Thread(target=self._upload_quietly, args=(self.path.value,), daemon=True,
                                        name="flow-upload")
        self._worker.start()

    def _upload_quietly(self, path: str) -> None:
        try:
            self.upload_path(path)
        except Exception:  # already shown in the status line; a worker thread has nobody to raise to
            pass

    def upload_path(self, path: str | Path, *, filename: str | None = None) -> Any:
        """Upload one local file into the chosen project and return its DataFile (errors are shown, then raised)."""
        source = Path(str(path).strip()).expanduser()
        if not str(path).strip():
            self.status.value = error_html("Give the path of a file first.")
            raise ValueError("no path given")
        if not source.is_file():
            self.status.value = error_html(f"No such file: {source}")
            raise FileNotFoundError(str(source))
        if self.project_picker.value is None:
            self.status.value = error_html("Choose a project first.")
            raise ValueError("no project chosen")
        return self._upload(source, filename or source.name)

    def _upload(self, source: Path, filename: str) -> Any:
        self.upload_button.disabled = True
        self.progress.bar_style = ""
        self.progress.value = 0.0
        total = source.stat().st_size
        self.status.value = note_html(f"Uploading {filename} ({human_size(total)})…")
        try:
            datafile = self.client.upload(source, self.project_picker.value, filename=filename,
                                          progress=self._show_progress)
        except Exception as error:
            self.progress.bar_style = "danger"
            self.status.value = error_html(error)
            raise
        finally:
            self.upload_button.disabled = False
        self.progress.value = 1.0
        self.progress.bar_style = "success"
        self.uploaded.append(datafile)
        self.status.value = (f"Uploaded <b>{html.escape(datafile.filename)}</b> "
                             f"({human_size(getattr(datafile, 'size', total))}) as data file #{datafile.id}.")
        return datafile

    def _show_progress(self, sent: int, total: int | None) -> None:
        self.progress.value = sent / total if total else 1.0
        self.progress.description = f"{int(100 * self.progress.value)}%"

    # --- browser uploads ------------------------------------------------------------------------------------

    def _browser_files(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if files:
            self.upload_browser_files(files)
            self.chooser.value = ()

    def upload_browser_files(self, files: Any) -> list[Any]:
        """Files from ``FileUpload.value`` (dicts with name, size, content): each within the limit is uploaded."""
        done = []
        for item in files:
            name, size = item["name"], item.get("size", len(item["content"]))
            if size > self.browser_limit:
                self.status.value = error_html(
                    f"{name} is {human_size(size)}; the browser limit is {human_size(self.browser_limit)}. "
                    "Put it on the server's disk and upload it by path.")
                continue
            if self.project_picker.value is None:
                self.status.value = error_html("Choose a project first.")
                break
            with tempfile.TemporaryDirectory(prefix="flow-upload-") as scratch:
                staged = Path(scratch) / "content"
                staged.write_bytes(bytes(item["content"]))
                try:
                    done.append(self._upload(staged, name))
                except Exception as error:
                    if not is_connection_problem(error):
                        raise
        return done
