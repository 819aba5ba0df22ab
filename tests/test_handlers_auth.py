"""Every HTTP verb of every Flow handler is authenticated and authorized (the check_auth idea of the JupyterLab
extension template, as a test): a handler added without the decorators fails the suite."""
from __future__ import annotations

import ast
from pathlib import Path

import flow_jupyter.api

VERBS = {"get", "head", "post", "put", "patch", "delete", "options"}
API_DIR = Path(flow_jupyter.api.__file__).parent


def _decorator_names(func: ast.AsyncFunctionDef | ast.FunctionDef) -> set[str]:
    return {ast.unparse(d).split("(")[0] for d in func.decorator_list}


def test_every_handler_verb_is_authenticated_and_authorized() -> None:
    unguarded = []
    verbs_seen = 0
    for module in sorted(API_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in VERBS:
                    verbs_seen += 1
                    names = _decorator_names(item)
                    if not {"web.authenticated", "authorized"} <= names:
                        unguarded.append(f"{module.name}:{node.name}.{item.name} has {sorted(names)}")
    assert verbs_seen > 0
    assert unguarded == []
