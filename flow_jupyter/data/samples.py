"""Samples: named biological samples inside a project, with free-form metadata."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import permissions
from ..db.models import DataFile, Sample
from ..errors import conflict
from ..identity import Actor
from .lookup import valid_id
from .paging import page


def sample_json(sample: Sample) -> dict[str, Any]:
    return {"id": sample.id, "project": sample.project_id, "name": sample.name, "metadata": sample.meta,
            "created_at": sample.created_at.isoformat()}


def _require_sample(session: Session, actor: Actor, sample_id: int, action: str) -> Sample:
    return permissions.require_sample(session, actor, valid_id(sample_id, "sample"), action)


def _check_unique(session: Session, project_id: int, name: str, except_id: int | None = None) -> None:
    query = select(Sample.id).where(Sample.project_id == project_id, Sample.name == name)
    if except_id is not None:
        query = query.where(Sample.id != except_id)
    if session.scalar(query) is not None:
        raise conflict(f"The project already has a sample called '{name}'.", field="/name", reason="duplicate_name")


def create_sample(session: Session, actor: Actor, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
    project = permissions.require_project(session, actor, valid_id(project_id, "project"), "edit")
    _check_unique(session, project.id, body["name"])
    sample = Sample(project_id=project.id, name=body["name"], meta=body.get("metadata", {}))
    session.add(sample)
    session.flush()
    return sample_json(sample)


def list_samples(session: Session, actor: Actor, project_id: int, after: str | None, limit: int) -> dict[str, Any]:
    project = permissions.require_project(session, actor, valid_id(project_id, "project"), "view")
    return page(session, select(Sample).where(Sample.project_id == project.id), [Sample.id], after, limit, sample_json)


def get_sample(session: Session, actor: Actor, sample_id: int) -> dict[str, Any]:
    return sample_json(_require_sample(session, actor, sample_id, "view"))


def update_sample(session: Session, actor: Actor, sample_id: int, body: dict[str, Any]) -> dict[str, Any]:
    sample = _require_sample(session, actor, sample_id, "edit")
    if "name" in body:
        _check_unique(session, sample.project_id, body["name"], except_id=sample.id)
        sample.name = body["name"]
    if "metadata" in body:
        sample.meta = body["metadata"]
    session.flush()
    return sample_json(sample)


def delete_sample(session: Session, actor: Actor, sample_id: int) -> None:
    """The sample goes; its data files stay in the project, no longer attached to a sample."""
    sample = _require_sample(session, actor, sample_id, "edit")
    session.execute(update(DataFile).where(DataFile.sample_id == sample.id).values(sample_id=None))
    session.delete(sample)
