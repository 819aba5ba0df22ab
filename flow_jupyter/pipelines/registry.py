"""Pipeline registry: git repositories pinned to commits, and the pipelines bundled with Flow.

Adding a version reads its ``nextflow_schema.json``, the sample-sheet schema its input parameter points at (by
nf-core's convention ``assets/schema_input.json`` when the schema names none) and its ``tower.yml`` once, and
stores them on the version row, so forms and validation never touch git or the disk again. A pipeline
without a schema gets its parameters from ``nextflow config -flat`` instead.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from sqlalchemy import event, select
from sqlalchemy.orm import Session, selectinload

from .. import permissions
from .._version import __version__
from ..config import FlowSettings
from ..data.lookup import valid_id
from ..data.paging import page, page_sorted
from ..data.storage import Storage
from ..db.models import Pipeline, PipelineVersion
from ..errors import FlowError, bad_request, conflict, not_found
from ..identity import Actor
from ..proc import CommandError, run
from . import git
from .nfconfig import parse_config_flat
from .schema import declared_params, default_problems, load_schema

BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED_PREFIX = "bundled:"
MAX_FILE_BYTES = 2 * 1024 * 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
SHEET_PARAM = "input"
CONVENTIONAL_SHEET_SCHEMA = "assets/schema_input.json"
"""nf-core's sample-sheet schema, used for ``input`` when the pipeline's schema names none (see
:func:`_adopt_conventional_sheet_schema`)."""


# --- JSON views -------------------------------------------------------------------------------------------------

def version_json(version: PipelineVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "pipeline": version.pipeline_id,
        "ref": version.ref,
        "commit": version.commit,
        "has_schema": version.schema is not None,
        "has_samplesheet_schema": version.samplesheet_schema is not None,
        "reports": sorted((version.tower or {}).get("reports", {}) or {}),
        # The schema contradicting itself (a default of the wrong type) is the pipeline's problem: say so here.
        "warnings": default_problems(version.schema) if version.schema is not None else [],
        "created_at": version.created_at.isoformat(),
    }


def pipeline_json(pipeline: Pipeline, with_versions: bool = True) -> dict[str, Any]:
    body = {
        "id": pipeline.id,
        "name": pipeline.name,
        "description": pipeline.description,
        "source": pipeline.source,
        "bundled": pipeline.bundled,
        "curated": pipeline.curated,
        "created_at": pipeline.created_at.isoformat(),
    }
    if with_versions:
        body["versions"] = [version_json(v) for v in pipeline.versions]
        # What a launch without a version runs (see get_version_row).
        body["default_version"] = pipeline.versions[-1].ref if pipeline.versions else None
    return body


# --- lookups ----------------------------------------------------------------------------------------------------

def get_pipeline_row(session: Session, pipeline_ref: str | int) -> Pipeline:
    """A pipeline by id or by name (every signed-in user may see the registry)."""
    text = str(pipeline_ref)
    if text.isdigit():
        pipeline = session.get(Pipeline, valid_id(text, "pipeline"))
    else:
        pipeline = session.scalar(select(Pipeline).where(Pipeline.name == text))
    if pipeline is None:
        raise not_found("pipeline")
    return pipeline


def get_version_row(session: Session, pipeline_ref: str | int, version_ref: str | int | None) -> PipelineVersion:
    """A version by id or ref; ``None`` or ``latest`` means the newest registered version."""
    pipeline = get_pipeline_row(session, pipeline_ref)
    if not pipeline.versions:
        raise not_found("pipeline version")
    if version_ref in (None, "", "latest"):
        return pipeline.versions[-1]
    text = str(version_ref)
    for version in pipeline.versions:
        if version.ref == text or (text.isdigit() and version.id == int(text)):
            return version
    raise not_found("pipeline version")


def version_dir(storage: Storage, version: PipelineVersion) -> Path:
    """Where the pipeline's files for this version are (bundled: inside the package)."""
    if version.path.startswith(BUNDLED_PREFIX):
        return BUNDLED_DIR / version.path.removeprefix(BUNDLED_PREFIX)
    return storage.resolve(version.path)


