"""What a run leaves behind for people: its reports (found through the pipeline's tower.yml), MultiQC's data file and
its logs.

Plain functions ``fn(session, actor, storage, ...)`` like service.py. Only files that the run published and that
match a report glob are served as reports; nothing else under the run directory (work dirs, params, other
executions' files) can be reached by a crafted path.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import permissions
from ..data.paging import page_sorted
from ..data.storage import Storage
from ..db.models import DataFile, Execution, PipelineVersion
from ..errors import FlowError, not_found
from ..identity import Actor
from ..pipelines import registry
from ..reports import FoundReport, ReportSpec, find_reports, report_globs
from ..reports.discovery import DEFAULT_SPECS
from ..reports.multiqc import DATA_JSON
from .runfiles import LOCAL_STDOUT_FILE, SLURM_OUTPUT_FILE, run_files

MAX_TOWER_BYTES = 256 * 1024
#: A published directory (MultiQC's `multiqc_data/`) counts with the files in it, up to this many per directory.
MAX_FILES_PER_PUBLISHED_DIR = 10_000
#: The logs a researcher can download: Nextflow's own log, and what the head process printed.
LOGS = ("nextflow", "head")


@dataclass(frozen=True)
class ServedFile:
    """A run's file to serve. Reports and MultiQC data are registered outputs: ``datafile`` is set and their
    stored bytes are served (checked like any data file); logs are opened beneath the run directory (``root``),
    never through a link."""

    path: Path
    filename: str
    mimetype: str | None = None
    datafile: DataFile | None = None
    root: Path | None = None


def _tower_specs(storage: Storage, version: PipelineVersion) -> list[ReportSpec]:
    """The pipeline's `reports:` globs, else Flow's defaults (MultiQC and FastQC by name)."""
    tower = registry.version_dir(storage, version) / "tower.yml"
    try:
        if tower.is_file() and tower.stat().st_size <= MAX_TOWER_BYTES:
            return report_globs(yaml.safe_load(tower.read_text(encoding="utf-8", errors="replace")))
    except (OSError, yaml.YAMLError):
        pass
    return list(DEFAULT_SPECS)


def expand_published(run_dir: Path, destinations: list[str]) -> list[Path]:
    """Published files under ``run_dir``: a file as it is, a directory as the regular files inside it (bounded, no
    symlinked directories followed); anything outside the run directory is left out."""
    root = run_dir.resolve()
    found: list[Path] = []
    for destination in destinations:
        try:
            path = Path(destination).resolve()
        except (OSError, RuntimeError):
            continue
        if root not in path.parents:
            continue
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            walked = islice(path.rglob("*"), MAX_FILES_PER_PUBLISHED_DIR)  # bounded before anything is sorted
            found.extend(sorted(item for item in walked
                                if item.is_file() and not item.is_symlink() and root in item.resolve().parents))
    return found


def _registered(session: Session, execution: Execution) -> dict[str, DataFile]:
    """Run-relative path → the newest output data file registered for it by the run directory's executions (a
    resume re-publishes into the same directory; a changed file is a newer data file)."""
    same_dir = select(Execution.id).where(Execution.run_dir == execution.run_dir)
    newest: dict[str, DataFile] = {}
    prefix = execution.run_dir.rstrip("/") + "/"
    for datafile in session.scalars(select(DataFile).where(DataFile.execution_id.in_(same_dir))
                                    .order_by(DataFile.id)):
        run_path = datafile.run_path or (datafile.storage_path.removeprefix(prefix)
                                         if datafile.storage_path.startswith(prefix) else None)
        if run_path:
            newest[run_path] = datafile
    return newest


def _published(session: Session, storage: Storage, execution: Execution) -> list[str]:
    """Where the run directory's registered outputs were published, as paths in the run directory."""
    run_dir = storage.resolve(execution.run_dir)
    return [str(run_dir / run_path) for run_path in _registered(session, execution)]


def _served_output(session: Session, storage: Storage, execution: Execution, run_path: str, filename: str,
                   mimetype: str | None) -> ServedFile:
    datafile = _registered(session, execution).get(run_path)
    if datafile is None:
        raise not_found("report")
    return ServedFile(storage.resolve(datafile.storage_path), filename, mimetype, datafile=datafile)


def _found(session: Session, storage: Storage, execution: Execution) -> list[FoundReport]:
    run_dir = storage.resolve(execution.run_dir)
    specs = _tower_specs(storage, session.get_one(PipelineVersion, execution.pipeline_version_id))
    return find_reports(run_dir, specs, published=_published(session, storage, execution))


def list_reports(session: Session, actor: Actor, storage: Storage, execution_uuid: str, after: str | None = None,
                 limit: int = 50) -> dict[str, Any]:
    """The run's reports, a page at a time in spec order then by path; each ``url`` is relative to the API root."""
    execution = permissions.require_execution(session, actor, execution_uuid, "view")
    base = f"executions/{execution.uuid}/reports/"

    def render(found: FoundReport) -> dict[str, Any]:
        return {"path": found.path, "display": found.display, "mimetype": found.mimetype, "size": found.size,
                "url": base + quote(found.path)}

    return page_sorted(_found(session, storage, execution), lambda found: (found.spec, found.path), after, limit,
                       render, key_types=(int, str))


def report_file(session: Session, actor: Actor, storage: Storage, execution_uuid: str, path: str) -> ServedFile:
    """One of the run's reports by its run-relative path; 404 for any other path."""
    execution = permissions.require_execution(session, actor, execution_uuid, "view")
    wanted = PurePosixPath(path).as_posix()
    for found in _found(session, storage, execution):
        if found.path == wanted:
            return _served_output(session, storage, execution, found.path, PurePosixPath(found.path).name,
                                  found.mimetype)
    raise not_found("report")


def multiqc_data(session: Session, actor: Actor, storage: Storage, execution_uuid: str) -> ServedFile:
    """The run's published multiqc_data.json (the first one, by path), for notebooks and scripts."""
    execution = permissions.require_execution(session, actor, execution_uuid, "view")
    run_dir = storage.resolve(execution.run_dir)
    spec = ReportSpec(pattern=DATA_JSON, display="MultiQC data", mimetype="application/json")
    found = find_reports(run_dir, [spec], published=_published(session, storage, execution))
    if not found:
        raise FlowError(404, "no_multiqc_data", "This run has published no multiqc_data.json (yet).")
    return _served_output(session, storage, execution, found[0].path, DATA_JSON, "application/json")


def log_file(session: Session, actor: Actor, storage: Storage, execution_uuid: str, which: str) -> ServedFile:
    """Nextflow's log or the head process's output of this execution, as a download."""
    execution = permissions.require_execution(session, actor, execution_uuid, "view")
    if which not in LOGS:
        raise not_found("log")
    run_dir = storage.resolve(execution.run_dir)
    if which == "nextflow":
        name = run_files(execution).log
    else:
        name = SLURM_OUTPUT_FILE if execution.backend == "slurm" else LOCAL_STDOUT_FILE
    path = run_dir / name
    if path.is_symlink() or not path.is_file():
        raise FlowError(404, "no_log", f"This execution has no {which} log (yet).")
    return ServedFile(path, f"{execution.uuid}-{which}.log", "text/plain", root=run_dir)
