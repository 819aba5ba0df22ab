"""MultiQC's data files → pandas DataFrames, so notebooks get MultiQC's numbers without scraping the HTML report.

Two sources, read defensively and never evaluated:

- ``multiqc.parquet``, the stable machine-readable format since MultiQC 1.29 (the JSON dump's own docstring says it
  may go). MultiQC writes it in "long" form by default: one ``type = "plot_input_row"`` row per table cell, with
  ``anchor`` (the table, ``general_stats_table`` for General Statistics), ``section_key`` (the module),
  ``row_sample`` (the sample; ``sample`` is its group), ``metric``, ``val_raw`` (a double; NaN for text cells) and
  ``val_raw_type`` (``int``, ``float``, ``bool``, ``str``), with the text of every cell in ``val_fmt``. The opt-in
  "wide" form (``parquet_format: wide``) has one ``type = "table_row"`` row per sample and a column
  ``"<table> / <namespace> / <metric>"`` per metric holding only the *displayed* (scaled) value, so it is read
  only when nothing better is there.
- ``multiqc_data.json``: ``report_general_stats_data`` is a list with one entry per section, aligned with a list in
  ``report_general_stats_headers``, up to 1.28 and a dict keyed by section from 1.29 (either may hold a
  sample's grouped rows as a list); ``report_saved_raw_data`` holds each module's table (``multiqc_fastqc``, …),
  which the parquet file does not have. NaN and Infinity are written as ``null`` (older releases wrote bare
  ``NaN``, which ``json`` accepts too).

Wherever a value is missing (``null``, NaN, Infinity) the DataFrame has NaN. Columns of General Statistics are
``<section>-<metric>`` (``fastqc-percent_gc``) from either file, so code does not depend on which one was read.
"""
from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas costs the host ~85 MiB: imported where a DataFrame is built
    import pandas as pd

MAX_MULTIQC_JSON_BYTES = 200 * 1024 * 1024
"""Also the limit for multiqc.parquet (which is compressed, so it holds more)."""
GENERAL_STATS = "general_stats"
GENERAL_STATS_ANCHOR = "general_stats_table"
DATA_JSON = "multiqc_data.json"
DATA_PARQUET = "multiqc.parquet"
_LONG_ROW = "plot_input_row"
_WIDE_ROW = "table_row"
_LONG_COLUMNS = ("anchor", "type", "section_key", "sample", "row_sample", "metric", "val_raw", "val_raw_type",
                 "val_fmt")


class MultiQCDataError(ValueError):
    """MultiQC's data is missing, too large or not what MultiQC writes."""


@dataclass(frozen=True)
class _Sources:
    """The data files to read: a multiqc_data/ directory may have both, a file given by name is just that one."""
    json: Path | None
    parquet: Path | None


def load_multiqc_data(path: Path | str, *, max_bytes: int = MAX_MULTIQC_JSON_BYTES) -> dict[str, pd.DataFrame]:
    """All tables of a MultiQC run: `general_stats`, then each module's saved raw data (multiqc_data.json) and
    each other table of the report (multiqc.parquet, by its anchor), indexed by sample name.

    `path` is the multiqc_data/ directory, multiqc_data.json or multiqc.parquet; General Statistics come from the
    parquet file when it is there (see the module docstring). Raises MultiQCDataError for files over `max_bytes`
    (a browser-bound server must not load gigabytes into RAM) and for files that are not MultiQC's.
    """
    sources = _sources(Path(path))
    parquet = _parquet_tables(sources.parquet, max_bytes) if sources.parquet is not None else {}
    data = _read_json(sources.json, max_bytes) if sources.json is not None else None
    stats = parquet.pop(GENERAL_STATS, None)
    if data is not None and (stats is None or _is_wide(stats)):
        stats = _general_stats_frame(data)
    tables = {GENERAL_STATS: stats if stats is not None else _empty_frame()}
    if data is not None:
        tables.update(_saved_raw_tables(data))
    for name, frame in parquet.items():
        tables.setdefault(name, frame)
    return tables


