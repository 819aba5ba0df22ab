"""One interface for every place a Nextflow head process can run (this host, or a Slurm head job).

The execution manager only ever talks to a `Backend`: it hands over a `Launch` (built from values Flow controls),
stores the returned `BackendJob` in the database, and later asks for a `JobInfo`. Because the job record is plain
JSON and every backend also leaves evidence in the run directory (``head.json``, ``exit_code``), a restarted host can
reconcile a row with reality without any state kept in memory.
"""
from __future__ import annotations

import abc
import enum
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dask.utils import parse_bytes

from flow_jupyter.config import SBATCH_VALUE
from flow_jupyter.errors import bad_request
from flow_jupyter.execution.runfiles import CANCEL_FILE, EXIT_CODE_FILE, HEAD_FILE
from flow_jupyter.fsutil import atomic_write_json, atomic_write_text

#: Exit codes that mean "stopped by SIGINT/SIGTERM" (128 + signal number), as written by our wrappers.
SIGNAL_EXIT_CODES = {130, 143}

_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_WALLTIME = re.compile(r"^(\d+-)?\d{1,6}(:\d{1,2}){0,2}$")


class BackendState(enum.Enum):
    """Where a head job stands, as far as the backend can tell (batchspawner-style enum).

    Not an execution status (execution/status.py) and not a background job's (db.models.JobStatus): the manager
    decides an execution's status from this and from what the run's own files say."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # gone from the scheduler / process table and nothing on disk says how it ended

    @property
    def terminal(self) -> bool:
        return self in {BackendState.COMPLETED, BackendState.FAILED, BackendState.CANCELLED}


#: Longest value a user may give for one resource (a partition, account, time, size or directive).
MAX_RESOURCE_LENGTH = 255
#: Most extra ``#SBATCH`` directives one launch may add.
MAX_EXTRA_DIRECTIVES = 32
#: Options a user may not set through ``resources.extra_directives``: they would change who runs the job, where it
#: writes, what it is called or what environment it gets. Prefixes count too (sbatch accepts abbreviated options).
USER_DENIED_OPTIONS = ("--uid", "--gid", "--chdir", "--output", "--error", "--input", "--job-name", "--export",
                       "--export-file", "--get-user-env", "--wrap", "--open-mode", "--parsable",
                       "--container", "--bb", "--bbf", "--burst-buffer",
                       # ... nor how many head jobs run, whether sbatch returns, what others may read, or where:
                       "--array", "--wait", "--umask", "--clusters", "--test-only")
_STRING_RESOURCES = ("queue", "account", "walltime", "memory")


@dataclass(frozen=True)
class Resources:
    """User-requested overrides of the FlowSettings Slurm defaults for one launch (None = use the default).

    Every value may come from a user, so each is checked with the same rule as the settings (`SBATCH_VALUE`) before
    anything is rendered; a bad one is a 400 naming the field (``/resources/<name>``). `from_json` (the API's way
    in) also refuses what would only fail later at submission: a size that is not a size, a directive a user may
    not set. What only Slurm itself can judge (a partition, too many cores) is asked at launch by
    `Backend.check_launch`.
    """

    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    cores: int | None = None
    memory: str | None = None
    extra_directives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in _STRING_RESOURCES:
            check_sbatch_value(getattr(self, name), f"/resources/{name}")
            check_resource_length(getattr(self, name), f"/resources/{name}")
        if self.walltime is not None and not _WALLTIME.match(self.walltime):
            raise bad_request(f"walltime {self.walltime!r} is not a Slurm time like '24:00:00'", "/resources/walltime")
        if self.cores is not None and (isinstance(self.cores, bool) or not isinstance(self.cores, int)
                                       or not 1 <= self.cores <= 4096):
            raise bad_request("cores must be an integer from 1 to 4096", "/resources/cores")
        if isinstance(self.extra_directives, (str, bytes)):
            raise bad_request("extra_directives must be a list of options", "/resources/extra_directives")
        object.__setattr__(self, "extra_directives", tuple(self.extra_directives))
        if len(self.extra_directives) > MAX_EXTRA_DIRECTIVES:
            raise bad_request(f"at most {MAX_EXTRA_DIRECTIVES} extra directives", "/resources/extra_directives")
        for index, item in enumerate(self.extra_directives):
            check_directive(item, f"/resources/extra_directives/{index}")
            check_resource_length(item, f"/resources/extra_directives/{index}")

    @classmethod
    def from_json(cls, data: dict | None) -> "Resources":
        """Build from an API body, refusing unknown keys (a typo must not silently fall back to a default) and every
        value a user may not set, each as a 400 naming ``/resources/<field>``."""
        if data is not None and not isinstance(data, dict):
            raise bad_request("resources must be an object", "/resources")
        data = dict(data or {})
        known = {"queue", "account", "walltime", "cores", "memory", "extra_directives"}
        for key in data:
            if key not in known:
                raise bad_request(f"unknown resource {str(key)[:80]!r}", f"/resources/{key}")
        for key in _STRING_RESOURCES:
            if data.get(key) is not None and not isinstance(data[key], str):
                raise bad_request(f"{key} must be a string", f"/resources/{key}")
        extra = data.get("extra_directives") or ()
        if not isinstance(extra, (list, tuple)) or not all(isinstance(item, str) for item in extra):
            raise bad_request("extra_directives must be a list of strings", "/resources/extra_directives")
        data["extra_directives"] = tuple(extra)
        resources = cls(**data)
        resources.check_user_values()
        return resources

    def check_user_values(self) -> None:
        """What a user may not ask for even in a well-formed value: a memory that is not a size, a directive that
        would change identity, paths, name or environment of the job."""
        if self.memory is not None and not _is_size(self.memory):
            raise bad_request(f"memory {self.memory!r} is not a size like '4GB'", "/resources/memory")
        for index, item in enumerate(self.extra_directives):
            check_user_directive(item, f"/resources/extra_directives/{index}")


def _is_size(text: str) -> bool:
    """A positive size as dask-jobqueue reads it for ``--mem`` (``0`` would mean "all of a node's memory")."""
    try:
        return parse_bytes(text) > 0
    except (ValueError, TypeError):
        return False


def check_resource_length(value: str | None, field_name: str) -> None:
    if value is not None and len(value) > MAX_RESOURCE_LENGTH:
        raise bad_request(f"longer than {MAX_RESOURCE_LENGTH} characters", field_name)


def check_sbatch_value(value: str | None, field_name: str) -> None:
    """Refuse anything that could break out of an ``#SBATCH`` line: newlines, quotes, spaces, shell syntax."""
    if value is None:
        return
    if not isinstance(value, str) or not SBATCH_VALUE.match(value):
        raise bad_request(f"{_shown(value)} has characters not allowed in a Slurm option", field_name)


