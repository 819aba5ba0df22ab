"""Every HTTP verb of every Flow handler is authenticated and authorized (the check_auth idea of the JupyterLab
extension template, as a test): a handler added without the decorators fails the suite.

The only exceptions are listed in `UNAUTHENTICATED`, each with its reason. Such a verb must say so itself with
jupyter_server's ``@allow_unauthenticated`` (so it also answers when a site sets
``ServerApp.allow_unauthenticated_access = False``) and must carry neither of the other two decorators.
"""
from __future__ import annotations

import ast
from pathlib import Path

import flow_jupyter.api

VERBS = {"get", "head", "post", "put", "patch", "delete", "options"}
API_DIR = Path(flow_jupyter.api.__file__).parent

#: (module, handler class, verb) answered without credentials, and why. Keep it this short.
UNAUTHENTICATED: dict[tuple[str, str, str], str] = {
    ("uploads.py", "UploadsHandler", "options"):
        "tus capability discovery is a CORS preflight, which browsers send without credentials; it answers the "
        "Tus-* headers and Jupyter's CORS headers only",
    ("uploads.py", "UploadHandler", "options"):
        "the same preflight for an upload's URL (PATCH, DELETE); it looks nothing up, so it reveals no upload",
}


def _decorator_names(func: ast.AsyncFunctionDef | ast.FunctionDef) -> set[str]:
    return {ast.unparse(d).split("(")[0] for d in func.decorator_list}


def _verbs() -> list[tuple[tuple[str, str, str], set[str]]]:
    found = []
    for module in sorted(API_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in VERBS:
                    found.append(((module.name, node.name, item.name), _decorator_names(item)))
    return found


def test_every_handler_verb_is_authenticated_and_authorized() -> None:
    verbs = _verbs()
    unguarded = [f"{':'.join(key)} has {sorted(names)}" for key, names in verbs
                 if key not in UNAUTHENTICATED and not {"web.authenticated", "authorized"} <= names]
    assert len(verbs) > len(UNAUTHENTICATED)
    assert unguarded == []


def test_the_few_unauthenticated_verbs_say_so_and_nothing_else_is() -> None:
    verbs = dict(_verbs())

    for key in UNAUTHENTICATED:
        assert key in verbs, f"{key} is listed but no longer exists: remove it from the list"
        assert verbs[key] == {"allow_unauthenticated"}, f"{key} has {sorted(verbs[key])}"
    marked = {key for key, names in verbs.items() if "allow_unauthenticated" in names}
    assert marked == set(UNAUTHENTICATED)
