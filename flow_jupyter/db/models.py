"""Flow's data model (SQLAlchemy 2 typed mappings). Schema changes go through Alembic migrations (db/migrations).

Constraint names follow a naming convention so migrations can refer to them on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ..execution.status import ExecutionStatus

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both backends (SQLite keeps no zone; we put it back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(str, enum.Enum):
    member = "member"
    admin = "admin"


class Visibility(str, enum.Enum):
    private = "private"
    group = "group"
    public = "public"


class Level(str, enum.Enum):
    """Share levels, in increasing power."""

    view = "view"
    edit = "edit"
    share = "share"


class Origin(str, enum.Enum):
    upload = "upload"
    output = "output"


class UploadState(str, enum.Enum):
    active = "active"
    completed = "completed"
    terminated = "terminated"
    expired = "expired"


class JobStatus(str, enum.Enum):
    """Where a background job (a `BackgroundJob` row: a deferred zip) stands. A Nextflow head job's state, as a
    backend sees it, is another thing: execution.backends.BackendState."""

    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


#: Names compare by code point on both databases (SQLite's BINARY; PostgreSQL's "C" collation), so a prefix search is
#: an index range and name order is the same everywhere.
NAME_ORDER = String(255).with_variant(String(255, collation="C"), "postgresql")


#: Table options for every table with an integer surrogate id. SQLite hands the id of a deleted newest row to the next
#: row unless the table is AUTOINCREMENT, and a stale id (in a saved sample sheet, a parameter, a client) must never
#: name a different object later. PostgreSQL's sequences never go back anyway. Migration 0005 rebuilt the old tables.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, name=cls.__name__.lower(), native_enum=False, validate_strings=True, length=16)


class User(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    memberships: Mapped[list[Membership]] = relationship(back_populates="group", cascade="all, delete-orphan")


class Membership(Base):
    __tablename__ = "memberships"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.member)
    group: Mapped[Group] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_projects_owner_name"), NEVER_REUSE_IDS)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"), index=True)
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.private)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    group: Mapped[Group | None] = relationship()


class Share(Base):
    """A grant on a project or a data file to one user or one group."""

    __tablename__ = "shares"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_grantee"),
        CheckConstraint("object_type IN ('project', 'datafile')", name="object_type"),
        UniqueConstraint("object_type", "object_id", "user_id", "group_id", name="uq_shares_grant"),
        Index("ix_shares_object", "object_type", "object_id"),
        NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    level: Mapped[Level] = mapped_column(_enum(Level), default=Level.view)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_samples_project_name"), NEVER_REUSE_IDS)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataFile(Base):
    __tablename__ = "datafiles"
    # Every listing filter has an index ending in id, so a keyset page is one range scan (bench/list_files.py).
    __table_args__ = (
        Index("ix_datafiles_project_id_id", "project_id", "id"),
        Index("ix_datafiles_owner_id_id", "owner_id", "id"),
        Index("ix_datafiles_sample_id_id", "sample_id", "id"),
        Index("ix_datafiles_file_type_id", "file_type", "id"),
        Index("ix_datafiles_filename_id", "filename", "id"),
        # A run's outputs are looked up by execution (listing, reports, re-publishes): never a scan of every file.
        Index("ix_datafiles_execution_id_id", "execution_id", "id"),
        NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(NAME_ORDER)
    file_type: Mapped[str] = mapped_column(String(32), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(String(1024), unique=True)
    origin: Mapped[Origin] = mapped_column(_enum(Origin), default=Origin.upload)
    execution_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The identity of the stored bytes at registration (st_ino, st_mtime_ns), so that a file swapped or rewritten
    # after it was registered is detected when it is served. NULL for files registered before migration 0005.
    stat_inode: Mapped[int | None] = mapped_column(BigInteger, default=None)
    stat_mtime_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # For outputs: the path relative to the run directory where the run published it (the bytes live in the store).
    run_path: Mapped[str | None] = mapped_column(String(4096), default=None)
    # A re-published, changed output becomes a new data file that names the one it replaces (indexed: deleting a
    # file nulls the references to it).
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("datafiles.id", ondelete="SET NULL"), default=None,
                                                    index=True)


class Upload(Base):
    """A resumable (tus) upload in progress; its bytes live in uploads/.partial/<id> until complete."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    state: Mapped[UploadState] = mapped_column(_enum(UploadState), default=UploadState.active, index=True)
    datafile_id: Mapped[int | None] = mapped_column(ForeignKey("datafiles.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class BackgroundJob(Base):
    __tablename__ = "background_jobs"
    __table_args__ = (Index("ix_background_jobs_status_id", "status", "id"),
                      Index("ix_background_jobs_claimed_by", "claimed_by"), NEVER_REUSE_IDS)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.pending)
    #: The host building the job and when it last said so (a lease, as for executions: db/leases.py).
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Pipeline(Base):
    """A Nextflow pipeline: a git repository (local path or URL) or a pipeline bundled with Flow."""

    __tablename__ = "pipelines"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(Text, default="")
    bundled: Mapped[bool] = mapped_column(default=False)
    curated: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    versions: Mapped[list[PipelineVersion]] = relationship(
        back_populates="pipeline", cascade="all, delete-orphan", order_by="PipelineVersion.id"
    )


class PipelineVersion(Base):
    """One pinned revision of a pipeline, with the schema files read from that revision."""

    __tablename__ = "pipeline_versions"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "ref", name="uq_pipeline_versions_pipeline_ref"),
        NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    ref: Mapped[str] = mapped_column(String(255))
    commit: Mapped[str] = mapped_column(String(64), default="")
    path: Mapped[str] = mapped_column(String(1024))
    schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    samplesheet_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    tower: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    config_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    pipeline: Mapped[Pipeline] = relationship(back_populates="versions")