# --- reading a checkout ---------------------------------------------------------------------------------------

def _inside(directory: Path, relative: str, what: str) -> Path | None:
    """The file a pipeline names by a relative path, or None if there is none; 400 if the path or a link on the
    way leads out of the pipeline's directory (a checkout's links are refused by git.export, but a path in a
    schema is the pipeline author's text)."""
    clean = PurePosixPath(relative.strip())
    if "\x00" in relative or clean.is_absolute() or ".." in clean.parts:
        raise bad_request(f"{what} path {relative!r} leaves the pipeline.", field="/source", reason="invalid_schema")
    root = directory.resolve()
    try:
        path = (directory / clean).resolve()
    except (OSError, RuntimeError):  # a link loop
        raise bad_request(f"{what} {relative!r} is a link that leads nowhere.", field=relative,
                          reason="unsafe_link") from None
    if path != root and root not in path.parents:
        raise bad_request(f"{what} {relative!r} is a link that leads outside the pipeline; Flow does not read "
                          "files beyond a pipeline's own.", field=relative, reason="unsafe_link")
    return path if path.is_file() else None


def _read_inside(directory: Path, relative: str, what: str) -> bytes | None:
    """Bytes of a file named by the pipeline itself (None if it has none), refusing paths that leave its directory."""
    path = _inside(directory, relative, what)
    if path is None:
        return None
    if path.stat().st_size > MAX_FILE_BYTES:
        raise FlowError(413, "schema_too_large", f"{relative} is larger than {MAX_FILE_BYTES // 1024} KiB.")
    return path.read_bytes()


def samplesheet_schema_path(schema: dict[str, Any]) -> str | None:
    """The ``schema`` keyword of the sheet parameter: ``input``'s (nf-core: ``assets/schema_input.json``), else the
    first parameter that has one."""
    params = declared_params(schema)
    for prop in [params.get(SHEET_PARAM), *params.values()]:
        if isinstance(prop, dict) and isinstance(prop.get("schema"), str):
            return prop["schema"]
    return None


def _adopt_conventional_sheet_schema(directory: Path, schema: dict[str, Any]) -> None:
    """Give ``input`` the sheet schema nf-core keeps in ``assets/schema_input.json`` when it names none itself.

    Many pipelines call ``samplesheetToList(params.input, "assets/schema_input.json")`` in their code instead of
    naming the file in their schema; writing the convention into the stored schema (a parsed copy, never the
    pipeline's file) makes forms, sheet checks and launches treat ``input`` exactly as if the schema said so.
    """
    prop = declared_params(schema).get(SHEET_PARAM)
    if prop is None or "schema" in prop:
        return
    if _inside(directory, CONVENTIONAL_SHEET_SCHEMA, "sample-sheet schema") is not None:
        prop["schema"] = CONVENTIONAL_SHEET_SCHEMA


def read_pipeline_files(directory: Path, settings: FlowSettings) -> dict[str, Any]:
    """Schema, sample-sheet schema, tower.yml and (without a schema) the config's params of one checkout."""
    found: dict[str, Any] = {"schema": None, "samplesheet_schema": None, "tower": None, "config_params": None}
    raw = _read_inside(directory, "nextflow_schema.json", "schema")
    if raw is not None:
        found["schema"] = load_schema(raw, name="nextflow_schema.json")
        _adopt_conventional_sheet_schema(directory, found["schema"])
        sheet = samplesheet_schema_path(found["schema"])
        if sheet:
            sheet_raw = _read_inside(directory, sheet, "sample-sheet schema")
            if sheet_raw is not None:
                found["samplesheet_schema"] = load_schema(sheet_raw, name=sheet)
    else:
        found["config_params"] = config_params(directory, settings)
    tower = _read_inside(directory, "tower.yml", "tower.yml")
    if tower is not None:
        try:
            parsed = yaml.safe_load(tower)
        except yaml.YAMLError as exc:
            raise bad_request(f"tower.yml is not valid YAML: {exc}", field="/source", reason="invalid_tower") from None
        found["tower"] = parsed if isinstance(parsed, dict) else None
    return found