def general_stats(path: Path | str, *, max_bytes: int = MAX_MULTIQC_JSON_BYTES) -> pd.DataFrame:
    """The General Statistics table (raw, unscaled values), one row per sample, columns `<module>-<metric>`."""
    sources = _sources(Path(path))
    if sources.parquet is not None:
        frame = _parquet_tables(sources.parquet, max_bytes, only=GENERAL_STATS_ANCHOR).get(GENERAL_STATS)
        if frame is not None and (sources.json is None or not _is_wide(frame)):
            return frame
    if sources.json is None:
        return _empty_frame()
    return _general_stats_frame(_read_json(sources.json, max_bytes))


def _sources(path: Path) -> _Sources:
    if path.is_dir():
        found = _Sources(json=_if_file(path / DATA_JSON), parquet=_if_file(path / DATA_PARQUET))
        if found.json is None and found.parquet is None:
            raise MultiQCDataError(f"{path.name}/ has neither {DATA_PARQUET} nor {DATA_JSON}")
        if found.parquet is not None and found.json is not None and not _have_pyarrow():
            return _Sources(json=found.json, parquet=None)  # the JSON says the same; pyarrow is optional
        return found
    if path.suffix == ".parquet":
        return _Sources(json=None, parquet=path)
    return _Sources(json=path, parquet=None)


def _if_file(path: Path) -> Path | None:
    return path if path.is_file() else None


def _have_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _empty_frame() -> pd.DataFrame:
    import pandas as pd
    frame = pd.DataFrame()
    frame.index.name = "Sample"
    return frame


