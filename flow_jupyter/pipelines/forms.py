"""Forms and validation of a registered pipeline version, with data-file references resolved for the caller.

Parameters are checked by pipelines/params.py, the one pass that validates them, resolves data-file references
(``{"datafile": id}`` / ``flow://datafile/<id>``, a real path only when the caller may read that file; anything
else is "no such data file", with no hint whether it exists) and confines every path a user can name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from .. import permissions
from ..config import FlowSettings
from ..data import files
from ..data.lookup import valid_id
from ..data.storage import Storage
from ..db.models import PipelineVersion
from ..errors import FlowError, bad_request
from ..identity import Actor
from . import params as launch_params
from . import registry, samplesheet, schema
from .paths import PathPolicy


def form(session: Session, actor: Actor, pipeline_ref: str, version_ref: str) -> dict[str, Any]:
    version = registry.get_version_row(session, pipeline_ref, version_ref)
    model = (schema.form_model(version.schema) if version.schema is not None
             else schema.form_model_from_params(version.config_params or {}))
    return {"pipeline": registry.pipeline_json(version.pipeline, with_versions=False),
            "version": registry.version_json(version), "form": model}


def schema_files(session: Session, actor: Actor, pipeline_ref: str, version_ref: str) -> dict[str, Any]:
    version = registry.get_version_row(session, pipeline_ref, version_ref)
    return {"version": registry.version_json(version), "schema": version.schema,
            "samplesheet_schema": version.samplesheet_schema, "tower": version.tower}


def check(session: Session, actor: Actor, storage: Storage, settings: FlowSettings, version: PipelineVersion,
          params: Any, run_dir: Path | None = None) -> launch_params.CheckedParams:
    """The one check of a version's launch parameters (see pipelines/params.py), with its checkout's config."""
    return launch_params.check_launch(session, actor, storage, settings, version, params,
                                      pipeline_dir=registry.version_dir(storage, version), run_dir=run_dir)


def validate(session: Session, actor: Actor, storage: Storage, settings: FlowSettings, pipeline_ref: str,
             version_ref: str, params: dict[str, Any]) -> dict[str, Any]:
    """200 with the params as they would be launched (and warnings, e.g. unknown parameters), or 400
    ``invalid_params`` listing every bad field."""
    version = registry.get_version_row(session, pipeline_ref, version_ref)
    checked = check(session, actor, storage, settings, version, params)
    return {"valid": True, "params": params, "warnings": checked.warnings}


def validate_samplesheet(session: Session, actor: Actor, storage: Storage, settings: FlowSettings,
                         pipeline_ref: str, version_ref: str, body: dict[str, Any]) -> dict[str, Any]:
    """Check a sheet (posted rows, posted text, or a data file) and optionally save it as a data file."""
    version = registry.get_version_row(session, pipeline_ref, version_ref)
    sheet_schema = version.samplesheet_schema
    if sheet_schema is None:
        raise bad_request("This pipeline version has no sample-sheet schema.", reason="no_samplesheet_schema")
    rows = _rows(session, actor, storage, sheet_schema, body)
    policy = PathPolicy.from_settings(settings)
    errors = samplesheet.validate_samplesheet(sheet_schema, rows,
                                              resolve_file=launch_params.cell_resolver(session, actor, storage,
                                                                                       policy))
    if isinstance(rows, list) and all(isinstance(row, dict) for row in rows):  # ``exists: true`` as at launch
        errors = sorted(errors + launch_params.sheet_exists_errors(sheet_schema, rows, policy),
                        key=lambda e: e.get("row") or 0)
    if errors:
        first = errors[0]
        raise FlowError(400, "invalid_samplesheet", f"{len(errors)} problem(s) in the sample sheet.",
                        first.get("field") or "/rows", errors=errors)
    result: dict[str, Any] = {"valid": True, "rows": len(rows)}
    if "save" in body:
        result["datafile"] = _save(session, actor, storage, sheet_schema, rows, body["save"])
    return result


def _rows(session: Session, actor: Actor, storage: Storage, sheet_schema: dict[str, Any],
          body: dict[str, Any]) -> list[dict[str, Any]]:
    sources = [key for key in ("rows", "content", "datafile") if key in body]
    if len(sources) != 1:
        raise bad_request("Give exactly one of 'rows', 'content' or 'datafile'.", field="/rows",
                          reason="one_source")
    if "rows" in body:
        return body["rows"]
    if "content" in body:
        return samplesheet.read_samplesheet(body["content"].encode(), body.get("filename", "samplesheet.csv"),
                                            schema=sheet_schema)
    datafile = permissions.require_datafile(session, actor, valid_id(body["datafile"], "data file", "/datafile"),
                                            "view")
    if datafile.size > samplesheet.MAX_SAMPLESHEET_BYTES:
        raise FlowError(413, "samplesheet_too_large", f"{datafile.filename} is too large for a sample sheet.",
                        "/datafile")
    data = storage.resolve(datafile.storage_path).read_bytes()
    return samplesheet.read_samplesheet(data, datafile.filename, schema=sheet_schema)


def _save(session: Session, actor: Actor, storage: Storage, sheet_schema: dict[str, Any],
          rows: list[dict[str, Any]], target: dict[str, Any]) -> dict[str, Any]:
    """Store the sheet as given (references stay references; they are resolved again at launch)."""
    project = permissions.require_project(session, actor, valid_id(target["project"], "project", "/save/project"),
                                          "edit")
    content = samplesheet.to_csv(rows, samplesheet.columns_of(sheet_schema, rows))
    filename = target.get("filename", "samplesheet.csv")
    return files.datafile_json(session, files.store_bytes(session, storage, owner_id=actor.user_id,
                                                          project_id=project.id, sample_id=None, filename=filename,
                                                          content=content))

