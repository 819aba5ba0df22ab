"""THE one place that decides who sees and changes what. Everything else asks here.

Power is a number: 0 none, 1 view, 2 edit, 3 share, 4 admin (owner). A project gives:
owner → admin · explicit share → its level · group visibility → view for members, edit for group admins ·
public → view. A data file gives its owner admin, plus what its project gives, plus its own shares. A sample has
exactly its project's power. Flow admins have admin everywhere.

`visible_*` return SQL filters, so lists are filtered in the database; `require_*` raise 404 for what the caller
cannot see and 403 for what they see but may not do. The 404 is the same status *and body* whether the object is
missing or merely invisible ("No such <kind>.", named after what the request asked for, never after the object that
hid it), so no route is an existence oracle — including nested lookups (a sample inside someone else's project is
"No such sample.", a share on someone else's object is "No such share.").

Groups are visible to their members (and Flow admins) only: a group you are not in is "No such group." wherever
you name one — giving a project to it, sharing with it — exactly like a group id that does not exist.

Editors and files they do not own (like a shared drive: members edit in place, managers move out and delete):

* **edit** on a file (an editor of its project, or an edit share on the file) renames it and attaches it to a
  sample of its project;
* **moving** a file needs edit on the target project, and either admin power on the file (its owner, the owner of
  its project, a Flow admin), or edit on the file with the target owned by the same person as the file's current
  project: an editor may reorganise files between one owner's projects, but never carry someone else's file out of
  that owner's reach — e.g. into the editor's own project, where they would be its admin;
* **deleting** a file needs admin power on it: an editor deletes their own files, never the owner's.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from .data.paging import MAX_ID
from .db.models import DataFile, Group, Level, Project, Sample, Share, Visibility
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


def _check(power: int, action: str, kind: str, field: str | None = None) -> None:
    if power == NONE:
        raise not_found(kind, field)
    if power < ACTIONS[action]:
        raise FlowError(403, "forbidden", f"You may not {action} this {kind}.", field)


def _get(session: Session, model: type, object_id: int) -> Any:
    """The row, or None for an id no row can have (so an out-of-range id is 'not found', never a driver error)."""
    if not isinstance(object_id, int) or not 0 < object_id <= MAX_ID:
        return None
    return session.get(model, object_id)


def _require(session: Session, actor: Actor, model: type, object_id: int, action: str, kind: str,
             power: Callable[[Session, Actor, Any], int], field: str | None = None) -> Any:
    obj = _get(session, model, object_id)
    _check(power(session, actor, obj) if obj is not None else NONE, action, kind, field)
    return obj


def require_project(session: Session, actor: Actor, project_id: int, action: str,
                    field: str | None = None) -> Project:
    """The project, if the actor may perform ``action`` on it; else 404 (cannot see) or 403 (cannot do)."""
    return _require(session, actor, Project, project_id, action, "project", project_power, field)


def require_datafile(session: Session, actor: Actor, datafile_id: int, action: str,
                     field: str | None = None) -> DataFile:
    return _require(session, actor, DataFile, datafile_id, action, "data file", datafile_power, field)


def sample_power(session: Session, actor: Actor, sample: Sample) -> int:
    """A sample is part of its project: the same power, nothing of its own."""
    project = session.get(Project, sample.project_id)
    return project_power(session, actor, project) if project is not None else NONE


def require_sample(session: Session, actor: Actor, sample_id: int, action: str, field: str | None = None) -> Sample:
    """The sample, with errors about the *sample*: one in a project the caller cannot see is 'No such sample.',
    exactly like a missing one (naming the project would tell them the sample exists)."""
    return _require(session, actor, Sample, sample_id, action, "sample", sample_power, field)


# --- groups ----------------------------------------------------------------------------------------------------

def group_visible(actor: Actor, group_id: int) -> bool:
    return actor.is_admin or group_id in actor.group_ids


def require_group(session: Session, actor: Actor, group_id: int, field: str | None = None) -> Group:
    """A group the caller belongs to (any group, for a Flow admin); every other group is 'No such group.', the same
    answer as for an id that does not exist, so group ids and names cannot be probed."""
    group = _get(session, Group, group_id)
    if group is None or not group_visible(actor, group.id):
        raise not_found("group", field)
    return group


# --- editors and files they do not own (the rule is in the module docstring) -------------------------------------

def may_move_datafile(session: Session, actor: Actor, datafile: DataFile, target: Project) -> bool:
    """Whether the actor, who may edit ``target``, may also move ``datafile`` into it."""
    power = datafile_power(session, actor, datafile)
    if power >= ADMIN:
        return True
    if power < EDIT:
        return False
    source = session.get(Project, datafile.project_id)
    return source is not None and source.owner_id == target.owner_id


def require_datafile_move(session: Session, actor: Actor, datafile: DataFile, target_id: int,
                          field: str = "/project") -> Project:
    """The target project, if ``datafile`` may move there: 404/403 about the target first (edit needed), then 403
    when only an editor of the file asks to carry it out of its project owner's projects."""
    target = require_project(session, actor, target_id, "edit", field)
    if not may_move_datafile(session, actor, datafile, target):
        raise FlowError(403, "move_forbidden", "Only the file's owner, its project's owner or a Flow admin may move "
                        "it to a project of another owner.", field)
    return target


def require_datafile_delete(session: Session, actor: Actor, datafile_id: int) -> DataFile:
    """The data file, if the actor has admin power on it (its owner, its project's owner, a Flow admin): editors
    change files in place but never delete someone else's."""
    datafile = require_datafile(session, actor, datafile_id, "view")
    if datafile_power(session, actor, datafile) < ADMIN:
        raise FlowError(403, "delete_forbidden", "Only the file's owner, its project's owner or a Flow admin may "
                        "delete it.")
    return datafile
