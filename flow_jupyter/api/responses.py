"""JSON Schemas (draft 2020-12) of every reply of the API, by handler and verb: the contract a typed client builds on.

`ROUTES` maps each handler class (by name, so this module imports no handler) and verb to an `Operation`: its
replies by status. One table drives both the OpenAPI document (api/openapi.py) and the checks: with
``FlowSettings.validate_responses`` on, `check_reply` validates every JSON reply before it is sent.

Flow's own objects are strict (``additionalProperties: false``, every key ``required``), so a new key is a conscious
change of the contract, made here. What a pipeline's author wrote (a schema, a default, a tower.yml) is passed on as
it is and only its place is described. Any status not listed for an operation is an error: the `ERROR` body.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from ..db.models import JobStatus, Level, Origin, Role, Visibility
from ..errors import REASONS, FlowError
from ..execution.status import EXECUTION_STATUSES, TASK_STATUSES

log = logging.getLogger(__name__)
DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Schemas with a name of their own: the OpenAPI document lists them as components and refers to them by name.
COMPONENTS: dict[str, dict[str, Any]] = {}


def named(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Register ``schema`` as the component ``name`` (the same dict object wherever it is used)."""
    if name in COMPONENTS:
        raise ValueError(f"component {name!r} is defined twice")
    COMPONENTS[name] = schema
    return schema


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None, *, title: str = "") -> dict[str, Any]:
    """A strict object: the ``required`` keys always present, the ``optional`` ones sometimes, nothing else."""
    schema: dict[str, Any] = {"type": "object", "properties": {**required, **(optional or {})},
                              "required": list(required), "additionalProperties": False}
    if title:
        schema["description"] = title
    return schema


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    """A list: one page of items and the cursor of the next page (null on the last)."""
    return obj({"items": {"type": "array", "items": item},
                "next": {"type": ["string", "null"], "description": "pass as ?after= for the next page"}})


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def values(enum_type: Any) -> dict[str, Any]:
    return {"enum": [member.value for member in enum_type]}


# --- building blocks ----------------------------------------------------------------------------------------------
STRING = {"type": "string"}
TEXT = {"type": ["string", "null"]}
BOOL = {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}
NUMBER = {"type": ["number", "null"]}
ID = {"type": "integer", "minimum": 1}
ID_OR_NULL = {"type": ["integer", "null"], "minimum": 1}
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
UUID = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
#: A link the API hands out: relative to the API root (``files/12/content``), never absolute, so it is right behind
#: any base URL (``/user/<name>/``, ``/services/flow/``).
RELATIVE_URL = {"type": "string", "pattern": "^(?![A-Za-z][A-Za-z0-9+.-]*:)[^/]"}
ANY: dict[str, Any] = {}
FREE_OBJECT = {"type": "object"}
OWNER = {"owner_id": ID, "owner_name": STRING}
#: A problem's reason: a word of its own vocabulary (JSON Schema keywords, "unknown_parameter", …).
PROBLEM_REASON = {"type": "string", "pattern": "^[a-zA-Z][a-zA-Z0-9_]*$"}
#: An error's reason: one of the catalogue in errors.py (docs/api.md, "Error reasons").
REASON = {"enum": sorted(REASONS)}

PROBLEM = named("Problem", obj(
    {"field": STRING, "reason": PROBLEM_REASON, "message": STRING},
    {"row": {"type": ["integer", "null"]}, "column": TEXT},
    title="One problem of many: a parameter (field is its JSON pointer) or a sample-sheet cell (row, column)."))
ERROR = named("Error", obj({"error": obj(
    {"reason": REASON, "message": STRING},
    {"field": STRING, "errors": {"type": "array", "items": PROBLEM}})},
    title="Every error: a machine-readable reason, a sentence for people, the field at fault when there is one."))

# --- data -----------------------------------------------------------------------------------------------------------
ACCESS = {"enum": ["view", "edit", "share", "admin"]}
PROJECT = named("Project", obj({
    "id": ID, "name": STRING, "description": STRING, **OWNER, "group": ID_OR_NULL, "visibility": values(Visibility),
    "access": ACCESS, "created_at": TIME, "updated_at": TIME}))
