"""Executions as a service: create, list, show, cancel and resume runs, list their tasks, tail their log.

Plain functions ``fn(session, actor, ...)`` run by the host on a worker thread. They only write rows; the execution
manager (manager.py) does everything that touches a backend, so an HTTP request never waits on Nextflow or Slurm.

A resumed execution reuses the original's run directory: Nextflow's ``-resume`` needs the same launch directory
(its ``.nextflow`` cache) and work directory. Each execution therefore has its own events file
(``events-<uuid>.ndjson``), and a resume also its own trace file and Nextflow log (`run_files`), so the monitor of one
never reads another's history.
"""
from __future__ import annotations

import dataclasses
import uuid as uuidlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import or_, select, true
from sqlalchemy.orm import Session

from .. import permissions
from ..config import FlowSettings
from ..data.lookup import valid_id
from ..data.paging import page
from ..data.safeopen import open_beneath
from ..data.storage import Storage
from ..db.models import Execution, PipelineVersion, ProcessExecution, Project
from ..errors import FlowError, bad_request, not_found
from ..identity import Actor
from ..pipelines import forms, registry
from .backends import Resources
from .launch import LOG_FILE, TRACE_FILE
from .monitor import TERMINAL_RUN_STATUSES, RunState

ACTIVE_STATUSES = ("submitted", "running")
#: The execution manager's own notes (queue ETA, scheduler errors) ride along in monitor_state under this key.
MANAGER_KEY = "manager"
LOG_CHUNK = 256 * 1024
BACKENDS = ("local", "slurm")


def run_files(execution: Execution) -> dict[str, str]:
    """The events, trace and log file names of this execution inside its (possibly shared) run directory."""
    if execution.resumed_from_id is None:
        trace, log = TRACE_FILE, LOG_FILE
    else:
        trace, log = f"trace-{execution.uuid}.txt", f"nextflow-{execution.uuid}.log"
    return {"events": f"events-{execution.uuid}.ndjson", "trace": trace, "log": log}


def with_notes(monitor_state: dict | None, **notes: Any) -> dict:
    """monitor_state with the manager's notes changed (None removes a note)."""
    state = dict(monitor_state or {})
    merged = {**(state.get(MANAGER_KEY) or {}), **notes}
    state[MANAGER_KEY] = {key: value for key, value in merged.items() if value is not None}
    return state


def to_datetime(epoch_ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc) if epoch_ms else None


# --- views ------------------------------------------------------------------------------------------------------

def execution_json(execution: Execution, detail: bool = False) -> dict[str, Any]:
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    body: dict[str, Any] = {
        "id": execution.uuid,
        "owner": execution.owner_id,
        "project": execution.project_id,
        "pipeline_version": execution.pipeline_version_id,
        "status": execution.status,
        "backend": execution.backend,
        "run_name": execution.run_name,
        "session_id": execution.session_id,
        "created_at": iso(execution.created_at),
        "submitted_at": iso(execution.submitted_at),
        "started_at": iso(execution.started_at),
        "finished_at": iso(execution.finished_at),
        "exit_status": execution.exit_status,
        "error": execution.error,
        "cancel_requested": execution.cancel_requested,
    }
    if detail:
        state = RunState.from_dict(execution.monitor_state) if execution.monitor_state else RunState()
        body.update({
            "params": execution.params,
            "provenance": execution.provenance,
            "resources": execution.resources,
            "monitor": {"mode": state.mode, "status": state.status, "malformed_lines": state.malformed_lines,
                        "oversized_lines": state.oversized_lines},
            "progress": state.progress(),
            "processes": state.processes,
            "task_count": state.task_count,
            "published": state.published_count,
            "stats": state.stats,
            "queue_eta": ((execution.monitor_state or {}).get(MANAGER_KEY) or {}).get("queue_eta"),
            "backend_error": ((execution.monitor_state or {}).get(MANAGER_KEY) or {}).get("backend_error"),
        })
    return body


