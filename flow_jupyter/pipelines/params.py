"""The one pass over a launch's parameters: validate, resolve data-file references, confine paths.

Every way parameters reach Nextflow goes through :func:`check_launch`: ``POST …/validate`` (the form), a launch and
a resume when they are stored (as the caller), and the execution manager when it writes ``params.json`` (again, as
the owner, in the real run directory: rights may have changed, and symbolic links can only be judged once the
directory exists). A new code path cannot skip a rule because there is no other function that yields launchable
parameters.

In one walk over every value (nested arrays and objects included):

* a data-file reference (``{"datafile": id}`` / ``flow://datafile/<id>``) becomes the stored file's path if the
  caller may view it, else ``no_such_datafile`` (no hint whether it exists);
* every other string is judged by :mod:`.paths` (path-typed parameters strictly, output parameters pinned);
* sizes are bounded first (``max_param_string_length``, ``max_params_bytes``; pipelines/limits.py).

Then the resolved values are validated against the schema as nf-schema does (unknown parameters are warnings unless
the server or the pipeline is strict; ``exists: true`` is checked), and every sample sheet given as a data file is
read and its path cells resolved under the same rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from .. import permissions
from ..config import FlowSettings
from ..data.lookup import valid_id
from ..data.storage import Storage
from ..db.models import PipelineVersion
from ..errors import FlowError
from ..identity import Actor
from . import nfconfig, registry, samplesheet, schema
from .limits import check_param_sizes
from .paths import PathPolicy, check_path, host_path_exists, is_glob

Error = dict[str, Any]


@dataclass
class CheckedParams:
    """What a launch may hand to Nextflow, and what the user should be told."""

    params: dict[str, Any]
    """As the user gave them (stored on the execution; references stay references)."""
    resolved: dict[str, Any]
    """References replaced by paths: what params.json gets, except the sheets (see ``sheets``)."""
    warnings: list[Error] = field(default_factory=list)
    sheets: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    """Sheet parameter → (sheet file name, rows with every path cell resolved)."""


@dataclass
class _Walk:
    errors: list[Error] = field(default_factory=list)
    refs: dict[str, int] = field(default_factory=dict)  # pointer -> data file id


def _error(pointer: str, reason: str, message: str) -> Error:
    return {"field": pointer, "reason": reason, "message": message}


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def output_param(name: str, settings: FlowSettings) -> bool:
    return name in settings.output_params or name.endswith("_outdir")


def datafile_path(session: Session, actor: Actor, storage: Storage, datafile_id: int) -> str | None:
    """The stored path of a data file the actor may view; None for any other id (missing or not theirs alike)."""
    try:
        datafile = permissions.require_datafile(session, actor, valid_id(datafile_id, "data file"), "view")
    except FlowError:
        return None
    return str(storage.resolve(datafile.storage_path))


def _walk(params: dict[str, Any], path_params: set[str], policy: PathPolicy, settings: FlowSettings) -> _Walk:
    """Every reference and every string of ``params``, iteratively (a body may nest deep)."""
    found = _Walk()
    stack: list[tuple[str, Any, str]] = [(name, value, "/" + _escape(name)) for name, value in params.items()]
    while stack:
        name, value, pointer = stack.pop()
        if schema.datafile_id(value) is not None:
            found.refs[pointer] = schema.datafile_id(value)  # type: ignore[assignment]
        elif _looks_like_reference(value):
            found.errors.append(_error(pointer, "invalid_datafile_reference",
                                       'A data file is named as {"datafile": <id>} or flow://datafile/<id>.'))
        elif isinstance(value, str):
            refusal = check_path(value, policy, path_typed=name in path_params,
                                 output=output_param(name, settings) and pointer == "/" + _escape(name))
            if refusal is not None:
                found.errors.append(_error(pointer, refusal.reason, refusal.message))
        elif isinstance(value, dict):
            stack.extend((name, item, f"{pointer}/{_escape(str(key))}") for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((name, item, f"{pointer}/{index}") for index, item in enumerate(value))
    return found


def _looks_like_reference(value: Any) -> bool:
    return (isinstance(value, dict) and "datafile" in value) or (
        isinstance(value, str) and value.startswith("flow://"))


def _replace(params: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """A copy of ``params`` with the values at ``paths``' pointers replaced (iteratively)."""
    def copy(value: Any, pointer: str) -> Any:
        if pointer in paths:
            return paths[pointer]
        if isinstance(value, dict):
            return {key: copy(item, f"{pointer}/{_escape(str(key))}") for key, item in value.items()}
        if isinstance(value, list):
            return [copy(item, f"{pointer}/{index}") for index, item in enumerate(value)]
        return value

    # Depth is bounded by the request parser (api/base.py), far below Python's stack.
    return {name: copy(value, "/" + _escape(name)) for name, value in params.items()}