SAMPLE = named("Sample", obj({"id": ID, "project": ID, "name": STRING, "metadata": FREE_OBJECT, "created_at": TIME}))
DATAFILE = named("DataFile", obj({
    "id": ID, "filename": STRING, "type": STRING, "size": COUNT, "sha256": SHA256, "project": ID,
    "sample": ID_OR_NULL, **OWNER, "origin": values(Origin), "execution": nullable(UUID), "replaces": ID_OR_NULL,
    "created_at": TIME}))
SHARE = named("Share", {
    **obj({"id": ID, "object_type": {"enum": ["project", "datafile"]}, "object_id": ID, "level": values(Level),
           "created_at": TIME},
          {"user": STRING, "group": ID, "group_name": TEXT}),
    "oneOf": [{"required": ["user"], "not": {"required": ["group"]}},
              {"required": ["group", "group_name"], "not": {"required": ["user"]}}],
    "description": "A grant to one user (by name) or one group (its name only for its members, else null).",
})
MEMBER = obj({"user": STRING, "role": values(Role)})
GROUP_FIELDS = {"id": ID, "name": STRING, "created_at": TIME}
GROUP = named("Group", obj(GROUP_FIELDS, title="A group in a list (its members: GET the group)."))
GROUP_DETAIL = named("GroupDetail", obj({**GROUP_FIELDS, "members": {"type": "array", "items": MEMBER}}))
JOB = named("Job", obj({
    "id": ID, **OWNER, "kind": STRING, "status": values(JobStatus), "created_at": TIME, "started_at": TIME_OR_NULL,
    "finished_at": TIME_OR_NULL,
    "result": nullable(obj({"filename": STRING, "size": COUNT, "sha256": SHA256, "files": COUNT},
                           {"expired": BOOL})),
    "error": TEXT}))
JOB_ACCEPTED = obj({"job": ID, "status": {"const": "pending"}})

# --- pipelines ------------------------------------------------------------------------------------------------------
VERSION = named("PipelineVersion", obj({
    "id": ID, "pipeline": ID, "ref": STRING, "commit": STRING, "has_schema": BOOL, "has_samplesheet_schema": BOOL,
    "reports": {"type": "array", "items": STRING}, "warnings": {"type": "array", "items": PROBLEM},
    "created_at": TIME}))
PIPELINE_FIELDS = {"id": ID, "name": STRING, "description": STRING, "source": STRING, "bundled": BOOL,
                   "curated": BOOL, "created_at": TIME}
PIPELINE_SUMMARY = obj(PIPELINE_FIELDS)
PIPELINE = named("Pipeline", obj({**PIPELINE_FIELDS, "versions": {"type": "array", "items": VERSION},
                                  "default_version": TEXT}))
REF = named("Ref", obj({"name": STRING, "kind": {"enum": ["tag", "branch", "release"]}, "commit": STRING},
                        title="A tag or branch of a pipeline's repository (a bundled pipeline: its releases)."))
#: nf-core annotations a field carries only when the pipeline's schema has them (their values are the author's).
FIELD_EXTRAS = ("title", "format", "pattern", "minimum", "maximum", "exclusive_minimum", "exclusive_maximum",
                "min_length", "max_length", "mimetype", "exists", "error_message", "samplesheet_schema")
FORM_FIELD = named("FormField", obj({
    "name": STRING, "type": TEXT, "types": {"type": "array", "items": STRING},
    "widget": {"enum": ["text", "textarea", "checkbox", "integer", "number", "json", "select", "file", "directory",
                        "path", "glob", "uri"]},
    "default": ANY, "default_is_expression": BOOL, "required": BOOL, "hidden": BOOL, "advanced": BOOL,
    "help": TEXT, "help_text": TEXT, "fa_icon": TEXT,
}, {**dict.fromkeys(FIELD_EXTRAS, ANY), "choices": {"type": "array"}, "constraints": FREE_OBJECT}))
FORM_GROUP = obj({"id": STRING, "title": STRING, "description": TEXT, "help_text": TEXT, "fa_icon": TEXT,
                  "hidden": BOOL, "fields": {"type": "array", "items": FORM_FIELD}})
