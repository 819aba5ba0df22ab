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

Executions are their owner's, and visible to whoever can view their project: an execution's power is its owner's
admin, or exactly what its project gives (view to watch it, edit to cancel, resume or rerun it).

Uploads and background jobs (bulk-download zips) are private to the user who started them (and, for jobs, Flow
admins); anyone else gets the 404 of a missing one. Groups are run by their admins; the pipeline registry by Flow
admins. Work done later on a user's behalf (the manager launching a run, a zip built in the background) acts as
`actor_for_owner`: the stored owner with their memberships as they are *now*, so rights lost meanwhile count.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from .data.paging import MAX_ID
from .db.models import (BackgroundJob, DataFile, Execution, Group, Level, Project, Sample, Share, Upload, User,
                        Visibility)
from .errors import FlowError, forbidden, not_found
from .identity import Actor, actor_for_user

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


# --- executions ------------------------------------------------------------------------------------------------

def visible_executions(actor: Actor) -> ColumnElement[bool]:
    """Executions are visible to their owner and to whoever can view their project."""
    if actor.is_admin:
        return true()
    return or_(Execution.owner_id == actor.user_id,
               Execution.project_id.in_(select(Project.id).where(visible_projects(actor))))


def execution_power(session: Session, actor: Actor, execution: Execution) -> int:
    if actor.is_admin or execution.owner_id == actor.user_id:
        return ADMIN
    project = session.get(Project, execution.project_id)
    return project_power(session, actor, project) if project is not None else NONE


def require_execution(session: Session, actor: Actor, execution_uuid: str, action: str) -> Execution:
    """The execution, or 404 when the caller cannot see it; 403 when they see it but may not ``action`` it."""
    execution = session.scalar(select(Execution).where(Execution.uuid == str(execution_uuid)[:36]))
    if execution is None:
        raise not_found("execution")
    _check(execution_power(session, actor, execution), action, "execution")
    return execution


# --- private objects: uploads and background jobs ------------------------------------------------------------------

def owns(actor: Actor, owner_id: int | None) -> bool:
    return owner_id is not None and owner_id == actor.user_id


def own_uploads(actor: Actor) -> ColumnElement[bool]:
    """The caller's uploads, as a SQL filter (every conditional UPDATE of an upload carries it too)."""
    return Upload.owner_id == actor.user_id


def require_upload_owner(actor: Actor, upload: Upload | None) -> Upload:
    """An upload is its starter's alone (not even a Flow admin resumes someone else's bytes)."""
    if upload is None or not owns(actor, upload.owner_id):
        raise not_found("upload")
    return upload


def require_job(session: Session, actor: Actor, job_id: int) -> BackgroundJob:
    """A job is its owner's (and, as everything, a Flow admin's): anyone else gets 404, as if it did not exist.
    Admins matter in single-user mode, where each token-only request may carry a new anonymous user name."""
    job = _get(session, BackgroundJob, job_id)
    if job is None or not (actor.is_admin or owns(actor, job.owner_id)):
        raise not_found("job")
    return job


def actor_for_owner(session: Session, owner_id: int) -> Actor:
    """The actor to act as on behalf of a stored owner (the manager launching their run, a zip job built later):
    their admin flag and memberships as stored now, never more than they have at this moment."""
    owner = session.get(User, owner_id)
    if owner is None:  # owners are never deleted while they own rows (foreign keys); say so if it ever happens
        raise FlowError(500, "internal_error", f"The owner (user {owner_id}) of a stored object is missing.")
    return actor_for_user(session, owner)


# --- Flow admins --------------------------------------------------------------------------------------------------

def require_flow_admin(actor: Actor, what: str) -> None:
    """Registry changes and other site-wide acts: Flow admins only (403: everyone can see that the act exists)."""
    if not actor.is_admin:
        raise forbidden(f"Only Flow admins may {what}.")


# --- shares -------------------------------------------------------------------------------------------------------

def object_power(session: Session, actor: Actor, object_type: str, object_id: int) -> int:
    """The actor's power on a shareable object (``project`` or ``datafile``); NONE when missing or invisible."""
    model, power = (Project, project_power) if object_type == "project" else (DataFile, datafile_power)
    obj = _get(session, model, object_id)
    return power(session, actor, obj) if obj is not None else NONE


def require_object(session: Session, actor: Actor, object_type: str, object_id: int, action: str, kind: str,
                   field: str | None = None) -> None:
    """404 naming ``field`` when the actor cannot see the shareable object; 403 (about the object, not the field)
    when they may not ``action`` it."""
    power = object_power(session, actor, object_type, object_id)
    if power == NONE:
        raise not_found(kind, field)
    if power < ACTIONS[action]:
        raise forbidden(f"You may not {action} this {kind}.")


def require_share(session: Session, actor: Actor, share_id: int) -> Share:
    """A share the actor can see (they can see its object), else 'No such share.' — never a word about the object,
    which would tell them the share exists. Its object's sharers may change it; a grantee may give up their own."""
    share = _get(session, Share, share_id)
    power = object_power(session, actor, share.object_type, share.object_id) if share is not None else NONE
    if power == NONE:
        raise not_found("share")
    if power < SHARE and share.user_id != actor.user_id:
        raise forbidden("You may not change this share.")
    return share


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


def visible_groups(actor: Actor) -> ColumnElement[bool]:
    """Groups are visible to their members (and Flow admins) only."""
    if actor.is_admin:
        return true()
    return Group.id.in_(actor.group_ids) if actor.group_ids else false()


def require_group_admin(session: Session, actor: Actor, group_id: int) -> Group:
    """A group the caller may run: 404 unless they are in it, 403 unless they are one of its admins."""
    group = require_group(session, actor, group_id)
    if not actor.is_admin and group.id not in actor.admin_group_ids:
        raise forbidden("Only the group's admins may do that.")
    return group


def require_member_removal(session: Session, actor: Actor, group: Group, user_id: int) -> None:
    """Group admins remove anyone; a member may leave on their own."""
    if user_id != actor.user_id:
        require_group_admin(session, actor, group.id)


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
