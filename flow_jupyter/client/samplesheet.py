"""Sample sheets from registered data files: pair R1/R2 reads by file name into the rows a pipeline's sample-sheet
schema asks for, let the user edit the DataFrame, then check it on the server and save it as a data file.

Only the layout is guessed here (which column names the sample, which hold reads); every rule — patterns, required
columns, unique samples, whether a file may be used — is the server's (`POST …/samplesheet`), which reports each
problem with its row and column.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import FlowError
from .models import DataFile

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .api import FlowClient

PATH_FORMATS = frozenset({"file-path", "directory-path", "path", "file-path-pattern"})
DATAFILE_URI = "flow://datafile/{}"
READS_EXTENSION = re.compile(r"\.(fastq|fq)(\.gz|\.bz2|\.zst)?$", re.IGNORECASE)
ANY_EXTENSION = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,2}$")
READ_MARK = re.compile(r"^(?P<stem>.+?)[._-]R?(?P<read>[12])(?P<tail>[._-]\d{3})?$", re.IGNORECASE)
ILLUMINA_SUFFIX = re.compile(r"(_S\d+)?(_L\d{3})?$")
READ_COLUMN_HINT = re.compile(r"fastq|fq|read", re.IGNORECASE)


@dataclass
class Layout:
    """Which columns of the schema hold the sample name and the reads, and every column in order."""

    columns: list[str]
    sample: str
    reads: list[str]  # R1 column, then R2 column when the schema has one
    defaults: dict[str, Any]


def layout_of(schema: dict[str, Any]) -> Layout:
    items = schema.get("items") if isinstance(schema, dict) else None
    if isinstance(items, dict) and isinstance(items.get("$ref"), str) and items["$ref"].startswith("#/"):
        node: Any = schema
        for part in items["$ref"][2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        items = node
    props = items.get("properties") if isinstance(items, dict) else None
    if not isinstance(items, dict) or not isinstance(props, dict) or not props:
        raise FlowError("This pipeline's sample-sheet schema names no columns to fill.", reason="unsupported_schema")
    path_columns = [name for name, prop in props.items() if _is_path(prop)]
    reads = [name for name in path_columns if READ_COLUMN_HINT.search(name)] or path_columns
    if not reads:
        raise FlowError("This pipeline's sample sheet has no file columns for reads.", reason="unsupported_schema")
    others = [name for name in props if name not in path_columns]
    marked = [name for name in others if "id" in (props[name].get("meta") or [])]
    required = [name for name in (items.get("required") or []) if name in others]
    sample = "sample" if "sample" in props else (marked or required or others or [reads[0]])[0]
    defaults = {name: prop["default"] for name, prop in props.items() if isinstance(prop, dict) and "default" in prop}
    return Layout(list(props), sample, reads[:2], defaults)


def _is_path(prop: Any) -> bool:
    if not isinstance(prop, dict):
        return False
    branches = [prop] + [b for key in ("anyOf", "oneOf") for b in (prop.get(key) or []) if isinstance(b, dict)]
    return any(branch.get("format") in PATH_FORMATS for branch in branches)


def read_name(filename: str) -> tuple[str, int | None]:
    """``S1_R1_001.fastq.gz`` → ("S1", 1); ``S1_2.fq`` → ("S1", 2); ``lib.fastq.gz`` → ("lib", None)."""
    stem = READS_EXTENSION.sub("", filename)
    if stem == filename:
        stem = ANY_EXTENSION.sub("", filename) or filename
    mark = READ_MARK.match(stem)
    if mark is None:
        return stem, None
    return mark.group("stem"), int(mark.group("read"))


def sample_name(stem: str) -> str:
    """An Illumina stem without its sample number and lane (``A_S1_L001`` → ``A``), spaces made ``_``."""
    name = ILLUMINA_SUFFIX.sub("", stem) or stem
    return re.sub(r"\s+", "_", name.strip())


def pair_rows(files: Iterable[DataFile], layout: Layout, sample_names: dict[int, str] | None = None
              ) -> list[dict[str, Any]]:
    """One row per sample stem: its R1 (and R2) as ``flow://datafile/<id>`` cells. A file attached to a Flow
    sample is named after that sample (``sample_names``: sample id → name)."""
    groups: dict[str, dict[int, DataFile]] = {}
    extra: list[tuple[str, DataFile]] = []
    for datafile in sorted(files, key=lambda f: f.filename):
        stem, read = read_name(datafile.filename)
        slot = groups.setdefault(stem, {})
        mate = read or 1
        if mate in slot or (read is None and slot):
            extra.append((stem, datafile))  # a second R1 of the same stem (or an unmarked twin): its own row
        else:
            slot[mate] = datafile
    rows = []
    for stem, mates in [*groups.items(), *((s, {1: f}) for s, f in extra)]:
        first = mates[1] if 1 in mates else mates[2]  # every group holds R1, R2 or both
        name = (sample_names or {}).get(first.sample) if first.sample is not None else None
        row: dict[str, Any] = {column: layout.defaults.get(column) for column in layout.columns}
        row[layout.sample] = name or sample_name(stem)
        for mate, column in zip((1, 2), layout.reads):
            row[column] = DATAFILE_URI.format(mates[mate].id) if mate in mates else None
        rows.append(row)
    return sorted(rows, key=lambda r: str(r[layout.sample]))


class SampleSheet:
    """A sheet being prepared: edit ``.frame`` (a DataFrame) freely, then ``validate()`` and ``save()``."""

    def __init__(self, client: "FlowClient", pipeline: str, version: str | None, frame: "pd.DataFrame",
                 layout: Layout | None = None):
        self.client, self.pipeline, self.version = client, pipeline, version
        self.frame = frame
        self.layout = layout

    @property
    def _path(self) -> str:
        from urllib.parse import quote

        return (f"pipelines/{quote(self.pipeline, safe='')}/versions/"
                f"{quote(str(self.version or 'latest'), safe='')}/samplesheet")

    def rows(self) -> list[dict[str, Any]]:
        """The frame as the API's rows: empty cells left out, DataFiles as references, numpy scalars as Python."""
        rows = []
        for record in self.frame.to_dict(orient="records"):
            row = {}
            for column, value in record.items():
                value = _cell(value)
                if value is not None:
                    row[str(column)] = value
            rows.append(row)
        return rows

    def validate(self) -> list[dict[str, Any]]:
        """Every problem as ``{row, column, reason, message}`` (rows counted from 1), ``[]`` when the server
        accepts the sheet."""
        try:
            self.client.transport.post(self._path, {"rows": self.rows()})
        except FlowError as exc:
            if exc.reason == "invalid_samplesheet":
                return list(exc.errors)
            raise
        return []

    def save(self, project: Any, filename: str = "samplesheet.csv") -> DataFile:
        """Check the sheet and store it as a CSV data file of ``project`` (FlowError listing every problem in
        ``.errors`` when it is not valid). The returned DataFile is what the pipeline's input parameter takes."""
        target = {"project": self.client.project_id(project), "filename": filename}
        answer = self.client.transport.post(self._path, {"rows": self.rows(), "save": target})
        return DataFile.from_json(self.client, answer["datafile"])

    def _repr_html_(self) -> str:
        return self.frame._repr_html_()

    def __repr__(self) -> str:
        return f"SampleSheet({self.pipeline} {self.version or 'latest'}, {len(self.frame)} rows)\n{self.frame!r}"


def _cell(value: Any) -> Any:
    if isinstance(value, DataFile):
        return DATAFILE_URI.format(value.id)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return value


def build(client: "FlowClient", pipeline: str, data: Iterable[Any], version: str | None = None) -> SampleSheet:
    """The sheet for ``data`` (DataFiles or ids) in the layout of the pipeline version's sample-sheet schema."""
    import pandas as pd

    files = [item if isinstance(item, DataFile) else client.file(int(item)) for item in data]
    stored = client.pipeline(pipeline).schema(version)
    schema = stored.get("samplesheet_schema")
    if not schema:
        raise FlowError(f"Pipeline {pipeline} has no sample-sheet schema.", status=400,
                        reason="no_samplesheet_schema")
    layout = layout_of(schema)
    names = {}
    for sample in {f.sample for f in files if f.sample is not None}:
        names[sample] = client.transport.get(f"samples/{sample}")["name"]
    rows = pair_rows(files, layout, names)
    frame = pd.DataFrame(rows, columns=layout.columns, dtype=object)  # empty cells stay None
    return SampleSheet(client, pipeline, version or stored.get("version", {}).get("ref"), frame, layout)
