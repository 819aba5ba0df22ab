"""Typed views of the API's JSON: each a dataclass with the JSON fields as attributes, the whole dict as ``.raw``
and the client it came from as ``.client`` (so ``project.upload(...)`` or ``run.wait()`` need nothing else).

The server decides everything; these objects only read what it answered and ask it again.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from ..execution.status import FINAL, SUCCEEDED, TASK_FINAL
from .errors import FlowError
from .progress import Progress, ProgressArg, poll_until

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .api import FlowClient

TERMINAL_STATUSES = FINAL  # the execution statuses after which nothing changes (flow_jupyter.execution.status)
DONE_BUCKETS = tuple(sorted(TASK_FINAL))  # the progress buckets of finished tasks
TASK_COLUMNS = ["id", "key", "task_id", "name", "process", "tag", "native_id", "status", "exit", "submitted_at",
                "started_at", "finished_at", "cpu_percent", "peak_rss", "workdir"]
TASK_TIMES = ("submitted_at", "started_at", "finished_at")


@dataclass(kw_only=True, eq=False)
class _Model:
    """What every view shares: the answer it was read from (``raw``), the client that read it, and identity by id —
    two views of one server object are equal (and hash alike) whatever snapshot of it they hold."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    client: "FlowClient | None" = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, client: "FlowClient | None", data: dict[str, Any]) -> Self:
        """The view of one JSON object; keys the class does not know stay in ``raw`` only."""
        known = {f.name for f in fields(cls)} - {"raw", "client"}
        return cls(**{key: value for key, value in data.items() if key in known}, raw=dict(data), client=client)

    @property
    def _flow(self) -> "FlowClient":
        """The client to ask; a view built by hand (``DataFile(id=7, ...)``, e.g. as a parameter) has none, and
        asking raises the AttributeError reading ``None`` would."""
        if self.client is None:
            raise AttributeError(f"this {type(self).__name__} was not read through a FlowClient, so it cannot "
                                 "ask the server")
        return self.client

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.id == self.id  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))  # type: ignore[attr-defined]


class Page(list):
    """One page of a list answer: the items, and ``next`` — the cursor for the following page (None at the end)."""

    def __init__(self, items: Iterable[Any] = (), next: str | None = None) -> None:  # noqa: A002 - the API's own word
        super().__init__(items)
        self.next = next


@dataclass(kw_only=True, eq=False)
class Project(_Model):
    id: int
    name: str
    description: str = ""
    owner_id: int | None = None
    owner_name: str | None = None
    group: int | None = None
    visibility: str = "private"
    access: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def files(self, **filters: Any) -> Page:
        return self._flow.files(project=self.id, **filters)

    def iter_files(self, **filters: Any) -> Iterator[DataFile]:
        return self._flow.iter_files(project=self.id, **filters)

    def samples(self) -> list["Sample"]:
        return self._flow.samples(self.id)

    def create_sample(self, name: str, metadata: dict[str, Any] | None = None) -> "Sample":
        return self._flow.create_sample(self.id, name, metadata)

    def upload(self, path: str | Path, **kwargs: Any) -> "DataFile":
        return self._flow.upload(path, self.id, **kwargs)


@dataclass(kw_only=True, eq=False)
class Sample(_Model):
    id: int
    project: int
    name: str
    metadata: dict[str, Any] | None = None
    created_at: str | None = None

    def files(self, **filters: Any) -> Page:
        return self._flow.files(sample=self.id, **filters)


@dataclass(kw_only=True, eq=False)
class DataFile(_Model):
    id: int
    filename: str
    type: str | None = None
    size: int = 0
    sha256: str | None = None
    project: int | None = None
    sample: int | None = None
    owner_id: int | None = None
    owner_name: str | None = None
    origin: str | None = None
    execution: str | None = None  # the uuid of the run that published it (flow.execution(file.execution))
    replaces: int | None = None
    created_at: str | None = None

    @property
    def url(self) -> str:
        """The absolute URL path of the bytes (``/base/flow/api/files/<id>/content``), for a link or an iframe on
        the notebook's own origin."""
        return self._flow.transport.link(self.content_path)

    @property
    def content_path(self) -> str:
        return f"files/{self.id}/content"

    def download(self, path: str | Path | None = None, progress: ProgressArg = True) -> Path:
        """Save the file (default: its name in the current directory; a directory: its name in there); resumes
        after interruptions and checks the sha256. Returns where it was written."""
        return self._flow.download(self, path, progress=progress)

    def read_bytes(self) -> bytes:
        """The whole content in memory — for small files; use download() for large ones."""
        return self._flow.transport.request("GET", self.content_path).content

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def reference(self) -> dict[str, int]:
        """How a pipeline parameter names this file: ``{"datafile": id}``."""
        return {"datafile": self.id}