def check_directive(item: str, field_name: str) -> None:
    """An extra directive is exactly one option like ``--qos=normal`` (no second ``#SBATCH``, no spaces)."""
    if not isinstance(item, str) or not item.startswith("-") or not SBATCH_VALUE.match(item):
        raise bad_request(f"directive {_shown(item)} must be one option like '--qos=normal'", field_name)


def check_user_directive(item: str, field_name: str) -> None:
    """A user's extra directive: one long option, not one that changes identity, paths, name or environment."""
    check_directive(item, field_name)
    name = item.split("=", 1)[0]
    if not name.startswith("--") or len(name) < 3:
        raise bad_request(f"directive {item!r} must be a long option like '--qos=normal'", field_name)
    if any(denied.startswith(name) for denied in USER_DENIED_OPTIONS):
        raise bad_request(f"directive {name!r} is not allowed", field_name)


def _shown(value: object) -> str:
    """A client's value quoted in a message, cut short (it may be a huge string)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


@dataclass(frozen=True)
class Launch:
    """What the manager asks a backend to start. ``argv`` and ``env`` hold only values Flow controls."""

    execution_uuid: str
    run_dir: Path
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources | None = None

    def __post_init__(self) -> None:
        if not _UUID.match(self.execution_uuid):
            raise bad_request("execution uuid must be letters, digits and dashes", "/execution_uuid")
        if not self.argv:
            raise bad_request("empty command", "/argv")
        object.__setattr__(self, "run_dir", Path(self.run_dir))


@dataclass
class BackendJob:
    """The handle the manager stores (as JSON) to find a head job again, also after a host restart.

    Local jobs carry the pid's start time (clock ticks since boot + boot id) so a reused pid is never mistaken for
    our run; ``pid_start`` is the same moment as epoch seconds, for people.
    """

    backend: str
    job_id: str
    execution_uuid: str
    run_dir: str
    submitted_at: str  # ISO 8601, UTC
    pid_start: float | None = None
    pid_start_ticks: int | None = None
    boot_id: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BackendJob":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of a head job: what the UI shows and what the manager turns into an execution status."""

    status: BackendState
    exit_code: int | None = None
    reason: str | None = None
    queue_eta: datetime | None = None
    node: str | None = None


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def write_head_file(job: BackendJob) -> None:
    atomic_write_json(Path(job.run_dir) / HEAD_FILE, job.to_json())


