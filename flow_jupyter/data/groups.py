"""Groups and memberships. In the hub, groups come from JupyterHub (identity.resolve syncs them); in single-user
mode and for lab-made teams they are managed here. Group admins manage members."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import permissions
from ..db.models import Group, Membership, Role
from ..errors import bad_request, conflict, not_found
from ..identity import Actor
from . import refs
from .lookup import user_by_name, valid_id
from .paging import page


def group_json(session: Session, group: Group, with_members: bool = False) -> dict[str, Any]:
    """A group; ``with_members`` adds all its members by name (the paged list is GET …/groups/<id>/members)."""
    body: dict[str, Any] = {"id": group.id, "name": group.name, "created_at": group.created_at.isoformat()}
    if with_members:
        memberships = group.memberships
        refs.preload(session, users=(m.user_id for m in memberships))
        members = [member_json(session, m) for m in memberships]
        body["members"] = sorted(members, key=lambda m: m["user"] or "")
    return body


def member_json(session: Session, membership: Membership) -> dict[str, Any]:
    return {"user": refs.user_name(session, membership.user_id), "role": membership.role.value}


def list_members(session: Session, actor: Actor, group_id: int, after: str | None, limit: int) -> dict[str, Any]:
    """The members of a group the caller is in, a page at a time (in the order they were registered as users)."""
    group = _visible_group(session, actor, group_id)
    query = select(Membership).where(Membership.group_id == group.id)
    return page(session, query, [Membership.user_id], after, limit, lambda m: member_json(session, m),
                row_key=lambda m: (m.user_id,),
                prefetch=lambda rows: refs.preload(session, users=(m.user_id for m in rows)))


def _visible_group(session: Session, actor: Actor, group_id: int) -> Group:
    """A group the caller is in; any other is 'No such group.', like one that does not exist (permissions)."""
    return permissions.require_group(session, actor, valid_id(group_id, "group"))


def create_group(session: Session, actor: Actor, body: dict[str, Any]) -> dict[str, Any]:
    if session.scalar(select(Group.id).where(Group.name == body["name"])) is not None:
        raise conflict(f"A group called '{body['name']}' exists.", field="/name", reason="duplicate_name")
    group = Group(name=body["name"])
    session.add(group)
    session.flush()
    session.add(Membership(user_id=actor.user_id, group_id=group.id, role=Role.admin))
    session.flush()
    session.refresh(group)
    return group_json(session, group, with_members=True)


def list_groups(session: Session, actor: Actor, after: str | None, limit: int) -> dict[str, Any]:
    query = select(Group).where(permissions.visible_groups(actor))
    return page(session, query, [Group.id], after, limit, lambda g: group_json(session, g))


def get_group(session: Session, actor: Actor, group_id: int) -> dict[str, Any]:
    return group_json(session, _visible_group(session, actor, group_id), with_members=True)


def delete_group(session: Session, actor: Actor, group_id: int) -> None:
    session.delete(permissions.require_group_admin(session, actor, valid_id(group_id, "group")))


def set_member(session: Session, actor: Actor, group_id: int, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    group = permissions.require_group_admin(session, actor, valid_id(group_id, "group"))
    user = user_by_name(session, body["user"])
    membership = session.get(Membership, (user.id, group.id))
    created = membership is None
    if membership is None:
        membership = Membership(user_id=user.id, group_id=group.id, role=Role(body.get("role", "member")))
        session.add(membership)
    elif "role" in body:
        membership.role = Role(body["role"])
    session.flush()
    _keep_an_admin(session, group)
    session.refresh(group)
    return group_json(session, group, with_members=True), created


def remove_member(session: Session, actor: Actor, group_id: int, user_name: str) -> None:
    """Group admins remove anyone; a member may leave. The last admin cannot leave an inhabited group."""
    group = _visible_group(session, actor, group_id)
    user = user_by_name(session, user_name, field="user")
    permissions.require_member_removal(session, actor, group, user.id)
    membership = session.get(Membership, (user.id, group.id))
    if membership is None:
        raise not_found("member", "user")
    session.delete(membership)
    session.flush()
    _keep_an_admin(session, group)


def _keep_an_admin(session: Session, group: Group) -> None:
    roles = session.scalars(select(Membership.role).where(Membership.group_id == group.id)).all()
    if roles and Role.admin not in roles:
        raise bad_request("A group needs at least one admin.", field="/role", reason="last_admin")