@dataclass(kw_only=True, eq=False)
class Pipeline(_Model):
    id: int
    name: str
    description: str | None = None
    source: str | None = None
    bundled: bool = False
    curated: bool = False
    created_at: str | None = None
    versions: list[str] = field(default_factory=list)  # refs, oldest first; raw["versions"] has the details
    default_version: str | None = None  # what "latest" means to the server: the newest registered version

    @classmethod
    def from_json(cls, client: "FlowClient | None", data: dict[str, Any]) -> "Pipeline":
        refs = [v["ref"] for v in data.get("versions") or []]
        pipeline = super().from_json(client, data)
        pipeline.versions = refs
        pipeline.default_version = refs[-1] if refs else None
        return pipeline

    def _version_path(self, version: str | None) -> str:
        return f"pipelines/{quote(self.name, safe='')}/versions/{quote(str(version or 'latest'), safe='')}"

    def form(self, version: str | None = None) -> dict[str, Any]:
        """The form model (groups of fields with widget, default, required, help, choices …) UIs build from."""
        return self._flow.transport.get(self._version_path(version) + "/form")["form"]

    def schema(self, version: str | None = None) -> dict[str, Any]:
        """The stored ``nextflow_schema.json``, sample-sheet schema and ``tower.yml`` of a version."""
        return self._flow.transport.get(self._version_path(version) + "/schema")

    def validate(self, params: dict[str, Any], version: str | None = None) -> list[dict[str, Any]]:
        """Every problem with ``params`` as ``{field, reason, message}``: the errors that stop a launch, else the
        warnings of one that would go ahead (e.g. ``unknown_parameter``: passed on as given); ``[]`` when clean."""

        try:
            reply = self._flow.transport.post(self._version_path(version) + "/validate",
                                               {"params": to_params(params)})
        except FlowError as exc:
            if exc.reason == "invalid_params":
                return exc.errors or [{"field": exc.field, "reason": exc.reason, "message": exc.message}]
            raise
        return list((reply or {}).get("warnings") or []) if isinstance(reply, dict) else []

    def launch(self, params: dict[str, Any] | None = None, **kwargs: Any) -> "Execution":
        return self._flow.launch(self, params, **kwargs)

    def samplesheet(self, data: list[Any], version: str | None = None) -> Any:
        return self._flow.samplesheet(self, data, version=version)


