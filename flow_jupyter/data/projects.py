"""Projects: the unit of ownership, group visibility and sharing."""
from __future__ import annotations

import shutil
from typing import Any

from sqlalchemy import delete, event, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import permissions
from ..db.models import DataFile, Execution, ProcessExecution, Project, Sample, Upload, UploadState, Visibility
from ..errors import bad_request, conflict
from ..execution.status import FINAL
from ..identity import Actor
from . import refs
from .lookup import valid_id
from .paging import page, prefix_range
from .shares import drop_shares_of
from .storage import Storage

ACCESS = {permissions.VIEW: "view", permissions.EDIT: "edit", permissions.SHARE: "share", permissions.ADMIN: "admin"}


def project_json(session: Session, actor: Actor, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        **refs.owner(session, project.owner_id),
        "group": project.group_id,
        "visibility": project.visibility.value,
        "access": ACCESS[permissions.project_power(session, actor, project)],
        "created_at": project.created_at.isoformat(),
        "updated_at": project.updated_at.isoformat(),
    }


def _check_group(session: Session, actor: Actor, group_id: int | None, visibility: Visibility) -> None:
    """A project can only be given to a group the caller is in; any other group is 'No such group.' (as for an id
    that does not exist: no answer may tell which groups exist)."""
    if visibility == Visibility.group and group_id is None:
        raise bad_request("A project visible to a group needs a group.", field="/group", reason="missing_field")
    if group_id is not None:
        permissions.require_group(session, actor, valid_id(group_id, "group", "/group"), "/group")


def _check_unique_name(session: Session, owner_id: int, name: str, except_id: int | None = None) -> None:
    query = select(Project.id).where(Project.owner_id == owner_id, Project.name == name)
    if except_id is not None:
        query = query.where(Project.id != except_id)
    if session.scalar(query) is not None:
        raise conflict(f"You already have a project called '{name}'.", field="/name", reason="duplicate_name")


def create_project(session: Session, actor: Actor, body: dict[str, Any]) -> dict[str, Any]:
    visibility = Visibility(body.get("visibility", "private"))
    group_id = body.get("group")
    _check_group(session, actor, group_id, visibility)
    _check_unique_name(session, actor.user_id, body["name"])
    project = Project(name=body["name"], description=body.get("description", ""), owner_id=actor.user_id,
                      group_id=group_id, visibility=visibility)
    session.add(project)
    session.flush()
    return project_json(session, actor, project)


def list_projects(session: Session, actor: Actor, after: str | None, limit: int,
                  name_prefix: str | None = None) -> dict[str, Any]:
    query = select(Project).where(permissions.visible_projects(actor))
    if name_prefix:
        query = query.where(*prefix_range(Project.name, name_prefix))
    return page(session, query, [Project.id], after, limit, lambda p: project_json(session, actor, p),
                prefetch=lambda rows: refs.preload(session, users=(p.owner_id for p in rows)))


def get_project(session: Session, actor: Actor, project_id: int) -> dict[str, Any]:
    project = permissions.require_project(session, actor, valid_id(project_id, "project"), "view")
    return project_json(session, actor, project)


