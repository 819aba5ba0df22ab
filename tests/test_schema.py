"""nextflow_schema.json as Flow reads it: real pipelines' schemas become forms and validators.

Every story runs on the real files in tests/corpus/nf-schemas (12 pipelines, draft-07 and 2020-12). Good and bad
parameter sets are generated from each pipeline's own form model, so nothing here is tuned to one schema.
"""
from __future__ import annotations

import copy
import json
import re
import re._parser as sre_parse  # Python 3.11+: the regex parser, used to build values that match a pattern
from pathlib import Path
from typing import Any

import pytest

from flow_jupyter.errors import FlowError
from flow_jupyter.pipelines.nfconfig import parse_config_flat, parse_groovy_literal
from flow_jupyter.pipelines.schema import (WIDGETS, datafile_references, default_problems, file_params, form_default,
                                           form_model, form_model_from_params, load_schema, validate_params)

CORPUS = Path(__file__).resolve().parent / "corpus" / "nf-schemas"
SCHEMA_FILES = sorted(CORPUS.glob("*/nextflow_schema.json"))
UNKNOWN = "no_such_parameter_anywhere"


def corpus_schema(pipeline: str) -> dict[str, Any]:
    return load_schema((CORPUS / pipeline / "nextflow_schema.json").read_bytes())


def corpus_bytes(pipeline: str) -> bytes:
    return (CORPUS / pipeline / "nextflow_schema.json").read_bytes()


def all_fields(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [field for group in model["groups"] for field in group["fields"]]


def field(model: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in all_fields(model) if f["name"] == name)


# --- test data generators: values that match a regex, good and bad parameter sets -------------------------------

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


def _in_class(char: str, items: list[tuple[Any, Any]]) -> bool:
    negate = False
    hit = False
    for op, value in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            hit |= char == chr(value)
        elif name == "RANGE":
            hit |= value[0] <= ord(char) <= value[1]
        elif name == "CATEGORY":
            kind = str(value)
            tests = {"CATEGORY_DIGIT": char.isdigit(), "CATEGORY_NOT_DIGIT": not char.isdigit(),
                     "CATEGORY_SPACE": char.isspace(), "CATEGORY_NOT_SPACE": not char.isspace(),
                     "CATEGORY_WORD": char.isalnum() or char == "_",
                     "CATEGORY_NOT_WORD": not (char.isalnum() or char == "_")}
            hit |= tests[kind]
    return hit != negate


def _generate(parsed: Any, variant: int) -> str:
    out: list[str] = []
    for op, value in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(value))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(value) != "a" else "b")
        elif name == "ANY":
            out.append(_ALPHABET[variant % 26])
        elif name == "IN":
            allowed = [c for c in _ALPHABET if _in_class(c, value)]
            out.append(allowed[variant % len(allowed)])
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = value
            out.extend(_generate(sub, variant) for _ in range(low))
        elif name == "SUBPATTERN":
            out.append(_generate(value[-1], variant))
        elif name == "BRANCH":
            out.append(_generate(value[1][0], variant))
        # AT (anchors), assertions and group references add nothing
    return "".join(out)


def example_for(pattern: str, variant: int = 0) -> str:
    """A short string matching ``pattern``; different ``variant``s give different strings where the regex allows."""
    value = _generate(sre_parse.parse(pattern), variant)
    assert re.search(pattern, value), (pattern, value)
    return value


def minimal_value(f: dict[str, Any]) -> Any:
    """A value a required field without a usable default accepts, chosen from its form model only."""
    if f["widget"] == "select":
        return f["choices"][0]
    if f["widget"] == "checkbox":
        return False
    if f["widget"] in ("integer", "number"):
        return f.get("minimum", 0)
    if f.get("pattern"):
        return example_for(f["pattern"])
    return "x" * max(1, f.get("min_length", 1))


def good_params(model: dict[str, Any]) -> dict[str, Any]:
    """Every default (expression defaults included, as Nextflow would see them) plus values for required fields.

    Defaults are taken as they are, even nf-core/eager's integer defaults written as strings ("0") and its enum
    default outside the enum: leaving a pipeline's own default alone must never block a launch.
    """
    params: dict[str, Any] = {}
    for f in all_fields(model):
        if f["default"] is not None:
            params[f["name"]] = f["default"]
        elif f["required"]:
            params[f["name"]] = minimal_value(f)
    return params