@dataclass(kw_only=True, eq=False)
class Execution(_Model):
    id: str
    status: str
    owner_id: int | None = None
    owner_name: str | None = None
    project: int | None = None
    pipeline_version: int | None = None
    backend: str | None = None
    run_name: str | None = None
    session_id: str | None = None
    resumed_from: str | None = None  # the uuid of the execution this one resumed
    created_at: str | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_status: int | None = None
    error: str | None = None
    cancel_requested: bool = False
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    resources: dict[str, Any] | None = field(default=None, repr=False)

    def _update(self, data: dict[str, Any]) -> "Execution":
        fresh = self.from_json(self.client, data)
        for item in fields(self):
            if item.name != "client":
                setattr(self, item.name, getattr(fresh, item.name))
        return self

    @property
    def path(self) -> str:
        return f"executions/{self.id}"

    # --- state ------------------------------------------------------------------------------------------------

    def refresh(self) -> "Execution":
        """Read the run's state again from the server."""
        return self._update(self._flow.transport.get(self.path))

    @property
    def detail(self) -> dict[str, Any]:
        """Everything the server said about the run (monitor, per-process counts, stats, queue ETA …)."""
        if "progress" not in self.raw:  # a list entry carries no detail: fetch it once
            self.refresh()
        return self.raw

    @property
    def progress(self) -> dict[str, int]:
        """Task counts per bucket: pending, submitted, running, succeeded, failed, cached, aborted."""
        return dict(self.detail.get("progress") or {})

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def pipeline(self) -> str | None:
        """The pipeline's name (the API names only the version's id)."""
        return (self._flow.version_info(self.pipeline_version) or {}).get("pipeline")

    @property
    def version(self) -> str | None:
        """The pipeline version's ref (tag, branch or release)."""
        return (self._flow.version_info(self.pipeline_version) or {}).get("ref")

    def provenance(self) -> dict[str, Any]:
        """Where the run was launched from: ``{"notebook": path, "cell": id}`` as recorded, or ``{}``."""
        return dict(self.detail.get("provenance") or {})

    def wait(self, timeout: float | None = None, progress: ProgressArg = True) -> "Execution":
        """Poll until the run ends or ``timeout`` seconds pass; returns self either way — check ``.status``."""
        with Progress(progress, None, f"{self.pipeline or 'run'} {self.id[:8]}", unit="task") as bar:
            def done() -> bool:
                self.refresh()
                counts = self.progress
                bar.update_to(sum(counts.get(b, 0) for b in DONE_BUCKETS), sum(counts.values()) or None)
                bar.describe(f"{self.pipeline or 'run'} {self.id[:8]} {self.status}")
                return self.finished

            poll_until(done, timeout, self._flow.settings.poll_interval)
        return self

    # --- what it did ------------------------------------------------------------------------------------------

    @property
    def tasks(self) -> "pd.DataFrame":
        """One row per task (process, tag, status, exit, times, CPU %, peak RSS, work dir)."""
        import pandas as pd

        items = list(self._flow.transport.items(self.path + "/tasks", limit=1000))
        frame = pd.DataFrame(items, columns=TASK_COLUMNS if not items else None)
        for column in TASK_TIMES:
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce")
        return frame

    @property
    def outputs(self) -> list[DataFile]:
        """The files the run published, registered as data files of its project."""
        return [f for f in self._flow.iter_files(execution=self.id) if f.origin == "output"]

    def logs(self, offset: int = 0) -> str:
        """The Nextflow log from ``offset`` to its current end (fetched page by page)."""
        parts: list[str] = []
        while True:
            page = self._flow.transport.get(self.path + "/log", offset=offset)
            parts.append(page.get("text") or "")
            if not page.get("text") or page["next"] >= page["size"]:
                return "".join(parts)
            offset = page["next"]

    def download_log(self, kind: str = "nextflow", path: str | Path | None = None) -> Path:
        """Save the whole ``nextflow`` log or the ``head`` job's output as a file."""
        dest = Path(path) if path is not None else Path.cwd() / f"{kind}-{self.id}.log"
        if dest.is_dir():
            dest = dest / f"{kind}-{self.id}.log"
        from .downloads import download_to

        return download_to(self._flow.transport, f"{self.path}/logs/{quote(kind, safe='')}", dest, progress=False)

    def reports(self) -> list[dict[str, Any]]:
        """The run's reports (found by ``tower.yml`` globs, e.g. MultiQC's): ``{path, display, mimetype, size, url}``,
        ``url`` resolved to the absolute URL path on the server's origin (the API answers it relative to its root)."""
        transport = self._flow.transport
        return [{**item, "url": transport.link(item["url"])} if item.get("url") else dict(item)
                for item in transport.items(self.path + "/reports", limit=1000)]

    def report_url(self, path: str | None = None) -> str:
        """Absolute URL path (with the server's base path) of a report, for ``<iframe src=...>``; by default the
        MultiQC report, else the first HTML report."""
        if path is None:
            found = self.reports()
            html = [r for r in found if str(r.get("path", "")).endswith((".html", ".htm"))]
            best = ([r for r in html if str(r["path"]).endswith("multiqc_report.html")] or html or found)
            if not best:
                raise FlowError("This run has no reports.", status=404, reason="no_reports")
            path = str(best[0]["path"])
        return self._flow.transport.link(f"{self.path}/reports/{quote(path.lstrip('/'))}")

    def multiqc(self) -> dict[str, "pd.DataFrame"]:
        """MultiQC's tables as DataFrames (``general_stats`` and one per module), read with
        :func:`flow_jupyter.reports.multiqc.load_multiqc_data`. FlowError ``no_multiqc_data`` when there are none."""
        from ..reports.multiqc import DATA_JSON, load_multiqc_data
        from .downloads import download_to

        with tempfile.TemporaryDirectory(prefix="flow-multiqc-") as scratch:
            data = download_to(self._flow.transport, self.path + "/" + DATA_JSON, Path(scratch) / DATA_JSON,
                               progress=False)
            return load_multiqc_data(data)

    # --- acting on it -----------------------------------------------------------------------------------------

    def cancel(self) -> "Execution":
        """Ask the server to stop the run (a pending run is cancelled at once); returns self, refreshed."""
        return self._update(self._flow.transport.post(self.path + "/cancel"))

    def resume(self, provenance: dict[str, Any] | None = None, **param_changes: Any) -> "Execution":
        """A new run in the same run directory, from Nextflow's cache, with ``param_changes`` applied."""

        body: dict[str, Any] = {}
        if param_changes:
            body["params"] = to_params(param_changes)
        origin = self._flow.capture_provenance() if provenance is None else provenance
        if origin:
            body["provenance"] = origin
        return Execution.from_json(self.client, self._flow.transport.post(self.path + "/resume", body))

    # --- display ----------------------------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display import execution_html, execution_text

        return {"text/plain": execution_text(self), "text/html": execution_html(self)}

    def _ipython_display_(self) -> None:
        from .display import show_execution

        show_execution(self)


def to_params(value: Any) -> Any:
    """Pipeline parameters as JSON: a DataFile becomes ``{"datafile": id}``, a path its text."""
    if isinstance(value, DataFile):
        return value.reference()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(key): to_params(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_params(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()  # numpy scalars from a DataFrame
    return value
