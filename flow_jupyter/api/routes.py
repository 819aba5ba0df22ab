"""What a route of the table says about itself: the verbs its handler implements and its path as an OpenAPI template.

Shared by the OpenAPI document, the ``Allow`` header of a 405 and the contract tests, so the three cannot disagree.
Pure introspection of handler classes: nothing here imports a handler module.
"""
from __future__ import annotations

import inspect
import re

API_ROOT = "/flow/api"
VERBS = ("get", "head", "post", "put", "patch", "delete", "options")


def implemented_verbs(handler: type) -> list[str]:
    """The HTTP verbs Flow code implements on ``handler`` (tornado's 405 stubs and Jupyter's CORS preflight
    ``options`` do not count: they answer the same on every route)."""
    found = []
    for verb in VERBS:
        method = getattr(handler, verb, None)
        if method is not None and inspect.unwrap(method).__module__.startswith("flow_jupyter."):
            found.append(verb)
    return found


def allowed_methods(handler: type) -> list[str]:
    """What an ``Allow`` header lists for ``handler``: its verbs, plus OPTIONS, which every API handler answers."""
    verbs = [verb.upper() for verb in implemented_verbs(handler)]
    return verbs if "OPTIONS" in verbs else [*verbs, "OPTIONS"]


def split_pattern(pattern: str) -> list[str | tuple[str]]:
    """A tornado route regex as literal text and capture groups: ``/a/(\\d+)/b\\.json`` → ``["/a/", ("\\d+",),
    "/b.json"]``. Only what the route table uses is understood (escaped literals, plain non-nested groups)."""
    parts: list[str | tuple[str]] = []
    literal, index = "", 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            literal += pattern[index + 1]
            index += 2
        elif char == "(":
            end, depth, inner = index + 1, 1, index + 1
            while depth:
                if pattern[end] == "\\":
                    end += 2
                    continue
                depth += {"(": 1, ")": -1}.get(pattern[end], 0)
                end += 1
            group = pattern[inner:end - 1]
            if group.startswith("?") or "(" in group.replace("\\(", ""):
                raise ValueError(f"route {pattern!r}: only plain, non-nested capture groups are supported")
            if literal:
                parts.append(literal)
                literal = ""
            parts.append((group,))
            index = end
        elif char in ".*+?[]{}|^$":
            raise ValueError(f"route {pattern!r}: unescaped {char!r} outside a group")
        else:
            literal += char
            index += 1
    if literal:
        parts.append(literal)
    return parts


def path_parameters(handler: type) -> list[str]:
    """Names of the path arguments, from the signature of the handler's verbs (all of them take the same)."""
    verbs = implemented_verbs(handler)
    if not verbs:
        return []
    signature = inspect.signature(getattr(handler, verbs[0]))
    return [name for name, parameter in signature.parameters.items()
            if name != "self" and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)]


def path_template(pattern: str, handler: type) -> tuple[str, list[tuple[str, str]]]:
    """``/flow/api/projects/(\\d+)/samples`` → ``("/projects/{project_id}/samples", [("project_id", "\\d+")])``:
    the path relative to the API root, with each group named after the handler's argument for it."""
    if not pattern.startswith(API_ROOT + "/"):
        raise ValueError(f"route {pattern!r} is not under {API_ROOT}/")
    names = path_parameters(handler)
    template = ""
    params: list[tuple[str, str]] = []
    for part in split_pattern(pattern.removeprefix(API_ROOT)):
        if isinstance(part, str):
            template += part
            continue
        if len(params) >= len(names):
            raise ValueError(f"route {pattern!r} has more groups than {handler.__name__} takes arguments")
        name = names[len(params)]
        params.append((name, part[0]))
        template += "{" + name + "}"
    if len(params) != len(names):
        raise ValueError(f"route {pattern!r} has fewer groups than {handler.__name__} takes arguments")
    return template, params


def is_integer_group(regex: str) -> bool:
    return re.fullmatch(r"\\d\+", regex) is not None