def _exists_errors(declared: dict[str, dict[str, Any]], resolved: dict[str, Any], policy: PathPolicy) -> list[Error]:
    """``exists: true`` on a path parameter: the file (a data file's stored bytes, or an allowed host path) is there."""
    errors = []
    for name, prop in declared.items():
        value = resolved.get(name)
        if prop.get("exists") is not True or not isinstance(value, str) or value == "" or is_glob(value):
            continue
        if host_path_exists(value, policy) is False:
            errors.append(_error("/" + _escape(name), "does_not_exist", "The file or directory does not exist."))
    return errors


def _unknown(version: PipelineVersion, params: dict[str, Any], config: nfconfig.ConfigParams) -> list[Error]:
    """Names the pipeline neither declares nor defines nor tells nf-schema to ignore."""
    if version.schema is not None:
        extra = version.schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            return []
        declared = set(schema.declared_params(version.schema))
    else:
        declared = set(version.config_params or {})
    return [_error("/" + _escape(name), "unknown_parameter",
                   f"The pipeline does not declare a parameter {schema.shorten(repr(name), 80)}; it is passed on as "
                   "given.")
            for name in params if name not in declared and not config.knows(name)]


def _default_outputs(version: PipelineVersion, params: dict[str, Any], policy: PathPolicy,
                     settings: FlowSettings) -> list[Error]:
    """Output parameters left to their default still write somewhere: the pipeline's own default (a literal path in
    its schema or config) is held to the same rule, so a link planted where it points is no way out either."""
    declared = schema.declared_params(version.schema) if version.schema is not None else {}
    defaults = {**(version.config_params or {}), **{n: p.get("default") for n, p in declared.items()}}
    errors = []
    for name, default in defaults.items():
        if name in params or not output_param(name, settings) or not isinstance(default, str) or \
                schema.is_expression(default):
            continue
        refusal = check_path(default, policy, path_typed=True, output=True)
        if refusal is not None:
            errors.append(_error("/" + _escape(name), refusal.reason, f"The pipeline's default {default!r}: "
                                 f"{refusal.message} Give a value for it."))
    return errors


def _strict(settings: FlowSettings, config: nfconfig.ConfigParams) -> bool:
    return bool(settings.strict_params) or bool(config.fail_unrecognised)


def _sheet_rows(session: Session, actor: Actor, storage: Storage, version: PipelineVersion,
                datafile_id: int, pointer: str) -> tuple[str, list[dict[str, Any]]]:
    datafile = permissions.require_datafile(session, actor, valid_id(datafile_id, "data file", pointer), "view")
    if datafile.size > samplesheet.MAX_SAMPLESHEET_BYTES:
        raise FlowError(413, "samplesheet_too_large", f"{datafile.filename} is too large for a sample sheet.",
                        pointer)
    data = storage.resolve(datafile.storage_path).read_bytes()
    return datafile.filename, samplesheet.read_samplesheet(data, datafile.filename, schema=version.samplesheet_schema)


def _exists_columns(sheet_schema: dict[str, Any]) -> list[str]:
    items = sheet_schema.get("items")
    if not isinstance(items, dict):
        items = {}
    if isinstance(items.get("$ref"), str):
        try:
            items = schema.resolve_pointer(sheet_schema, items["$ref"])
        except KeyError:
            items = {}
    return [name for name, prop in schema.properties_of(items).items() if prop.get("exists") is True]


def cell_resolver(session: Session, actor: Actor, storage: Storage, policy: PathPolicy):
    """A sheet's path cell → what the pipeline gets: a data file's path, or a path the policy allows; else None."""
    def resolve(value: str) -> str | None:
        ident = schema.datafile_id(value)
        if ident is not None:
            return datafile_path(session, actor, storage, ident)
        if _looks_like_reference(value):
            return None
        return value if check_path(value, policy, path_typed=True) is None else None

    return resolve


def check_sheet_rows(session: Session, actor: Actor, storage: Storage, policy: PathPolicy,
                     sheet_schema: dict[str, Any], rows: list[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], list[Error]]:
    """Rows with their path cells resolved (data files the actor may view, allowed paths), plus ``exists`` checks.
    Errors carry the sheet's ``row`` (1-based, as samplesheet reports them) and ``column``."""
    resolved, errors = samplesheet.resolve_datafiles(sheet_schema, rows, cell_resolver(session, actor, storage,
                                                                                         policy))
    return resolved, sorted(errors + sheet_exists_errors(sheet_schema, rows, policy), key=lambda e: e["row"] or 0)


def sheet_exists_errors(sheet_schema: dict[str, Any], rows: list[dict[str, Any]],
                        policy: PathPolicy) -> list[Error]:
    """``exists: true`` columns: each allowed host path in them is there (data files always are; a refused path
    has its own error)."""
    errors = []
    for number, row in enumerate(rows, start=1):
        for column in _exists_columns(sheet_schema):
            value = row.get(column)
            if not isinstance(value, str) or not value or is_glob(value) or _looks_like_reference(value) \
                    or check_path(value, policy, path_typed=True) is not None:
                continue
            if host_path_exists(value, policy) is False:
                errors.append({"row": number, "column": column, "field": samplesheet.row_pointer(number, column),
                               "reason": "does_not_exist", "message": "The file or directory does not exist."})
    return errors


