"""Size limits on launch parameters, checked before anything is stored or written to ``params.json``.

Free-text parameters are the one place a user can hand Flow an arbitrary amount of text that is then stored in the
database, written into the run directory and echoed by every view of the execution. The check is a pure function
over the parsed parameters (the launch path passes the FlowSettings limits), walked with an explicit stack so that
no shape of input, however nested, can make it recurse.
"""
from __future__ import annotations

import json
from typing import Any

#: At most this many "string too long" errors are listed: enough to fix a form, not a second copy of the body.
MAX_REPORTED = 20


def check_param_sizes(params: Any, max_string_length: int, max_total_bytes: int) -> list[dict[str, str]]:
    """Every size problem of ``params`` as ``{"field", "reason", "message"}`` (fields are JSON pointers relative
    to the parameters, ``""`` for the whole set, as `pipelines.schema.validate_params` reports them).

    A key or string value longer than ``max_string_length`` characters is ``too_long``; a parameter set whose
    compact UTF-8 JSON is larger than ``max_total_bytes`` is ``params_too_large``. Never raises for bad params.
    """
    errors: list[dict[str, str]] = []
    total = 0
    stack: list[tuple[Any, tuple]] = [(params, ())]
    while stack:
        value, path = stack.pop()
        total += _own_bytes(value)
        if isinstance(value, dict):
            children = []
            for key, item in value.items():
                text = key if isinstance(key, str) else str(key)
                total += _string_bytes(text)
                if len(text) > max_string_length:
                    _add(errors, _too_long(path + (text,), "name", len(text), max_string_length))
                children.append((item, path + (text,)))
            stack.extend(reversed(children))  # popped in document order, so errors are listed in that order
        elif isinstance(value, (list, tuple)):
            stack.extend((item, path + (index,)) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, str) and len(value) > max_string_length:
            _add(errors, _too_long(path, "value", len(value), max_string_length))
    if total > max_total_bytes:
        errors.append({"field": "", "reason": "params_too_large",
                       "message": f"The parameters take {total} bytes as JSON, over the limit of {max_total_bytes}."})
    return errors


def _own_bytes(value: Any) -> int:
    """Bytes ``value`` adds to compact JSON by itself: brackets and separators for containers, the text of a scalar
    (children and keys are counted as they are visited)."""
    if isinstance(value, dict):
        return 2 + max(len(value) - 1, 0) + len(value)  # {} + commas + colons
    if isinstance(value, (list, tuple)):
        return 2 + max(len(value) - 1, 0)
    if isinstance(value, str):
        return _string_bytes(value)
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return len(str(value))


def _string_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _too_long(path: tuple, what: str, length: int, limit: int) -> dict[str, str]:
    return {"field": _pointer(path), "reason": "too_long",
            "message": f"This {what} is {length} characters long, over the limit of {limit}."}


def _add(errors: list[dict[str, str]], error: dict[str, str]) -> None:
    if len(errors) < MAX_REPORTED:
        errors.append(error)


def _pointer(path: tuple) -> str:
    """RFC 6901 pointer, the form every other launch error uses."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