def read_head_file(run_dir: Path, execution_uuid: str) -> BackendJob | None:
    """The job recorded in run_dir, if it is there, readable and really for this execution."""
    try:
        data = json.loads((Path(run_dir) / HEAD_FILE).read_text())
        job = BackendJob.from_json(data)
    except (OSError, ValueError, TypeError):
        return None
    return job if job.execution_uuid == execution_uuid else None


def read_exit_code(run_dir: Path) -> int | None:
    """The exit code a wrapper left in run_dir; None when absent or not a number (the file is not trusted)."""
    try:
        text = (Path(run_dir) / EXIT_CODE_FILE).read_text(errors="replace")[:32].strip()
    except OSError:
        return None
    return int(text) if re.fullmatch(r"-?\d{1,5}", text) else None


def clear_run_evidence(run_dir: Path) -> None:
    """Remove a previous attempt's exit code and cancel marker, so a relaunch in the same dir is not misread."""
    for name in (EXIT_CODE_FILE, CANCEL_FILE):
        try:
            (Path(run_dir) / name).unlink()
        except FileNotFoundError:
            pass


def mark_cancel_requested(run_dir: Path) -> None:
    try:
        atomic_write_text(Path(run_dir) / CANCEL_FILE, utc_now_iso() + "\n")
    except OSError:
        pass  # the run dir may be gone; the scheduler/process state still tells the story


def info_from_exit_code(code: int, run_dir: Path, source: str) -> JobInfo:
    """Turn a recorded exit code into a final JobInfo (0 = completed, stopped by a signal or cancel = cancelled)."""
    if code == 0:
        return JobInfo(BackendState.COMPLETED, 0, source)
    if code in SIGNAL_EXIT_CODES or (Path(run_dir) / CANCEL_FILE).exists():
        return JobInfo(BackendState.CANCELLED, code, source)
    return JobInfo(BackendState.FAILED, code, source)


class Backend(abc.ABC):
    """Start, follow, stop and re-find Nextflow head jobs. Methods block briefly; call them from a thread."""

    name: str = ""

    @abc.abstractmethod
    def submit(self, launch: Launch) -> BackendJob:
        """Start the head job and return its handle (also written to ``run_dir/head.json``)."""

    @abc.abstractmethod
    def status(self, job: BackendJob) -> JobInfo:
        """Where the job stands now; never raises for a job that simply ended or vanished."""

    def statuses(self, jobs: Sequence[BackendJob]) -> dict[str, JobInfo]:
        """Every job's `status`, keyed by job id: what the manager asks once per round for all active runs. A
        scheduler answers it with one query for all of them (SlurmBackend); the default asks job by job, which
        costs nothing for local processes."""
        return {job.job_id: self.status(job) for job in jobs}

    @abc.abstractmethod
    def cancel(self, job: BackendJob, task_ids: Sequence[str] = ()) -> None:
        """Stop the job and everything it started; idempotent. ``task_ids`` are the native ids of the run's
        unfinished tasks (from its own task rows: untrusted file contents) for a backend whose tasks are jobs of
        their own; only those of them working inside the run directory are touched."""

    def successor(self, job: BackendJob, info: JobInfo) -> BackendJob | None:
        """The head job that really runs this execution when ``job`` ended only because another head job of the same
        run held its run directory (a duplicate of an uncertain submission was the one recorded); else None. Reads
        files only: no scheduler call."""
        return None

    @abc.abstractmethod
    def find(self, execution_uuid: str, run_dir: Path) -> BackendJob | None:
        """Re-find the head job of an execution after a restart (no in-memory state needed)."""

    def eta(self, job: BackendJob) -> datetime | None:
        """When a queued job is expected to start; None when unknown or not queued."""
        return None

    def check_launch(self, resources: "Resources | None") -> None:
        """Before a launch is stored: 400 naming the field for options the scheduler would refuse, 503
        (``scheduler_unavailable``) when the scheduler cannot be reached. Local runs need no check."""
