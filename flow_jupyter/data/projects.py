"""Projects: the unit of ownership, group visibility and sharing."""
from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from .. import permissions
from ..db.models import DataFile, Project, Visibility
from ..errors import bad_request, conflict
from ..identity import Actor
from .lookup import group_by_id, valid_id
from .paging import page, prefix_range

ACCESS = {permissions.VIEW: "view", permissions.EDIT: "edit", permissions.SHARE: "share", permissions.ADMIN: "admin"}


def project_json(session: Session, actor: Actor, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "owner": project.owner.name,
        "group": project.group_id,
        "visibility": project.visibility.value,
        "access": ACCESS[permissions.project_power(session, actor, project)],
        "created_at": project.created_at.isoformat(),
        "updated_at": project.updated_at.isoformat(),
    }


def _check_group(actor: Actor, group_id: int | None, visibility: Visibility) -> None:
    if visibility == Visibility.group and group_id is None:
        raise bad_request("A project visible to a group needs a group.", field="/group", reason="missing_field")
    if group_id is not None and group_id not in actor.group_ids and not actor.is_admin:
        raise bad_request("You can only give a project to a group you belong to.", field="/group",
                          reason="not_a_member")


def _check_unique_name(session: Session, owner_id: int, name: str, except_id: int | None = None) -> None:
    query = select(Project.id).where(Project.owner_id == owner_id, Project.name == name)
    if except_id is not None:
        query = query.where(Project.id != except_id)
    if session.scalar(query) is not None:
        raise conflict(f"You already have a project called '{name}'.", field="/name", reason="duplicate_name")


def create_project(session: Session, actor: Actor, body: dict[str, Any]) -> dict[str, Any]:
    visibility = Visibility(body.get("visibility", "private"))
    group_id = body.get("group")
    if group_id is not None:
        group_id = group_by_id(session, group_id, "/group").id
    _check_group(actor, group_id, visibility)
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
    return page(session, query, [Project.id], after, limit, lambda p: project_json(session, actor, p))


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
    if "group" in body:
        project.group_id = group_by_id(session, body["group"], "/group").id if body["group"] is not None else None
    if "visibility" in body:
        project.visibility = Visibility(body["visibility"])
    if {"visibility", "group"} & set(body):
        _check_group(actor, project.group_id, project.visibility)
    session.flush()
    return project_json(session, actor, project)


def delete_project(session: Session, actor: Actor, project_id: int) -> None:
    project = permissions.require_project(session, actor, valid_id(project_id, "project"), "admin")
    if session.scalar(select(exists().where(DataFile.project_id == project.id))):
        raise conflict("The project still has data files; delete or move them first.", reason="project_not_empty")
    from .shares import drop_shares_of

    drop_shares_of(session, "project", project.id)
    session.delete(project)
