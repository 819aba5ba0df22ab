"""Executions as a service: create, list, show, cancel and resume runs, list their tasks, tail their log.

Plain functions ``fn(session, actor, ...)`` run by the host on a worker thread. They only write rows; the execution
manager (manager.py) does everything that touches a backend, so an HTTP request never waits on Nextflow or Slurm.

A resumed execution reuses the original's run directory: Nextflow's ``-resume`` needs the same launch directory
(its ``.nextflow`` cache) and work directory. Each execution therefore has its own events file
(``events-<uuid>.ndjson``), and a resume also its own trace file and Nextflow log (runfiles.py), so the monitor of one
never reads another's history.
"""
from __future__ import annotations

import dataclasses
import uuid as uuidlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import permissions
from ..config import FlowSettings
from ..data import refs
from ..data.lookup import valid_id
from ..data.paging import page
from ..data.safeopen import open_beneath
from ..data.storage import Storage
from ..db.models import Execution, PipelineVersion, ProcessExecution
from ..errors import FlowError, bad_request
from ..identity import Actor
from ..pipelines import forms, registry
from .backends import Resources
from .runfiles import run_files
from .runstate import RunState
from .status import CANCELLED, FINAL, PENDING, stored_task_status, task_status

#: The execution manager's own notes (queue ETA, scheduler errors) ride along in monitor_state under this key.
MANAGER_KEY = "manager"
LOG_CHUNK = 256 * 1024
BACKENDS = ("local", "slurm")


def with_notes(monitor_state: dict | None, **notes: Any) -> dict:
    """monitor_state with the manager's notes changed (None removes a note)."""
    state = dict(monitor_state or {})
    merged = {**(state.get(MANAGER_KEY) or {}), **notes}
    state[MANAGER_KEY] = {key: value for key, value in merged.items() if value is not None}
    return state


def to_datetime(epoch_ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc) if epoch_ms else None


# --- views ------------------------------------------------------------------------------------------------------

def execution_json(session: Session, execution: Execution, detail: bool = False) -> dict[str, Any]:
    """An execution, named by its uuid (``id``; ``resumed_from`` is the uuid of the run it resumed, if any)."""
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    body: dict[str, Any] = {
        "id": execution.uuid,
        **refs.owner(session, execution.owner_id),
        "project": execution.project_id,
        "pipeline_version": execution.pipeline_version_id,
        "status": execution.status,
        "backend": execution.backend,
        "run_name": execution.run_name,
        "session_id": execution.session_id,
        "resumed_from": refs.execution_uuid(session, execution.resumed_from_id),
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


def _preload_refs(session: Session, executions: Sequence[Execution]) -> None:
    refs.preload(session, users=(e.owner_id for e in executions),
                 executions=(e.resumed_from_id for e in executions))


def task_json(task: ProcessExecution) -> dict[str, Any]:
    """A task; its ``status`` is one of status.TASK_STATUSES (the row keeps Nextflow's name)."""
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return {
        "id": task.id, "key": task.task_key, "task_id": task.task_id, "name": task.name, "process": task.process,
        "tag": task.tag, "native_id": task.native_id, "status": task_status(task.status), "exit": task.exit,
        "submitted_at": iso(task.submitted_at), "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at), "cpu_percent": task.cpu_percent, "peak_rss": task.peak_rss,
        "workdir": task.workdir,
    }


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
        params=params, status=PENDING, backend=backend, run_dir=f"executions/{execution_uuid}",
        provenance=body.get("provenance"), resources=resources,
    )
    if unavailable is not None:
        execution.monitor_state = with_notes(None, backend_error=unavailable.message)
    session.add(execution)
    session.flush()
    return {**execution_json(session, execution, detail=True), "warnings": warnings}


def list_executions(session: Session, actor: Actor, after: str | None, limit: int,
                    filters: dict[str, Any]) -> dict[str, Any]:
    query = select(Execution).where(permissions.visible_executions(actor))
    if filters.get("status"):
        query = query.where(Execution.status == filters["status"])
    if filters.get("project") is not None:
        query = query.where(Execution.project_id == filters["project"])
    if filters.get("pipeline"):
        version_ids = [v.id for v in registry.get_pipeline_row(session, filters["pipeline"]).versions]
        query = query.where(Execution.pipeline_version_id.in_(version_ids or [-1]))
    return page(session, query, [Execution.id], after, limit, lambda row: execution_json(session, row),
                prefetch=lambda rows: _preload_refs(session, rows))