def task_json(task: ProcessExecution) -> dict[str, Any]:
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return {
        "id": task.id, "key": task.task_key, "task_id": task.task_id, "name": task.name, "process": task.process,
        "tag": task.tag, "native_id": task.native_id, "status": task.status, "exit": task.exit,
        "submitted_at": iso(task.submitted_at), "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at), "cpu_percent": task.cpu_percent, "peak_rss": task.peak_rss,
        "workdir": task.workdir,
    }


# --- access -----------------------------------------------------------------------------------------------------

def visible_executions(actor: Actor):
    """Executions are visible to their owner and to whoever can view their project."""
    if actor.is_admin:
        return true()
    return or_(Execution.owner_id == actor.user_id,
               Execution.project_id.in_(select(Project.id).where(permissions.visible_projects(actor))))


def require_execution(session: Session, actor: Actor, execution_uuid: str, action: str) -> Execution:
    """The execution, or 404 when the caller cannot see it; 403 when they see it but may not ``action`` it."""
    execution = session.scalar(select(Execution).where(Execution.uuid == str(execution_uuid)[:36]))
    if execution is None:
        raise not_found("execution")
    if actor.is_admin or execution.owner_id == actor.user_id:
        return execution
    project = session.get(Project, execution.project_id)
    power = permissions.project_power(session, actor, project) if project else permissions.NONE
    if power == permissions.NONE:
        raise not_found("execution")
    if power < permissions.ACTIONS[action]:
        raise FlowError(403, "forbidden", f"You may not {action} this execution.")
    return execution


# --- params -----------------------------------------------------------------------------------------------------

def _check_params(session: Session, actor: Actor, storage: Storage, settings: FlowSettings, version,
                  params: dict[str, Any]) -> list[dict[str, Any]]:
    """The launch check (validate, resolve references, confine paths, sheets); its warnings for the response."""
    return forms.check(session, actor, storage, settings, version, params).warnings


# --- service functions ------------------------------------------------------------------------------------------

BackendCheck = Callable[[str, "Resources | None"], None]


def create(session: Session, actor: Actor, storage: Storage, settings: FlowSettings,
           body: dict[str, Any], check_backend: BackendCheck | None = None) -> dict[str, Any]:
    """Validate like /validate, require edit on the target project, and store a pending execution.

    ``check_backend(name, resources)`` asks the scheduler before anything is stored: a 400 (unknown partition)
    stores nothing; when the scheduler is unreachable the execution is stored all the same (the manager launches it
    once the scheduler is back) and its detail carries ``backend_error``, which the handler answers with 503.
    """
    version = registry.get_version_row(session, body["pipeline"], body.get("version"))
    params = body.get("params") or {}
    warnings = _check_params(session, actor, storage, settings, version, params)
    project = permissions.require_project(session, actor, valid_id(body["project"], "project", "/project"), "edit")
    backend = body.get("backend") or settings.executor
    if backend not in BACKENDS:
        raise bad_request(f"Unknown backend {backend!r}.", field="/backend")
    resources = None
    requested = Resources.from_json(body["resources"]) if body.get("resources") is not None else None
    if requested is not None:
        resources = dataclasses.asdict(requested)
        resources["extra_directives"] = list(resources["extra_directives"])
    unavailable: FlowError | None = None
    if check_backend is not None:
        try:
            check_backend(backend, requested)
        except FlowError as exc:
            if exc.status != 503:
                raise
            unavailable = exc
    execution_uuid = str(uuidlib.uuid4())
    execution = Execution(
        uuid=execution_uuid, owner_id=actor.user_id, project_id=project.id, pipeline_version_id=version.id,
        params=params, status="pending", backend=backend, run_dir=f"executions/{execution_uuid}",
        provenance=body.get("provenance"), resources=resources,
    )
    if unavailable is not None:
        execution.monitor_state = with_notes(None, backend_error=unavailable.message)
    session.add(execution)
    session.flush()
    return {**execution_json(execution, detail=True), "warnings": warnings}


def list_executions(session: Session, actor: Actor, after: str | None, limit: int,
                    filters: dict[str, Any]) -> dict[str, Any]:
    query = select(Execution).where(visible_executions(actor))
    if filters.get("status"):
        query = query.where(Execution.status == filters["status"])
    if filters.get("project") is not None:
        query = query.where(Execution.project_id == filters["project"])
    if filters.get("pipeline"):
        version_ids = [v.id for v in registry.get_pipeline_row(session, filters["pipeline"]).versions]
        query = query.where(Execution.pipeline_version_id.in_(version_ids or [-1]))
    return page(session, query, [Execution.id], after, limit, execution_json)


