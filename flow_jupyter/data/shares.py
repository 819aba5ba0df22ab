"""Shares: grants of view, edit or share rights on a project or data file to a user or a group.

No answer tells a caller about objects or groups they cannot see: a share on an object they cannot see is "No such
share.", a group they are not in is "No such group." (so they can only share with their own groups), and a share's
view names a group only to its members.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import permissions
from ..db.models import Group, Level, Share
from ..errors import bad_request
from ..identity import Actor
from . import refs
from .lookup import user_by_name, valid_id
from .paging import page

KINDS = {"project": "project", "datafile": "data file"}


def share_json(session: Session, actor: Actor, share: Share) -> dict[str, Any]:
    """A share as ``actor`` may see it: a group grantee's name only if they are in that group."""
    grantee: dict[str, Any]
    if share.group_id is None:  # the one_grantee constraint: a share names a user, or else a group
        grantee = {"user": refs.user_name(session, share.user_id)}
    else:
        visible = permissions.group_visible(actor, share.group_id)
        grantee = {"group": share.group_id,
                   "group_name": session.get_one(Group, share.group_id).name if visible else None}
    return {"id": share.id, "object_type": share.object_type, "object_id": share.object_id, "level": share.level.value,
            **grantee, "created_at": share.created_at.isoformat()}


def _require_on_object(session: Session, actor: Actor, object_type: str, object_id: int, action: str,
                       field: str = "/object_id") -> None:
    """The object a request names (``field``) exists for the actor and allows ``action`` (permissions decide)."""
    kind = KINDS[object_type]
    permissions.require_object(session, actor, object_type, valid_id(object_id, kind, field), action, kind, field)


def list_shares(session: Session, actor: Actor, object_type: str, object_id: int, after: str | None = None,
                limit: int = 50) -> dict[str, Any]:
    _require_on_object(session, actor, object_type, object_id, "view", "object_id")
    query = select(Share).where(Share.object_type == object_type, Share.object_id == object_id)
    return page(session, query, [Share.id], after, limit, lambda s: share_json(session, actor, s),
                prefetch=lambda rows: _preload(session, rows))


def _preload(session: Session, shares: Sequence[Share]) -> None:
    """The grantees of a page of shares, one query per kind (groups land in the session's identity map)."""
    refs.preload(session, users=(s.user_id for s in shares))
    group_ids = {s.group_id for s in shares if s.group_id is not None}
    if group_ids:
        session.scalars(select(Group).where(Group.id.in_(group_ids))).all()


def grant(session: Session, actor: Actor, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Grant (or change) a share; returns the share and whether it was created."""
    object_type, object_id = body["object_type"], body["object_id"]
    _require_on_object(session, actor, object_type, object_id, "share")
    if ("user" in body) == ("group" in body):
        raise bad_request("Give exactly one of 'user' or 'group'.", field="/user", reason="one_grantee")
    user_id = user_by_name(session, body["user"]).id if "user" in body else None
    group_id = permissions.require_group(session, actor, body["group"], "/group").id if "group" in body else None
    if user_id is not None and user_id == actor.user_id:
        raise bad_request("You cannot share with yourself.", field="/user")
    level = Level(body.get("level", "view"))
    share = session.scalar(select(Share).where(
        Share.object_type == object_type, Share.object_id == object_id,
        Share.user_id.is_(None) if user_id is None else Share.user_id == user_id,
        Share.group_id.is_(None) if group_id is None else Share.group_id == group_id,
    ))
    created = share is None
    if share is None:
        share = Share(object_type=object_type, object_id=object_id, user_id=user_id, group_id=group_id,
                      level=level, created_by_id=actor.user_id)
        session.add(share)
    else:
        share.level = level
    session.flush()
    return share_json(session, actor, share), created


def update_share(session: Session, actor: Actor, share_id: int, body: dict[str, Any]) -> dict[str, Any]:
    share = permissions.require_share(session, actor, valid_id(share_id, "share"))
    _require_on_object(session, actor, share.object_type, share.object_id, "share")
    share.level = Level(body["level"])
    session.flush()
    return share_json(session, actor, share)


def revoke(session: Session, actor: Actor, share_id: int) -> None:
    """The object's sharers may revoke any share on it; a grantee may give up their own."""
    session.delete(permissions.require_share(session, actor, valid_id(share_id, "share")))


def drop_shares_of(session: Session, object_type: str, object_id: int) -> None:
    session.execute(delete(Share).where(Share.object_type == object_type, Share.object_id == object_id))