def get(session: Session, actor: Actor, execution_uuid: str) -> dict[str, Any]:
    return execution_json(session, permissions.require_execution(session, actor, execution_uuid, "view"),
                          detail=True)


def tasks(session: Session, actor: Actor, execution_uuid: str, after: str | None, limit: int,
          filters: dict[str, Any]) -> dict[str, Any]:
    execution = permissions.require_execution(session, actor, execution_uuid, "view")
    query = select(ProcessExecution).where(ProcessExecution.execution_id == execution.id)
    if filters.get("status"):
        query = query.where(ProcessExecution.status == stored_task_status(filters["status"]))
    if filters.get("process"):
        query = query.where(ProcessExecution.process == filters["process"])
    return page(session, query, [ProcessExecution.id], after, limit, task_json)


def log_tail(session: Session, actor: Actor, storage: Storage, execution_uuid: str, offset: int) -> dict[str, Any]:
    """Up to 256 KiB of the Nextflow log from ``offset``, and where to ask next."""
    execution = permissions.require_execution(session, actor, execution_uuid, "view")
    run_dir = storage.resolve(execution.run_dir)
    try:
        handle, _info = open_beneath(run_dir, run_files(execution).log)  # a planted link is no log
        with handle:
            size = handle.seek(0, 2)
            start = min(offset, size)
            handle.seek(start)
            data = handle.read(LOG_CHUNK)
    except OSError:
        size, start, data = 0, 0, b""
    return {"offset": start, "next": start + len(data), "size": size, "text": data.decode("utf-8", "replace"),
            "complete": execution.status in FINAL and start + len(data) >= size}


def cancel(session: Session, actor: Actor, execution_uuid: str) -> dict[str, Any]:
    """A pending run is cancelled at once; an active one is flagged, and the manager stops its backend job."""
    execution = permissions.require_execution(session, actor, execution_uuid, "edit")
    if execution.status == PENDING:
        execution.status = CANCELLED
        execution.finished_at = datetime.now(timezone.utc)
    elif execution.status not in FINAL:
        execution.cancel_requested = True
    return execution_json(session, execution, detail=True)


def resume(session: Session, actor: Actor, storage: Storage, settings: FlowSettings, execution_uuid: str,
           body: dict[str, Any]) -> dict[str, Any]:
    """A new execution in the original's run dir, started with ``-resume <session>`` and the changed params."""
    original = permissions.require_execution(session, actor, execution_uuid, "edit")
    permissions.require_project(session, actor, original.project_id, "edit")
    if original.status not in FINAL:
        raise FlowError(409, "still_running", "Only a finished execution can be resumed.")
    if not original.session_id:
        raise FlowError(409, "no_session", "This execution never started a Nextflow session to resume.")
    busy = session.scalar(select(Execution.id).where(Execution.run_dir == original.run_dir,
                                                     Execution.status.notin_(FINAL)))
    if busy is not None:
        raise FlowError(409, "run_dir_busy", "Another execution is running in this run directory.")
    params = {**original.params, **(body.get("params") or {})}
    version = original.pipeline_version_id
    warnings = _check_params(session, actor, storage, settings, session.get(PipelineVersion, version), params)
    execution = Execution(
        uuid=str(uuidlib.uuid4()), owner_id=actor.user_id, project_id=original.project_id,
        pipeline_version_id=version, params=params, status=PENDING, backend=original.backend,
        run_dir=original.run_dir, session_id=original.session_id, resumed_from_id=original.id,
        provenance=body.get("provenance", original.provenance), resources=original.resources,
    )
    session.add(execution)
    session.flush()
    return {**execution_json(session, execution, detail=True), "warnings": warnings}


def run_path(storage: Storage, execution: Execution) -> Path:
    return storage.resolve(execution.run_dir)
