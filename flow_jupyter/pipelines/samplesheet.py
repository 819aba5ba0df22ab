"""Sample sheets: reading CSV/TSV/YAML/JSON and checking them row by row against a pipeline's schema_input.json.

The rules follow nf-schema (and nf-validation for older pipelines) so that a sheet Flow accepts is one the
pipeline accepts: cells are trimmed and empty cells are missing; a string cell is cast to the column's type
(integer, number, boolean) before it is checked; ``uniqueEntries`` (nf-schema), ``unique`` (nf-validation) and
``uniqueItems`` forbid duplicates; a column's ``errorMessage`` replaces the generic wording. A schema whose only
column is ``""`` (nf-validation's convention, e.g. nf-core/fetchngs) describes a sheet without a header.

Patterns are ECMA-262 (see ecma.py) like every other schema pattern. nf-validation 1.x (draft-07) schemas may put
``dependentRequired`` on a column (``"fastq_2": {"dependentRequired": ["fastq_1"]}``: a row with fastq_2 needs
fastq_1); that is honoured for draft-07 sheets, while 2020-12 sheets use the standard object-level keyword.

Rows are numbered from 1 everywhere, as nf-schema's "Entry 1": row 1 is the first data row (the line after a
CSV/TSV header, the first item of a YAML/JSON list or of posted ``rows``). An error's ``row``, its ``field``
pointer ``/rows/<row>/<column>`` and its message ("already in row 1", "data row 3") use that same number, so the
pointer names a sheet row, not a 0-based index into a posted array.

Cells in path columns may name a Flow DataFile (``flow://datafile/<id>``); :func:`resolve_datafiles` hands every
such cell to the server's resolver, which decides what the caller may use.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from ..errors import FlowError
from .schema import (DATAFILE_URI, DRAFT_07, PATH_FORMATS, describe_error, properties_of, resolve_pointer,
                     schema_draft, shorten, types_of, validator_for)

MAX_SAMPLESHEET_BYTES = 20 * 1024 * 1024
"""A sheet lists files, it does not hold data: tens of thousands of rows fit in far less."""

MAX_CELL_CHARS = 64 * 1024

# ASCII digits only, as in nf-schema: Python's \d would cast "١٢" (Arabic-Indic digits) to 12.
_NUMBER = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"-?[0-9]+")

Row = dict[str, Any]


# --- reading ----------------------------------------------------------------------------------------------------

def read_samplesheet(data: bytes, filename: str, *, schema: dict[str, Any] | None = None,
                     max_bytes: int = MAX_SAMPLESHEET_BYTES) -> list[Row]:
    """Rows of a sheet as dicts; the format comes from the extension, else from the content.

    CSV/TSV cells are trimmed strings and empty cells are left out (missing); YAML and JSON values keep their
    types. A header is required for CSV/TSV unless ``schema`` describes a header-less sheet. Anything malformed
    is a FlowError 400 ``invalid_samplesheet`` naming the file (413 ``samplesheet_too_large`` above max_bytes).
    """
    if len(data) > max_bytes:
        raise FlowError(413, "samplesheet_too_large",
                        f"{filename} is {len(data)} bytes; the limit is {max_bytes} bytes.", filename)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad(filename, "is not UTF-8 text (compressed or spreadsheet files are not supported)") from None
    kind = _kind(filename, text)
    if kind in ("yaml", "json"):
        return _records(filename, kind, text)
    headerless = schema is not None and _headerless(schema)
    return _table(filename, text, "\t" if kind == "tsv" else ",", headerless)


def _bad(filename: str, what: str) -> FlowError:
    return FlowError(400, "invalid_samplesheet", f"{filename} {what}.", filename)


def _kind(filename: str, text: str) -> str:
    lower = filename.lower()
    for suffix, kind in ((".csv", "csv"), (".tsv", "tsv"), (".yaml", "yaml"), (".yml", "yaml"), (".json", "json")):
        if lower.endswith(suffix):
            return kind
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return "json"
    if stripped.startswith(("- ", "---")):
        return "yaml"
    first = stripped.split("\n", 1)[0]
    return "tsv" if first.count("\t") > first.count(",") else "csv"


def _headerless(schema: dict[str, Any]) -> bool:
    items = schema.get("items")
    if not isinstance(items, dict):
        return False
    if items.get("type") not in (None, "object") and "properties" not in items:
        return True
    return list(properties_of(items)) == [""]


def _table(filename: str, text: str, delimiter: str, headerless: bool) -> list[Row]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    if "\x00" in text:
        raise _bad(filename, f"is not valid {kind} (it contains NUL bytes)")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    lines: list[list[str]] = []
    try:
        for cells in reader:
            if any(len(cell) > MAX_CELL_CHARS for cell in cells):
                raise _bad(filename, f"has a cell longer than {MAX_CELL_CHARS} characters on line {reader.line_num}")
            cells = [cell.strip() for cell in cells]
            if any(cells):
                lines.append(cells)
    except csv.Error as exc:
        raise _bad(filename, f"is not valid {kind} (line {reader.line_num}: {exc})") from None
    if headerless:
        if any(len([c for c in cells if c]) > 1 for cells in lines):
            raise _bad(filename, "must have one value per line")
        return [{"": next(c for c in cells if c)} for cells in lines]
    if not lines:
        raise _bad(filename, "is empty: a header line naming the columns is required")
    header = lines[0]
    while header and header[-1] == "":
        header = header[:-1]  # trailing separators, as nf-schema tolerates them
    if not header or "" in header:
        raise _bad(filename, "needs a header line naming every column (a column name is empty)")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise _bad(filename, f"names column(s) {', '.join(map(repr, duplicated))} more than once in its header")
    rows: list[Row] = []
    for number, cells in enumerate(lines[1:], start=1):
        if any(cells[len(header):]):
            raise _bad(filename, f"data row {number} has {len(cells)} cells but the header names {len(header)} "
                                 "columns")
        rows.append({name: cell for name, cell in zip(header, cells) if cell != ""})
    return rows


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: a sheet never needs them and they allow exponential 'billion laughs' data."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value")


def _records(filename: str, kind: str, text: str) -> list[Row]:
    try:
        if kind == "json":
            parsed = json.loads(text, parse_constant=_no_constant)  # NaN/Infinity are no JSON a viewer can read
        else:
            parsed = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        raise _bad(filename, f"is not valid {kind.upper()} ({shorten(str(exc), 200)})") from None
    if not isinstance(parsed, list):
        raise _bad(filename, f"must be a {kind.upper()} list of rows (one mapping of column to value per sample)")
    rows: list[Row] = []
    for number, item in enumerate(parsed, start=1):
        if not isinstance(item, dict) or not all(isinstance(key, str) for key in item):
            raise _bad(filename, f"row {number} is not a mapping of column names to values")
        rows.append({key: _plain(value) for key, value in item.items() if value is not None and value != ""})
    return rows


def _plain(value: Any) -> Any:
    """YAML's dates and timestamps as the text they were written as, so a cell is always JSON data."""
    if isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# --- validating -------------------------------------------------------------------------------------------------

