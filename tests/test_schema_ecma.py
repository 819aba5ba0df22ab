"""Patterns are ECMA-262, as JSON Schema (and so every nf-core pipeline) means them, not Python's ``re``: ``$`` does
not match before a trailing newline and ``\\d``/``\\w`` are ASCII only. Each story shows Python's answer next to
ours, on parameters, ``patternProperties``, sample-sheet cells and the schema check at registration; the real
patterns of the corpus (tests/corpus/nf-schemas) all compile and keep their meaning."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from flow_jupyter.errors import FlowError
from flow_jupyter.pipelines import ecma
from flow_jupyter.pipelines.samplesheet import validate_samplesheet
from flow_jupyter.pipelines.schema import load_schema, validate_params

CORPUS = Path(__file__).resolve().parent / "corpus" / "nf-schemas"
DRAFTS = ["http://json-schema.org/draft-07/schema", "https://json-schema.org/draft/2020-12/schema"]


def params_schema(draft: str, **props: Any) -> dict[str, Any]:
    return load_schema(json.dumps({"$schema": draft, "type": "object", "properties": props}))


def reasons(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["field"], e["reason"]) for e in errors]


@pytest.mark.parametrize("draft", DRAFTS)
def test_dollar_does_not_match_before_a_trailing_newline(draft) -> None:
    schema = params_schema(draft, genome={"type": "string", "pattern": "^[A-Za-z0-9]+$"})
    assert re.search("^[A-Za-z0-9]+$", "GRCh38\n")  # what Python alone would let through

    assert validate_params(schema, {"genome": "GRCh38"}) == []
    assert reasons(validate_params(schema, {"genome": "GRCh38\n"})) == [("/genome", "pattern")]


@pytest.mark.parametrize("draft", DRAFTS)
def test_digit_and_word_classes_are_ascii_only(draft) -> None:
    schema = params_schema(draft, lane={"type": "string", "pattern": "^\\d+$"},
                           sample={"type": "string", "pattern": "^\\w+$"})
    arabic_indic, accented = "\u0661\u0662", "s\u00e9quence"
    assert re.search("^\\d+$", arabic_indic) and re.search("^\\w+$", accented)  # Python's Unicode classes

    assert validate_params(schema, {"lane": "12", "sample": "sample_1"}) == []
    assert reasons(validate_params(schema, {"lane": arabic_indic, "sample": accented})) == [
        ("/lane", "pattern"), ("/sample", "pattern")]


@pytest.mark.parametrize("draft", DRAFTS)
def test_pattern_properties_and_additional_properties_use_the_same_semantics(draft) -> None:
    schema = params_schema(draft, tags={"type": "object", "additionalProperties": False,
                                        "patternProperties": {"^tag\\d$": {"type": "string"}}})

    assert validate_params(schema, {"tags": {"tag1": "a"}}) == []
    refused = validate_params(schema, {"tags": {"tag\u0661": "a", "tag2\n": "b"}})
    assert reasons(refused) == [("/tags", "additional_properties")]
    assert "'tag2\\n'" in refused[0]["message"] and "'tag\u0661'" in refused[0]["message"]


def test_sample_sheet_cells_are_matched_the_same_way() -> None:
    sheet = load_schema(json.dumps({
        "$schema": DRAFTS[1], "type": "array",
        "items": {"type": "object", "required": ["sample"],
                  "properties": {"sample": {"type": "string", "pattern": "^\\S+$"},
                                 "lane": {"type": "string", "pattern": "^\\d+$"}}}}))
    rows = [{"sample": "ok", "lane": "1"}, {"sample": "tail\n", "lane": "\u0663"}]

    errors = validate_samplesheet(sheet, rows)

    assert [(e["row"], e["column"], e["reason"]) for e in errors] == [(2, "lane", "pattern"), (2, "sample", "pattern")]


def test_ecma_only_syntax_is_accepted_and_python_only_syntax_refused_at_registration() -> None:
    ecma_only = {"name": {"type": "string", "pattern": "^(?<first>[A-Z])\\p{L}*$"}}
    schema = params_schema(DRAFTS[1], **ecma_only)
    assert validate_params(schema, {"name": "\u00c9mile"}) == [{"field": "/name", "reason": "pattern",
                                                                "message": "Must match the pattern "
                                                                "^(?<first>[A-Z])\\p{L}*$."}]
    assert validate_params(schema, {"name": "Zo\u00eb"}) == []

    for python_only in ("^(?P<first>a)$", "^abc\\Z", "(?i)abc"):
        with pytest.raises(FlowError) as refused:
            params_schema(DRAFTS[0], x={"type": "string", "pattern": python_only})
        assert (refused.value.status, refused.value.reason) == (400, "invalid_schema")
        assert "nextflow_schema.json" in refused.value.message and "pattern" in refused.value.message


def test_legacy_identity_escapes_still_work_as_in_a_browser() -> None:
    # "\-" outside a class is an error with the u flag but what `new RegExp("^a\\-b$")` accepts.
    schema = params_schema(DRAFTS[0], x={"type": "string", "pattern": "^a\\-b$"})
    assert validate_params(schema, {"x": "a-b"}) == []
    assert reasons(validate_params(schema, {"x": "a-b\n"})) == [("/x", "pattern")]


def corpus_patterns() -> set[str]:
    found: set[str] = set()
    stack: list[Any] = [json.loads(p.read_text()) for p in sorted(CORPUS.glob("*/*.json"))]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            if isinstance(node.get("patternProperties"), dict):
                found.update(node["patternProperties"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def test_every_corpus_pattern_compiles_and_refuses_a_trailing_newline_where_it_is_anchored() -> None:
    patterns = corpus_patterns()
    assert len(patterns) > 40
    for pattern in patterns:
        ecma.compile_pattern(pattern)
    fastq = "^\\S+\\.f(ast)?q\\.gz$"
    assert fastq in patterns
    assert ecma.search(fastq, "s1_R1.fastq.gz") and not ecma.search(fastq, "s1_R1.fastq.gz\n")


def test_a_pattern_neither_dialect_accepts_is_reported_not_raised() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": "(?P<n>a)"}}}  # never loaded
    assert reasons(validate_params(schema, {"x": "a"})) == [("", "unvalidatable")]
