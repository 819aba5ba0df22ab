"""FlowError: the one exception type services raise for a client mistake or a refused action, and the catalogue of
every ``reason`` the server can answer with.

Handlers render it as ``{"error": {"reason", "message", "field"}}`` with its status. It derives from tornado's
HTTPError only so that tornado hands it to ``write_error`` with the right status; services never use tornado.

``reason`` is the machine-readable part a client branches on, so it is a closed set: `REASONS` below, mirrored as
the "Error reasons" table of docs/api.md (tests/test_api_reasons.py keeps code, catalogue and table in step).
"""
from __future__ import annotations

from tornado.web import HTTPError

#: The reason of a 400 that has no more specific one.
BAD_REQUEST = "bad_request"

#: The reason of an error Flow did not raise itself (tornado's or Jupyter's own 403, 404, 405 …), by status.
STATUS_REASONS = {
    400: BAD_REQUEST, 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 500: "internal_error", 503: "unavailable", 507: "insufficient_storage",
}
#: … and for any other status.
OTHER_STATUS_REASON = "error"

#: Every ``error.reason`` the server sends, with what it means. (Per-field problems inside ``error.errors`` of
#: ``invalid_params`` / ``invalid_samplesheet`` have their own vocabulary: docs/api.md, "Launch parameters".)
REASONS: dict[str, str] = {
    # generic, by status
    BAD_REQUEST: "The request is wrong in a way no more specific reason names; the message says how.",
    "unauthenticated": "No valid token or login cookie came with the request.",
    "forbidden": "You can see this object but may not do this to it (or may not call this at all).",
    "not_found": "No such object, or one you may not see (the two are never told apart).",
    "method_not_allowed": "This path does not take this HTTP method.",
    "conflict": "The request conflicts with the object's current state.",
    "too_large": "The body or upload is larger than allowed.",
    "internal_error": "Flow failed; the server log has the details.",
    "unavailable": "The server cannot answer right now; try again later.",
    "insufficient_storage": "The server's disk has too little free space for this.",
    OTHER_STATUS_REASON: "An HTTP error with no Flow reason of its own; the status says what it is.",
    # request bodies, query arguments, headers
    "malformed_json": "The body is not UTF-8 JSON.",
    "too_deep": "The body nests deeper than max_json_depth.",
    "non_finite_number": "The body holds NaN, Infinity or a number too large for a float.",
    "invalid_character": "A key or value holds NUL or a lone UTF-16 surrogate.",
    "too_long": "A string is longer than max_text_length (or the field's own bound).",
    "unknown_field": "The body has a field this endpoint does not take.",
    "missing_field": "A required field (or query argument) is missing.",
    "invalid_field": "A field's value has the wrong type, form or range.",
    "bad_cursor": "'after' is not a cursor this API returned.",
    "missing_header": "A required header is missing.",
    "invalid_header": "A header's value is malformed.",
    # projects, samples, files, shares, groups
    "duplicate_name": "That name is taken (your projects, a project's samples, groups, pipelines).",
    "project_not_empty": "The project still has data files; delete or move them first.",
    "project_has_active_runs": "An execution of the project has not finished.",
    "project_changed": "The project changed while it was being deleted; try again.",
    "one_grantee": "A share needs exactly one of 'user' or 'group'.",
    "last_admin": "A group must keep at least one admin.",
    "move_forbidden": "Only the file's owner, its project's owner or a Flow admin may move it to another owner.",
    "delete_forbidden": "Only the file's owner, its project's owner or a Flow admin may delete it.",
    # uploads (tus)
    "unsupported_version": "The request does not speak tus 1.0.0 (Tus-Resumable).",
    "unsupported_media_type": "A chunk was not sent as application/offset+octet-stream.",
    "unsupported_checksum": "Upload-Checksum names an algorithm the server does not offer.",
    "defer_length_unsupported": "Upload-Defer-Length is not supported: send Upload-Length.",
    "offset_mismatch": "Upload-Offset is not the upload's offset; read it again with HEAD.",
    "checksum_mismatch": "The chunk or the whole file does not match its checksum.",
    "quota_exceeded": "The upload would exceed your storage quota.",
    "upload_busy": "Another request is writing to this upload right now.",
    "upload_changed": "The upload was completed or removed concurrently.",
    "upload_completed": "The upload is complete; delete its data file instead of terminating it.",
    "upload_lost": "The upload's bytes are missing on the server.",
    "write_failed": "The server could not write the chunk.",
    # downloads and background jobs
    "range_not_satisfiable": "The requested byte range is outside the file.",
    "file_changed": "The stored bytes are no longer the ones Flow registered, so they are not served.",
    "file_missing": "The stored bytes of the file are missing.",
    "bad_storage_path": "A stored path is invalid or cannot be served.",
    "job_not_ready": "The job has not finished yet.",
    "job_failed": "The job failed; the message says why.",
    "zip_expired": "The deferred zip has expired; ask for a new one.",
    # pipelines
    "bad_source": "The pipeline source is not a git repository path or URL.",
    "not_a_git_repository": "The pipeline source is not a git repository.",
    "unreachable": "The pipeline's git repository cannot be reached.",
    "unknown_ref": "No such tag, branch or commit in the repository.",
    "duplicate_version": "That version is registered already.",
    "bundled": "Bundled pipelines cannot be changed this way.",
    "invalid_schema": "The pipeline's schema (or a path it names) is invalid.",
    "schema_too_large": "A schema file is too large.",
    "invalid_tower": "The pipeline's tower.yml is not valid YAML.",
    "invalid_config": "'nextflow config' failed on the pipeline version.",
    "unsafe_link": "A file of the pipeline is a link that leads outside it.",
    "no_main_script": "The pipeline version has no main.nf.",
    "no_samplesheet_schema": "The pipeline version has no sample-sheet schema.",
    "one_source": "A sample sheet needs exactly one of 'rows', 'content' or 'datafile'.",
    "invalid_samplesheet": "The sample sheet has problems; 'errors' lists every one with its row and column.",
    "samplesheet_too_large": "The sample sheet is too large.",
    "invalid_params": "The launch parameters have problems; 'errors' lists every one.",
    # executions
    "bad_session": "Not a Nextflow session id.",
    "resources_refused": "Slurm would refuse a job with these resources.",
    "submission_rejected": "Slurm refused the job.",
    "scheduler_unavailable": "The scheduler cannot be reached; a launch is kept and starts when it is back.",
    "still_running": "Only a finished execution can be resumed.",
    "no_session": "The execution never started a Nextflow session to resume.",
    "run_dir_busy": "Another execution is running in this run directory.",
    "no_log": "The execution has no such log (yet).",
    "no_multiqc_data": "The run has published no multiqc_data.json (yet).",
    "report_too_large": "The report is too large to show inline; download it instead.",
    # the host
    "database_unavailable": "Flow's database cannot be reached.",
    "response_contract_violation": "Flow's reply broke its own response schema (a bug); the server log has it.",
}


def status_reason(status: int) -> str:
    """The reason for an error of this status that Flow did not raise itself."""
    return STATUS_REASONS.get(status, OTHER_STATUS_REASON)


class FlowError(HTTPError):
    reason: str  # always set: the machine-readable code of REASONS

    def __init__(self, status: int, reason: str, message: str, field: str | None = None,
                 errors: list[dict] | None = None):
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.message = message
        self.field = field
        self.errors = errors  # every problem, when there is more than one (e.g. all bad params of a form)

    def as_json(self) -> dict:
        error: dict = {"reason": self.reason, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.errors is not None:
            error["errors"] = self.errors
        return {"error": error}


def not_found(kind: str, field: str | None = None) -> FlowError:
    """Used both for missing objects and for objects the caller may not see: no existence oracle."""
    return FlowError(404, "not_found", f"No such {kind}.", field)


def bad_request(message: str, field: str | None = None, reason: str = BAD_REQUEST) -> FlowError:
    return FlowError(400, reason, message, field)


def forbidden(message: str) -> FlowError:
    return FlowError(403, "forbidden", message)


def conflict(message: str, field: str | None = None, reason: str = "conflict") -> FlowError:
    return FlowError(409, reason, message, field)