def update_project(session: Session, actor: Actor, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Name and description need edit rights; visibility and group belong to the project's admin (owner)."""
    needs = "admin" if {"visibility", "group"} & set(body) else "edit"
    project = permissions.require_project(session, actor, valid_id(project_id, "project"), needs)
    if "name" in body:
        _check_unique_name(session, project.owner_id, body["name"], except_id=project.id)
        project.name = body["name"]
    if "description" in body:
        project.description = body["description"]
    if {"visibility", "group"} & set(body):
        group_id = body["group"] if "group" in body else project.group_id
        visibility = Visibility(body["visibility"]) if "visibility" in body else project.visibility
        if "group" in body or visibility == Visibility.group:  # a stale group does not block going private/public
            _check_group(session, actor, group_id, visibility)
        project.group_id, project.visibility = group_id, visibility
    session.flush()
    return project_json(session, actor, project)


def delete_project(session: Session, actor: Actor, project_id: int, storage: Storage) -> None:
    """Delete a project and its history, all or nothing (admin power: its owner or a Flow admin).

    Refused with 409 while it still has data files (``project_not_empty``: data is only ever deleted file by file,
    by someone with admin power on each; outputs of runs included) or while one of its executions has not finished
    (``project_has_active_runs``: cancel it first). Otherwise one transaction removes its samples, shares, uploads
    (of any state), its finished executions and their tasks; files elsewhere that came from those runs keep their
    bytes but lose the link to the deleted execution. Only after the commit do the run directories and the bytes of
    unfinished uploads go (a crash in between leaves unreferenced bytes, never rows pointing at missing ones). A
    concurrent write into the project (an upload completing, a launch) makes the deletion fail as a whole: 409
    ``project_changed``.
    """
    project = permissions.require_project(session, actor, valid_id(project_id, "project"), "admin")
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    _check_deletable(session, project)
    leftovers = _history_paths(session, storage, project)
    _delete_history(session, project)
    session.delete(project)
    try:
        session.flush()
    except IntegrityError:
        raise conflict("The project changed while it was being deleted; try again.",
                       reason="project_changed") from None
    event.listen(session, "after_commit", lambda _session: _remove_paths(storage, leftovers), once=True)


def _check_deletable(session: Session, project: Project) -> None:
    if session.scalar(select(exists().where(DataFile.project_id == project.id))):
        raise conflict("The project still has data files; delete or move them first.", reason="project_not_empty")
    active = select(exists().where(Execution.project_id == project.id,
                                   Execution.status.notin_(FINAL)))
    if session.scalar(active):
        raise conflict("An execution of this project has not finished; cancel it or wait for it first.",
                       reason="project_has_active_runs")


def _history_paths(session: Session, storage: Storage, project: Project) -> list[tuple[str, Any]]:
    """What to remove from disk once the deletion commits: ("run", dir) and ("upload", (id, target)) items."""
    run_dirs = session.scalars(select(Execution.run_dir).where(Execution.project_id == project.id).distinct())
    paths: list[tuple[str, Any]] = [("run", storage.resolve(run_dir)) for run_dir in run_dirs]
    unfinished = session.execute(select(Upload.id, Upload.meta).where(
        Upload.project_id == project.id, Upload.state != UploadState.completed)).all()
    # A completed upload's bytes are a data file's (maybe moved elsewhere): never touched here.
    paths += [("upload", (upload_id, (meta or {}).get("target"))) for upload_id, meta in unfinished]
    return paths


def _delete_history(session: Session, project: Project) -> None:
    """Every row that refers to the project, children first (no reliance on database cascades)."""
    runs = select(Execution.id).where(Execution.project_id == project.id).scalar_subquery()
    session.execute(update(DataFile).where(DataFile.execution_id.in_(runs)).values(execution_id=None)
                    .execution_options(synchronize_session=False))
    session.execute(update(Execution).where(Execution.resumed_from_id.in_(runs)).values(resumed_from_id=None)
                    .execution_options(synchronize_session=False))
    session.execute(delete(ProcessExecution).where(ProcessExecution.execution_id.in_(runs))
                    .execution_options(synchronize_session=False))
    session.execute(delete(Execution).where(Execution.project_id == project.id)
                    .execution_options(synchronize_session=False))
    session.execute(delete(Upload).where(Upload.project_id == project.id)
                    .execution_options(synchronize_session=False))
    session.execute(delete(Sample).where(Sample.project_id == project.id)
                    .execution_options(synchronize_session=False))
    drop_shares_of(session, "project", project.id)


def _remove_paths(storage: Storage, leftovers: list[tuple[str, Any]]) -> None:
    """After the commit: run directories (only ones inside executions/, links not followed) and upload bytes."""
    from .uploads import _forget  # the uploads module owns its partial/lock file layout

    runs_area = storage.root / "executions"
    for kind, item in leftovers:
        if kind == "run":
            if runs_area in item.parents:
                shutil.rmtree(item, ignore_errors=True)
            continue
        upload_id, target = item
        _forget(storage, upload_id)
        if target:  # a completion that moved the bytes but never registered them
            storage.resolve(target).unlink(missing_ok=True)
