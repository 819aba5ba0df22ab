"""Shares: grants of view, edit or share rights on a project or data file to a user or a group.

No answer tells a caller about objects or groups they cannot see: a share on an object they cannot see is "No such
share.", a group they are not in is "No such group." (so they can only share with their own groups), and a share's
view names a group only to its members.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import permissions
from ..db.models import DataFile, Group, Level, Project, Share, User
from ..errors import bad_request, forbidden, not_found
from ..identity import Actor
from .lookup import user_by_name, valid_id

KINDS = {"project": "project", "datafile": "data file"}


def share_json(session: Session, actor: Actor, share: Share) -> dict[str, Any]:
    """A share as ``actor`` may see it: a group grantee's name only if they are in that group."""
    grantee: dict[str, Any]
    if share.user_id is not None:
        grantee = {"user": session.get(User, share.user_id).name}
    else:
        visible = permissions.group_visible(actor, share.group_id)
        grantee = {"group": share.group_id,
                   "group_name": session.get(Group, share.group_id).name if visible else None}
    return {"id": share.id, "object_type": share.object_type, "object_id": share.object_id, "level": share.level.value,
            **grantee, "created_at": share.created_at.isoformat()}


def _object_power(session: Session, actor: Actor, object_type: str, object_id: int) -> int:
    """The actor's power on the object; NONE when it does not exist or they cannot see it."""
    if object_type == "project":
        obj = session.get(Project, object_id)
        return permissions.project_power(session, actor, obj) if obj else permissions.NONE
    obj = session.get(DataFile, object_id)
    return permissions.datafile_power(session, actor, obj) if obj else permissions.NONE


def _power_on(session: Session, actor: Actor, object_type: str, object_id: int, field: str) -> int:
    """The actor's power on an object the request names; 404 naming ``field`` when they cannot see it."""
    object_id = valid_id(object_id, KINDS[object_type], field)
    power = _object_power(session, actor, object_type, object_id)
    if power == permissions.NONE:
        raise not_found(KINDS[object_type], field)
    return power


def _require_share_power(session: Session, actor: Actor, object_type: str, object_id: int,
                         field: str = "/object_id") -> None:
    if _power_on(session, actor, object_type, object_id, field) < permissions.SHARE:
        raise forbidden(f"You may not share this {KINDS[object_type]}.")


def list_shares(session: Session, actor: Actor, object_type: str, object_id: int) -> dict[str, Any]:
    _power_on(session, actor, object_type, object_id, "object_id")
    shares = session.scalars(select(Share).where(Share.object_type == object_type, Share.object_id == object_id)
                             .order_by(Share.id)).all()
    return {"items": [share_json(session, actor, s) for s in shares], "next": None}


def grant(session: Session, actor: Actor, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Grant (or change) a share; returns the share and whether it was created."""
    object_type, object_id = body["object_type"], body["object_id"]
    _require_share_power(session, actor, object_type, object_id)
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
    if created:
        share = Share(object_type=object_type, object_id=object_id, user_id=user_id, group_id=group_id,
                      level=level, created_by_id=actor.user_id)
        session.add(share)
    else:
        share.level = level
    session.flush()
    return share_json(session, actor, share), created


def _require_share(session: Session, actor: Actor, share_id: int) -> Share:
    """A share the actor can see (they can see its object), else 'No such share.' — never a word about the object,
    which would tell them the share exists."""
    share = session.get(Share, valid_id(share_id, "share"))
    power = _object_power(session, actor, share.object_type, share.object_id) if share else permissions.NONE
    if power == permissions.NONE:
        raise not_found("share")
    if power < permissions.SHARE and share.user_id != actor.user_id:
        raise forbidden("You may not change this share.")
    return share


def update_share(session: Session, actor: Actor, share_id: int, body: dict[str, Any]) -> dict[str, Any]:
    share = _require_share(session, actor, share_id)
    _require_share_power(session, actor, share.object_type, share.object_id)
    share.level = Level(body["level"])
    session.flush()
    return share_json(session, actor, share)


def revoke(session: Session, actor: Actor, share_id: int) -> None:
    """The object's sharers may revoke any share on it; a grantee may give up their own."""
    session.delete(_require_share(session, actor, share_id))


def drop_shares_of(session: Session, object_type: str, object_id: int) -> None:
    session.execute(delete(Share).where(Share.object_type == object_type, Share.object_id == object_id))