FORM = named("Form", obj({
    "pipeline": PIPELINE_SUMMARY, "version": VERSION,
    "form": obj({"title": TEXT, "description": TEXT, "draft": {"enum": ["draft-07", "2020-12", None]},
                 "groups": {"type": "array", "items": FORM_GROUP}, "has_schema": BOOL}, {"note": STRING})}))
SCHEMA_FILES = obj({"version": VERSION, "schema": nullable(FREE_OBJECT), "samplesheet_schema": nullable(FREE_OBJECT),
                    "tower": nullable(FREE_OBJECT)})
WARNINGS = {"type": "array", "items": PROBLEM}
VALIDATED = obj({"valid": {"const": True}, "params": FREE_OBJECT, "warnings": WARNINGS})
SHEET_CHECKED = obj({"valid": {"const": True}, "rows": COUNT}, {"datafile": DATAFILE})

# --- executions -----------------------------------------------------------------------------------------------------
EXECUTION_STATUS = {"enum": list(EXECUTION_STATUSES)}
TASK_STATUS = {"enum": list(TASK_STATUSES)}
PROGRESS = obj(dict.fromkeys(TASK_STATUSES, COUNT), title="Tasks counted by their status.")
EXECUTION_FIELDS = {
    "id": UUID, **OWNER, "project": ID, "pipeline_version": ID, "resumed_from": nullable(UUID),
    "status": EXECUTION_STATUS,
    "backend": {"enum": ["local", "slurm"]}, "run_name": TEXT, "session_id": TEXT, "created_at": TIME,
    "submitted_at": TIME_OR_NULL, "started_at": TIME_OR_NULL, "finished_at": TIME_OR_NULL,
    "exit_status": {"type": ["integer", "null"]}, "error": TEXT, "cancel_requested": BOOL,
}
EXECUTION = named("Execution", obj(EXECUTION_FIELDS, title="An execution in a list."))
DETAIL_FIELDS = {
    **EXECUTION_FIELDS, "params": FREE_OBJECT, "provenance": nullable(FREE_OBJECT), "resources": nullable(FREE_OBJECT),
    "monitor": obj({"mode": STRING, "status": EXECUTION_STATUS, "malformed_lines": COUNT, "oversized_lines": COUNT}),
    "progress": PROGRESS, "processes": {"type": "object", "additionalProperties": PROGRESS}, "task_count": COUNT,
    "published": COUNT, "stats": {"type": "object", "additionalProperties": {"type": "integer"}},
    "queue_eta": TIME_OR_NULL, "backend_error": TEXT,
}
EXECUTION_DETAIL = named("ExecutionDetail", obj(DETAIL_FIELDS))
LAUNCHED = named("LaunchedExecution", obj({**DETAIL_FIELDS, "warnings": WARNINGS}))
LAUNCH_DEFERRED = obj({"error": ERROR["properties"]["error"], "execution": LAUNCHED},
                      title="The scheduler is unreachable: the execution is stored and starts when it is back.")
TASK = named("Task", obj({
    "id": ID, "key": STRING, "task_id": {"type": ["integer", "null"]}, "name": TEXT, "process": TEXT, "tag": TEXT,
    "native_id": TEXT, "status": TASK_STATUS, "exit": {"type": ["integer", "null"]}, "submitted_at": TIME_OR_NULL,
    "started_at": TIME_OR_NULL, "finished_at": TIME_OR_NULL, "cpu_percent": NUMBER,
    "peak_rss": {"type": ["integer", "null"]}, "workdir": TEXT}))
LOG_TAIL = obj({"offset": COUNT, "next": COUNT, "size": COUNT, "text": STRING, "complete": BOOL})
REPORT = named("Report", obj({"path": STRING, "display": STRING, "mimetype": TEXT, "size": COUNT,
                              "url": RELATIVE_URL}))

# --- the host -------------------------------------------------------------------------------------------------------
COMPONENT = obj({"ok": BOOL, "state": {"enum": ["OK", "WARN", "FAIL"]}, "required": BOOL, "version": TEXT,
                 "detail": STRING, "hint": STRING})
