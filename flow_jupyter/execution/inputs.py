"""Sample sheets at launch: a stored sheet names its FASTQ files as ``flow://datafile/<id>``, which no pipeline can
open. At launch each such cell is resolved (as the launching user, so a sheet cannot reach another user's files)
and the pipeline gets a copy of the sheet with paths, written into the run directory.

Plain functions on a session; the service checks sheets when a launch is stored (400 naming row and column), the
manager writes the resolved copy when it plans the run (rights may have changed in between).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from .. import permissions
from ..config import FlowSettings
from ..data.lookup import valid_id
from ..data.storage import Storage, safe_filename
from ..db.models import PipelineVersion
from ..errors import FlowError
from ..identity import Actor
from ..pipelines import forms, samplesheet, schema

INPUTS_DIR = "inputs"


def sheet_params(version: PipelineVersion) -> list[str]:
    """Parameters that hold a sample sheet: nf-schema marks them with a ``schema`` keyword."""
    if version.schema is None or version.samplesheet_schema is None:
        return []
    return [name for name, prop in schema.declared_params(version.schema).items()
            if isinstance(prop.get("schema"), str)]


def _sheet_rows(session: Session, actor: Actor, storage: Storage, version: PipelineVersion,
                datafile_id: int) -> tuple[str, list[dict[str, Any]]]:
    datafile = permissions.require_datafile(session, actor, valid_id(datafile_id, "data file"), "view")
    if datafile.size > samplesheet.MAX_SAMPLESHEET_BYTES:
        raise FlowError(413, "samplesheet_too_large", f"{datafile.filename} is too large for a sample sheet.")
    data = storage.resolve(datafile.storage_path).read_bytes()
    return datafile.filename, samplesheet.read_samplesheet(data, datafile.filename, schema=version.samplesheet_schema)


def _resolved(session: Session, actor: Actor, storage: Storage, settings: FlowSettings, version: PipelineVersion,
              name: str, datafile_id: int) -> tuple[str, list[dict[str, Any]]]:
    """The sheet's rows with every path cell resolved; 400 naming each cell the user may not use."""
    filename, rows = _sheet_rows(session, actor, storage, version, datafile_id)
    resolved, errors = samplesheet.resolve_datafiles(version.samplesheet_schema, rows,
                                                      forms.cell_resolver(session, actor, storage, settings))
    if errors:
        raise FlowError(400, "invalid_samplesheet", f"{len(errors)} problem(s) in the sample sheet given as "
                        f"'{name}'.", f"/{name}", errors=[{**error, "field": f"/{name}"} for error in errors])
    return filename, resolved


def check_sheets(session: Session, actor: Actor, storage: Storage, settings: FlowSettings,
                 version: PipelineVersion, params: dict[str, Any]) -> None:
    """Before a launch is stored: every data file a sheet names must be one the user may read."""
    for name in sheet_params(version):
        ident = schema.datafile_id(params.get(name))
        if ident is not None:
            _resolved(session, actor, storage, settings, version, name, ident)


def write_sheets(session: Session, actor: Actor, storage: Storage, settings: FlowSettings,
                 version: PipelineVersion, raw_params: dict[str, Any], params: dict[str, Any],
                 run_dir: Path) -> dict[str, Any]:
    """``params`` with each sheet that names data files replaced by a resolved copy under ``run_dir/inputs``."""
    changed = dict(params)
    for name in sheet_params(version):
        ident = schema.datafile_id(raw_params.get(name))
        if ident is None:
            continue
        filename, rows = _resolved(session, actor, storage, settings, version, name, ident)
        columns = samplesheet.columns_of(version.samplesheet_schema, rows)
        target = run_dir / INPUTS_DIR / safe_filename(name, fallback="input") / _csv_name(filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(samplesheet.to_csv(rows, columns))
        changed[name] = str(target)
    return changed


def _csv_name(filename: str) -> str:
    """The sheet is rewritten as CSV; keep its name so the pipeline's ``pattern`` (``^\\S+\\.csv$``) still holds."""
    stem = PurePosixPath(safe_filename(filename, fallback="samplesheet.csv")).stem.replace(" ", "_") or "samplesheet"
    return f"{stem}.csv"
