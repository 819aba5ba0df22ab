"""Sample sheets checked against real pipelines' schema_input.json, row by row, the way nf-schema checks them.

Good and bad sheets are generated from each schema in tests/corpus/nf-schemas, written with ``to_csv`` and read
back with ``read_samplesheet``, so every story goes through the same path an uploaded sheet takes.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_jupyter.errors import FlowError
from flow_jupyter.pipelines.samplesheet import (coerce_cell, datafile_columns, read_samplesheet, resolve_datafiles,
                                                to_csv, validate_samplesheet)
from flow_jupyter.pipelines.schema import load_schema, types_of
from test_schema import example_for

CORPUS = Path(__file__).resolve().parent / "corpus" / "nf-schemas"
SHEET_SCHEMAS = sorted(set(CORPUS.glob("*/schema_input.json")) | set(CORPUS.glob("*/assets/schema_input.json")))
BAD_CELL = "has spaces !"


def sheet_schema(pipeline: str) -> dict[str, Any]:
    return load_schema((CORPUS / pipeline / "schema_input.json").read_bytes(), name="assets/schema_input.json")


def columns_of(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return schema["items"]["properties"]


def _pattern(prop: dict[str, Any]) -> str | None:
    if "pattern" in prop:
        return prop["pattern"]
    return next((b["pattern"] for b in prop.get("anyOf", []) if "pattern" in b), None)


def cell(prop: dict[str, Any], variant: int) -> str:
    """A valid cell, as text (what a CSV holds); ``variant`` keeps rows distinct where the column allows."""
    if "enum" in prop:
        return str(prop["enum"][variant % len(prop["enum"])])
    types = types_of(prop)
    if types and types[0] == "integer":
        return str(variant + 1)
    if types and types[0] == "number":
        return str(prop.get("minimum", 0) + 0.5 + variant)
    if types and types[0] == "boolean":
        return "true"
    pattern = _pattern(prop)
    return example_for(pattern, variant) if pattern else f"value{variant}"


def good_rows(schema: dict[str, Any], count: int = 2) -> list[dict[str, str]]:
    """Every column filled with a valid value, ``count`` distinct rows."""
    return [{name: cell(prop, i) for name, prop in columns_of(schema).items()} for i in range(count)]


def roundtrip(schema: dict[str, Any], rows: list[dict[str, Any]], columns: list[str] | None = None):
    """Rows as an uploaded CSV would come back: written, then read."""
    columns = columns or list(columns_of(schema))
    return read_samplesheet(to_csv(rows, columns), "samplesheet.csv", schema=schema)


def pattern_column(schema: dict[str, Any]) -> str:
    """A string column with a pattern that a cell with spaces violates."""
    for name, prop in columns_of(schema).items():
        pattern = _pattern(prop)
        if pattern and "string" in types_of(prop) and "integer" not in types_of(prop) and \
                not re.search(pattern, BAD_CELL):
            return name
    raise AssertionError("no pattern column")


def unique_sets(schema: dict[str, Any]) -> bool:
    text = json.dumps(schema)
    return '"uniqueEntries"' in text or '"unique": true' in text or '"uniqueItems": true' in text


# --- every real sample-sheet schema --------------------------------------------------------------------------------

def test_the_corpus_has_sheet_schemas_of_both_drafts():
    drafts = {json.loads(p.read_bytes())["$schema"] for p in SHEET_SCHEMAS}
    assert len(SHEET_SCHEMAS) >= 8 and len(drafts) == 2


@pytest.mark.parametrize("path", SHEET_SCHEMAS, ids=lambda p: p.parent.name)
def test_a_generated_good_sheet_validates(path: Path):
    schema = load_schema(path.read_bytes())
    rows = roundtrip(schema, good_rows(schema))
    assert len(rows) == 2
    assert validate_samplesheet(schema, rows) == []


@pytest.mark.parametrize("path", SHEET_SCHEMAS, ids=lambda p: p.parent.name)
def test_a_pattern_violation_is_reported_at_its_row_and_column(path: Path):
    schema = load_schema(path.read_bytes())
    column = pattern_column(schema)
    rows = good_rows(schema)
    rows[1][column] = BAD_CELL
    errors = validate_samplesheet(schema, roundtrip(schema, rows))
    assert [(e["row"], e["column"]) for e in errors] == [(2, column)]
    custom = columns_of(schema)[column].get("errorMessage")
    assert errors[0]["message"] == custom if custom else "pattern" in errors[0]["message"]


@pytest.mark.parametrize("path", SHEET_SCHEMAS, ids=lambda p: p.parent.name)
def test_a_missing_required_column_is_reported_on_every_row(path: Path):
    schema = load_schema(path.read_bytes())
    required = schema["items"].get("required") or []
    rows = good_rows(schema)
    if not required:  # differentialabundance and fetchngs require nothing: dropping a column is fine there
        first = next(iter(columns_of(schema)))
        kept = [c for c in columns_of(schema) if c != first] or [first]
        assert validate_samplesheet(schema, [{k: v for k, v in r.items() if k in kept} for r in rows]) == []
        return
    columns = [c for c in columns_of(schema) if c != required[0]]
    errors = validate_samplesheet(schema, roundtrip(schema, rows, columns))
    assert {(e["row"], e["column"], e["reason"]) for e in errors} == {(1, required[0], "required"),
                                                                     (2, required[0], "required")}


@pytest.mark.parametrize("path", SHEET_SCHEMAS, ids=lambda p: p.parent.name)
def test_a_duplicate_row_is_an_error_exactly_when_the_schema_asks_for_uniqueness(path: Path):
    schema = load_schema(path.read_bytes())
    rows = good_rows(schema)
    rows[1] = dict(rows[0])
    errors = validate_samplesheet(schema, roundtrip(schema, rows))
    if unique_sets(schema):
        assert errors and {e["row"] for e in errors} == {2} and {e["reason"] for e in errors} == {"unique_entries"}
        assert all("row 1" in e["message"] for e in errors)
    else:
        assert errors == []


def test_unique_columns_are_named_and_combinations_are_row_errors():
    ampliseq = sheet_schema("nf-core__ampliseq")  # nf-validation style: "unique": true on sampleID
    rows = good_rows(ampliseq)
    rows[1]["sampleID"] = rows[0]["sampleID"]
    errors = validate_samplesheet(ampliseq, rows)
    assert [(e["row"], e["column"]) for e in errors] == [(2, "sampleID")]
    taxprofiler = sheet_schema("nf-core__taxprofiler")  # nf-schema: uniqueEntries in allOf, one is a pair
    rows = good_rows(taxprofiler)
    rows[1] = dict(rows[0])
    errors = validate_samplesheet(taxprofiler, rows)
    assert sorted((e["column"] or "") for e in errors) == ["", "fasta", "fastq_1", "fastq_2"]
    assert "sample + run_accession" in next(e for e in errors if e["column"] is None)["message"]
    rows[1] = {**rows[0], "run_accession": "run2", "fastq_1": "b.fq.gz", "fastq_2": "b2.fq.gz", "fasta": "b.fa.gz"}
    assert validate_samplesheet(taxprofiler, rows) == []  # same sample, another run: allowed


def test_sarek_unique_entries_inside_items_are_honoured():
    schema = sheet_schema("nf-core__sarek")
    base = {"patient": "p1", "sample": "s1", "lane": "L1", "fastq_1": "a_1.fq.gz", "fastq_2": "a_2.fq.gz"}
    assert validate_samplesheet(schema, [base, {**base, "lane": "L2"}]) == []
    errors = validate_samplesheet(schema, [base, {**base, "fastq_1": "b_1.fq.gz", "fastq_2": "b_2.fq.gz"}])
    assert [(e["row"], e["column"], e["reason"]) for e in errors] == [(2, None, "unique_entries")]


# --- cell types, dependencies and custom messages -------------------------------------------------------------------

def test_cells_are_cast_to_the_column_type_before_checking():
    schema = sheet_schema("nf-core__sarek")
    base = {"patient": "p1", "sample": "s1", "fastq_1": "a_1.fq.gz"}
    assert validate_samplesheet(schema, [{**base, "status": "1", "lane": "3"}]) == []
    errors = validate_samplesheet(schema, [{**base, "status": "2"}, {**base, "sample": "s2", "status": "tumour"}])
    status_message = columns_of(schema)["status"]["errorMessage"]
    assert [(e["row"], e["column"], e["message"]) for e in errors] == [(1, "status", status_message),
                                                                      (2, "status", status_message)]
    rnaseq = sheet_schema("nf-core__rnaseq")
    row = {"sample": "s", "fastq_1": "a.fq.gz", "strandedness": "auto"}
    assert validate_samplesheet(rnaseq, [{**row, "percent_mapped": "99.5"}]) == []
    assert [e["column"] for e in validate_samplesheet(rnaseq, [{**row, "percent_mapped": "101"}])] == \
        ["percent_mapped"]


def test_coercion_follows_the_declared_types():
    assert coerce_cell("TRUE", ["boolean"]) is True and coerce_cell("false", ["boolean"]) is False
    assert coerce_cell("12", ["integer"]) == 12 and coerce_cell("12", ["string"]) == "12"
    assert coerce_cell("1.5", ["number"]) == 1.5 and coerce_cell("7", ["number"]) == 7
    assert coerce_cell("12", ["string", "integer"]) == 12 and coerce_cell("s1", ["string", "integer"]) == "s1"
    assert coerce_cell("abc", ["integer"]) == "abc"  # left for the type check to report
    assert coerce_cell(3, ["string"]) == "3" and coerce_cell(True, ["string"]) == "true"  # nf-schema is lenient


def test_dependencies_and_alternatives_point_at_the_right_place():
    schema = sheet_schema("nf-core__sarek")
    errors = validate_samplesheet(schema, [{"patient": "p", "sample": "s", "fastq_2": "a_2.fq.gz"}])
    assert [(e["row"], e["column"], e["reason"]) for e in errors] == [(1, "fastq_1", "dependent_required")]
    errors = validate_samplesheet(schema, [{"patient": "p", "sample": "s", "lane": "L1", "table": "t.table"}])
    assert [(e["row"], e["column"], e["reason"]) for e in errors] == [(1, None, "any_of")]
    assert "fastq_1" in errors[0]["message"] and "Row 1" in errors[0]["message"]


def test_an_empty_sheet_is_an_error_and_non_lists_never_crash():
    schema = sheet_schema("nf-core__rnaseq")
    assert [e["reason"] for e in validate_samplesheet(schema, [])] == ["empty"]
    assert [e["reason"] for e in validate_samplesheet(schema, "sample,fastq_1")] == ["type"]  # type: ignore[arg-type]
    errors = validate_samplesheet(schema, [{"sample": ["a"], "fastq_1": {"x": 1}, "strandedness": None}])
    assert {e["column"] for e in errors} == {"sample", "fastq_1", "strandedness"}


# --- DataFiles in path columns ----------------------------------------------------------------------------------------

def test_path_columns_are_the_file_formatted_ones():
    assert datafile_columns(sheet_schema("nf-core__rnaseq")) == ["fastq_1", "fastq_2", "genome_bam",
                                                                "transcriptome_bam"]
    assert datafile_columns(sheet_schema("nf-core__viralrecon")) == []


def test_datafile_cells_go_through_the_servers_resolver():
    schema = sheet_schema("nf-core__rnaseq")
    rows = [{"sample": "s1", "fastq_1": "flow://datafile/5", "fastq_2": "flow://datafile/6", "strandedness": "auto"},
            {"sample": "s2", "fastq_1": "/home/other/secret_R1.fq.gz", "strandedness": "auto"}]
    assert validate_samplesheet(schema, rows) == []  # references are left for the server to resolve
    seen: list[str] = []
    allowed = {"flow://datafile/5": "/flow/data/5/s1_R1.fastq.gz", "flow://datafile/6": "/flow/data/6/s1_R2.txt"}

    def resolve(value: str) -> str | None:
        seen.append(value)
        return allowed.get(value)  # unknown, forbidden or a plain path elsewhere: all just None

    errors = validate_samplesheet(schema, rows, resolve_file=resolve)
    assert sorted(seen) == sorted(["flow://datafile/5", "flow://datafile/6", "/home/other/secret_R1.fq.gz"])
    assert [(e["row"], e["column"], e["reason"]) for e in errors] == [(1, "fastq_2", "pattern"),
                                                                     (2, "fastq_1", "no_such_datafile")]
    assert errors[1]["message"] == "No such data file."
    resolved, refused = resolve_datafiles(schema, rows, resolve)
    assert resolved[0]["fastq_1"] == "/flow/data/5/s1_R1.fastq.gz" and "fastq_1" not in resolved[1]
    assert refused == [errors[1]]


# --- reading files ------------------------------------------------------------------------------------------------

def test_csv_tsv_yaml_and_json_read_to_the_same_rows():
    schema = sheet_schema("nf-core__rnaseq")
    rows = good_rows(schema, 3)
    csv_bytes = to_csv(rows, list(columns_of(schema)))
    tsv_bytes = csv_bytes.decode().replace(",", "\t").encode()
    assert read_samplesheet(csv_bytes, "s.csv") == rows
    assert read_samplesheet(tsv_bytes, "s.tsv") == rows
    assert read_samplesheet(tsv_bytes, "sheet.txt") == rows  # sniffed
    assert read_samplesheet(yaml.safe_dump(rows).encode(), "s.yml") == rows
    assert read_samplesheet(json.dumps(rows).encode(), "s.json") == rows
    assert read_samplesheet(json.dumps(rows).encode(), "upload") == rows  # sniffed


def test_csv_cells_are_trimmed_and_empty_cells_are_missing():
    data = b"\xef\xbb\xbfsample , fastq_1,fastq_2,strandedness,\n s1 ,a.fq.gz,,auto\n\n,,,,\ns2,b.fq.gz,  ,auto,\n"
    rows = read_samplesheet(data, "s.csv")
    assert rows == [{"sample": "s1", "fastq_1": "a.fq.gz", "strandedness": "auto"},
                    {"sample": "s2", "fastq_1": "b.fq.gz", "strandedness": "auto"}]
    assert validate_samplesheet(sheet_schema("nf-core__rnaseq"), rows) == []


def test_a_headerless_sheet_is_read_when_the_schema_says_so():
    schema = sheet_schema("nf-core__fetchngs")
    rows = read_samplesheet(b"SRR9984183\nSRR13191702\nERR1160846\n", "ids.csv", schema=schema)
    assert rows == [{"": "SRR9984183"}, {"": "SRR13191702"}, {"": "ERR1160846"}]
    assert validate_samplesheet(schema, rows) == []
    errors = validate_samplesheet(schema, read_samplesheet(b"SRR1\nnot-an-id\n", "ids.csv", schema=schema))
    assert [(e["row"], e["column"]) for e in errors] == [(2, "")]
    assert to_csv(rows, [""]) == b"SRR9984183\nSRR13191702\nERR1160846\n"


def test_hostile_cells_survive_a_csv_roundtrip_unchanged():
    values = ["a,b", 'say "hi"', "line1\nline2", "$(reboot)", "`id`", "x; rm -rf /", "'", "${params.x}", "=1+2"]
    rows = [{"sample": v, "note": v} for v in values]
    before = copy.deepcopy(rows)
    back = read_samplesheet(to_csv(rows, ["sample", "note"]), "s.csv")
    assert back == before and rows == before


@pytest.mark.parametrize("data,filename,words", [
    (b"", "s.csv", "header"),
    (b"sample,sample\na,b\n", "s.csv", "more than once"),
    (b"sample,,fastq_1\na,b,c\n", "s.csv", "empty"),
    (b"sample,fastq_1\na,b,c\n", "s.csv", "3 cells"),
    (b'sample,fastq_1\n"a,b\n', "s.csv", "line"),
    (b"sample\na\x00b\n", "s.csv", "CSV"),
    (b"\x1f\x8b\x08\x00\x00\x00", "s.csv.gz", "UTF-8"),
    (b"sample: a\n", "s.yaml", "list"),
    (b"- [a, b]\n", "s.yaml", "row 1"),
    (b"- {1: a}\n", "s.yaml", "row 1"),
    (b"a: &a [x, x]\nb: &b [*a, *a]\n", "s.yaml", "aliases"),
    (b"- sample: [unclosed\n", "s.yaml", "YAML"),
    (b'[{"sample": "a"},', "s.json", "JSON"),
    (b'{"sample": "a"}', "s.json", "list"),
    (b"[" * 100_000, "s.json", "JSON"),
])
def test_malformed_sheets_are_400s_with_a_clear_message(data: bytes, filename: str, words: str):
    with pytest.raises(FlowError) as caught:
        read_samplesheet(data, filename)
    error = caught.value
    assert (error.status, error.reason, error.field) == (400, "invalid_samplesheet", filename)
    assert filename in error.message and words in error.message


def test_an_oversized_sheet_is_a_413():
    with pytest.raises(FlowError) as caught:
        read_samplesheet(b"sample\n" + b"s\n" * 100, "s.csv", max_bytes=100)
    assert (caught.value.status, caught.value.reason) == (413, "samplesheet_too_large")