def sheet_params(version: PipelineVersion) -> list[str]:
    """Parameters that hold the sample sheet Flow stored the schema of: nf-schema marks them with a ``schema``
    keyword, and other parameters may name other schemas (taxprofiler's ``databases``), which Flow does not read."""
    if version.schema is None or version.samplesheet_schema is None:
        return []
    stored = registry.samplesheet_schema_path(version.schema)
    return [name for name, prop in schema.declared_params(version.schema).items() if prop.get("schema") == stored]


def _check_sheets(session: Session, actor: Actor, storage: Storage, policy: PathPolicy, version: PipelineVersion,
                  params: dict[str, Any]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    sheet_schema = version.samplesheet_schema
    if sheet_schema is None:  # then no parameter is a sheet Flow reads (sheet_params)
        return {}
    sheets = {}
    for name in sheet_params(version):
        ident = schema.datafile_id(params.get(name))
        if ident is None:
            continue
        pointer = "/" + _escape(name)
        filename, rows = _sheet_rows(session, actor, storage, version, ident, pointer)
        resolved, errors = check_sheet_rows(session, actor, storage, policy, sheet_schema, rows)
        if errors:
            raise FlowError(400, "invalid_samplesheet", f"{len(errors)} problem(s) in the sample sheet given as "
                            f"'{name}'.", pointer, errors=[{**error, "field": pointer} for error in errors])
        sheets[name] = (filename, resolved)
    return sheets


def check_launch(session: Session, actor: Actor, storage: Storage, settings: FlowSettings,
                 version: PipelineVersion, params: Any, *, pipeline_dir: Path | None = None,
                 run_dir: Path | None = None) -> CheckedParams:
    """The parameters as Nextflow may get them, or FlowError 400 listing every bad field (nothing is changed).

    ``run_dir`` is the real run directory once it exists (the manager passes it); before, paths are checked as if
    in a fresh one. ``pipeline_dir`` is the version's checkout (for its nextflow.config).
    """
    if not isinstance(params, dict) or not all(isinstance(key, str) for key in params):
        raise FlowError(400, "invalid_params", "Parameters must be a JSON object with string names.", "/params")
    too_big = check_param_sizes(params, settings.max_param_string_length, settings.max_params_bytes)
    if too_big:
        raise FlowError(400, "invalid_params", f"{len(too_big)} parameter(s) are too large.",
                        too_big[0]["field"] or "/params", errors=too_big)
    policy = PathPolicy.from_settings(settings, run_dir)
    path_params = set(schema.file_params(version.schema)) if version.schema is not None else set()
    walked = _walk(params, path_params, policy, settings)
    paths: dict[str, str] = {}
    for pointer, ident in walked.refs.items():
        path = datafile_path(session, actor, storage, ident)
        if path is None:
            walked.errors.append(_error(pointer, "no_such_datafile", "No such data file."))
        else:
            paths[pointer] = path
    resolved = _replace(params, paths)
    config = nfconfig.read_config_params(pipeline_dir) if pipeline_dir is not None else nfconfig.ConfigParams()
    unknown = _unknown(version, params, config)
    errors = list(walked.errors) + _default_outputs(version, params, policy, settings)
    warnings: list[Error] = []
    (errors if _strict(settings, config) else warnings).extend(unknown)
    if version.schema is not None:
        ignore = {name for name in params if config.knows(name)} | {e["field"][1:] for e in unknown}
        failed = {e["field"].split("/")[1] for e in walked.errors}
        instance = {name: value for name, value in resolved.items() if name not in failed}
        errors += [e for e in schema.validate_params(version.schema, instance, ignore_params=ignore,
                                                     given=failed)
                   if e["reason"] != "unknown_parameter"]
        errors += [e for e in _exists_errors(schema.declared_params(version.schema), resolved, policy)
                   if e["field"].split("/")[1] not in failed]
    if errors:
        errors = _dedupe(errors)
        raise FlowError(400, "invalid_params", f"{len(errors)} parameter(s) are not valid.", errors[0]["field"],
                        errors=errors)
    sheets = _check_sheets(session, actor, storage, policy, version, params)
    return CheckedParams(params=params, resolved=resolved, warnings=warnings, sheets=sheets)


def _dedupe(errors: list[Error]) -> list[Error]:
    seen, unique = set(), []
    for error in sorted(errors, key=lambda e: e["field"]):
        key = (error["field"], error["reason"])
        if key not in seen:
            seen.add(key)
            unique.append(error)
    return unique