def _check_size(path: Path, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MultiQCDataError(f"cannot read MultiQC data {path.name}: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise MultiQCDataError(
            f"{path.name} is {_human(size)}, over the {_human(max_bytes)} limit for MultiQC data; "
            "open the per-module TSV files in multiqc_data/ instead")


# --- multiqc.parquet --------------------------------------------------------------------------------------------

def _parquet_tables(path: Path, max_bytes: int, only: str | None = None) -> dict[str, pd.DataFrame]:
    """Every table in a multiqc.parquet (`general_stats` for General Statistics), from its long rows, else its
    wide rows; ``only`` limits the work to one table's anchor."""
    rows = _read_parquet_rows(path, max_bytes)
    long = rows[rows["type"] == _LONG_ROW] if len(rows) else rows
    if only is not None and len(long):
        long = long[long["anchor"] == only]
    if len(long):
        return {GENERAL_STATS if anchor == GENERAL_STATS_ANCHOR else str(anchor): _long_frame(group, anchor)
                for anchor, group in long.groupby("anchor", sort=False)}
    wide = rows[rows["type"] == _WIDE_ROW] if len(rows) else rows
    return _wide_frames(wide, only)


def _read_parquet_rows(path: Path, max_bytes: int) -> pd.DataFrame:
    """The table rows of the file, without the (large) plot JSON columns."""
    _check_size(path, max_bytes)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MultiQCDataError(f"reading {path.name} needs the pyarrow package (pip install pyarrow); "
                               f"{DATA_JSON} can be read without it") from None
    try:
        names = pq.read_schema(path).names
        if "type" not in names or "anchor" not in names:
            raise MultiQCDataError(f"{path.name} does not look like MultiQC's {DATA_PARQUET}")
        columns = [c for c in _LONG_COLUMNS if c in names] + [c for c in names if " / " in c]
        table = pq.read_table(path, columns=columns, filters=[("type", "in", [_LONG_ROW, _WIDE_ROW])])
    except (pa.ArrowException, OSError) as exc:
        raise MultiQCDataError(f"{path.name} is not a readable parquet file: {exc}") from None
    return table.to_pandas()


def _long_frame(group: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """One table from its cells; General Statistics' columns are `<section>-<metric>` as in the JSON."""
    import pandas as pd
    sections = group["section_key"].nunique() if "section_key" in group else 1
    prefixed = anchor == GENERAL_STATS_ANCHOR or sections > 1
    rows: dict[str, dict[str, Any]] = {}
    for cell in group.to_dict("records"):
        sample = _text(cell.get("row_sample")) or _text(cell.get("sample"))
        metric = _text(cell.get("metric"))
        if sample is None or metric is None:
            continue
        column = f"{_text(cell.get('section_key')) or anchor}-{metric}" if prefixed else metric
        rows.setdefault(sample, {})[column] = _long_value(cell)
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Sample"
    return _numeric(frame)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _long_value(cell: dict[str, Any]) -> Any:
    """A cell as MultiQC had it: ``val_raw`` typed by ``val_raw_type``; text cells (raw is NaN) from ``val_fmt``."""
    raw, kind = cell.get("val_raw"), cell.get("val_raw_type")
    number = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
    if kind == "str":
        return cell.get("val_fmt") if isinstance(cell.get("val_fmt"), str) else None
    if number is None or math.isnan(number) or math.isinf(number):
        return float("nan")
    if kind == "int" and float(number).is_integer():
        return int(number)
    if kind == "bool":
        return bool(number)
    return float(number)


def _wide_frames(wide: pd.DataFrame, only: str | None) -> dict[str, pd.DataFrame]:
    """Tables from wide rows: column ``"<table> / <namespace> / <metric>"`` → table, ``<namespace>-<metric>``."""
    import pandas as pd
    if not len(wide) or "sample" not in wide:
        return {}
    columns: dict[str, dict[str, str]] = {}
    for name in wide.columns:
        parts = [part.strip() for part in str(name).split(" / ")]
        if len(parts) < 2 or (only is not None and parts[0] != only):
            continue
        table = GENERAL_STATS if parts[0] == GENERAL_STATS_ANCHOR else parts[0]
        label = parts[-1] if len(parts) == 2 else f"{'_'.join(parts[1].split())}-{parts[-1]}"
        columns.setdefault(table, {})[str(name)] = label
    frames = {}
    for table, labels in columns.items():
        part = wide[["sample", *labels]].dropna(how="all", subset=list(labels)).set_index("sample")
        frame = pd.DataFrame(part.rename(columns=labels)).map(_scalar)
        frame.index = frame.index.map(str)
        frame.index.name = "Sample"
        frame.attrs["multiqc_values"] = "displayed"  # wide parquet holds scaled values, not raw ones
        frames[table] = _numeric(frame)
    return frames


def _is_wide(frame: pd.DataFrame) -> bool:
    return frame.attrs.get("multiqc_values") == "displayed"


# --- multiqc_data.json ------------------------------------------------------------------------------------------

def _read_json(path: Path, max_bytes: int) -> dict[str, Any]:
    """Read at most max_bytes (+1 to detect overflow) so a file that grows after stat() still cannot blow memory."""
    if path.is_dir():
        path = path / DATA_JSON
    _check_size(path, max_bytes)
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


def _saved_raw_tables(data: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """One frame per ``report_saved_raw_data`` section (``multiqc_fastqc``, …); General Statistics has its own."""
    raw = data.get("report_saved_raw_data")
    tables: dict[str, pd.DataFrame] = {}
    if isinstance(raw, dict):
        for name, section in raw.items():
            frame = _sample_frame(section)
            if frame is not None and str(name) != GENERAL_STATS:
                tables[str(name)] = frame
    return tables


def _general_stats_frame(data: dict[str, Any]) -> pd.DataFrame:
    """Merge every module's general-stats columns into one frame indexed by sample."""
    import pandas as pd
    gs = data.get("report_general_stats_data")
    headers = data.get("report_general_stats_headers")
    sections: list[tuple[str, Any]] = []
    if isinstance(gs, dict):
        sections = [(str(k), v) for k, v in gs.items()]
    elif isinstance(gs, list):  # MultiQC <= 1.28: a list parallel to the headers list
        for i, section in enumerate(gs):
            sections.append((_legacy_section_name(headers, i), section))
    rows: dict[str, dict[str, Any]] = {}
    for module, section in sections:
        if not isinstance(section, dict):
            continue
        for group, values in section.items():
            for sample, record in _records(str(group), values):
                row = rows.setdefault(sample, {})
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


def _records(sample: str, values: Any) -> list[tuple[str, dict[str, Any]]]:
    """(sample, values) of one entry: a dict, or a list of a sample group's rows (dicts, or row objects
    ``{"sample": name, "data": {...}}``, which name their own sample as multiqc.parquet's ``row_sample`` does)."""
    if isinstance(values, dict):
        inner = values.get("data")
        if isinstance(inner, dict) and len(values) <= 3 and "sample" in values:
            return [(str(values["sample"]), inner)]
        return [(sample, values)]
    if isinstance(values, list):
        return [r for v in values for r in _records(sample, v)]
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
