"""Pipeline registry: git repositories pinned to commits, and the pipelines bundled with Flow.

Adding a version reads its ``nextflow_schema.json``, the sample-sheet schema its input parameter points at (by
nf-core's convention ``assets/schema_input.json`` when the schema names none) and its ``tower.yml`` once, and
stores them on the version row, so forms and validation never touch git or the disk again. A pipeline
without a schema gets its parameters from ``nextflow config -flat`` instead.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from .. import permissions
from .._version import __version__
from ..config import FlowSettings
from ..data.lookup import valid_id
from ..data.paging import page, page_sorted
from ..data.storage import Storage
from ..db.models import Pipeline, PipelineVersion
from ..errors import FlowError, bad_request, conflict, not_found
from ..identity import Actor, Identity
from ..proc import CommandError, run
from . import git
from .nfconfig import parse_config_flat
from .schema import declared_params, default_problems, load_schema

if TYPE_CHECKING:
    from ..seams import Host

log = logging.getLogger(__name__)

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
#
# Registering runs git (ls-remote, clone or fetch, archive) and, for a pipeline without a schema, a JVM (``nextflow
# config -flat``): seconds to minutes. None of it happens inside a transaction (on SQLite an open write transaction
# is the whole database's write lock): `register_pipeline` and `register_version` check the caller, do every git,
# JVM and file read with no session open, and only then write the rows in one short transaction that also settles
# a race with a concurrent registration of the same name or ref (409, as if it had come second all along).

@dataclass(frozen=True)
class PreparedVersion:
    """A version read from its checkout before any transaction: everything its row needs."""

    ref: str
    commit: str
    files: dict[str, Any]


@dataclass(frozen=True)
class PreparedPipeline:
    """A new pipeline mirrored and its first version exported into ``staging`` (``pipelines/.staging-…``), which the
    recording transaction renames to ``pipelines/<id>`` once the row has its id."""

    name: str
    source: str
    description: str
    curated: bool
    staging: Path
    version: PreparedVersion


def _may_change(session: Session, actor: Actor) -> None:
    """403 before any git work: only admins make Flow clone or run anything."""
    permissions.require_flow_admin(actor, "change the pipeline registry")


def _duplicate_name(name: str) -> FlowError:
    return conflict(f"A pipeline called '{name}' exists.", field="/name", reason="duplicate_name")


def _duplicate_version(ref: str) -> FlowError:
    return conflict(f"Version '{ref}' is registered already.", field="/ref", reason="duplicate_version")


def _name_free(session: Session, actor: Actor, name: str) -> None:
    if session.scalar(select(Pipeline.id).where(Pipeline.name == name)) is not None:
        raise _duplicate_name(name)


def _flush_unique(session: Session, taken: FlowError) -> None:
    """Flush; a unique constraint failing means a concurrent registration wrote the same name or ref first."""
    try:
        session.flush()
    except IntegrityError:
        raise taken from None


def _prepare_version(settings: FlowSettings, mirror_dir: Path, ref: str,
                     checkout_of: Callable[[str], Path]) -> tuple[PreparedVersion, Path, bool]:
    """Resolve ``ref`` in the mirror, export its tree (unless a version of the same commit did) and read its files;
    returns the prepared version, the checkout and whether this call created it. A version refused after its
    export (a bad schema, a link out) leaves no checkout behind."""
    commit = git.resolve_ref(mirror_dir, ref)
    checkout = checkout_of(commit)
    created = not checkout.exists() and git.export(mirror_dir, commit, checkout)
    try:
        files = read_pipeline_files(checkout, settings)
    except BaseException:
        if created:
            shutil.rmtree(checkout, ignore_errors=True)
        raise
    return PreparedVersion(ref, commit, files), checkout, created


def register_pipeline(host: Host, identity: Identity, body: dict[str, Any]) -> dict[str, Any]:
    """Register a git repository and its first version (``ref``; default: the repository's newest tag). Blocking:
    call it on a worker thread; it opens its own short sessions (see the section comment)."""
    storage, settings = host.storage, host.settings
    host.run_as(identity, _may_change)
    source = git.check_source(body["source"])
    refs = git.list_refs(source)
    name = body.get("name") or PurePosixPath(source.rstrip("/")).name.removesuffix(".git")
    if not NAME.match(name):
        raise bad_request("Pipeline names use letters, digits, '_', '-' and '.'.", field="/name")
    host.run_as(identity, _name_free, name)  # a taken name is refused before a clone, not after
    ref = body.get("ref") or next((r.name for r in refs if r.kind == "tag"), None) or "HEAD"
    staging = storage.root / "pipelines" / f".staging-{secrets.token_hex(8)}"
    try:
        git.mirror(source, staging / "mirror.git")
        version, _checkout, _created = _prepare_version(settings, staging / "mirror.git", ref,
                                                        lambda commit: staging / commit)
        prepared = PreparedPipeline(name=name, source=source, description=body.get("description", ""),
                                    curated=bool(body.get("curated", False)), staging=staging, version=version)
        return host.run_as(identity, _record_pipeline, storage, prepared)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the pipeline was recorded


def _record_pipeline(session: Session, actor: Actor, storage: Storage, prepared: PreparedPipeline) -> dict[str, Any]:
    """The short transaction of `register_pipeline`: rows, and one rename of the staged directory."""
    _may_change(session, actor)
    _name_free(session, actor, prepared.name)
    pipeline = Pipeline(name=prepared.name, source=prepared.source, description=prepared.description,
                        curated=prepared.curated, created_by_id=actor.user_id)
    session.add(pipeline)
    _flush_unique(session, _duplicate_name(prepared.name))
    home = storage.root / "pipelines" / str(pipeline.id)
    if home.exists():  # left by a process killed between this rename and its commit (the id was not used)
        shutil.rmtree(home)
    os.rename(prepared.staging, home)
    event.listen(session, "after_rollback", lambda _s: shutil.rmtree(home, ignore_errors=True), once=True)
    _add_version_row(session, pipeline, prepared.version)
    session.refresh(pipeline)
    return pipeline_json(pipeline)


def _version_target(session: Session, actor: Actor, pipeline_ref: str, ref: str) -> tuple[int, str]:
    """(id, source) of the pipeline a version is added to; 403/404/400/409 before any git work."""
    _may_change(session, actor)
    pipeline = get_pipeline_row(session, pipeline_ref)
    if pipeline.bundled:
        raise bad_request("Bundled pipelines get their versions from Flow itself.", field="/ref")
    if any(v.ref == ref for v in pipeline.versions):
        raise _duplicate_version(ref)
    return pipeline.id, pipeline.source


def register_version(host: Host, identity: Identity, pipeline_ref: str, body: dict[str, Any]) -> dict[str, Any]:
    """Register another version of a git pipeline: fetch, export and read it with no session open, then write its
    row. Blocking: call it on a worker thread."""
    storage, ref = host.storage, body["ref"]
    pipeline_id, source = host.run_as(identity, _version_target, pipeline_ref, ref)
    home = storage.root / "pipelines" / str(pipeline_id)
    git.mirror(source, home / "mirror.git")
    version, checkout, created = _prepare_version(host.settings, home / "mirror.git", ref,
                                                  lambda commit: storage.resolve(f"pipelines/{pipeline_id}/{commit}"))
    try:
        return host.run_as(identity, _record_version, pipeline_id, version)
    except BaseException:
        if created:
            _drop_unused_checkout(host, identity, pipeline_id, version.commit, checkout)
        raise


def _record_version(session: Session, actor: Actor, pipeline_id: int, prepared: PreparedVersion) -> dict[str, Any]:
    """The short transaction of `register_version`: one row (409 when the ref was registered meanwhile)."""
    _may_change(session, actor)
    pipeline = session.get(Pipeline, pipeline_id)
    if pipeline is None:  # removed while the version was being fetched
        raise not_found("pipeline")
    if any(v.ref == prepared.ref for v in pipeline.versions):
        raise _duplicate_version(prepared.ref)
    return version_json(_add_version_row(session, pipeline, prepared))


def _checkout_used(session: Session, actor: Actor, pipeline_id: int, commit: str) -> bool:
    """Whether a registered version uses this checkout (a concurrent registration of the same commit won)."""
    path = f"pipelines/{pipeline_id}/{commit}"
    return session.scalar(select(PipelineVersion.id).where(PipelineVersion.path == path).limit(1)) is not None


def _drop_unused_checkout(host: Host, identity: Identity, pipeline_id: int, commit: str, checkout: Path) -> None:
    """Remove the checkout a refused version exported, unless another version of the same commit uses it."""
    try:
        used = host.run_as(identity, _checkout_used, pipeline_id, commit)
    except Exception:  # the database is unreachable: keep the files rather than risk another version's
        log.warning("Flow: keeping checkout %s of a refused version (cannot tell whether it is used)", checkout)
        return
    if not used:
        shutil.rmtree(checkout, ignore_errors=True)


def _add_version_row(session: Session, pipeline: Pipeline, prepared: PreparedVersion) -> PipelineVersion:
    version = PipelineVersion(pipeline_id=pipeline.id, ref=prepared.ref, commit=prepared.commit,
                              path=f"pipelines/{pipeline.id}/{prepared.commit}", **prepared.files)
    session.add(version)
    _flush_unique(session, _duplicate_version(prepared.ref))
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
    """Register every pipeline shipped in ``pipelines/bundled/`` (a version per Flow release).

    Every file is read (and, for a bundled pipeline without a schema, ``nextflow config`` run) before the first
    write, so the caller's transaction holds no write lock meanwhile."""
    missing: list[tuple[Path, Pipeline | None, dict[str, Any]]] = []
    for directory in sorted(p for p in BUNDLED_DIR.iterdir() if (p / "main.nf").is_file()):
        pipeline = session.scalar(select(Pipeline).where(Pipeline.name == directory.name))
        if pipeline is None or not any(v.ref == __version__ for v in pipeline.versions):
            missing.append((directory, pipeline, read_pipeline_files(directory, settings)))
    for directory, found, files in missing:
        pipeline = found
        if pipeline is None:
            readme = directory / "README.md"
            summary = readme.read_text().split("\n\n")[1].strip() if readme.is_file() else ""
            pipeline = Pipeline(name=directory.name, source=BUNDLED_PREFIX + directory.name, bundled=True,
                                curated=True, description=summary[:1000])
            session.add(pipeline)
            session.flush()
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