def config_params(directory: Path, settings: FlowSettings) -> dict[str, Any]:
    """Params a schema-less pipeline declares: ``nextflow config -flat`` plus ``params.x = literal`` in main.nf."""
    params: dict[str, Any] = {}
    main = directory / "main.nf"
    if main.is_file():
        params.update(_static_params(main.read_text(errors="replace")))
    if (directory / "nextflow.config").is_file():
        env = dict(os.environ, NXF_OFFLINE="true", NXF_ANSI_LOG="false")
        try:
            out = run(["nextflow", "-q", "config", "-flat", str(directory)], cwd=str(directory), env=env,
                      timeout=settings.health_check_timeout * 6)
            params.update(parse_config_flat(out.stdout))
        except CommandError as exc:
            raise bad_request(f"nextflow config failed on this version: {exc.summary()}", field="/ref",
                              reason="invalid_config") from None
    return params


_STATIC_PARAM = re.compile(r"^\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$", re.M)


def _static_params(text: str) -> dict[str, Any]:
    lines = "\n".join(f"params.{name} = {value}" for name, value in _STATIC_PARAM.findall(text))
    return parse_config_flat(lines)


# --- changes (admins) -------------------------------------------------------------------------------------------

def add_pipeline(session: Session, actor: Actor, storage: Storage, settings: FlowSettings,
                 body: dict[str, Any]) -> dict[str, Any]:
    """Register a git repository and its first version (``ref``; default: the repository's newest tag)."""
    permissions.require_flow_admin(actor, "change the pipeline registry")
    source = git.check_source(body["source"])
    refs = git.list_refs(source)
    name = body.get("name") or PurePosixPath(source.rstrip("/")).name.removesuffix(".git")
    if not NAME.match(name):
        raise bad_request("Pipeline names use letters, digits, '_', '-' and '.'.", field="/name")
    if session.scalar(select(Pipeline.id).where(Pipeline.name == name)) is not None:
        raise conflict(f"A pipeline called '{name}' exists.", field="/name", reason="duplicate_name")
    ref = body.get("ref") or next((r.name for r in refs if r.kind == "tag"), None) or "HEAD"
    pipeline = Pipeline(name=name, source=source, description=body.get("description", ""),
                        curated=bool(body.get("curated", False)), created_by_id=actor.user_id)
    session.add(pipeline)
    session.flush()
    home = storage.root / "pipelines" / str(pipeline.id)
    event.listen(session, "after_rollback", lambda _s: shutil.rmtree(home, ignore_errors=True), once=True)
    git.mirror(source, home / "mirror.git")
    _add_version(session, storage, settings, pipeline, ref)
    session.refresh(pipeline)
    return pipeline_json(pipeline)


def add_version(session: Session, actor: Actor, storage: Storage, settings: FlowSettings, pipeline_ref: str,
                body: dict[str, Any]) -> dict[str, Any]:
    permissions.require_flow_admin(actor, "change the pipeline registry")
    pipeline = get_pipeline_row(session, pipeline_ref)
    if pipeline.bundled:
        raise bad_request("Bundled pipelines get their versions from Flow itself.", field="/ref")
    git.mirror(pipeline.source, storage.root / "pipelines" / str(pipeline.id) / "mirror.git")
    return version_json(_add_version(session, storage, settings, pipeline, body["ref"]))


def _add_version(session: Session, storage: Storage, settings: FlowSettings, pipeline: Pipeline,
                 ref: str) -> PipelineVersion:
    if any(v.ref == ref for v in pipeline.versions):
        raise conflict(f"Version '{ref}' is registered already.", field="/ref", reason="duplicate_version")
    mirror_dir = storage.root / "pipelines" / str(pipeline.id) / "mirror.git"
    commit = git.resolve_ref(mirror_dir, ref)
    relative = f"pipelines/{pipeline.id}/{commit}"
    checkout = storage.resolve(relative)
    if not checkout.exists():
        git.export(mirror_dir, commit, checkout)
        # A version refused after its export (a bad schema, a link out) must leave no checkout behind.
        event.listen(session, "after_rollback", lambda _s: shutil.rmtree(checkout, ignore_errors=True), once=True)
    files = read_pipeline_files(checkout, settings)
    version = PipelineVersion(pipeline_id=pipeline.id, ref=ref, commit=commit, path=relative, **files)
    session.add(version)
    session.flush()
    return version


