"""multiqc_data.json → pandas DataFrames, so notebooks get MultiQC's numbers without scraping the HTML report.

The JSON has changed shape across MultiQC releases; observed with MultiQC 1.35 (FastQC input):
- `report_general_stats_data`: dict section-key → {sample: {column: value}} (MultiQC ≥ 1.20; older releases wrote a
  list of {sample: {column: value}} aligned with a list in `report_general_stats_headers`, and some write
  sample → list of grouped rows);
- `report_general_stats_headers`: same keys, each column's `namespace`/`title`;
- `report_saved_raw_data`: dict name (`multiqc_fastqc`, `multiqc_general_stats`, …) → {sample: {field: value}}.
All of these are read defensively. The file is parsed with `json` only (MultiQC writes bare `NaN`, which `json`
accepts) and never evaluated.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas costs the host ~85 MiB: imported where a DataFrame is built
    import pandas as pd

MAX_MULTIQC_JSON_BYTES = 200 * 1024 * 1024
GENERAL_STATS = "general_stats"
DATA_JSON = "multiqc_data.json"


class MultiQCDataError(ValueError):
    """multiqc_data.json is missing, too large or not MultiQC's JSON."""


def load_multiqc_data(path: Path | str, *, max_bytes: int = MAX_MULTIQC_JSON_BYTES) -> dict[str, pd.DataFrame]:
    """All tables of a MultiQC run: `general_stats` plus one DataFrame per `report_saved_raw_data` section.

    `path` is multiqc_data.json or the multiqc_data/ directory. Each DataFrame is indexed by sample name.
    Raises MultiQCDataError for files over `max_bytes` (a browser-bound server must not load gigabytes into RAM).
    """
    data = _read_json(Path(path), max_bytes)
    tables: dict[str, pd.DataFrame] = {GENERAL_STATS: _general_stats_frame(data)}
    raw = data.get("report_saved_raw_data")
    if isinstance(raw, dict):
        for name, section in raw.items():
            frame = _sample_frame(section)
            if frame is not None and str(name) != GENERAL_STATS:
                tables[str(name)] = frame
    return tables


def general_stats(path: Path | str, *, max_bytes: int = MAX_MULTIQC_JSON_BYTES) -> pd.DataFrame:
    """The General Statistics table (raw, unscaled values), one row per sample, columns `<module>-<metric>`."""
    return _general_stats_frame(_read_json(Path(path), max_bytes))


def _read_json(path: Path, max_bytes: int) -> dict[str, Any]:
    """Read at most max_bytes (+1 to detect overflow) so a file that grows after stat() still cannot blow memory."""
    if path.is_dir():
        path = path / DATA_JSON
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MultiQCDataError(f"cannot read MultiQC data {path.name}: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise MultiQCDataError(
            f"{path.name} is {_human(size)}, over the {_human(max_bytes)} limit for MultiQC data; "
            "open the per-module TSV files in multiqc_data/ instead")
    with path.open("rb") as fh:
        blob = fh.read(max_bytes + 1)
    if len(blob) > max_bytes:
        raise MultiQCDataError(f"{path.name} grew over the {_human(max_bytes)} limit while reading")
    try:
        data = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MultiQCDataError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not any(str(k).startswith(("report_", "config_")) for k in data):
        raise MultiQCDataError(f"{path.name} does not look like MultiQC's multiqc_data.json")
    return data


def _human(n: int) -> str:
    """Sizes for error messages: MB (2**20) for anything large, bytes otherwise."""
    return f"{n / 2**20:.1f}".rstrip("0").rstrip(".") + " MB" if n >= 2**20 else f"{n} bytes"


def _general_stats_frame(data: dict[str, Any]) -> pd.DataFrame:
    """Merge every module's general-stats columns into one frame indexed by sample."""
    import pandas as pd
    gs = data.get("report_general_stats_data")
    headers = data.get("report_general_stats_headers")
    sections: list[tuple[str, Any]] = []
    if isinstance(gs, dict):
        sections = [(str(k), v) for k, v in gs.items()]
    elif isinstance(gs, list):  # MultiQC < 1.20: a list parallel to the headers list
        for i, section in enumerate(gs):
            sections.append((_legacy_section_name(headers, i), section))
    rows: dict[str, dict[str, Any]] = {}
    for module, section in sections:
        if not isinstance(section, dict):
            continue
        for sample, values in section.items():
            for record in _records(values):
                row = rows.setdefault(str(sample), {})
                for col, val in record.items():
                    row[f"{module}-{col}"] = _scalar(val)
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Sample"
    return _numeric(frame)


def _legacy_section_name(headers: Any, i: int) -> str:
    """Module name for list-shaped general stats: the headers' namespace, lower-cased like MultiQC's anchors."""
    if isinstance(headers, list) and i < len(headers) and isinstance(headers[i], dict):
        for meta in headers[i].values():
            if isinstance(meta, dict) and isinstance(meta.get("namespace"), str) and meta["namespace"]:
                return meta["namespace"].strip().lower().replace(" ", "_")
    return f"section{i}"


def _records(values: Any) -> list[dict[str, Any]]:
    """A sample's value(s): a dict, or a list of grouped rows (dicts, or {'data': {...}} row objects)."""
    if isinstance(values, dict):
        inner = values.get("data")
        return [inner] if isinstance(inner, dict) and len(values) <= 3 and "sample" in values else [values]
    if isinstance(values, list):
        return [r for v in values for r in _records(v)]
    return []


def _sample_frame(section: Any) -> pd.DataFrame | None:
    """{sample: {field: value}} → frame; other shapes (lists of records) best effort; non-tabular → None."""
    import pandas as pd
    if isinstance(section, dict) and section and all(isinstance(v, dict) for v in section.values()):
        rows = {str(s): {str(k): _scalar(v) for k, v in vals.items()} for s, vals in section.items()}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "Sample"
        return _numeric(frame)
    if isinstance(section, list) and section and all(isinstance(v, dict) for v in section):
        return _numeric(pd.DataFrame([{str(k): _scalar(v) for k, v in r.items()} for r in section]))
    return None


def _scalar(value: Any) -> Any:
    """Cells hold scalars; nested structures are kept as compact JSON text rather than object soup."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and math.isinf(value):
        return float("nan")
    return value


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Make all-numeric columns numeric dtypes (MultiQC mixes ints, floats and None), leave text columns alone."""
    import pandas as pd
    for col in frame.columns:
        if frame[col].dtype == object:
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum():
                frame[col] = converted
    return frame