def datafile_columns(schema: dict[str, Any]) -> list[str]:
    """Columns holding a location (file-path, directory-path, path, file-path-pattern): they may name DataFiles."""
    columns = []
    for name, prop in properties_of(_items(schema)).items():
        branches = [prop] + [b for key in ("anyOf", "oneOf") for b in (prop.get(key) or []) if isinstance(b, dict)]
        if any(branch.get("format") in PATH_FORMATS for branch in branches):
            columns.append(name)
    return columns


def resolve_datafiles(schema: dict[str, Any], rows: list[Row],
                      resolve_file: Callable[[str], str | None]) -> tuple[list[Row], list[dict[str, Any]]]:
    """Rows with every path cell replaced by what ``resolve_file`` returns, and an error where it returns None.

    ``resolve_file`` sees every non-empty cell of a path column (a ``flow://datafile/<id>`` reference or a plain
    path), so the server alone decides what a user may point a pipeline at. A refused cell is reported as
    "No such data file." whatever the reason, and is left out of the returned row.
    """
    columns = datafile_columns(schema)
    resolved: list[Row] = []
    errors: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        out = dict(row)
        for column in columns:
            value = row.get(column)
            if not isinstance(value, str) or value == "":
                continue
            path = resolve_file(value)
            if path is None:
                errors.append(_error(number, column, "no_such_datafile", "No such data file."))
                del out[column]
            else:
                out[column] = path
        resolved.append(out)
    return resolved, errors


