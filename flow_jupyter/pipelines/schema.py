"""The one interpreter of a pipeline's ``nextflow_schema.json``: loading, the form model, and parameter validation.

A schema is untrusted input from a git repository, so :func:`load_schema` checks it once (size, JSON, draft, local
``$ref`` targets and cycles, the draft's meta-schema) and everything after it can assume a sane dict. Parameters
are untrusted input from users: :func:`validate_params` only reads them and turns every problem into an error
entry; values are never interpreted, so quotes, ``$(...)`` or ``${...}`` stay plain data.

nf-core conventions understood here: groups in ``definitions`` (draft-07) or ``$defs`` (2020-12) joined by ``allOf``,
``hidden``, ``fa_icon``, ``help_text``, ``errorMessage``, ``mimetype``, ``exists``, ``schema`` (the sample-sheet
schema) and the path formats ``file-path``, ``directory-path``, ``path`` and ``file-path-pattern``. Pipelines
without a schema get a form model from their configuration's parameter defaults (:func:`form_model_from_params`;
the configuration itself is read by nfconfig.py).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from ..errors import FlowError
from . import ecma

MAX_SCHEMA_BYTES = 2 * 1024 * 1024
"""Real schemas are below 150 kB (nf-core/eager, the largest we know, is 127 kB)."""

MAX_SCHEMA_DEPTH = 64
"""Real schemas nest about 6 levels; a limit keeps every walker (ours and jsonschema's) far from Python's stack."""

DRAFT_07 = "draft-07"
DRAFT_2020_12 = "2020-12"
_DRAFTS = {
    "json-schema.org/draft-07/schema": DRAFT_07,
    "json-schema.org/draft/2020-12/schema": DRAFT_2020_12,
}
_VALIDATORS: dict[str, type[Validator]] = {  # patterns are ECMA-262, as JSON Schema says (see ecma.py)
    DRAFT_07: ecma.ecma_validator(Draft7Validator),
    DRAFT_2020_12: ecma.ecma_validator(Draft202012Validator),
}

WIDGETS = frozenset({"text", "textarea", "number", "integer", "checkbox", "select", "file", "directory", "path",
                     "glob", "uri", "json"})
"""Every widget kind a form field may have; UIs map each to one input control."""

FORMAT_WIDGETS = {"file-path": "file", "directory-path": "directory", "path": "path", "file-path-pattern": "glob",
                  "uri": "uri"}
PATH_FORMATS = frozenset({"file-path", "directory-path", "path", "file-path-pattern"})
"""nf-core formats whose value is a location: these may name a Flow DataFile instead of a path."""

_TYPE_WIDGETS = {"boolean": "checkbox", "integer": "integer", "number": "number", "string": "text",
                 "object": "json", "array": "json", "null": "json"}

OTHER_GROUP_ID = "other_parameters"
OTHER_GROUP_TITLE = "Other parameters"

DATAFILE_URI = re.compile(r"flow://datafile/([1-9][0-9]{0,17})")
"""A DataFile named in a string parameter or a sample-sheet cell: ``flow://datafile/<id>``."""

_EXPRESSION = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
"""``${params.outdir}/x`` or ``$projectDir/x``: a default Nextflow computes, not a literal value."""


# --- loading --------------------------------------------------------------------------------------------------

def load_schema(text_or_bytes: str | bytes, *, name: str = "nextflow_schema.json",
                max_bytes: int = MAX_SCHEMA_BYTES) -> dict[str, Any]:
    """Parse and check a schema file, so nothing later has to cope with a broken one.

    Raises FlowError 413 ``schema_too_large`` or 400 ``invalid_schema`` (the file's name in message and field).
    The returned dict is the parsed JSON, unchanged: ``$ref`` stays in place for jsonschema to follow.
    """
    size = len(text_or_bytes) if isinstance(text_or_bytes, bytes) else len(text_or_bytes.encode("utf-8", "replace"))
    if size > max_bytes:
        raise FlowError(413, "schema_too_large", f"{name} is {size} bytes; the limit is {max_bytes} bytes.", name)
    if isinstance(text_or_bytes, bytes):
        try:
            text = text_or_bytes.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _invalid(name, "is not UTF-8 text") from None
    else:
        text = text_or_bytes
    try:
        schema = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _invalid(name, f"is not valid JSON ({shorten(str(exc), 200)})") from None
    if not isinstance(schema, dict):
        raise _invalid(name, "must contain a JSON object")
    _check_depth(schema, name)
    draft = schema_draft(schema, name=name)
    _check_refs(schema, name)
    try:
        _VALIDATORS[draft].check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise _invalid(name, f"is not a valid {draft} JSON schema at {where}: {shorten(exc.message, 200)}") from None
    return schema


def schema_draft(schema: dict[str, Any], *, name: str = "nextflow_schema.json") -> str:
    """``draft-07`` or ``2020-12`` from ``$schema``; without one, ``$defs`` means 2020-12 (nf-schema's style)."""
    declared = schema.get("$schema")
    if declared is None:
        return DRAFT_2020_12 if "$defs" in schema else DRAFT_07
    if isinstance(declared, str):
        key = re.sub(r"^https?://", "", declared.strip()).rstrip("#").rstrip("/")
        if key in _DRAFTS:
            return _DRAFTS[key]
    raise _invalid(name, f"uses an unsupported JSON schema draft {shorten(repr(declared), 100)}; "
                         "supported are draft-07 and 2020-12")


def _invalid(name: str, what: str) -> FlowError:
    return FlowError(400, "invalid_schema", f"{name} {what}.", name)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _children(node: Any) -> Iterable[Any]:
    if isinstance(node, dict):
        return node.values()
    if isinstance(node, list):
        return node
    return ()


def _check_depth(schema: Any, name: str) -> None:
    stack = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise _invalid(name, f"nests deeper than {MAX_SCHEMA_DEPTH} levels")
        stack.extend((child, depth + 1) for child in _children(node) if isinstance(child, (dict, list)))


def _refs_in(node: Any) -> Iterator[str]:
    """Every ``$ref`` string under ``node`` (iteratively: a schema may be wide)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str):
                yield ref
        stack.extend(child for child in _children(current) if isinstance(child, (dict, list)))


def resolve_pointer(schema: dict[str, Any], ref: str) -> Any:
    """The target of a local ``$ref`` (``#/definitions/x``, ``#/$defs/x``); KeyError if there is none."""
    if not ref.startswith("#"):
        raise KeyError(ref)
    pointer = unquote(ref[1:])
    if pointer == "":
        return schema
    if not pointer.startswith("/"):
        raise KeyError(ref)  # a plain-name anchor (``#foo``): nf-core schemas never use them
    node: Any = schema
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(ref)
    return node


def _check_refs(schema: dict[str, Any], name: str) -> None:
    """Every ``$ref`` is local and resolves, and no chain of them loops back (a form cannot be infinite)."""
    refs = sorted(set(_refs_in(schema)))
    for ref in refs:
        try:
            resolve_pointer(schema, ref)
        except KeyError:
            raise _invalid(name, f"has a $ref {shorten(repr(ref), 120)} that is not a local reference to a "
                                 "part of the file") from None
    loop = _ref_cycle(schema, refs)
    if loop:
        raise _invalid(name, f"has a $ref cycle: {shorten(' -> '.join(loop), 300)}")


def _ref_cycle(schema: dict[str, Any], refs: list[str]) -> list[str] | None:
    """A chain of refs that comes back to itself, found by an iterative depth-first walk; None if there is none."""
    inside: dict[str, list[str]] = {}

    def targets(ref: str) -> Iterator[str]:
        if ref not in inside:
            inside[ref] = sorted(set(_refs_in(resolve_pointer(schema, ref))))
        return iter(inside[ref])

    done: set[str] = set()
    for start in refs:
        if start in done:
            continue
        path, pending = [start], [targets(start)]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                done.add(path.pop())
                pending.pop()
            elif following in path:
                return path[path.index(following):] + [following]
            elif following not in done:
                path.append(following)
                pending.append(targets(following))
    return None


# --- walking the groups ---------------------------------------------------------------------------------------

def _groups(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(id, group schema, ref) in form order: ``allOf`` order, then unreferenced groups; loose properties last."""
    ordered: list[tuple[str, dict[str, Any], str]] = []
    seen: set[int] = set()
    all_of = schema.get("allOf")
    for index, entry in enumerate(all_of if isinstance(all_of, list) else []):
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("$ref"), str):
            try:
                target = resolve_pointer(schema, entry["$ref"])
            except KeyError:
                continue  # load_schema rejects these; a hand-built dict just loses the group
            if isinstance(target, dict) and id(target) not in seen:
                group_id = entry["$ref"].rsplit("/", 1)[-1]
                ordered.append((group_id, target, entry["$ref"]))
                seen.add(id(target))
        elif isinstance(entry.get("properties"), dict):
            ordered.append((f"group_{index + 1}", entry, f"#/allOf/{index}"))
            seen.add(id(entry))
    for key in ("definitions", "$defs"):
        block = schema.get(key)
        if isinstance(block, dict):
            for group_id, group in block.items():
                if isinstance(group, dict) and id(group) not in seen:
                    ordered.append((group_id, group, f"#/{key}/{_escape(group_id)}"))
                    seen.add(id(group))
    return ordered


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def declared_params(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every declared parameter, grouped or loose, by name."""
    return _all_properties(schema)


def _all_properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every declared parameter, grouped or loose, by name."""
    found: dict[str, dict[str, Any]] = {}
    for _, group, _ in _groups(schema):
        found.update(properties_of(group))
    found.update(properties_of(schema))
    return found


def properties_of(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    props = node.get("properties")
    if not isinstance(props, dict):
        return {}
    return {name: prop for name, prop in props.items() if isinstance(prop, dict)}


# --- the form model ---------------------------------------------------------------------------------------------

def form_model(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON every UI renders from: groups of fields, each with its widget kind and nf-core annotations."""
    groups = []
    top_required = set(_string_list(schema.get("required")))
    for group_id, group, _ in _groups(schema):
        required = top_required | set(_string_list(group.get("required")))
        hidden_group = group.get("hidden") is True
        fields = [field_model(name, prop, required=name in required, hidden_group=hidden_group)
                  for name, prop in properties_of(group).items()]
        groups.append({
            "id": group_id,
            "title": _text(group.get("title")) or group_id,
            "description": _text(group.get("description")),
            "help_text": _text(group.get("help_text")),
            "fa_icon": _text(group.get("fa_icon")),
            "hidden": hidden_group,
            "fields": fields,
        })
    loose = properties_of(schema)
    if loose:
        groups.append({
            "id": OTHER_GROUP_ID, "title": OTHER_GROUP_TITLE, "description": None, "help_text": None,
            "fa_icon": None, "hidden": False,
            "fields": [field_model(name, prop, required=name in top_required) for name, prop in loose.items()],
        })
    return {
        "title": _text(schema.get("title")),
        "description": _text(schema.get("description")),
        "draft": schema_draft(schema),
        "groups": groups,
        "has_schema": True,
    }


def field_model(name: str, prop: dict[str, Any], *, required: bool = False,
                hidden_group: bool = False) -> dict[str, Any]:
    """One parameter as a form field. Core keys are always present; nf-core extras only when the schema has them."""
    types = types_of(prop)
    primary = next((t for t in types if t != "null"), types[0] if types else None)
    default = form_default(prop)
    hidden = prop.get("hidden") is True or hidden_group
    field: dict[str, Any] = {
        "name": name,
        "type": primary,
        "types": types,
        "widget": _widget(prop, types, primary),
        "default": default,
        "default_is_expression": is_expression(default),
        "required": required,
        "hidden": hidden,
        "advanced": hidden,
        "help": _text(prop.get("description")),
        "help_text": _text(prop.get("help_text")),
        "fa_icon": _text(prop.get("fa_icon")),
    }
    optional = {
        "title": "title", "format": "format", "pattern": "pattern", "minimum": "minimum", "maximum": "maximum",
        "exclusiveMinimum": "exclusive_minimum", "exclusiveMaximum": "exclusive_maximum",
        "minLength": "min_length", "maxLength": "max_length", "mimetype": "mimetype", "exists": "exists",
        "errorMessage": "error_message", "schema": "samplesheet_schema",
    }
    for key, out in optional.items():
        if key in prop:
            field[out] = prop[key]
    if isinstance(prop.get("enum"), list):
        field["choices"] = list(prop["enum"])  # mixed types kept as they are: the value sent must be the same
    constraints = {key: prop[key] for key in ("oneOf", "anyOf", "const") if key in prop}
    if constraints:
        field["constraints"] = constraints
    return field


def is_expression(value: Any) -> bool:
    """True for a default Nextflow evaluates (``${params.outdir}/pipeline_info``): shown as text, never checked."""
    return isinstance(value, str) and _EXPRESSION.search(value) is not None


def types_of(prop: dict[str, Any]) -> list[str]:
    declared = prop.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    found: list[str] = []
    for key in ("anyOf", "oneOf"):
        for branch in prop.get(key) or []:
            if isinstance(branch, dict):
                found.extend(t for t in types_of(branch) if t not in found)
    if not found and isinstance(prop.get("enum"), list):
        for value in prop["enum"]:
            kind = _json_type(value)
            if kind not in found:
                found.append(kind)
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _widget(prop: dict[str, Any], types: list[str], primary: str | None) -> str:
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return "select"
    fmt = prop.get("format")
    if isinstance(fmt, str) and fmt in FORMAT_WIDGETS and (not types or "string" in types):
        return FORMAT_WIDGETS[fmt]
    concrete = [t for t in types if t != "null"]
    if len(concrete) > 1 and "string" in concrete:
        return "text"  # e.g. nf-core's ``help``: true or a parameter name; text accepts both
    if primary == "string" and isinstance(prop.get("default"), str) and "\n" in prop["default"]:
        return "textarea"
    return _TYPE_WIDGETS.get(primary or "", "json")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _string_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# --- pipelines without a schema -------------------------------------------------------------------------------

def form_model_from_params(flat_params: dict[str, Any]) -> dict[str, Any]:
    """A form for a pipeline without ``nextflow_schema.json``: one field per param, typed by its default."""
    fields = []
    for name, default in flat_params.items():
        kind = None if default is None else _json_type(default)
        widget = "text" if kind in (None, "string") else _TYPE_WIDGETS.get(kind, "json")
        fields.append({
            "name": name, "type": kind, "types": [kind] if kind else [], "widget": widget, "default": default,
            "default_is_expression": is_expression(default), "required": False, "hidden": False,
            "advanced": False, "help": None, "help_text": None, "fa_icon": None,
        })
    return {
        "title": None, "description": None, "draft": None,
        "groups": [{"id": "parameters", "title": "Pipeline parameters", "description": None, "help_text": None,
                    "fa_icon": None, "hidden": False, "fields": fields}],
        "has_schema": False,
        "note": "This pipeline has no nextflow_schema.json: its parameters and their types come from the defaults "
                "in its configuration, so values are not checked beyond their type.",
    }


# --- DataFile references ----------------------------------------------------------------------------------------

def file_params(schema: dict[str, Any]) -> list[str]:
    """Parameters whose value is a location (file, directory, path, glob): the ones that may name a DataFile."""
    return [name for name, prop in _all_properties(schema).items() if _path_format(prop)]


def _path_format(prop: dict[str, Any]) -> bool:
    if prop.get("format") in PATH_FORMATS:
        return True
    return any(isinstance(b, dict) and b.get("format") in PATH_FORMATS
               for key in ("anyOf", "oneOf") for b in (prop.get(key) or []))


def datafile_id(value: Any) -> int | None:
    """The DataFile id in ``{"datafile": 12}`` or ``"flow://datafile/12"``; None if the value names none."""
    if isinstance(value, dict) and set(value) == {"datafile"}:
        ident = value["datafile"]
        if isinstance(ident, int) and not isinstance(ident, bool) and 0 < ident < 2**63:
            return ident
        return None
    if isinstance(value, str):
        match = DATAFILE_URI.fullmatch(value)
        if match:
            return int(match.group(1))
    return None


def _looks_like_datafile(value: Any) -> bool:
    return (isinstance(value, dict) and "datafile" in value) or (
        isinstance(value, str) and value.startswith("flow://"))


def datafile_references(schema: dict[str, Any], params: dict[str, Any]) -> dict[str, int]:
    """param name -> DataFile id for file-typed params naming one; the server resolves them after a permission check."""
    if not isinstance(params, dict):
        return {}
    refs: dict[str, int] = {}
    for name in file_params(schema):
        ident = datafile_id(params.get(name))
        if ident is not None:
            refs[name] = ident
    return refs


# --- validation -----------------------------------------------------------------------------------------------

def format_checker() -> FormatChecker:
    """jsonschema's checkers plus nf-core's path formats, which accept any string here; ``regex`` is ECMA-262.

    Whether a path exists is the server's question (it resolves DataFiles and checks permissions first), so
    ``format`` only says "a string" and the ``exists`` keyword is left to the server.
    """
    checker = ecma.format_checker()
    for name in PATH_FORMATS:
        checker.checks(name)(_any_string)
    return checker


def _any_string(_value: Any) -> bool:
    return True


def validator_for(schema: dict[str, Any]) -> Validator:
    """The jsonschema validator of the schema's draft, with our format checker."""
    return _VALIDATORS[schema_draft(schema)](schema, format_checker=format_checker())


def validate_params(schema: dict[str, Any], params: Any, *,
                    resolve_datafile: Callable[[int], str | None] | None = None,
                    ignore_params: Iterable[str] = (), given: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every problem with ``params`` as ``{"field": "/name", "reason", "message"}``; never raises for bad params.

    ``params`` is only read. Rules beyond plain JSON Schema (nf-core behaviour):

    * every group in ``definitions``/``$defs`` is enforced (joined by ``allOf``), also one ``allOf`` forgot;
    * a name the schema does not declare is an ``unknown_parameter`` unless the schema sets
      ``additionalProperties`` to true or a schema (``ignore_params`` are exempt, like nf-schema's ignoreParams);
    * a required parameter with a schema default is satisfied: Nextflow's config supplies it, and so is one named
      in ``given`` (the caller took it out of ``params`` after reporting its own error for it);
    * a value is checked even when it equals the schema's default (nf-schema does the same; a default the schema
      contradicts is reported at registration by :func:`default_problems`), except an expression default
      (``${params.outdir}/x``), which is Nextflow's to evaluate;
    * a file-typed param may name a DataFile (``{"datafile": id}`` or ``flow://datafile/<id>``): with
      ``resolve_datafile`` the resolved path is checked (None: ``no_such_datafile``, no hint why), without it the
      reference is accepted as it is and the server checks it when it resolves it.
    """
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        return [_error("", "type", "Parameters must be a JSON object with string names.")]
    props = _all_properties(schema)
    errors: list[dict[str, Any]] = []
    instance: dict[str, Any] = {}
    given = set(given)  # taken out of the checked instance, but given all the same
    path_params = set(file_params(schema))
    for name, value in params.items():
        prop = props.get(name)
        if prop is not None and _is_default(prop, value):
            given.add(name)
            continue
        if name in path_params and _looks_like_datafile(value):
            ident = datafile_id(value)
            given.add(name)
            if ident is None:
                errors.append(_error(_pointer([name]), "invalid_datafile_reference",
                                     'A data file is named as {"datafile": <id>} or flow://datafile/<id>.'))
            elif resolve_datafile is not None:
                path = resolve_datafile(ident)
                if path is None:
                    errors.append(_error(_pointer([name]), "no_such_datafile", "No such data file."))
                else:
                    instance[name] = path
            continue
        instance[name] = value
    errors.extend(_unknown_params(schema, props, params, set(ignore_params)))
    with_defaults = {name for name, prop in props.items() if prop.get("default") is not None}
    for error in _schema_errors(_validation_schema(schema), instance, props):
        if error["reason"] in ("required", "dependent_required") and \
                error["field"][1:] in (given | with_defaults):
            continue
        errors.append(error)
    return _dedupe(errors)


def _is_default(prop: dict[str, Any], value: Any) -> bool:
    """An expression default sent back unchanged (``${params.outdir}/pipeline_info``) is Nextflow's to evaluate,
    so it is passed on unchecked; any other value, the default included, is validated."""
    default = prop.get("default")
    return is_expression(default) and value == default


def default_problems(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameters whose schema default contradicts their own type, enum or pattern (nf-core/eager declares integers
    with defaults like ``"0"``; a boolean with the string ``"false"`` is true in Groovy). Reported as warnings on the
    pipeline version; the form model offers the corrected value (:func:`form_default`) or none."""
    problems = []
    for name, prop in _all_properties(schema).items():
        if "default" not in prop or prop["default"] is None or is_expression(prop["default"]):
            continue
        errors = _prop_errors(prop, prop["default"])
        if errors:
            fixed = form_default(prop)
            hint = f" The form offers {_show(fixed)} instead." if fixed is not None else " The form offers none."
            problems.append(_error(_pointer([name]), "bad_default",
                                   f"The schema's default {_show(prop['default'])} is not valid for this parameter "
                                   f"({errors[0]['message'].rstrip('.')}).{hint}"))
    return problems


def _prop_errors(prop: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    local = {key: item for key, item in prop.items() if key not in ("default", "$ref")}
    try:
        checker = _VALIDATORS[DRAFT_2020_12](local, format_checker=format_checker())
        return [_error("", *describe_error(e)[1:]) for e in checker.iter_errors(value)]
    except (Unresolvable, re.error, RecursionError, ValueError, TypeError):
        return []


def _coerce(value: Any, kind: str | None) -> Any:
    """A string default written for another type (``"0"``, ``"false"``) as that type; None when it is no such."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "integer" and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if kind == "number" and re.fullmatch(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", text):
        number = float(text)
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    return None


def form_default(prop: dict[str, Any]) -> Any:
    """The default a form presents: the schema's when it is valid (or an expression), else the same value in the
    declared type when it converts and is then valid, else None (never a mistyped default)."""
    default = prop.get("default")
    if default is None or is_expression(default) or not _prop_errors(prop, default):
        return default
    for kind in types_of(prop):
        fixed = _coerce(default, kind)
        if fixed is not None and not _prop_errors(prop, fixed):
            return fixed
    return None


def _unknown_params(schema: dict[str, Any], props: dict[str, Any], params: dict[str, Any],
                    ignore: set[str]) -> list[dict[str, Any]]:
    extra = schema.get("additionalProperties")
    if extra is True or isinstance(extra, dict):
        return []
    return [_error(_pointer([name]), "unknown_parameter", f"Unknown parameter {shorten(repr(name), 80)}: the "
                   "pipeline's schema does not declare it.")
            for name in params if name not in props and name not in ignore]


def _validation_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy whose ``allOf`` covers every group, and whose top-level ``additionalProperties: false`` (which in
    draft-07 would reject every grouped parameter) is replaced by our own unknown-parameter check."""
    combined = dict(schema)
    all_of = list(schema.get("allOf") or []) if isinstance(schema.get("allOf"), list) else []
    referenced = {entry.get("$ref") for entry in all_of if isinstance(entry, dict)}
    for _, _, ref in _groups(schema):
        if ref not in referenced and not ref.startswith("#/allOf/"):
            all_of.append({"$ref": ref})
    if all_of:
        combined["allOf"] = all_of
    if combined.get("additionalProperties") is False:
        del combined["additionalProperties"]
    return combined


def _schema_errors(schema: dict[str, Any], instance: Any, props: dict[str, Any]) -> list[dict[str, Any]]:
    """jsonschema's errors as our dicts; the field's ``errorMessage`` wins over jsonschema's wording."""
    out: list[dict[str, Any]] = []
    try:
        for error in validator_for(schema).iter_errors(instance):
            path, reason, message = describe_error(error)
            prop = props.get(path[0]) if path and isinstance(path[0], str) else None
            custom = prop.get("errorMessage") if prop is not None else None
            out.append(_error(_pointer(path), reason, custom if isinstance(custom, str) else message))
    except (Unresolvable, re.error, RecursionError, ValueError, TypeError) as exc:
        out.append(_error("", "unvalidatable", f"The parameters could not be checked against the schema: "
                          f"{shorten(str(exc), 200)}"))
    return out


def describe_error(error: ValidationError) -> tuple[list[Any], str, str]:
    """(path, reason, message) for one jsonschema error, in words that do not echo a whole (maybe huge) value.

    ``required`` and ``dependentRequired`` errors point at the missing name rather than at its parent.
    """
    path = list(error.absolute_path)
    keyword = str(error.validator)
    value = error.validator_value
    instance = error.instance
    if keyword == "required" and isinstance(instance, dict):
        for name in _string_list(value):
            if name not in instance and error.message == f"{name!r} is a required property":
                return path + [name], "required", f"{name!r} is required."
    if keyword in ("dependentRequired", "dependencies") and isinstance(instance, dict) and isinstance(value, dict):
        for trigger, needs in value.items():
            for need in (needs if isinstance(needs, list) else []):
                if trigger in instance and need not in instance and error.message.startswith(repr(need)):
                    return path + [need], "dependent_required", f"{need!r} is required when {trigger!r} is given."
    return path, _snake(keyword), _message(error, keyword, value)


def _message(error: ValidationError, keyword: str, value: Any) -> str:
    if keyword == "type":
        wanted = value if isinstance(value, list) else [value]
        return f"Must be of type {' or '.join(map(str, wanted))}, not {_json_type(error.instance)}."
    if keyword == "enum":
        return f"Must be one of: {shorten(', '.join(_show(v) for v in value), 500)}."
    if keyword == "const":
        return f"Must be {_show(value)}."
    if keyword == "pattern":
        return f"Must match the pattern {shorten(str(value), 300)}."
    if keyword == "format":
        return f"Is not a valid {value}."
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[keyword]
        return f"Must be {op} {value}."
    if keyword == "minLength":
        return "Must not be empty." if value == 1 else f"Must be at least {value} characters long."
    if keyword == "maxLength":
        return f"Must be at most {value} characters long."
    if keyword in ("anyOf", "oneOf"):
        reasons = sorted({_message(sub, str(sub.validator), sub.validator_value) for sub in error.context or []})
        if keyword == "oneOf" and not reasons:
            return "Must match exactly one of the allowed forms, but matches more than one."
        return shorten("Must satisfy one of: " + " / ".join(r.rstrip(".") for r in reasons) + ".", 600) \
            if reasons else "Does not match any of the allowed forms."
    if keyword in ("dependentRequired", "dependencies", "required"):
        return error.message
    return shorten(error.message, 300)


def _show(value: Any) -> str:
    return shorten(json.dumps(value), 80)


def _snake(keyword: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", keyword).lower()


def _pointer(path: Iterable[Any]) -> str:
    return "".join("/" + _escape(str(part)) for part in path)


def _error(field: str, reason: str, message: str) -> dict[str, Any]:
    return {"field": field, "reason": reason, "message": message}


def _dedupe(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for error in errors:
        key = (error["field"], error["message"])  # an errorMessage can stand for several failed keywords
        if key not in seen:
            seen.add(key)
            unique.append(error)
    return unique