def remove_pipeline(session: Session, actor: Actor, storage: Storage, pipeline_ref: str) -> None:
    permissions.require_flow_admin(actor, "change the pipeline registry")
    pipeline = get_pipeline_row(session, pipeline_ref)
    if pipeline.bundled:
        raise bad_request("Bundled pipelines cannot be removed.", reason="bundled")
    home = storage.root / "pipelines" / str(pipeline.id)
    session.delete(pipeline)
    event.listen(session, "after_commit", lambda _s: shutil.rmtree(home, ignore_errors=True), once=True)


def ensure_bundled(session: Session, settings: FlowSettings) -> None:
    """Register every pipeline shipped in ``pipelines/bundled/`` (a version per Flow release)."""
    for directory in sorted(p for p in BUNDLED_DIR.iterdir() if (p / "main.nf").is_file()):
        pipeline = session.scalar(select(Pipeline).where(Pipeline.name == directory.name))
        if pipeline is None:
            readme = directory / "README.md"
            summary = readme.read_text().split("\n\n")[1].strip() if readme.is_file() else ""
            pipeline = Pipeline(name=directory.name, source=BUNDLED_PREFIX + directory.name, bundled=True,
                                curated=True, description=summary[:1000])
            session.add(pipeline)
            session.flush()
        if not any(v.ref == __version__ for v in pipeline.versions):
            files = read_pipeline_files(directory, settings)
            session.add(PipelineVersion(pipeline_id=pipeline.id, ref=__version__, commit="",
                                        path=BUNDLED_PREFIX + directory.name, **files))
    session.flush()


def list_pipelines(session: Session, actor: Actor, after: str | None = None, limit: int = 50) -> dict[str, Any]:
    """The registry by name, a page at a time (each pipeline with its versions, loaded in one query per page)."""
    query = select(Pipeline).options(selectinload(Pipeline.versions))
    return page(session, query, [Pipeline.name, Pipeline.id], after, limit, pipeline_json,
                row_key=lambda p: (p.name, p.id), key_types=(str, int))


def list_versions(session: Session, actor: Actor, pipeline_ref: str, after: str | None = None,
                  limit: int = 50) -> dict[str, Any]:
    """A pipeline's registered versions, oldest first (the newest is what a launch without a version runs)."""
    pipeline = get_pipeline_row(session, pipeline_ref)
    query = select(PipelineVersion).where(PipelineVersion.pipeline_id == pipeline.id)
    return page(session, query, [PipelineVersion.id], after, limit, version_json)


def get_pipeline(session: Session, actor: Actor, pipeline_ref: str) -> dict[str, Any]:
    return pipeline_json(get_pipeline_row(session, pipeline_ref))


_REF_KIND_ORDER = {"tag": 0, "branch": 1}


def available_refs(session: Session, actor: Actor, pipeline_ref: str, after: str | None = None,
                   limit: int = 50) -> dict[str, Any]:
    """Tags and branches of the pipeline's repository (for picking a version to register): tags first, each kind
    by name, a page at a time. A bundled pipeline lists its releases."""
    pipeline = get_pipeline_row(session, pipeline_ref)
    if pipeline.bundled:
        found = [git.RemoteRef(v.ref, "release", "") for v in pipeline.versions]
    else:
        found = git.list_refs(pipeline.source)
    return page_sorted(found, lambda r: (_REF_KIND_ORDER.get(r.kind, 2), r.name), after, limit,
                       lambda r: {"name": r.name, "kind": r.kind, "commit": r.commit}, key_types=(int, str))