HEALTH = named("Health", obj({"status": {"enum": ["ok", "fail"]}, "failing": {"type": "array", "items": STRING},
                              "checked_at": {"type": "number"},
                              "components": {"type": "object", "additionalProperties": COMPONENT}}))
ME = named("Me", obj({
    "name": STRING, "user_id": ID, "is_admin": BOOL,
    "groups": {"type": "array", "items": obj({"id": ID, "name": STRING, "role": values(Role)})},
    "version": STRING,
    "capabilities": obj({
        "backends": {"type": "array", "items": {"enum": ["local", "slurm"]}, "minItems": 1},
        "executor": {"enum": ["local", "slurm"]},
        "host_paths": BOOL,
        "url_schemes": {"type": "array", "items": STRING},
        "uploads": obj({"protocol": {"const": "tus"}, "tus_version": STRING,
                        "extensions": {"type": "array", "items": STRING},
                        "checksum_algorithms": {"type": "array", "items": STRING}, "max_size": COUNT}),
        "downloads": obj({"max_files": COUNT}),
        "page_size": obj({"default": COUNT, "max": COUNT}),
    }),
}, title="Who is calling and what this server offers: what a UI needs at start-up."))
OPENAPI = {"type": "object", "required": ["openapi", "info", "paths"],
           "properties": {"openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"}}}


# --- the table ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binary:
    """A body that is not JSON (file bytes, a zip, a report, metrics text, a tus chunk): described, never validated."""

    media_type: str = "application/octet-stream"
    description: str = ""


@dataclass(frozen=True)
class Operation:
    """One verb of one route: its replies by status (a JSON schema, a `Binary`, or None for no body)."""

    replies: dict[int, dict[str, Any] | Binary | None]
    summary: str = ""
    request: Binary | None = None  # a body that is not JSON (JSON bodies are read off the handler's json_body call)
    headers: dict[int, tuple[str, ...]] = field(default_factory=dict)  # response headers worth naming, by status


def ok(schema: dict[str, Any] | Binary | None, summary: str = "", status: int = 200, **more: Any) -> Operation:
    return Operation({status: schema}, summary, **more)


def deleted(summary: str) -> Operation:
    return Operation({204: None}, summary)


FILE_BYTES = Binary("application/octet-stream", "The stored bytes (the type follows the file name), or the range "
                    "asked for with Range: 206 with Content-Range.")
ZIP = Binary("application/zip", "A zip streamed as it is made (chunked, no Content-Length).")
TUS_CHUNK = Binary("application/offset+octet-stream", "A chunk of the file, from Upload-Offset on.")
TUS_HEADERS = ("Tus-Resumable", "Upload-Offset", "Upload-Expires", "Flow-DataFile-Id")
TUS_OPTIONS = Operation({204: None}, "What this tus server speaks (Tus-Version, Tus-Extension, Tus-Max-Size, "
                        "Tus-Checksum-Algorithm)", headers={204: ("Tus-Version", "Tus-Extension", "Tus-Max-Size",
                                                                  "Tus-Checksum-Algorithm")})


def file_download(summary: str, *extra: int) -> Operation:
    """GET/HEAD of stored bytes: conditional requests and one byte range."""
    replies: dict[int, Any] = {200: FILE_BYTES, 206: FILE_BYTES, 304: None, 416: ERROR}
    return Operation({**replies, **{status: ERROR for status in extra}}, summary,
                     headers={200: ("ETag", "Last-Modified", "Content-Disposition"), 206: ("Content-Range",)})