def validate_samplesheet(schema: dict[str, Any], rows: list[Row], *,
                         resolve_file: Callable[[str], str | None] | None = None) -> list[dict[str, Any]]:
    """Every problem as ``{"row": <data row from 1, or None>, "column": <name or None>, "field", "reason",
    "message"}``; ``field`` is ``/rows/<row>/<column>`` with the same row number (``""`` for the whole sheet).

    ``schema`` is a loaded schema_input.json (an array of objects, draft-07 or 2020-12). With ``resolve_file``
    path cells are resolved first (see :func:`resolve_datafiles`) and the resolved values are checked; without
    it, a ``flow://datafile/<id>`` cell is accepted as it is, for the server to resolve later.
    """
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        return [_error(None, None, "type", "A sample sheet is a list of rows.")]
    if not rows:
        return [_error(None, None, "empty", "The sample sheet has no rows.")]
    errors: list[dict[str, Any]] = []
    if resolve_file is not None:
        rows, errors = resolve_datafiles(schema, rows, resolve_file)
    # Cells taken out before validation (refused, or references left for the server) still count as given.
    given = {(number, column) for number, row in enumerate(rows, start=1) for column in row}
    given |= {(e["row"], e["column"]) for e in errors}
    props = properties_of(_items(schema))
    references = datafile_columns(schema) if resolve_file is None else []
    instance = [_coerce_row(row, props, references) for row in rows]
    for error in _schema_errors(_with_column_dependencies(_without_array_keywords(schema)), instance, props):
        if error["reason"] in ("required", "dependent_required") and (error["row"], error["column"]) in given:
            continue
        errors.append(error)
    errors.extend(_duplicates(schema, instance, props))
    errors.sort(key=lambda e: (e["row"] or 0, e["column"] or ""))
    return _dedupe(errors)


