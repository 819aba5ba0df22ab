"""permissions.py is the one module that decides who sees and changes what.

A rule re-implemented elsewhere drifts: one copy learns about group admins, the other does not, and a route becomes
an existence oracle. So the code is read here: outside permissions.py (and identity.py, which builds actors), no
module compares anything with the caller's user id, reads their admin flag or group sets, or defines a visibility
filter or a ``require_*`` check of its own on a stored owner.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "flow_jupyter"
RULE_HOMES = {"permissions.py", "identity.py"}
ACTOR_FACTS = {"user_id", "is_admin", "group_ids", "admin_group_ids"}


def server_modules() -> list[Path]:
    """The server side: the client and widgets never see an actor."""
    skip = {"client", "widgets", "migrations"}
    return [path for path in PACKAGE.rglob("*.py")
            if path.name not in RULE_HOMES and not skip & set(path.relative_to(PACKAGE).parts)]


def actor_fact_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """``actor.is_admin`` and its group sets used in a decision (a comparison, a test, a boolean operation), and the
    caller's user id compared with an owner (``x.owner_id == actor.user_id``). Passing the id on as the owner of a
    new row, or refusing to share with oneself, decides nothing about rights."""
    found: dict[int, tuple[int, str]] = {}  # by node: a test inside a test is one use
    for node in ast.walk(tree):
        tested: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            tested = sides
            if any(ast.unparse(side).endswith("owner_id") for side in sides):
                found.update({id(side): (side.lineno, "actor.user_id") for side in sides if _is_actor(side, "user_id")})
        elif isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Assert)):
            tested = [node.test]
        elif isinstance(node, ast.BoolOp):
            tested = list(node.values)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            tested = [node.operand]
        for part in tested:
            for inner in ast.walk(part):
                if any(_is_actor(inner, fact) for fact in ACTOR_FACTS - {"user_id"}):
                    found[id(inner)] = (inner.lineno, f"actor.{inner.attr}")  # type: ignore[attr-defined]
    return sorted(found.values())


def _is_actor(node: ast.AST, fact: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == fact
            and isinstance(node.value, ast.Name) and node.value.id == "actor")


def visibility_definitions(tree: ast.AST) -> list[tuple[int, str]]:
    return [(node.lineno, node.name) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (node.name.startswith("visible_") or node.name.endswith("_power"))]


def test_no_module_but_permissions_decides_on_the_callers_rights():
    offenders = []
    for path in server_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(PACKAGE.parent)
        offenders += [f"{where}:{line}: decides on {what}" for line, what in actor_fact_uses(tree)]
        offenders += [f"{where}:{line}: defines {name}" for line, name in visibility_definitions(tree)]
    assert offenders == [], "\n".join(offenders)


def test_the_check_itself_sees_a_reimplemented_rule(tmp_path):
    """The scan is not vacuous: the kind of code that used to live in the services is caught."""
    tree = ast.parse("def _own_job(session, actor, job):\n"
                     "    if job.owner_id != actor.user_id and not actor.is_admin:\n"
                     "        raise LookupError\n"
                     "def visible_executions(actor):\n"
                     "    return actor.is_admin\n")
    assert [what for _, what in actor_fact_uses(tree)] == ["actor.is_admin", "actor.user_id"]
    assert [name for _, name in visibility_definitions(tree)] == ["visible_executions"]
