"""Downloads: what a caller may download, decided before the first byte: one data file, or a zip of data files.

Plain Python, no tornado: api/downloads.py translates HTTP to these calls and streams the answer with
data/streaming.py (single files, Range) and data/zipstream.py (zips); a zip built for later pick-up is a
background job (data/zipjobs.py). Rights come from permissions.py, as SQL filters.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import DataFile, Project, Sample
from ..errors import FlowError, not_found
from ..identity import Actor
from ..permissions import require_datafile, require_project, visible_datafiles, visible_projects
from .storage import MAX_NAME_BYTES, Storage, safe_filename
from .paging import MAX_ID
from .streaming import Servable, datafile_target, open_servable
from .zipstream import ZipEntry, ZipPlan, arc_names

MAX_BULK_FILES = 10_000
BULK_ZIP_NAME = "flow-download.zip"
_ID_BATCH = 500  # ids per IN (...) query: well under SQLite's variable limit

BULK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["files"],
    "properties": {
        "files": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BULK_FILES,
            "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        },
        "deferred": {"type": "boolean"},
    },
}



def datafile_servable(session: Session, actor: Actor, storage: Storage, datafile_id: int) -> Servable:
    """The data file's bytes, if the caller may view it (404 otherwise, as if it did not exist)."""
    if datafile_id > MAX_ID:
        raise not_found("data file")
    datafile = require_datafile(session, actor, datafile_id, "view")
    return datafile_target(storage, datafile)



def _visible_sample_names(session: Session, actor: Actor, sample_ids: set[int]) -> dict[int, str]:
    """Sample names become folders only when the caller can see the sample's project (no name leak through a file
    shared on its own)."""
    names: dict[int, str] = {}
    ids = sorted(sample_ids)
    for i in range(0, len(ids), _ID_BATCH):
        rows = session.execute(
            select(Sample.id, Sample.name).join(Project, Project.id == Sample.project_id)
            .where(Sample.id.in_(ids[i:i + _ID_BATCH]), visible_projects(actor))
        )
        names.update({sid: name for sid, name in rows})
    return names


def _plan(session: Session, actor: Actor, storage: Storage, datafiles: Sequence[DataFile], filename: str,
          fields: Sequence[str | None] | None = None) -> ZipPlan:
    samples = _visible_sample_names(session, actor, {d.sample_id for d in datafiles if d.sample_id is not None})
    names = arc_names([(d.filename, samples.get(d.sample_id) if d.sample_id else None) for d in datafiles])
    entries = []
    for index, (datafile, arcname) in enumerate(zip(datafiles, names)):
        field = fields[index] if fields else None
        target = datafile_target(storage, datafile)
        try:
            handle, info = open_servable(target)  # checked before the first byte is sent
        except FlowError as exc:
            raise FlowError(exc.status, exc.reason, f"Data file {datafile.id}: {exc.message}", field) from None
        handle.close()
        entries.append(ZipEntry(arcname, target.path, info.st_size, target))
    return ZipPlan(filename, tuple(entries))


def zip_plan_for_files(session: Session, actor: Actor, storage: Storage, ids: Sequence[int]) -> ZipPlan:
    """Check every requested id (404 naming ``/files/<index>`` for the first the caller cannot see) before
    anything is sent. Repeated ids are zipped once."""
    found: dict[int, DataFile] = {}
    wanted = list(dict.fromkeys(int(i) for i in ids))
    for i in range(0, len(wanted), _ID_BATCH):
        batch = wanted[i:i + _ID_BATCH]
        found.update((d.id, d) for d in session.scalars(
            select(DataFile).where(DataFile.id.in_(batch), visible_datafiles(actor))))
    first_index: dict[int, int] = {}
    for index, datafile_id in enumerate(ids):
        if int(datafile_id) not in found:
            raise not_found("data file", field=f"/files/{index}")
        first_index.setdefault(int(datafile_id), index)
    datafiles = [found[i] for i in wanted]
    return _plan(session, actor, storage, datafiles, BULK_ZIP_NAME, [f"/files/{first_index[i]}" for i in wanted])


def zip_plan_for_project(session: Session, actor: Actor, storage: Storage, project_id: int) -> ZipPlan:
    """All data files of a project the caller can view, grouped by sample."""
    if project_id > MAX_ID:
        raise not_found("project")
    project = require_project(session, actor, project_id, "view")
    datafiles = session.scalars(
        select(DataFile).where(DataFile.project_id == project.id, visible_datafiles(actor)).order_by(DataFile.id)
    ).all()
    return _plan(session, actor, storage, datafiles, project_zip_name(project.name))


def project_zip_name(project_name: str) -> str:
    """``<project name>.zip``, at most 255 bytes with the extension kept. Exact (safe_filename) so ``filename*`` is
    the project's real name; content_disposition makes the portable ``filename=`` from it."""
    stem = safe_filename(project_name, "project")
    stem = stem.encode()[:MAX_NAME_BYTES - len(".zip")].decode("utf-8", "ignore").rstrip()
    return f"{stem or 'project'}.zip"


__all__ = ["BULK_SCHEMA", "BULK_ZIP_NAME", "MAX_BULK_FILES", "datafile_servable", "project_zip_name",
           "zip_plan_for_files", "zip_plan_for_project"]
