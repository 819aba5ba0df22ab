"""THE one place that decides who sees and changes what. Everything else asks here.

Power is a number: 0 none, 1 view, 2 edit, 3 share, 4 admin (owner). A project gives:
owner → admin · explicit share → its level · group visibility → view for members, edit for group admins ·
public → view. A data file gives its owner admin, plus what its project gives, plus its own shares.
Flow admins have admin everywhere.

`visible_*` return SQL filters, so lists are filtered in the database; `require_*` raise 404 for what the caller
cannot see (no existence oracle) and 403 for what they see but may not do.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from .db.models import DataFile, Level, Project, Share, Visibility
from .errors import FlowError, not_found
from .identity import Actor

NONE, VIEW, EDIT, SHARE, ADMIN = range(5)
LEVEL_POWER = {Level.view: VIEW, Level.edit: EDIT, Level.share: SHARE}
ACTIONS = {"view": VIEW, "edit": EDIT, "share": SHARE, "admin": ADMIN}


def _grantee(actor: Actor) -> ColumnElement[bool]:
    in_groups = Share.group_id.in_(actor.group_ids) if actor.group_ids else false()
    return or_(Share.user_id == actor.user_id, in_groups)


def _shared_ids(actor: Actor, object_type: str):
    return select(Share.object_id).where(Share.object_type == object_type, _grantee(actor))


def visible_projects(actor: Actor) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    group_visible = (
        and_(Project.visibility == Visibility.group, Project.group_id.in_(actor.group_ids))
        if actor.group_ids else false()
    )
    return or_(
        Project.owner_id == actor.user_id,
        Project.visibility == Visibility.public,
        group_visible,
        Project.id.in_(_shared_ids(actor, "project")),
    )


def visible_datafiles(actor: Actor) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    return or_(
        # "+ 0" keeps SQLite from splitting this OR across three indexes and sorting every visible id before
        # returning one page; it walks the listing's own index instead (bench/list_files.py). PostgreSQL is unmoved.
        DataFile.owner_id + 0 == actor.user_id,
        DataFile.project_id.in_(select(Project.id).where(visible_projects(actor))),
        DataFile.id.in_(_shared_ids(actor, "datafile")),
    )


def _share_power(session: Session, actor: Actor, object_type: str, object_id: int) -> int:
    levels = session.scalars(
        select(Share.level).where(Share.object_type == object_type, Share.object_id == object_id, _grantee(actor))
    ).all()
    return max((LEVEL_POWER[level] for level in levels), default=NONE)


def project_power(session: Session, actor: Actor, project: Project) -> int:
    if actor.is_admin or project.owner_id == actor.user_id:
        return ADMIN
    power = _share_power(session, actor, "project", project.id)
    if project.visibility == Visibility.group and project.group_id in actor.group_ids:
        power = max(power, EDIT if project.group_id in actor.admin_group_ids else VIEW)
    if project.visibility == Visibility.public:
        power = max(power, VIEW)
    return power


def datafile_power(session: Session, actor: Actor, datafile: DataFile) -> int:
    if actor.is_admin or datafile.owner_id == actor.user_id:
        return ADMIN
    project = session.get(Project, datafile.project_id)
    from_project = project_power(session, actor, project) if project else NONE
    return max(from_project, _share_power(session, actor, "datafile", datafile.id))


def _check(power: int, action: str, kind: str) -> None:
    if power == NONE:
        raise not_found(kind)
    if power < ACTIONS[action]:
        raise FlowError(403, "forbidden", f"You may not {action} this {kind}.")


def _require(session: Session, actor: Actor, model: type, object_id: int, action: str, kind: str,
             power: Callable[[Session, Actor, Any], int]) -> Any:
    obj = session.get(model, object_id)
    if obj is None:
        raise not_found(kind)
    _check(power(session, actor, obj), action, kind)
    return obj


def require_project(session: Session, actor: Actor, project_id: int, action: str) -> Project:
    """The project, if the actor may perform ``action`` on it; else 404 (cannot see) or 403 (cannot do)."""
    return _require(session, actor, Project, project_id, action, "project", project_power)


def require_datafile(session: Session, actor: Actor, datafile_id: int, action: str) -> DataFile:
    return _require(session, actor, DataFile, datafile_id, action, "data file", datafile_power)
