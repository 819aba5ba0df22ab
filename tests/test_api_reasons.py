"""The catalogue of error reasons cannot drift: every ``reason`` the server's code can answer with is in
``flow_jupyter.errors.REASONS`` and in the "Error reasons" table of docs/api.md, with the same meaning, and neither
lists a reason the code never sends. A bad request without a reason of its own says ``bad_request``.

The reasons are read from the source (no server needed): the second argument of ``FlowError(...)``, every
``reason=`` keyword, every ``reason = ...`` assignment and every default of a ``reason`` parameter — string constants,
also as the branches of a conditional — plus the reasons errors.py gives to errors Flow did not raise itself.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import flow_jupyter
from flow_jupyter import errors

PACKAGE = Path(flow_jupyter.__file__).resolve().parent
API_DOC = PACKAGE.parent / "docs" / "api.md"
#: The notebook side (client, widgets, magics) has its own FlowError; its reasons never come from the server.
NOT_SERVER = ("client", "widgets", "magics.py")
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$")


def _strings(node: ast.AST | None) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _reasons_in(tree: ast.AST) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        values: list[str] = []
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name == "FlowError" and len(node.args) >= 2:
                values += _strings(node.args[1])
            values += [text for kw in node.keywords if kw.arg == "reason" for text in _strings(kw.value)]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "reason" for t in node.targets):
            values += _strings(node.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positional = node.args.posonlyargs + node.args.args
            defaults = [None] * (len(positional) - len(node.args.defaults)) + list(node.args.defaults)
            pairs = list(zip(positional, defaults)) + list(zip(node.args.kwonlyargs, node.args.kw_defaults))
            values += [text for arg, default in pairs if arg.arg == "reason" for text in _strings(default)]
        found += [(value, getattr(node, "lineno", 0)) for value in values]
    return found


def reasons_in_code() -> dict[str, list[str]]:
    """Every reason the server's modules can send → where."""
    where: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in NOT_SERVER:
            continue
        for reason, line in _reasons_in(ast.parse(path.read_text(encoding="utf-8"))):
            where.setdefault(reason, []).append(f"{relative}:{line}")
    for reason in [*errors.STATUS_REASONS.values(), errors.OTHER_STATUS_REASON, errors.BAD_REQUEST]:
        where.setdefault(reason, []).append("errors.py (by status)")
    return where


def documented() -> dict[str, tuple[str, str]]:
    """The "Error reasons" table of docs/api.md: reason → (status, meaning)."""
    section = API_DOC.read_text(encoding="utf-8").split("\n## Error reasons\n", 1)[1].split("\n## ", 1)[0]
    rows = [ROW.match(line.strip()) for line in section.splitlines()]
    return {row[1]: (row[2].strip(), row[3].strip()) for row in rows if row}


def test_every_reason_the_server_can_send_is_in_the_catalogue() -> None:
    missing = {reason: sites for reason, sites in reasons_in_code().items() if reason not in errors.REASONS}
    assert not missing, f"add these to errors.REASONS and to docs/api.md: {missing}"


def test_the_catalogue_names_no_reason_the_server_never_sends() -> None:
    assert set(errors.REASONS) - set(reasons_in_code()) == set()


def test_the_docs_table_is_the_catalogue_with_its_meanings() -> None:
    table = documented()
    assert set(table) == set(errors.REASONS)
    assert {reason: meaning for reason, (_status, meaning) in table.items()} == errors.REASONS
    assert all(re.fullmatch(r"\d{3}( or \d{3})*|any other", status) for status, _meaning in table.values()), table


def test_a_bad_request_without_a_reason_of_its_own_says_bad_request() -> None:
    assert errors.bad_request("Nope.").reason == errors.BAD_REQUEST == "bad_request"
    assert errors.status_reason(400) == "bad_request" and errors.status_reason(418) == errors.OTHER_STATUS_REASON


async def test_the_server_answers_bad_query_arguments_with_catalogued_reasons(api) -> None:
    alice = api.as_user("alice")
    not_a_number = await alice.get("files", project="seven")
    assert (not_a_number.code, not_a_number.error["reason"], not_a_number.error["field"]) == (400, "bad_request",
                                                                                               "project")
    unknown_status = await alice.get("executions", status="COMPLETED")
    assert (unknown_status.code, unknown_status.error["reason"]) == (400, "invalid_field")
    assert "succeeded" in unknown_status.error["message"]  # the message names the vocabulary
    bad_cursor = await alice.get("pipelines", after="not-a-cursor")
    assert (bad_cursor.code, bad_cursor.error["reason"]) == (400, "bad_cursor")
    for reply in (not_a_number, unknown_status, bad_cursor):
        assert reply.error["reason"] in errors.REASONS
