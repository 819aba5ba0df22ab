"""Who is calling: an `Identity` from the host, resolved against the database into an `Actor`.

Hosts produce identities: the single-user extension takes the Jupyter server's user (admin of their own store);
the hub service takes the HubOAuth user with its hub groups. A test-only provider reads the user from a header when
``FlowSettings.test_identity_header`` is set — never in production.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .db.models import Group, Membership, Role, User


@dataclass(frozen=True)
class Identity:
    """A caller as the host knows them. ``groups`` is None when the host has no opinion (single-user); then
    Flow's own memberships are used. With a list (the hub), memberships are synced to it."""

    name: str
    groups: tuple[str, ...] | None = None
    is_admin: bool = False


@dataclass(frozen=True)
class Actor:
    """An identity resolved against the database: what permissions.py decides with."""

    user_id: int
    name: str
    is_admin: bool
    group_ids: frozenset[int]
    admin_group_ids: frozenset[int]


def resolve(session: Session, identity: Identity) -> Actor:
    """The caller's user row (created on first sight) and group memberships."""
    user = session.scalar(select(User).where(User.name == identity.name))
    if user is None:
        user = User(name=identity.name, is_admin=identity.is_admin)
        session.add(user)
        session.flush()
    elif user.is_admin != identity.is_admin and identity.is_admin:
        user.is_admin = True
    if identity.groups is not None:
        _sync_groups(session, user, identity.groups)
    return actor_for_user(session, user)


def actor_for_user(session: Session, user: User) -> Actor:
    """A user row as an actor: its admin flag and memberships as stored now (nothing is created or synced)."""
    rows = session.execute(select(Membership.group_id, Membership.role).where(Membership.user_id == user.id)).all()
    return Actor(
        user_id=user.id,
        name=user.name,
        is_admin=user.is_admin,
        group_ids=frozenset(gid for gid, _ in rows),
        admin_group_ids=frozenset(gid for gid, role in rows if role == Role.admin),
    )


def _sync_groups(session: Session, user: User, names: tuple[str, ...]) -> None:
    """Make the user's memberships match the host's group list (hub groups become Flow groups)."""
    wanted = set(names)
    existing = {g.name: g for g in session.scalars(select(Group).where(Group.name.in_(wanted)))}
    for name in wanted - set(existing):
        existing[name] = Group(name=name)
        session.add(existing[name])
    session.flush()
    current = {gid for (gid,) in session.execute(select(Membership.group_id).where(Membership.user_id == user.id))}
    wanted_ids = {g.id for g in existing.values()}
    for gid in wanted_ids - current:
        session.add(Membership(user_id=user.id, group_id=gid, role=Role.member))
    stale = current - wanted_ids
    if stale:
        session.execute(delete(Membership).where(Membership.user_id == user.id, Membership.group_id.in_(stale)))
    session.flush()