ROUTES: dict[str, dict[str, Operation]] = {
    "HealthHandler": {"get": Operation({200: HEALTH, 503: HEALTH}, "Component checks (503 when a required one "
                                       "fails)")},
    "MetricsHandler": {"get": ok(Binary("text/plain", "Prometheus text exposition format."), "Prometheus metrics")},
    "MeHandler": {"get": ok(ME, "Who is calling, their groups, the Flow version and what the server offers")},
    "OpenAPIHandler": {"get": ok(OPENAPI, "This document")},
    "GroupsHandler": {"get": ok(page_of(GROUP), "Groups you belong to (all, for admins)"),
                      "post": ok(GROUP_DETAIL, "Create a group; you become its admin", 201)},
    "GroupHandler": {"get": ok(GROUP_DETAIL, "A group with its members"),
                     "delete": deleted("Delete a group (its admins)")},
    "MembersHandler": {"get": ok(page_of(MEMBER), "The members of a group you are in"),
                       "post": Operation({201: GROUP_DETAIL, 200: GROUP_DETAIL},
                                         "Add a member (201) or change a member's role (200)")},
    "MemberHandler": {"delete": deleted("Remove a member, or leave the group")},
    "ProjectsHandler": {"get": ok(page_of(PROJECT), "Projects you can see"),
                        "post": ok(PROJECT, "Create a project", 201)},
    "ProjectHandler": {"get": ok(PROJECT, "A project, with your access"),
                       "patch": ok(PROJECT, "Change a project (visibility and group need admin power)"),
                       "delete": deleted("Delete an empty project with its history")},
    "ProjectSamplesHandler": {"get": ok(page_of(SAMPLE), "Samples of a project"),
                              "post": ok(SAMPLE, "Create a sample", 201)},
    "SampleHandler": {"get": ok(SAMPLE, "A sample"), "patch": ok(SAMPLE, "Change a sample"),
                      "delete": deleted("Delete a sample (its files stay, unattached)")},
    "FilesHandler": {"get": ok(page_of(DATAFILE), "Data files you can see, filtered")},
    "FileHandler": {"get": ok(DATAFILE, "A data file"), "patch": ok(DATAFILE, "Rename, attach or move a data file"),
                    "delete": deleted("Delete a data file")},
    "SharesHandler": {"get": ok(page_of(SHARE), "Shares on an object you can see"),
                      "post": Operation({201: SHARE, 200: SHARE}, "Grant a share (201) or change it (200)")},
    "ShareHandler": {"patch": ok(SHARE, "Change a share's level"), "delete": deleted("Revoke a share")},
    "UploadsHandler": {"post": Operation({201: None}, "Create a tus upload, optionally with its first chunk",
                                         request=TUS_CHUNK, headers={201: ("Location", *TUS_HEADERS)}),
                       "options": TUS_OPTIONS},
    "UploadHandler": {"head": Operation({200: None}, "An upload's offset", headers={200: (
                          "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires")}),
                      "patch": Operation({204: None}, "Append a chunk", request=TUS_CHUNK,
                                         headers={204: TUS_HEADERS}),
                      "delete": deleted("Terminate an upload"),
                      "options": TUS_OPTIONS},
    "FileContentHandler": {"get": file_download("A data file's bytes", 409),
                           "head": file_download("A data file's size and validators", 409)},
    "BulkDownloadHandler": {"post": Operation({200: ZIP, 202: JOB_ACCEPTED},
                                              "Several data files as a zip, streamed (200) or built as a job (202)",
                                              headers={202: ("Location",)})},
    "ProjectDownloadHandler": {"get": ok(ZIP, "Every file of a project you can see, as a zip")},
    "JobHandler": {"get": ok(JOB, "A background job of yours")},
    "JobContentHandler": {"get": file_download("A deferred zip's bytes", 409, 410),
                          "head": file_download("A deferred zip's size and validators", 409, 410)},
    "PipelinesHandler": {"get": ok(page_of(PIPELINE), "The pipeline registry"),
                         "post": ok(PIPELINE, "Register a git repository (admins)", 201)},
    "PipelineHandler": {"get": ok(PIPELINE, "A pipeline with its versions"),
                        "delete": deleted("Remove a pipeline (admins)")},
    "RefsHandler": {"get": ok(page_of(REF), "Tags and branches of a pipeline's repository")},
    "VersionsHandler": {"get": ok(page_of(VERSION), "A pipeline's registered versions, oldest first"),
                        "post": ok(VERSION, "Register another ref of a pipeline (admins)", 201)},
    "FormHandler": {"get": ok(FORM, "The form model of a version")},
    "SchemaHandler": {"get": ok(SCHEMA_FILES, "A version's stored schema, sample-sheet schema and tower.yml")},
    "ValidateHandler": {"post": ok(VALIDATED, "Check launch parameters without launching")},
    "SamplesheetHandler": {"post": ok(SHEET_CHECKED, "Check a sample sheet row by row; optionally save it")},
    "ExecutionsHandler": {"get": ok(page_of(EXECUTION), "Executions you can see, filtered"),
                          "post": Operation({201: LAUNCHED, 503: LAUNCH_DEFERRED}, "Launch a pipeline",
                                            headers={503: ("Retry-After",)})},
    "ExecutionHandler": {"get": ok(EXECUTION_DETAIL, "An execution with its progress")},
    "TasksHandler": {"get": ok(page_of(TASK), "The tasks of an execution")},
    "LogHandler": {"get": ok(LOG_TAIL, "Up to 256 KiB of the Nextflow log from an offset")},
    "CancelHandler": {"post": ok(EXECUTION_DETAIL, "Cancel an execution")},
    "ResumeHandler": {"post": ok(LAUNCHED, "Resume a finished execution from Nextflow's cache", 201)},
    "ReportsHandler": {"get": ok(page_of(REPORT), "The reports an execution published")},
    "ReportHandler": {"get": Operation({200: Binary("text/html", "A report, sandboxed (CSP sandbox allow-scripts); "
                                                    "other report files with their own type."),
                                        206: FILE_BYTES, 304: None, 413: ERROR, 416: ERROR}, "One report")},
    "MultiQCDataHandler": {"get": Operation({200: Binary("application/json", "MultiQC's multiqc_data.json as the "
                                                         "run wrote it."), 206: FILE_BYTES, 304: None, 416: ERROR},
                                            "The run's multiqc_data.json")},
    "LogFileHandler": {"get": file_download("Nextflow's log or the head job's output, as a download")},
    "NotFoundHandler": dict.fromkeys(("get", "head", "post", "put", "patch", "delete", "options"),
                                     Operation({404: ERROR}, "No such endpoint")),
}


