"""Issue 14 (C): free-text launch parameters have size limits. `check_param_sizes` is the pure check the launch path
runs with FlowSettings.max_param_string_length / max_params_bytes; it reports every problem with a field pointer
and never recurses, however deep the parameters nest."""
from __future__ import annotations

import json

from flow_jupyter.pipelines.limits import MAX_REPORTED, check_param_sizes


def compact_size(params) -> int:
    return len(json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode())


def test_parameters_within_the_limits_pass() -> None:
    params = {"greeting": "héllo \U0001F600", "n": 3, "ratio": 0.5, "on": True, "none": None,
              "rows": [{"sample": "a", "reads": ["x.fq", "y.fq"]}], "empty": {}}
    size = compact_size(params)
    assert check_param_sizes(params, max_string_length=20, max_total_bytes=size) == []


def test_the_total_is_the_compact_utf8_json_size_exactly() -> None:
    params = {"name": "é" * 10, "list": [1, [2, {"k": "~/"}]], "x": "quote\"back\\slash"}
    size = compact_size(params)
    assert check_param_sizes(params, 100, size) == []
    assert check_param_sizes(params, 100, size - 1) == [{
        "field": "", "reason": "params_too_large",
        "message": f"The parameters take {size} bytes as JSON, over the limit of {size - 1}."}]


def test_every_too_long_string_or_name_is_reported_with_its_field_in_document_order() -> None:
    params = {"title": "t" * 11, "ok": "fine", "rows": [{"sample": "s" * 12}, {"a/b~c": "v" * 11}], "k" * 11: 1}
    errors = check_param_sizes(params, max_string_length=10, max_total_bytes=10**6)
    assert [(e["field"], e["reason"]) for e in errors] == [
        ("/" + "k" * 11, "too_long"), ("/title", "too_long"), ("/rows/0/sample", "too_long"),
        ("/rows/1/a~1b~0c", "too_long")]
    assert "12 characters" in errors[2]["message"] and "limit of 10" in errors[2]["message"]


def test_a_huge_or_deeply_nested_set_is_checked_without_recursion_and_reports_a_bounded_list() -> None:
    deep: list = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert check_param_sizes({"deep": deep}, 10, 10**6) == []
    many = {f"p{i}": "x" * 50 for i in range(1000)}
    errors = check_param_sizes(many, max_string_length=10, max_total_bytes=1000)
    assert len(errors) == MAX_REPORTED + 1 and errors[-1]["reason"] == "params_too_large"