def get(session: Session, actor: Actor, execution_uuid: str) -> dict[str, Any]:
    return execution_json(require_execution(session, actor, execution_uuid, "view"), detail=True)


def tasks(session: Session, actor: Actor, execution_uuid: str, after: str | None, limit: int,
          filters: dict[str, Any]) -> dict[str, Any]:
    execution = require_execution(session, actor, execution_uuid, "view")
    query = select(ProcessExecution).where(ProcessExecution.execution_id == execution.id)
    if filters.get("status"):
        query = query.where(ProcessExecution.status == str(filters["status"]).upper())
    if filters.get("process"):
        query = query.where(ProcessExecution.process == filters["process"])
    return page(session, query, [ProcessExecution.id], after, limit, task_json)


def log_tail(session: Session, actor: Actor, storage: Storage, execution_uuid: str, offset: int) -> dict[str, Any]:
    """Up to 256 KiB of the Nextflow log from ``offset``, and where to ask next."""
    execution = require_execution(session, actor, execution_uuid, "view")
    run_dir = storage.resolve(execution.run_dir)
    try:
        handle, _info = open_beneath(run_dir, run_files(execution)["log"])  # a planted link is no log
        with handle:
            size = handle.seek(0, 2)
            start = min(offset, size)
            handle.seek(start)
            data = handle.read(LOG_CHUNK)
    except OSError:
        size, start, data = 0, 0, b""
    return {"offset": start, "next": start + len(data), "size": size, "text": data.decode("utf-8", "replace"),
            "complete": execution.status in TERMINAL_RUN_STATUSES and start + len(data) >= size}


def cancel(session: Session, actor: Actor, execution_uuid: str) -> dict[str, Any]:
    """A pending run is cancelled at once; an active one is flagged, and the manager stops its backend job."""
    execution = require_execution(session, actor, execution_uuid, "edit")
    if execution.status == "pending":
        execution.status = "cancelled"
        execution.finished_at = datetime.now(timezone.utc)
    elif execution.status not in TERMINAL_RUN_STATUSES:
        execution.cancel_requested = True
    return execution_json(execution, detail=True)


def resume(session: Session, actor: Actor, storage: Storage, settings: FlowSettings, execution_uuid: str,
           body: dict[str, Any]) -> dict[str, Any]:
    """A new execution in the original's run dir, started with ``-resume <session>`` and the changed params."""
    original = require_execution(session, actor, execution_uuid, "edit")
    permissions.require_project(session, actor, original.project_id, "edit")
    if original.status not in TERMINAL_RUN_STATUSES:
        raise FlowError(409, "still_running", "Only a finished execution can be resumed.")
    if not original.session_id:
        raise FlowError(409, "no_session", "This execution never started a Nextflow session to resume.")
    busy = session.scalar(select(Execution.id).where(Execution.run_dir == original.run_dir,
                                                     Execution.status.notin_(TERMINAL_RUN_STATUSES)))
    if busy is not None:
        raise FlowError(409, "run_dir_busy", "Another execution is running in this run directory.")
    params = {**original.params, **(body.get("params") or {})}
    version = original.pipeline_version_id
    warnings = _check_params(session, actor, storage, settings, session.get(PipelineVersion, version), params)
    execution = Execution(
        uuid=str(uuidlib.uuid4()), owner_id=actor.user_id, project_id=original.project_id,
        pipeline_version_id=version, params=params, status="pending", backend=original.backend,
        run_dir=original.run_dir, session_id=original.session_id, resumed_from_id=original.id,
        provenance=body.get("provenance", original.provenance), resources=original.resources,
    )
    session.add(execution)
    session.flush()
    return {**execution_json(execution, detail=True), "warnings": warnings}


def run_path(storage: Storage, execution: Execution) -> Path:
    return storage.resolve(execution.run_dir)