def bad_params(model: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Good params with three mistakes: a wrong type, a value outside an enum, an unknown name -> field: reason."""
    params = good_params(model)
    fields = all_fields(model)
    typed = next(f for f in fields if f["widget"] in ("integer", "number", "checkbox") and "string" not in f["types"])
    enum = next(f for f in fields if f["widget"] == "select" and all(isinstance(c, str) for c in f["choices"]))
    params[typed["name"]] = "not a " + typed["type"]
    params[enum["name"]] = "definitely-not-one-of-the-choices"
    params[UNKNOWN] = "surprise"
    return params, {f"/{typed['name']}": "type", f"/{enum['name']}": "enum", f"/{UNKNOWN}": "unknown_parameter"}


# --- every real schema ----------------------------------------------------------------------------------------

def test_the_corpus_has_both_schema_styles():
    drafts = {form_model(load_schema(p.read_bytes()))["draft"] for p in SCHEMA_FILES}
    assert len(SCHEMA_FILES) == 12 and drafts == {"draft-07", "2020-12"}


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.parent.name)
def test_every_real_schema_becomes_a_form_with_known_widgets(path: Path):
    schema = load_schema(path.read_bytes())
    model = form_model(schema)
    assert model["has_schema"] is True and model["groups"]
    json.dumps(model)  # the model is plain JSON for every UI
    declared = {n for key in ("definitions", "$defs") for g in (schema.get(key) or {}).values()
                for n in g.get("properties", {})} | set(schema.get("properties", {}))
    assert {f["name"] for f in all_fields(model)} == declared
    for f in all_fields(model):
        assert f["widget"] in WIDGETS, f
        assert f["advanced"] == f["hidden"]
        if not f["hidden"]:
            assert f["help"] is None or isinstance(f["help"], str)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.parent.name)
def test_good_parameters_built_from_the_form_validate_cleanly(path: Path):
    schema = load_schema(path.read_bytes())
    params = good_params(form_model(schema))
    assert validate_params(schema, params) == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.parent.name)
def test_bad_parameters_are_reported_at_exactly_the_wrong_fields(path: Path):
    schema = load_schema(path.read_bytes())
    params, expected = bad_params(form_model(schema))
    errors = validate_params(schema, params)
    assert {e["field"] for e in errors} == set(expected)
    for name, reason in expected.items():
        assert reason in {e["reason"] for e in errors if e["field"] == name}
    assert all(e["message"] for e in errors)


# --- the form model, field by field ----------------------------------------------------------------------------

def test_rnaseq_input_field_carries_the_nf_core_annotations():
    model = form_model(corpus_schema("nf-core__rnaseq"))
    f = field(model, "input")
    assert f["widget"] == "file" and f["type"] == "string" and f["required"] is True
    assert f["samplesheet_schema"] == "assets/schema_input.json"
    assert f["mimetype"] == "text/csv" and f["exists"] is True and f["pattern"] == r"^\S+\.csv$"
    assert f["error_message"].startswith("The input must be a valid CSV file path")
    assert f["fa_icon"] == "fas fa-file-csv" and f["help_text"] and not f["hidden"]
    assert field(model, "outdir")["widget"] == "directory"
    assert field(model, "hook_url")["widget"] == "uri" and field(model, "hook_url")["advanced"] is True
    assert field(model, "help")["types"] == ["boolean", "string"] and field(model, "help")["widget"] == "text"


def test_groups_follow_allof_order_with_titles_and_icons():
    schema = corpus_schema("nf-core__sarek")
    model = form_model(schema)
    assert [g["id"] for g in model["groups"]] == [r["$ref"].rsplit("/", 1)[-1] for r in schema["allOf"]]
    first = model["groups"][0]
    assert first["title"] == schema["$defs"][first["id"]]["title"] and first["fa_icon"]
    assert model["title"] == schema["title"] and model["draft"] == "2020-12"


def test_sarek_keeps_oneof_globs_and_enums():
    model = form_model(corpus_schema("nf-core__sarek"))
    split = field(model, "split_fastq")
    assert split["widget"] == "integer" and split["constraints"] == {"oneOf": [{"minimum": 250}, {"const": 0}]}
    assert {f["widget"] for f in all_fields(model) if f.get("format") == "file-path-pattern"} == {"glob"}
    step = field(model, "step")
    assert step["widget"] == "select" and step["choices"][0] == "mapping" and step["default"] == "mapping"


def test_nextflow_expression_defaults_stay_strings_and_are_marked():
    model = form_model(corpus_schema("bactopia__bactopia"))
    infodir = field(model, "infodir")
    assert infodir["default"] == "${params.outdir}/pipeline_info" and infodir["default_is_expression"] is True
    assert field(model, "outdir")["default_is_expression"] is False


def test_unreferenced_groups_and_loose_properties_are_still_shown_and_enforced():
    schema = json.loads(corpus_bytes("nf-core__fetchngs"))
    dropped = schema["allOf"].pop(0)["$ref"].rsplit("/", 1)[-1]  # input_output_options: input, outdir required
    schema["properties"] = {"loose_flag": {"type": "boolean", "description": "Not in any group"}}
    schema = load_schema(json.dumps(schema))
    model = form_model(schema)
    ids = [g["id"] for g in model["groups"]]
    assert ids[-2:] == [dropped, "other_parameters"]
    assert model["groups"][-1]["title"] == "Other parameters"
    assert [f["name"] for f in model["groups"][-1]["fields"]] == ["loose_flag"]
    errors = validate_params(schema, {"loose_flag": "yes"})
    assert {(e["field"], e["reason"]) for e in errors} == {("/input", "required"), ("/outdir", "required"),
                                                          ("/loose_flag", "type")}


# --- validation rules -----------------------------------------------------------------------------------------

def test_required_parameters_with_defaults_are_left_to_nextflow():
    schema = corpus_schema("nf-core__differentialabundance")
    errors = validate_params(schema, {})
    assert {e["field"] for e in errors} == {"/input", "/contrasts", "/outdir"}  # the other 27 have defaults


def test_the_schemas_errormessage_replaces_the_generic_one():
    schema = corpus_schema("nf-core__rnaseq")
    errors = validate_params(schema, {"input": "samples.txt", "outdir": "results"})
    assert errors == [{"field": "/input", "reason": "pattern",
                       "message": schema["$defs"]["input_output_options"]["properties"]["input"]["errorMessage"]}]


def test_a_default_the_schema_contradicts_is_reported_corrected_in_the_form_and_checked_like_any_value():
    """nf-core/eager declares integers with string defaults ("0") and an enum its default is not in. nf-schema
    validates defaults like any value, so Flow reports them on the pipeline and never offers a mistyped default."""
    schema = corpus_schema("nf-core__eager")
    problems = {p["field"]: p["message"] for p in default_problems(schema)}
    assert "/bt2n" in problems and "offers 0" in problems["/bt2n"]
    assert "/hostremoval_mode" in problems and "offers none" in problems["/hostremoval_mode"]
    assert field(form_model(schema), "bt2n")["default"] == 0
    assert field(form_model(schema), "hostremoval_mode")["default"] is None
    assert validate_params(schema, {"input": "x.tsv", "bt2n": 0, "hostremoval_mode": "strip"}) == []
    errors = validate_params(schema, {"input": "x.tsv", "bt2n": "0", "hostremoval_mode": "remove"})
    assert {(e["field"], e["reason"]) for e in errors} == {("/bt2n", "type"), ("/hostremoval_mode", "enum")}


def test_a_boolean_default_given_as_a_string_is_never_offered_as_that_string():
    """In Groovy the string "false" is true: the form must offer the boolean."""
    prop = {"type": "boolean", "default": "false"}
    assert form_default(prop) is False
    assert form_default({"type": "boolean", "default": "maybe"}) is None
    assert form_default({"type": "string", "default": "${params.outdir}/x"}) == "${params.outdir}/x"


def test_an_expression_default_is_not_checked_but_a_user_value_is():
    schema = corpus_schema("nf-core__differentialabundance")
    base = {"input": "s.csv", "contrasts": "c.csv", "outdir": "out"}
    default = field(form_model(schema), "report_file")["default"]
    assert validate_params(schema, {**base, "report_file": default}) == []
    errors = validate_params(schema, {**base, "report_file": "${projectDir}/my report.Rmd"})
    assert [(e["field"], e["reason"]) for e in errors] == [("/report_file", "pattern")]


def test_type_arrays_accept_each_listed_type_only():
    schema = corpus_schema("nf-core__rnaseq")
    base = {"input": "s.csv", "outdir": "out"}
    assert validate_params(schema, {**base, "help": True}) == []
    assert validate_params(schema, {**base, "help": "aligner"}) == []
    assert [e["reason"] for e in validate_params(schema, {**base, "help": 3})] == ["type"]


def test_oneof_constraint_is_enforced_with_a_readable_message():
    schema = corpus_schema("nf-core__sarek")
    base = {"input": "s.csv", "outdir": "out"}
    assert validate_params(schema, {**base, "split_fastq": 0}) == []
    errors = validate_params(schema, {**base, "split_fastq": 100})
    assert [(e["field"], e["reason"]) for e in errors] == [("/split_fastq", "one_of")]
    assert "250" in errors[0]["message"]


def test_additional_properties_true_allows_unknown_parameters():
    schema = json.loads(corpus_bytes("nf-core__fetchngs"))
    schema["additionalProperties"] = True
    schema = load_schema(json.dumps(schema))
    assert validate_params(schema, {"input": "ids.csv", "outdir": "o", "custom_thing": 1}) == []
    assert validate_params(schema, {"input": "ids.csv", "outdir": "o", "custom_thing": 1},
                           ignore_params=["custom_thing"]) == []
    strict = corpus_schema("nf-core__fetchngs")
    assert validate_params(strict, {"input": "ids.csv", "outdir": "o", "genomes": {}}, ignore_params=["genomes"]) \
        == []


def test_hostile_strings_are_plain_data_and_params_come_back_unchanged():
    schema = corpus_schema("nf-core__rnaseq")
    hostile = ["it's", 'say "hi"', "$(rm -rf ~)", "`id`", "a; reboot", "line1\nline2", "${params.outdir}",
               "x" * 10_000, "\\'; echo pwned; '"]
    for value in hostile:
        params = {"input": "s.csv", "outdir": value, "multiqc_title": value, "email": value, "fasta": value}
        before = copy.deepcopy(params)
        errors = validate_params(schema, params)
        assert params == before and json.loads(json.dumps(params)) == before
        assert not [e for e in errors if e["field"] in ("/outdir", "/multiqc_title")]  # any string is allowed
        assert all(len(e["message"]) < 1000 for e in errors)  # a 10 kB value is not echoed back


def test_validation_never_raises_on_strange_params():
    schema = corpus_schema("nf-core__sarek")
    for params in (None, [], "input", {1: 2}, {"input": {"nested": [1, {"a": None}]}}, {"split_fastq": 10**40},
                   {"split_fastq": float("nan")}, {"outdir": None}, {"": ""}):
        errors = validate_params(schema, params)
        assert isinstance(errors, list) and errors


# --- DataFile references ----------------------------------------------------------------------------------------

def test_file_params_are_the_path_formatted_ones():
    schema = corpus_schema("nf-core__methylseq")
    names = file_params(schema)
    assert "input" in names and "outdir" in names and "fasta" in names
    assert "aligner" not in names and "multiqc_title" not in names


def test_datafile_references_in_file_params_are_found_and_resolved_by_the_caller():
    schema = corpus_schema("nf-core__rnaseq")
    params = {"input": {"datafile": 7}, "outdir": "flow://datafile/9", "fasta": "/refs/genome.fa",
              "multiqc_title": {"datafile": 3}}
    assert datafile_references(schema, params) == {"input": 7, "outdir": 9}
    # Without a resolver the references are accepted as they are; a non-file param cannot hold one.
    errors = validate_params(schema, params)
    assert [(e["field"], e["reason"]) for e in errors] == [("/multiqc_title", "type")]
    # With a resolver the resolved paths are what gets checked; unknown and forbidden look the same.
    paths = {7: "/flow/data/samples.csv"}
    errors = validate_params(schema, {**params, "multiqc_title": "t"}, resolve_datafile=paths.get)
    assert errors == [{"field": "/outdir", "reason": "no_such_datafile", "message": "No such data file."}]
    errors = validate_params(schema, {"input": {"datafile": 7}, "outdir": "o"},
                             resolve_datafile={7: "/flow/data/samples.txt"}.get)
    assert [(e["field"], e["reason"]) for e in errors] == [("/input", "pattern")]


def test_malformed_datafile_references_are_errors_not_crashes():
    schema = corpus_schema("nf-core__rnaseq")
    for bad in ({"datafile": "7"}, {"datafile": True}, {"datafile": -1}, {"datafile": 1, "x": 2},
                "flow://datafile/abc", "flow://datafile/"):
        errors = validate_params(schema, {"input": bad, "outdir": "o"})
        assert [(e["field"], e["reason"]) for e in errors] == [("/input", "invalid_datafile_reference")], bad
        assert datafile_references(schema, {"input": bad}) == {}


# --- bad schema files ---------------------------------------------------------------------------------------------

def _rejected(data: str | bytes, name: str = "nextflow_schema.json", **kwargs: Any) -> FlowError:
    with pytest.raises(FlowError) as caught:
        load_schema(data, name=name, **kwargs)
    return caught.value


def test_a_schema_that_is_not_json_is_a_400_naming_the_file():
    error = _rejected(corpus_bytes("nf-core__rnaseq")[:5000], name="pipelines/rnaseq/nextflow_schema.json")
    assert (error.status, error.reason, error.field) == (400, "invalid_schema", "pipelines/rnaseq/nextflow_schema.json")
    assert "pipelines/rnaseq/nextflow_schema.json" in error.message and "JSON" in error.message


def test_a_ref_cycle_is_a_400():
    schema = json.loads(corpus_bytes("nf-core__fetchngs"))
    defs = schema["definitions"]
    defs["input_output_options"]["properties"]["input"] = {"$ref": "#/definitions/institutional_config_options"}
    defs["institutional_config_options"]["properties"]["custom_config_base"] = {
        "$ref": "#/definitions/input_output_options"}
    error = _rejected(json.dumps(schema))
    assert error.status == 400 and error.reason == "invalid_schema" and "cycle" in error.message
    self_ref = {"$schema": "http://json-schema.org/draft-07/schema", "definitions": {"a": {"$ref": "#/definitions/a"}}}
    assert "cycle" in _rejected(json.dumps(self_ref)).message


def test_refs_must_be_local_and_resolvable():
    schema = json.loads(corpus_bytes("nf-core__fetchngs"))
    schema["allOf"].append({"$ref": "https://example.org/evil.json#/definitions/x"})
    assert "$ref" in _rejected(json.dumps(schema)).message
    schema["allOf"][-1] = {"$ref": "#/definitions/not_there"}
    assert "$ref" in _rejected(json.dumps(schema)).message


def test_an_unknown_draft_is_a_400():
    schema = json.loads(corpus_bytes("nf-core__viralrecon"))
    for draft in ("http://json-schema.org/draft-04/schema#", "https://example.org/my-draft", 7):
        schema["$schema"] = draft
        error = _rejected(json.dumps(schema))
        assert error.status == 400 and "draft" in error.message


def test_a_10_mb_schema_is_a_413_before_parsing():
    schema = json.loads(corpus_bytes("nf-core__sarek"))
    schema["description"] = "x" * (10 * 1024 * 1024)
    for data in (json.dumps(schema), json.dumps(schema).encode()):
        error = _rejected(data)
        assert (error.status, error.reason) == (413, "schema_too_large")
    assert load_schema(corpus_bytes("nf-core__eager"))  # the largest real schema (127 kB) is well inside


def test_other_broken_schemas_are_400s_never_tracebacks():
    deep = '{"properties": ' * 200 + "{}" + "}" * 200
    cases = ["", "[]", "null", '{"a": NaN}', b"\xff\xfe\x00", deep, "[" * 100_000,
             '{"$schema": "http://json-schema.org/draft-07/schema", "properties": {"x": {"type": "strnig"}}}',
             '{"$schema": "http://json-schema.org/draft-07/schema", "properties": {"x": {"pattern": "("}}}',
             '{"$schema": "http://json-schema.org/draft-07/schema", "allOf": [{"$ref": "#foo"}]}']
    for data in cases:
        error = _rejected(data)
        assert error.status == 400 and error.reason == "invalid_schema", data[:40]


def test_loading_accepts_bytes_str_and_a_bom():
    raw = corpus_bytes("nf-core__clipseq")
    assert load_schema(raw) == load_schema(raw.decode()) == load_schema(b"\xef\xbb\xbf" + raw)


# --- pipelines without a schema: nextflow config -flat -------------------------------------------------------------

# Captured from Nextflow 24.10.0 (`nextflow -q config -flat .`) on a config exercising every value kind.
CONFIG_FLAT = r"""params.reads = '/data/*.fq'
params.max_cpus = 16
params.max_memory = '128.GB'
params.ratio = 0.5
params.skip_qc = false
params.list = ['a', 'b']
params.nested.key = 'x'
params.nested.deep.n = 3
params.quote = 'it\'s "q"'
params.outdir = 'results'
params.tracedir = 'results/pipeline_info'
params.nothing = null
params.amap = [a:1, b:'two']
params.multi = 'line1\nline2'
params.big = 12345678901234
params.neg = -3
params.tab = 'a\tb'
params.back = 'c:\\dir'
params.dollar = 'cost $5'
process.executor = 'local'
process.memory = '2 GB'
manifest.name = 'demo'
"""


def test_config_flat_output_parses_to_typed_values():
    params = parse_config_flat(CONFIG_FLAT)
    assert params == {
        "reads": "/data/*.fq", "max_cpus": 16, "max_memory": "128.GB", "ratio": 0.5, "skip_qc": False,
        "list": ["a", "b"], "nested.key": "x", "nested.deep.n": 3, "quote": 'it\'s "q"', "outdir": "results",
        "tracedir": "results/pipeline_info", "nothing": None, "amap": {"a": 1, "b": "two"},
        "multi": "line1\nline2", "big": 12345678901234, "neg": -3, "tab": "a\tb", "back": "c:\\dir",
        "dollar": "cost $5",
    }
    everything = parse_config_flat(CONFIG_FLAT, scope=None)
    assert everything["process.executor"] == "local" and everything["manifest.name"] == "demo"
    assert everything["params.max_cpus"] == 16


def test_groovy_literals_that_are_not_literals_stay_text():
    assert parse_groovy_literal('"$baseDir/data/*.fq"') == "$baseDir/data/*.fq"
    assert parse_groovy_literal("2.GB") == "2.GB"
    assert parse_groovy_literal("file('x')") == "file('x')"
    assert parse_groovy_literal("'unterminated") == "'unterminated"
    assert parse_groovy_literal("[" * 100 + "]" * 100) == "[" * 100 + "]" * 100
    assert parse_groovy_literal("[:]") == {} and parse_groovy_literal("[]") == []
    assert parse_groovy_literal("1.5e3") == 1500.0 and parse_groovy_literal("7L") == 7


def test_a_schemaless_pipeline_gets_a_form_typed_by_its_defaults():
    model = form_model_from_params(parse_config_flat(CONFIG_FLAT))
    assert model["has_schema"] is False and "no nextflow_schema.json" in model["note"]
    widgets = {f["name"]: f["widget"] for f in all_fields(model)}
    assert widgets["reads"] == "text" and widgets["max_cpus"] == "integer" and widgets["ratio"] == "number"
    assert widgets["skip_qc"] == "checkbox" and widgets["list"] == "json" and widgets["amap"] == "json"
    assert widgets["nested.key"] == "text" and widgets["nothing"] == "text"
    assert set(widgets.values()) <= WIDGETS
    static = form_model_from_params(parse_config_flat('params.reads = "$baseDir/data/*.fq"'))
    assert all_fields(static)[0]["default_is_expression"] is True
