"""Turning names and ids from requests into rows, with the errors a client can act on."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Project, Sample, User
from ..errors import not_found
from .paging import MAX_ID


def valid_id(value: int | str, kind: str, field: str | None = None) -> int:
    """Ids from a URL or body; anything that cannot be a row id is simply not found (never a database error)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise not_found(kind, field) from None
    if not 0 < number <= MAX_ID:
        raise not_found(kind, field)
    return number


def user_by_name(session: Session, name: str, field: str = "/user") -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise not_found("user", field)
    return user


def sample_in_project(session: Session, sample_id: int | None, project: Project, field: str = "/sample") -> int | None:
    """The sample id if it belongs to ``project``; a sample of another project is 'not found' for this request."""
    if sample_id is None:
        return None
    sample = session.get(Sample, valid_id(sample_id, "sample", field))
    if sample is None or sample.project_id != project.id:
        raise not_found("sample", field)
    return sample.id
