"""FlowClient: Flow's REST API as Python methods returning typed objects (see docs/client.md)."""
from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

import requests

from . import provenance as provenance_
from .discovery import Endpoint, discover
from .downloads import download_to
from .errors import FlowError
from .http import Transport
from .models import DataFile, Execution, Page, Pipeline, Project, Sample, to_params
from .progress import ProgressArg
from .settings import FlowClientSettings
from .uploads import upload_file


def _shell_config() -> Any:
    """The running IPython's config, so ``c.FlowClientSettings.*`` in ipython_config.py applies."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "config", None) if shell is not None else None


class FlowClient:
    """A connection to Flow's API. With no arguments it finds the server itself (see discovery.py)."""

    def __init__(self, url: str | None = None, token: str | None = None, *, headers: dict[str, str] | None = None,
                 timeout: float | None = None, session: requests.Session | None = None, **settings: Any):
        config = _shell_config()
        self.settings = FlowClientSettings(config=config) if config is not None else FlowClientSettings()
        if timeout is not None:
            settings["timeout"] = timeout
        for name, value in settings.items():
            if not self.settings.has_trait(name):
                raise TypeError(f"FlowClient got an unknown setting {name!r}")
            setattr(self.settings, name, value)
        self.endpoint: Endpoint = discover(url, token)
        self.transport = Transport(self.endpoint, self.settings, headers=headers, session=session)
        self._versions: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"FlowClient({self.endpoint.api_url!r})"

    @property
    def url(self) -> str:
        """The API's URL (``…/flow/api/``)."""
        return self.endpoint.api_url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "FlowClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- health -----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Every component's check (``status`` "ok" or "fail", ``failing``, ``components``); a failing
        component is an answer here, not an exception."""
        response = self.transport.request("GET", "health", ok=(503,), retry=True)
        return response.json()

    # --- projects and samples ---------------------------------------------------------------------------------

    def projects(self, name: str | None = None) -> list[Project]:
        """Projects you can see (``name``: those whose name starts with it)."""
        return [Project.from_json(self, item) for item in self.transport.items("projects", name=name, limit=1000)]

    def project(self, id_or_name: int | str | Project) -> Project:
        return Project.from_json(self, self.transport.get(f"projects/{self.project_id(id_or_name)}"))

    def create_project(self, name: str, description: str = "", **fields: Any) -> Project:
        """A new project (``visibility``, ``group``, … as the API takes them; unknown fields are refused)."""
        return Project.from_json(self, self.transport.post("projects", {"name": name, "description": description,
                                                                        **fields}))

    def project_id(self, project: int | str | Project | None) -> int:
        """The id of a Project, an id, or a project's exact name (one you can see)."""
        if project is None:
            raise FlowError("A project is required.", status=400, reason="missing_field", field="/project")
        if isinstance(project, Project):
            return project.id
        if isinstance(project, int) or (isinstance(project, str) and project.isdigit()):
            return int(project)
        matches = [p for p in self.projects(name=str(project)) if p.name == project]
        if len(matches) != 1:
            raise FlowError(f"No single project named {project!r}" + (f" ({len(matches)} match)" if matches else "")
                            + "; pass its id.", status=404, reason="not_found", field="/project")
        return matches[0].id

    def samples(self, project: int | str | Project) -> list[Sample]:
        return [Sample.from_json(self, item) for item in
                self.transport.items(f"projects/{self.project_id(project)}/samples", limit=1000)]

    def create_sample(self, project: int | str | Project, name: str,
                      metadata: dict[str, Any] | None = None) -> Sample:
        body: dict[str, Any] = {"name": name}
        if metadata is not None:
            body["metadata"] = metadata
        return Sample.from_json(self, self.transport.post(f"projects/{self.project_id(project)}/samples", body))

    # --- data files -------------------------------------------------------------------------------------------

    def _file_filters(self, project: Any = None, sample: Any = None, name: str | None = None,
                      type: str | None = None, execution: Any = None) -> dict[str, Any]:  # noqa: A002
        return {"project": self.project_id(project) if project is not None else None,
                "sample": sample.id if isinstance(sample, Sample) else sample, "name": name, "type": type,
                "execution": execution.id if isinstance(execution, Execution) else execution}

    def files(self, project: Any = None, sample: Any = None, name: str | None = None, type: str | None = None,
              limit: int = 50, after: str | None = None, execution: Any = None) -> Page:  # noqa: A002
        """One page of the data files you can see, filtered; ``page.next`` is the cursor for ``after=``."""
        answer = self.transport.get("files", **self._file_filters(project, sample, name, type, execution),
                                    limit=limit, after=after)
        return Page([DataFile.from_json(self, item) for item in answer.get("items") or []], answer.get("next"))

    def iter_files(self, project: Any = None, sample: Any = None, name: str | None = None,
                   type: str | None = None, execution: Any = None) -> Iterator[DataFile]:  # noqa: A002
        """Every matching data file, page after page."""
        for item in self.transport.items("files", **self._file_filters(project, sample, name, type, execution),
                                         limit=1000):
            yield DataFile.from_json(self, item)

    def file(self, id: int | DataFile) -> DataFile:  # noqa: A002
        ident = id.id if isinstance(id, DataFile) else int(id)
        return DataFile.from_json(self, self.transport.get(f"files/{ident}"))

    def upload(self, path: str | Path, project: int | str | Project, sample: int | Sample | None = None,
               filename: str | None = None, progress: ProgressArg = True,
               chunk_size: int | None = None) -> DataFile:
        """Upload a file (tus, resumable: interruptions and server restarts are survived) and return its data file.
        The bytes are checked: the sha256 the server recorded must be the one of the bytes sent."""
        result = upload_file(self.transport, path, self.project_id(project),
                             sample=sample.id if isinstance(sample, Sample) else sample, filename=filename,
                             progress=progress, chunk_size=chunk_size)
        datafile = self.file(result.datafile_id)
        if datafile.sha256 and datafile.sha256 != result.sha256:
            raise FlowError(f"Data file {datafile.id} was stored with sha256 {datafile.sha256}, but the bytes sent "
                            f"hash to {result.sha256}; the file changed while it was uploaded?",
                            reason="checksum_mismatch")
        return datafile

    def download(self, datafile: int | DataFile, path: str | Path | None = None,
                 progress: ProgressArg = True) -> Path:
        """Save a data file (see DataFile.download)."""
        if not isinstance(datafile, DataFile):
            datafile = self.file(datafile)
        name = PurePath(datafile.filename).name or f"datafile-{datafile.id}"
        dest = Path.cwd() / name if path is None else Path(path)
        if dest.is_dir() or (path is not None and str(path).endswith(("/", "\\"))):
            dest = dest / name
        return download_to(self.transport, datafile.content_path, dest, size=datafile.size,
                           sha256=datafile.sha256, progress=progress)

    # --- pipelines --------------------------------------------------------------------------------------------

    def pipelines(self) -> list[Pipeline]:
        found = [Pipeline.from_json(self, item) for item in self.transport.items("pipelines", limit=1000)]
        for pipeline in found:
            self._remember_versions(pipeline)
        return found

    def pipeline(self, name: str | int | Pipeline) -> Pipeline:
        ref = name.name if isinstance(name, Pipeline) else str(name)
        found = Pipeline.from_json(self, self.transport.get(f"pipelines/{quote(ref, safe='')}"))
        self._remember_versions(found)
        return found

    def _remember_versions(self, pipeline: Pipeline) -> None:
        for version in pipeline.raw.get("versions") or []:
            self._versions[version["id"]] = {**version, "pipeline": pipeline.name}

    def version_info(self, version_id: int | None) -> dict[str, Any] | None:
        """A pipeline version by id (``pipeline`` name, ``ref``, ``commit``…), from the registry, cached."""
        if version_id is None:
            return None
        if version_id not in self._versions:
            try:
                self.pipelines()
            except FlowError:
                return None
        return self._versions.get(version_id)

    # --- executions -------------------------------------------------------------------------------------------

    def capture_provenance(self) -> dict[str, str]:
        """The notebook and cell running now (``{}`` outside a kernel)."""
        sessions = self._jupyter_sessions if self.endpoint.source == "jupyter-server" else None
        return provenance_.capture(root_dir=self.endpoint.root_dir, sessions=sessions)

    def _jupyter_sessions(self) -> list[dict[str, Any]]:
        return self.transport.json("GET", self.endpoint.server_url + "api/sessions", retry=False)

    def launch(self, pipeline: str | int | Pipeline, params: dict[str, Any] | None = None,
               project: int | str | Project | None = None, version: str | None = None, backend: str | None = None,
               resources: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None) -> Execution:
        """Start a run. ``params`` may hold DataFiles; ``provenance`` None records the current notebook and cell,
        ``{}`` records nothing. The server validates everything first (FlowError ``invalid_params`` lists every
        bad field)."""
        body: dict[str, Any] = {"pipeline": pipeline.name if isinstance(pipeline, Pipeline) else pipeline,
                                "project": self.project_id(project), "params": to_params(params or {})}
        for key, value in (("version", version), ("backend", backend), ("resources", resources)):
            if value is not None:
                body[key] = value
        origin = self.capture_provenance() if provenance is None else provenance
        if origin:
            body["provenance"] = origin
        try:
            return Execution.from_json(self, self.transport.post("executions", body))
        except FlowError as exc:
            kept = exc.body.get("execution") if exc.reason == "scheduler_unavailable" else None
            if not isinstance(kept, dict):
                raise
            # The server stored the launch and starts it when the scheduler is back: hand it over, and say so.
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
            return Execution.from_json(self, kept)

    def executions(self, project: Any = None, status: str | None = None,
                   pipeline: str | Pipeline | None = None) -> list[Execution]:
        filters = {"project": self.project_id(project) if project is not None else None, "status": status,
                   "pipeline": pipeline.name if isinstance(pipeline, Pipeline) else pipeline}
        return [Execution.from_json(self, item) for item in self.transport.items("executions", limit=1000,
                                                                                 **filters)]

    def execution(self, id: str | Execution) -> Execution:  # noqa: A002
        ident = id.id if isinstance(id, Execution) else str(id)
        return Execution.from_json(self, self.transport.get(f"executions/{quote(ident, safe='')}"))

    # --- sample sheets and sweeps -----------------------------------------------------------------------------

    def samplesheet(self, pipeline: str | Pipeline, data: list[Any], version: str | None = None) -> Any:
        """A SampleSheet pairing the R1/R2 reads among ``data`` (DataFiles or ids) for the pipeline's schema."""
        from .samplesheet import build

        return build(self, pipeline.name if isinstance(pipeline, Pipeline) else str(pipeline), data, version)

    def sweep(self, pipeline: str | Pipeline, base_params: dict[str, Any] | None, grid: dict[str, list[Any]],
              project: Any = None, **launch_kwargs: Any) -> Any:
        """Launch one run per combination of ``grid`` values (a Sweep: a list of Executions)."""
        from .sweep import run_sweep

        return run_sweep(self, pipeline, base_params, grid, project=project, **launch_kwargs)


_default: FlowClient | None = None
_default_lock = threading.Lock()


def connect(**kwargs: Any) -> FlowClient:
    """The kernel's default client, found once and cached; with arguments, a new default client."""
    global _default
    with _default_lock:
        if _default is None or kwargs:
            _default = FlowClient(**kwargs)
        return _default
