"""Sample sheets by nf-core's conventions, on the real files of tests/corpus/nf-schemas:

* a pipeline whose ``input`` names no schema but which keeps ``assets/schema_input.json`` gets that file as its
  sample-sheet schema (registered through the HTTP API; runs on SQLite and PostgreSQL);
* nf-validation 1.x's column-level ``dependentRequired`` is honoured in draft-07 sheet schemas;
* rows are numbered from 1 everywhere: an error's ``row``, its ``field`` pointer and its message agree.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gitrepo import git
from flow_jupyter.errors import FlowError
from flow_jupyter.pipelines.samplesheet import read_samplesheet, validate_samplesheet
from flow_jupyter.pipelines.schema import load_schema

CORPUS = Path(__file__).resolve().parent / "corpus" / "nf-schemas"


def corpus_json(pipeline: str, name: str) -> dict[str, Any]:
    return json.loads((CORPUS / pipeline / name).read_text())


def fetchngs_repo(root: Path, name: str, *, input_schema: str | None, files: dict[str, Any]) -> Path:
    """nf-core/fetchngs' real schema with ``input.schema`` set to ``input_schema`` (None: removed), plus files."""
    schema = corpus_json("nf-core__fetchngs", "nextflow_schema.json")
    groups = schema.get("definitions") or schema["$defs"]
    prop = groups["input_output_options"]["properties"]["input"]
    prop.pop("schema")
    if input_schema is not None:
        prop["schema"] = input_schema
    repo = root / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "main.nf").write_text("workflow {}\n")
    (repo / "nextflow_schema.json").write_text(json.dumps(schema))
    for path, content in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(json.dumps(content))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    return repo


@pytest.fixture
def admin(api):
    return api.owner


def input_field(form: dict[str, Any]) -> dict[str, Any]:
    return next(f for g in form["groups"] for f in g["fields"] if f["name"] == "input")


async def test_input_without_a_schema_gets_assets_schema_input_json_by_convention(admin, tmp_path) -> None:
    sheet_schema = corpus_json("nf-core__fetchngs", "schema_input.json")
    repo = fetchngs_repo(tmp_path, "fetchngs", input_schema=None,
                         files={"assets/schema_input.json": sheet_schema})

    added = await admin.post("pipelines", {"source": str(repo)})

    assert added.code == 201, added.json
    assert added.json["versions"][0]["has_samplesheet_schema"] is True
    form = (await admin.get("pipelines/fetchngs/versions/latest/form")).json["form"]
    assert input_field(form)["samplesheet_schema"] == "assets/schema_input.json"
    files = (await admin.get("pipelines/fetchngs/versions/latest/schema")).json
    assert files["samplesheet_schema"] == sheet_schema

    checked = await admin.post("pipelines/fetchngs/versions/latest/samplesheet",
                               {"content": "SRR9984183\nnot-an-id\nSRR\u0661\u0662\n", "filename": "ids.csv"})
    assert checked.code == 400 and checked.error["reason"] == "invalid_samplesheet"
    errors = checked.error["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(2, "/rows/2/"), (3, "/rows/3/")]  # \d is ASCII
    assert {e["message"] for e in errors} == {"Please provide a valid SRA, ENA, DDBJ or GEO identifier"}


async def test_a_schema_the_pipeline_names_wins_and_no_file_means_no_sheet_schema(admin, tmp_path) -> None:
    named = {"$schema": "http://json-schema.org/draft-07/schema", "type": "array",
             "items": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}
    explicit = fetchngs_repo(tmp_path, "explicit", input_schema="assets/ids.json",
                             files={"assets/ids.json": named,
                                    "assets/schema_input.json": corpus_json("nf-core__fetchngs", "schema_input.json")})
    bare = fetchngs_repo(tmp_path, "bare", input_schema=None, files={})

    assert (await admin.post("pipelines", {"source": str(explicit)})).code == 201
    assert (await admin.post("pipelines", {"source": str(bare)})).json["versions"][0]["has_samplesheet_schema"] is False

    files = (await admin.get("pipelines/explicit/versions/latest/schema")).json
    assert files["samplesheet_schema"] == named
    bare_form = (await admin.get("pipelines/bare/versions/latest/form")).json["form"]
    assert "samplesheet_schema" not in input_field(bare_form)


def ampliseq_in_nf_validation_style() -> dict[str, Any]:
    """nf-core/ampliseq's real draft-07 sheet schema, with reverse reads needing forward reads the nf-validation 1.x
    way (a list on the column) instead of forwardReads being always required."""
    schema = copy.deepcopy(corpus_json("nf-core__ampliseq", "schema_input.json"))
    schema["items"]["required"] = ["sampleID"]
    schema["items"]["properties"]["reverseReads"]["dependentRequired"] = ["forwardReads"]
    return load_schema(json.dumps(schema), name="schema_input.json")


def test_column_level_dependent_required_is_honoured_for_draft_07() -> None:
    schema = ampliseq_in_nf_validation_style()
    rows = [{"sampleID": "s1", "forwardReads": "s1_R1.fastq.gz", "reverseReads": "s1_R2.fastq.gz"},
            {"sampleID": "s2", "reverseReads": "s2_R2.fastq.gz"},
            {"sampleID": "s3"}]

    errors = validate_samplesheet(schema, rows)

    assert [(e["row"], e["column"], e["field"], e["reason"]) for e in errors] == [
        (2, "forwardReads", "/rows/2/forwardReads", "dependent_required")]
    assert errors[0]["message"].startswith("FastQ file for reads 1 must be provided")  # the column's errorMessage


def test_a_dependency_on_a_referenced_cell_is_satisfied() -> None:
    schema = ampliseq_in_nf_validation_style()
    rows = [{"sampleID": "s1", "forwardReads": "flow://datafile/7", "reverseReads": "s1_R2.fastq.gz"}]
    assert validate_samplesheet(schema, rows) == []  # the reference is the server's to resolve


def test_rows_are_numbered_from_one_in_row_field_and_message() -> None:
    schema = load_schema((CORPUS / "nf-core__ampliseq" / "schema_input.json").read_bytes(), name="schema_input.json")
    csv = ("sampleID,forwardReads,reverseReads\n"
           "s1,s1_R1.fastq.gz,s1_R2.fastq.gz\n"
           "s1,s1b_R1.fastq.gz,\n"
           "bad id,s3_R1.fastq.gz,\n")
    rows = read_samplesheet(csv.encode(), "samplesheet.csv", schema=schema)

    errors = validate_samplesheet(schema, rows)

    assert [(e["row"], e["field"], e["reason"]) for e in errors] == [
        (2, "/rows/2/sampleID", "unique_entries"), (3, "/rows/3/sampleID", "pattern")]
    assert errors[0]["message"].endswith("(duplicate of row 1)")
    for error in errors:
        assert error["field"].split("/")[2] == str(error["row"])


def test_a_malformed_row_is_named_by_the_same_number() -> None:
    with pytest.raises(FlowError) as refused:
        read_samplesheet(b"sample,fastq_1\ns1,a.fq\ns2,b.fq,extra\n", "samplesheet.csv")
    assert refused.value.reason == "invalid_samplesheet" and "data row 2 " in refused.value.message