def _dedupe(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per cell and message: a column's errorMessage can stand for several failed keywords."""
    seen: set[tuple[Any, Any, str]] = set()
    unique = []
    for error in errors:
        key = (error["row"], error["column"], error["message"])
        if key not in seen:
            seen.add(key)
            unique.append(error)
    return unique


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    items = schema.get("items")
    if isinstance(items, dict) and isinstance(items.get("$ref"), str):
        try:
            target = resolve_pointer(schema, items["$ref"])
        except KeyError:
            return {}
        return target if isinstance(target, dict) else {}
    return items if isinstance(items, dict) else {}


def _coerce_row(row: Row, props: dict[str, dict[str, Any]], references: list[str]) -> Row:
    """Cast cells like nf-schema does before validation; DataFile references are left for the server."""
    out: Row = {}
    for column, value in row.items():
        if column in references and isinstance(value, str) and DATAFILE_URI.fullmatch(value):
            continue
        prop = props.get(column)
        out[column] = coerce_cell(value, types_of(prop)) if prop is not None else value
    return out


def coerce_cell(value: Any, types: list[str]) -> Any:
    """A string cell as the column's boolean, integer or number if it reads as one, else unchanged.

    Numbers and booleans from YAML/JSON in a string column become strings, as nf-schema's lenient type
    check accepts them there.
    """
    if isinstance(value, str):
        if "boolean" in types and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if "integer" in types and _INTEGER.fullmatch(value):
            return int(value)
        if "number" in types and _NUMBER.fullmatch(value):
            return int(value) if _INTEGER.fullmatch(value) else float(value)
        return value
    if types == ["string"] and isinstance(value, (bool, int, float)):
        return ("true" if value else "false") if isinstance(value, bool) else str(value)
    return value


def _without_array_keywords(schema: dict[str, Any]) -> dict[str, Any]:
    """``uniqueItems`` is checked by :func:`_duplicates`, which can say which row repeats which."""
    return {key: value for key, value in schema.items() if key != "uniqueItems"}


def _with_column_dependencies(schema: dict[str, Any]) -> dict[str, Any]:
    """A draft-07 sheet schema whose column-level ``dependentRequired`` lists (nf-validation 1.x) are also stated as
    draft-07 ``dependencies`` on the row, so jsonschema enforces them; other schemas are returned as they are.

    The row schema is wrapped (``allOf: [<items>, {"dependencies": ...}]``) rather than edited, so ``$ref`` and
    any ``dependencies`` of its own keep working.
    """
    if schema_draft(schema) != DRAFT_07:
        return schema
    needs = {name: list(prop["dependentRequired"]) for name, prop in properties_of(_items(schema)).items()
             if isinstance(prop.get("dependentRequired"), list)
             and all(isinstance(need, str) for need in prop["dependentRequired"])}
    if not needs or not isinstance(schema.get("items"), dict):
        return schema
    return {**schema, "items": {"allOf": [schema["items"], {"dependencies": needs}]}}


def _schema_errors(schema: dict[str, Any], instance: list[Row],
                   props: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        validator = validator_for(schema)
        for error in validator.iter_errors(instance):
            path, reason, message = describe_error(error)
            row = path[0] + 1 if path and isinstance(path[0], int) else None
            column = path[1] if len(path) > 1 and isinstance(path[1], str) else None
            custom = props.get(column, {}).get("errorMessage") if column is not None else None
            if isinstance(custom, str):
                message = custom
            elif row is not None and column is None:
                message = f"Row {row}: {message}"
            out.append(_error(row, column, reason, message))
    except (re.error, RecursionError, ValueError, TypeError) as exc:
        out.append(_error(None, None, "unvalidatable", f"The sample sheet could not be checked: "
                                                       f"{shorten(str(exc), 200)}"))
    return out


def _unique_sets(schema: dict[str, Any], props: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Column combinations that must not repeat.

    ``uniqueEntries`` is read at the array level and in its ``allOf``, and also inside ``items`` (nf-core/sarek
    puts it there, where nf-schema silently ignores it; we honour what the pipeline's authors meant).
    ``unique: true`` (nf-validation) makes one column unique; ``unique: [cols]`` unique within those columns.
    """
    nodes = [schema, _items(schema)]
    for node in list(nodes):
        nodes.extend(entry for entry in (node.get("allOf") or []) if isinstance(entry, dict))
    sets: list[list[str]] = []
    for node in nodes:
        entries = node.get("uniqueEntries")
        if isinstance(entries, list) and entries and all(isinstance(c, str) for c in entries):
            sets.append(list(entries))
    for column, prop in props.items():
        unique = prop.get("unique")
        if unique is True:
            sets.append([column])
        elif isinstance(unique, list) and all(isinstance(c, str) for c in unique):
            sets.append([column, *unique])
    return sets


def _duplicates(schema: dict[str, Any], rows: list[Row], props: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for columns in _unique_sets(schema, props):
        first_seen: dict[str, int] = {}
        for number, row in enumerate(rows, start=1):
            present = [(c, row[c]) for c in columns if c in row]
            if not present:
                continue  # nf-schema compares only the columns a row has; a row with none of them is not compared
            key = json.dumps(present, sort_keys=True, default=str)
            if key in first_seen:
                names = " + ".join(columns)
                column = columns[0] if len(columns) == 1 else None
                message = (f"Duplicate {names} {shorten(', '.join(str(v) for _, v in present), 200)}: "
                           f"already in row {first_seen[key]}.")
                custom = props.get(column, {}).get("errorMessage") if column else None
                errors.append(_error(number, column, "unique_entries", message if not isinstance(custom, str)
                                     else f"{custom} (duplicate of row {first_seen[key]})"))
            else:
                first_seen[key] = number
    if schema.get("uniqueItems") is True:
        whole: dict[str, int] = {}
        for number, row in enumerate(rows, start=1):
            key = json.dumps(row, sort_keys=True, default=str)
            if key in whole:
                errors.append(_error(number, None, "unique_items", f"Row {number} repeats row {whole[key]}."))
            else:
                whole[key] = number
    return errors


def _error(row: int | None, column: str | None, reason: str, message: str) -> dict[str, Any]:
    return {"row": row, "column": column, "field": row_pointer(row, column), "reason": reason, "message": message}


def row_pointer(row: int | None, column: str | None = None) -> str:
    """``/rows/<row>/<column>`` with the row numbered from 1 like ``row`` itself; ``""`` for the whole sheet."""
    if row is None:
        return ""
    pointer = f"/rows/{row}"
    if column is not None:
        pointer += "/" + column.replace("~", "~0").replace("/", "~1")
    return pointer


# --- writing ----------------------------------------------------------------------------------------------------

def columns_of(schema: dict[str, Any], rows: Iterable[Row] = ()) -> list[str]:
    """Column order for writing a sheet: the schema's columns, then any extra ones the rows bring, as seen."""
    columns = list(properties_of(_items(schema)))
    for row in rows:
        columns += [column for column in row if column not in columns]
    return columns


def to_csv(rows: list[Row], columns: list[str]) -> bytes:
    """A validated sheet as CSV in the given column order (missing cells empty); ``[""]`` writes no header.

    Cells are written as data: the csv module quotes separators, quotes and newlines, and nothing else happens
    to them (a sheet is read by the pipeline, never by a shell).
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    if columns != [""]:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