class Execution(Base):
    """One Nextflow run (or a resume of one), driven by the host's execution manager from this row alone."""

    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_owner_id_id", "owner_id", "id"),
        Index("ix_executions_project_id_id", "project_id", "id"),
        Index("ix_executions_status_id", "status", "id"),
        Index("ix_executions_claimed_by", "claimed_by"),
        NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    pipeline_version_id: Mapped[int] = mapped_column(ForeignKey("pipeline_versions.id"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ExecutionStatus] = mapped_column(_enum(ExecutionStatus), default=ExecutionStatus.pending)
    #: The host (replica) that submits and follows this run, and when it last said so: a lease that another host
    #: takes over once it is `claim_lease_seconds` old (db/leases.py).
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    backend: Mapped[str] = mapped_column(String(16), default="local")
    backend_job: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    run_dir: Mapped[str] = mapped_column(String(1024))
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)
    run_name: Mapped[str | None] = mapped_column(String(128), default=None)
    resumed_from_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id", ondelete="SET NULL"),
                                                        default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    exit_status: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    monitor_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    monitor_offsets: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    cancel_requested: Mapped[bool] = mapped_column(default=False)


class ProcessExecution(Base):
    """One Nextflow task of an execution, upserted from the monitor's changes (listing order: id)."""

    __tablename__ = "process_executions"
    __table_args__ = (
        UniqueConstraint("execution_id", "task_key", name="uq_process_executions_execution_task"),
        Index("ix_process_executions_execution_id_id", "execution_id", "id"),
        NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    task_key: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[int | None] = mapped_column(Integer, default=None)
    name: Mapped[str | None] = mapped_column(String(1024), default=None)
    process: Mapped[str | None] = mapped_column(String(1024), default=None)
    tag: Mapped[str | None] = mapped_column(String(1024), default=None)
    native_id: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(16), default="NEW")
    exit: Mapped[int | None] = mapped_column(Integer, default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cpu_percent: Mapped[float | None] = mapped_column(default=None)
    peak_rss: Mapped[int | None] = mapped_column(BigInteger, default=None)
    workdir: Mapped[str | None] = mapped_column(String(4096), default=None)
