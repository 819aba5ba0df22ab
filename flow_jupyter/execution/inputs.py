"""Sample sheets at launch: a stored sheet names its FASTQ files as ``flow://datafile/<id>``, which no pipeline can
open. pipelines/params.py resolves each such cell (as the launching user, so a sheet cannot reach another user's
files) when it checks the launch; here the manager writes the pipeline's copy of each sheet, with paths, into the
run directory.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from ..data.storage import safe_filename
from ..pipelines import samplesheet
from ..pipelines.params import CheckedParams
from .runfiles import INPUTS_DIR


def write_sheets(sheet_schema: dict[str, Any] | None, checked: CheckedParams, run_dir: Path) -> dict[str, Any]:
    """The resolved params with each sheet that names data files replaced by a resolved copy under
    ``run_dir/inputs`` (a path Flow staged inside the run directory)."""
    changed = dict(checked.resolved)
    for name, (filename, rows) in checked.sheets.items():
        if sheet_schema is None:  # sheets are only ever read against a stored sheet schema (params.sheet_params)
            raise ValueError(f"the sample sheet given as {name!r} has no sheet schema to be written with")
        columns = samplesheet.columns_of(sheet_schema, rows)
        target = run_dir / INPUTS_DIR / safe_filename(name, fallback="input") / _csv_name(filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(samplesheet.to_csv(rows, columns))
        changed[name] = str(target)
    return changed


def _csv_name(filename: str) -> str:
    """The sheet is rewritten as CSV; keep its name so the pipeline's ``pattern`` (``^\\S+\\.csv$``) still holds."""
    stem = PurePosixPath(safe_filename(filename, fallback="samplesheet.csv")).stem.replace(" ", "_") or "samplesheet"
    return f"{stem}.csv"