# --- checking replies -----------------------------------------------------------------------------------------------
_validators: dict[int, jsonschema.protocols.Validator] = {}


def operation_for(handler: type, verb: str) -> Operation | None:
    """The operation of ``handler`` (or of the nearest base class in the table) for ``verb``."""
    for cls in handler.__mro__:
        routes = ROUTES.get(cls.__name__)
        if routes is not None:
            return routes.get(verb)
    return None


def reply_schema(operation: Operation | None, status: int) -> dict[str, Any] | Binary | None:
    """The schema a reply with ``status`` must follow: the operation's own, else `ERROR` for any error status."""
    if operation is not None and status in operation.replies:
        return operation.replies[status]
    return ERROR if status >= 400 else None


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """Compiled once per schema (schemas are module constants, so their identity is a stable key)."""
    validator = _validators.get(id(schema))
    if validator is None:
        validator = _validators[id(schema)] = jsonschema.Draft202012Validator(schema)
    return validator


def contract_problem(handler: type, verb: str, status: int, body: Any) -> str | None:
    """Why a JSON ``body`` sent with ``status`` breaks the contract of ``handler``'s ``verb``; None when it keeps it."""
    schema = reply_schema(operation_for(handler, verb), status)
    if schema is None or isinstance(schema, Binary):
        return f"{handler.__name__}.{verb} declares no JSON reply with status {status}"
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(body))
    if error is None:
        return None
    where = "/" + "/".join(str(part) for part in error.absolute_path)
    return f"{handler.__name__}.{verb} {status} at {where}: {error.message[:500]}"


def check_reply(handler: type, verb: str, status: int, text: str) -> None:
    """Raise a logged 500 ``response_contract_violation`` if the JSON ``text`` breaks its contract. The text as it
    goes out is what is checked (after strict serialization), not the Python value before it."""
    problem = contract_problem(handler, verb, status, json.loads(text))
    if problem is not None:
        log.error("Flow: reply breaks the API contract: %s", problem)
        raise FlowError(500, "response_contract_violation", f"The reply breaks the API contract: {problem}")


def check_schemas() -> None:
    """Every schema of the table is itself a valid draft 2020-12 schema (a test calls this)."""
    for routes in ROUTES.values():
        for operation in routes.values():
            for schema in operation.replies.values():
                if isinstance(schema, dict):
                    jsonschema.Draft202012Validator.check_schema(schema)
