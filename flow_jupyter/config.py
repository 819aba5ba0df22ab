"""FlowSettings: every tunable of flow_jupyter, as traitlets with help text.

One Configurable serves both hosts and the CLI, so `c.FlowSettings.root_dir = ...` in a Jupyter config file,
`--FlowSettings.root_dir=...` on a command line and `FLOW_ROOT=...` in the environment all reach the same value.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from traitlets import Bool, Dict, Enum, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

#: Characters allowed in a value that ends up on an ``#SBATCH`` line. No newline, no quote, no shell syntax.
SBATCH_VALUE = re.compile(r"^[A-Za-z0-9_.,:=@%+/\-]*$")
NEXTFLOW_PIN = "24.10.0"
#: What ``sbatch --parsable`` prints: the id, optionally ``;cluster`` (the default of slurm_job_id_pattern).
SLURM_JOB_ID_PATTERN = r"^(?P<job_id>\d+)(;[A-Za-z0-9_.-]+)?$"
#: The states a Slurm state may be mapped to (BackendState's values; tests/test_backends.py keeps them in step).
BACKEND_STATE_NAMES = ("pending", "running", "completed", "failed", "cancelled", "unknown")
#: A Nextflow duration as its Duration class reads it (nf-commons 24.10 nextflow.util.Duration: number + unit, parts
#: may repeat, e.g. '1min', '30s', '1h 30min'); nothing else may reach the generated config.
NEXTFLOW_DURATION = re.compile(
    r"^(\d{1,9}(\.\d{1,6})?\s?(ms|millis?|s|sec|seconds?|m|min|minutes?|h|hours?|d|days?)\s?){1,4}$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s?([a-z]+)")
_DURATION_UNITS = {
    **dict.fromkeys(("ms", "milli", "millis"), 0.001), **dict.fromkeys(("s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0), **dict.fromkeys(("h", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
#: Nextflow's submitRateLimit as 'N/duration' (TaskPollingMonitor.newRateLimiter), e.g. '60/1min'; '' = no limit.
NEXTFLOW_RATE = re.compile(
    r"^\d{1,6}\s?/\s?(\d{1,9}(\.\d{1,6})?\s?(ms|millis?|s|sec|seconds?|m|min|minutes?|h|hours?|d|days?))$")
#: Characters a retry-reason regexp may hold: it is rendered into a single-quoted Groovy string (backslashes escaped),
#: so no quote, no line break, nothing outside printable ASCII ('$' is literal in a single-quoted Groovy string).
NEXTFLOW_REASON_CHARS = re.compile(r"^[A-Za-z0-9 _.,:;/()|?*+\-\[\]^{}$\\=<>!#%&~@]*$")
#: Messages of Slurm clients that mean "the controller did not answer" (not "your job was refused"): what Nextflow's
#: sbatch retries on by default in Flow's config, and what Flow itself turns into 503 scheduler_unavailable.
SLURM_UNREACHABLE_REASON = (r"Socket timed out|Unable to contact slurm controller|Slurm backup controller in standby|"
                            r"Zero Bytes were transmitted|Communication connection failure|Connection refused|"
                            r"Connection timed out|Transport endpoint is not connected")


def nextflow_duration_seconds(text: str) -> float:
    """Seconds of a Nextflow duration ('1min', '30s', '1h 30min'); ValueError for anything else."""
    if not NEXTFLOW_DURATION.match(text):
        raise ValueError(f"{text!r} is not a Nextflow duration like '30s' or '1min'")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))


def _env_path(name: str, fallback: Path) -> str:
    value = os.environ.get(name)
    return str(Path(value).expanduser() if value else fallback)


def _xdg(name: str, fallback: str) -> Path:
    return Path(os.environ.get(name) or Path.home() / fallback)


class FlowSettings(Configurable):
    """Settings shared by the single-user extension, the hub service and the ``flow-jupyter`` CLI."""

    root_dir = Unicode(
        help="""Directory that holds everything Flow stores: uploads/, executions/, pipelines/, configs/, media/,
        zips/ and the embedded flow.sqlite database. Environment: FLOW_ROOT.""",
    ).tag(config=True)

    @default("root_dir")
    def _default_root_dir(self) -> str:
        return _env_path("FLOW_ROOT", _xdg("XDG_DATA_HOME", ".local/share") / "flow-jupyter")

    @validate("root_dir")
    def _validate_root_dir(self, proposal) -> str:
        return str(Path(proposal["value"]).expanduser().absolute())

    database_url = Unicode(
        help="""SQLAlchemy URL of Flow's database. Empty means the embedded SQLite file flow.sqlite under root_dir.
        Use PostgreSQL (postgresql+psycopg2://user:pw@host/db) for the multi-user hub service.
        Environment: FLOW_DATABASE_URL.""",
    ).tag(config=True)

    @default("database_url")
    def _default_database_url(self) -> str:
        return os.environ.get("FLOW_DATABASE_URL", "")

    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one, or the SQLite file under the root."""
        return self.database_url or f"sqlite:///{Path(self.root_dir) / 'flow.sqlite'}"

    executor = Enum(
        ["local", "slurm"],
        help="""Where Nextflow runs: 'local' starts it as a child process on this host; 'slurm' submits the Nextflow
        head job with sbatch and sends its tasks to Slurm. With 'slurm', Slurm must be reachable for Flow to be
        healthy. Environment: FLOW_EXECUTOR.""",
    ).tag(config=True)

    @default("executor")
    def _default_executor(self) -> str:
        return os.environ.get("FLOW_EXECUTOR", "local")

    # --- Slurm (names follow dask-jobqueue's jobqueue.slurm keys) ---------------------------------------------
    slurm_conf = Unicode(
        "",
        help="""Path of the slurm.conf that every Slurm command Flow runs should use (exported as SLURM_CONF).
        Empty: Slurm's own default lookup.""",
    ).tag(config=True)
    slurm_queue = Unicode("", help="Slurm partition for Nextflow head jobs and tasks (sbatch --partition).").tag(
        config=True
    )
    slurm_account = Unicode("", help="Slurm account to charge (sbatch --account). Empty: the user's default.").tag(
        config=True
    )
    slurm_walltime = Unicode(
        "24:00:00", help="Time limit of a Nextflow head job (sbatch --time), e.g. '24:00:00'."
    ).tag(config=True)
    slurm_cores = Integer(1, help="CPUs for a Nextflow head job (sbatch --cpus-per-task).").tag(config=True)
    slurm_memory = Unicode("2GB", help="Memory for a Nextflow head job (sbatch --mem), e.g. '2GB'.").tag(config=True)
    slurm_job_extra_directives = List(
        Unicode(),
        help="Extra '#SBATCH' options for head jobs, one option per item, e.g. ['--qos=normal'].",
    ).tag(config=True)
    slurm_job_script_prologue = List(
        Unicode(),
        help="Admin-supplied lines run before Nextflow in a head job script (e.g. 'module load java/17').",
    ).tag(config=True)

    @validate("slurm_queue", "slurm_account", "slurm_walltime", "slurm_memory")
    def _validate_sbatch_value(self, proposal) -> str:
        value = proposal["value"]
        if not SBATCH_VALUE.match(value):
            raise TraitError(f"{proposal['trait'].name}={value!r} has characters not allowed on an #SBATCH line")
        return value

    @validate("slurm_job_extra_directives")
    def _validate_extra_directives(self, proposal) -> list[str]:
        for item in proposal["value"]:
            if not item.startswith("-") or not SBATCH_VALUE.match(item):
                raise TraitError(f"#SBATCH directive {item!r} must be one option like '--qos=normal'")
        return proposal["value"]

    @validate("slurm_job_script_prologue")
    def _validate_prologue(self, proposal) -> list[str]:
        for line in proposal["value"]:
            if "\n" in line or "\r" in line:
                raise TraitError("each prologue item must be a single line")
        return proposal["value"]

    # Scheduler commands as argv prefixes (dask-jobqueue's submit_command/cancel_command, batchspawner's batch_*_cmd):
    # a site wraps them (a login-node proxy, `ssh head`, a rate-limiting wrapper) without patching Flow.
    slurm_submit_command = List(
        Unicode(), ["sbatch"], minlen=1,
        help="""Argv prefix Flow submits head jobs with (the script comes on stdin; Flow appends --parsable and, for
        launch checks, --test-only). Nextflow's own task submissions use the `sbatch` on PATH.""",
    ).tag(config=True)
    slurm_status_command = List(
        Unicode(), ["squeue"], minlen=1,
        help="""Argv prefix of Flow's job listing: one call per manager round for every active run (at most 500 job
        ids per call), plus one by job name before each submission and at reconcile.""",
    ).tag(config=True)
    slurm_cancel_command = List(Unicode(), ["scancel"], minlen=1,
                                help="Argv prefix Flow cancels head and task jobs with.").tag(config=True)
    slurm_show_command = List(
        Unicode(), ["scontrol"], minlen=1,
        help="""Argv prefix of `scontrol`: asked (`show job ID`) only about a job that just left the queue and left
        no exit code in its run directory.""",
    ).tag(config=True)
    slurm_info_command = List(Unicode(), ["sinfo"], minlen=1,
                              help="Argv prefix of `sinfo` (partitions, at launch checks).").tag(config=True)
    slurm_job_id_pattern = Unicode(
        SLURM_JOB_ID_PATTERN,
        help="""Regular expression that the stripped output of `sbatch --parsable` must match; its `job_id` group is
        the job id (digits, optionally `_<task>`). Change it only when a wrapper prints something else.""",
    ).tag(config=True)
    slurm_state_map = Dict(
        value_trait=Unicode(),
        help="""Extra or changed mappings of Slurm job states (squeue %T / scontrol JobState, e.g. a site plugin's)
        to one of pending, running, completed, failed, cancelled, unknown; merged over Flow's own table.""",
    ).tag(config=True)
    slurm_command_timeout = Float(
        30.0, help="""Seconds any one Slurm command may take. A status query that times out is a 503 retried with
        back-off; an sbatch that times out is an uncertain submission: the next attempt looks for the job by name
        (flow-<uuid>) and adopts it instead of submitting again.""",
    ).tag(config=True)

    @validate("slurm_submit_command", "slurm_status_command", "slurm_cancel_command", "slurm_show_command",
              "slurm_info_command")
    def _validate_command(self, proposal) -> list[str]:
        argv = list(proposal["value"])
        if not argv or any(not item or "\0" in item or "\n" in item for item in argv):
            raise TraitError(f"{proposal['trait'].name} must be a non-empty argv list of non-empty single-line items")
        return argv

    @validate("slurm_job_id_pattern")
    def _validate_job_id_pattern(self, proposal) -> str:
        try:
            compiled = re.compile(proposal["value"])
        except re.error as exc:
            raise TraitError(f"slurm_job_id_pattern is not a regular expression: {exc}") from None
        if "job_id" not in compiled.groupindex:
            raise TraitError("slurm_job_id_pattern needs a named group 'job_id', e.g. (?P<job_id>\\d+)")
        return proposal["value"]

    @validate("slurm_state_map")
    def _validate_state_map(self, proposal) -> dict[str, str]:
        for state, value in proposal["value"].items():
            if not re.fullmatch(r"[A-Z][A-Z_]{0,39}", state):
                raise TraitError(f"slurm_state_map key {state!r} is not a Slurm state name like 'PREEMPTED'")
            if value not in BACKEND_STATE_NAMES:
                raise TraitError(f"slurm_state_map[{state!r}] = {value!r}: must be one of "
                                 f"{', '.join(BACKEND_STATE_NAMES)}")
        return dict(proposal["value"])

    @validate("slurm_command_timeout")
    def _validate_command_timeout(self, proposal) -> float:
        if not 0 < proposal["value"] <= 3600:
            raise TraitError("slurm_command_timeout must be more than 0 and at most 3600 seconds")
        return proposal["value"]

    # --- Nextflow ---------------------------------------------------------------------------------------------
    nextflow_version = Unicode(
        NEXTFLOW_PIN,
        help="""Nextflow version that `flow-jupyter toolchain install` assembles from Maven Central when no
        suitable `nextflow` is on PATH. See docs/toolchain.md for why this pin.""",
    ).tag(config=True)
    nextflow_min_version = Unicode(
        "24.04.0", help="Oldest Nextflow found on PATH that Flow accepts instead of assembling its own."
    ).tag(config=True)
    cache_dir = Unicode(
        help="""Cache for the assembled Nextflow (jars per version) and tools. Must be on a filesystem the Slurm
        compute nodes see when executor is 'slurm'. Environment: FLOW_CACHE_DIR.""",
    ).tag(config=True)

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        return _env_path("FLOW_CACHE_DIR", _xdg("XDG_CACHE_HOME", ".cache") / "flow-jupyter")

    nxf_home = Unicode(
        help="""NXF_HOME for the assembled Nextflow (plugins, framework files). Environment: NXF_HOME;
        default <cache_dir>/nxf-home.""",
    ).tag(config=True)

    @default("nxf_home")
    def _default_nxf_home(self) -> str:
        return _env_path("NXF_HOME", Path(self.cache_dir) / "nxf-home")

    bin_dir = Unicode(
        "",
        help="""Directory where the generated `nextflow` launcher is written. Empty: the scripts directory of the
        Python environment Flow is installed in (the venv's bin/), which is on PATH when that venv is used.""",
    ).tag(config=True)

    # The grid executor settings of the generated run config (launch.py): admin values, validated, never user text.
    nextflow_queue_stat_interval = Unicode(
        "1min", help="""Nextflow's executor.queueStatInterval on Slurm: how often each run's Nextflow lists its user's
        jobs (`squeue -t all -u <user>`). Each active run asks on its own, so keep it at minutes on a busy site.""",
    ).tag(config=True)
    nextflow_poll_interval = Unicode(
        "5s", help="""Nextflow's executor.pollInterval on Slurm: how often it looks for finished tasks' exit files
        (filesystem only, no scheduler call).""",
    ).tag(config=True)
    nextflow_submit_rate_limit = Unicode(
        "60/1min", help="""Nextflow's executor.submitRateLimit on Slurm: most task `sbatch` calls per run, as
        'N/duration' (e.g. '60/1min'). Empty: no limit.""",
    ).tag(config=True)
    nextflow_exit_read_timeout = Unicode(
        "5min", help="""Nextflow's executor.exitReadTimeout on Slurm: how long a task that the queue no longer lists
        may go without an exit file before Nextflow fails it. While squeue fails (controller down) Nextflow counts
        every job as active, so this only matters once the controller answers again.""",
    ).tag(config=True)
    nextflow_submit_retry_reason = Unicode(
        SLURM_UNREACHABLE_REASON,
        help="""Nextflow's executor.submit.retry.reason: a regular expression (Java syntax, searched in the output of
        a failed task `sbatch`) for failures worth retrying. Nextflow's default only retries 'Socket timed out'; Flow's
        also retries an unreachable or restarting controller. Printable ASCII without quotes or line breaks.""",
    ).tag(config=True)
    nextflow_submit_retry_max_attempts = Integer(
        20, help="""Nextflow's executor.retry.maxAttempts: tries of one task `sbatch` (first one included) before the
        task fails. With the default delays, 20 tries span more than five minutes of controller outage.""",
    ).tag(config=True)
    nextflow_submit_retry_delay = Unicode(
        "1s", help="Nextflow's executor.retry.delay: the first wait before a task `sbatch` is retried (it doubles on "
        "each try, up to nextflow_submit_retry_max_delay)."
    ).tag(config=True)
    nextflow_submit_retry_max_delay = Unicode(
        "30s", help="Nextflow's executor.retry.maxDelay: the longest wait between two tries of a task `sbatch`."
    ).tag(config=True)
    nextflow_submit_retry_jitter = Float(
        0.25, help="Nextflow's executor.retry.jitter: each wait varies randomly by up to this fraction."
    ).tag(config=True)

    @validate("nextflow_queue_stat_interval", "nextflow_poll_interval", "nextflow_exit_read_timeout",
              "nextflow_submit_retry_delay", "nextflow_submit_retry_max_delay")
    def _validate_nextflow_duration(self, proposal) -> str:
        value = proposal["value"].strip()
        if not NEXTFLOW_DURATION.match(value) or nextflow_duration_seconds(value) <= 0:
            raise TraitError(f"{proposal['trait'].name}={value!r} is not a Nextflow duration like '30s' or '1min'")
        return value

    @validate("nextflow_submit_rate_limit")
    def _validate_rate_limit(self, proposal) -> str:
        value = proposal["value"].strip()
        if value and (not NEXTFLOW_RATE.match(value)
                      or nextflow_duration_seconds(value.split("/", 1)[1].strip()) < 1):
            raise TraitError(f"nextflow_submit_rate_limit={value!r} must be 'N/duration' of at least 1s, "
                             "e.g. '60/1min' (or empty)")
        return value

    @validate("nextflow_submit_retry_reason")
    def _validate_retry_reason(self, proposal) -> str:
        value = proposal["value"]
        if not value or len(value) > 1000 or not NEXTFLOW_REASON_CHARS.match(value):
            raise TraitError("nextflow_submit_retry_reason must be 1 to 1000 printable ASCII characters without "
                             "quotes or line breaks")
        try:
            re.compile(value)
        except re.error as exc:
            raise TraitError(f"nextflow_submit_retry_reason is not a regular expression: {exc}") from None
        return value

    @validate("nextflow_submit_retry_max_attempts")
    def _validate_retry_attempts(self, proposal) -> int:
        if not 1 <= proposal["value"] <= 1000:
            raise TraitError("nextflow_submit_retry_max_attempts must be from 1 to 1000")
        return proposal["value"]

    @validate("nextflow_submit_retry_jitter")
    def _validate_retry_jitter(self, proposal) -> float:
        if not 0 <= proposal["value"] < 1:
            raise TraitError("nextflow_submit_retry_jitter must be at least 0 and less than 1")
        return proposal["value"]

    # --- Health -----------------------------------------------------------------------------------------------
    required_components = List(
        Unicode(),
        ["java", "nextflow", "database", "disk", "fastqc", "multiqc"],
        help="""Components whose failure makes Flow unhealthy (503 from /flow/api/health, non-zero `doctor`).
        'slurm' is added automatically when executor is 'slurm'; the others are still checked and reported.""",
    ).tag(config=True)
    backend_poll_seconds = Float(
        5.0, help="How often the execution manager asks the scheduler (squeue/scontrol, or the local process table) "
        "about each active run. Progress comes from the run's event files every half second regardless; the scheduler "
        "is asked at once when the events say the run ended or a cancel was requested."
    ).tag(config=True)
    host_id = Unicode(
        "", help="""This host's name in claim leases (executions it submits and follows, background jobs it builds).
        Empty: made from the machine's name, boot and process, so every replica and every restart is a new host and a
        dead process on the same machine is recognised at once. Set it only to tell replicas apart in logs."""
    ).tag(config=True)
    claim_lease_seconds = Float(
        60.0, help="""How long a host's claim on an execution or background job holds without being renewed (each host
        renews its claims every few seconds). After that another replica takes the work over: a crashed or hung host
        delays its runs by at most this long. Claims of a dead process on the same machine are taken over at once."""
    ).tag(config=True)
    scheduler_start_jitter_seconds = Float(
        5.0, help="""The first scheduler query after start-up waits a random part of this, so restarted hosts and
        replicas do not ask the controller in step."""
    ).tag(config=True)
    scheduler_backoff_max_seconds = Float(
        120.0, help="""While the scheduler is unreachable, its queries back off (doubling from backend_poll_seconds)
        up to this many seconds; progress from the run directories goes on meanwhile."""
    ).tag(config=True)
    follow_workers = Integer(
        4, help="""Threads that read run directories (events, trace, log) in parallel: one slow run directory (a
        stalled NFS mount) holds one thread, not every run."""
    ).tag(config=True)
    follow_timeout_seconds = Float(
        30.0, help="""A run whose directory takes longer than this to read in one round is reported (log, health)
        and skipped by the rounds that follow until its read returns; the others go on."""
    ).tag(config=True)
    hash_workers = Integer(
        2, help="""Threads that checksum published outputs, outside any database transaction and off the thread
        that follows runs: a multi-GB output delays only its own run's output registration."""
    ).tag(config=True)
    launch_retry_seconds = Float(
        3600.0, help="How long a launch waits for an unreachable scheduler (retried every few seconds) before the "
        "execution fails with the scheduler's error. The launch request itself answers 503 with Retry-After."
    ).tag(config=True)
    min_free_disk_gb = Float(
        1.0, help="Free space under root_dir below which the 'disk' component fails, in GiB."
    ).tag(config=True)
    health_check_timeout = Float(
        20.0, help="Seconds one component check (e.g. `sinfo`, `nextflow -version`) may take before it fails."
    ).tag(config=True)
    health_cache_seconds = Float(
        5.0,
        help="""Seconds a health report is reused, so frequent probes (load balancers, Kubernetes) do not start a
        JVM each time. 0 disables caching.""",
    ).tag(config=True)
    # --- Data, uploads, API --------------------------------------------------------------------------------------
    max_upload_bytes = Integer(
        1 << 40, help="Largest single upload accepted (tus Upload-Length), in bytes. Default 1 TiB."
    ).tag(config=True)
    default_quota_bytes = Integer(
        0, help="Storage quota per user in bytes (sum of their data files and open uploads); 0 = unlimited. "
        "A user row's quota_bytes overrides it."
    ).tag(config=True)
    min_free_upload_bytes = Integer(
        256 << 20, help="Free disk space that uploads must leave under root_dir, in bytes (else 507)."
    ).tag(config=True)
    upload_expiry_seconds = Integer(
        7 * 24 * 3600, help="Seconds an unfinished upload is kept after its last chunk (tus Upload-Expires)."
    ).tag(config=True)
    upload_cleanup_interval = Float(
        600.0, help="Seconds between runs of the periodic task that collects expired uploads and zips."
    ).tag(config=True)
    upload_workers = Integer(
        4, help="""Threads of the host's uploads pool, shared by every upload: they write received bytes to the
        partial files and hash them (sha256, Upload-Checksum) while the event loop goes on receiving.""",
    ).tag(config=True)
    upload_buffer_bytes = Integer(
        1 << 20, help="""Size of each buffer a chunk's body is received into before the pool writes and hashes it
        in one piece. About 1 MiB is fastest: small enough that writing and hashing find the bytes still in the
        CPU's cache, large enough that the work per piece does not count (8 MiB buffers measured slower).""",
    ).tag(config=True)
    upload_buffers = Integer(
        8, help="""Buffers one chunk may have in flight (received, not yet written and hashed): memory per active
        upload is upload_buffers × upload_buffer_bytes. When all are in flight, reading the body waits.""",
    ).tag(config=True)
    upload_writeback_bytes = Integer(
        16 << 20, help="""While a chunk arrives, start writing its received bytes to disk every this many bytes
        (sync_file_range on Linux; never waits), so the fsync that acknowledges the chunk has little left to do.
        0 leaves all of it to that fsync.""",
    ).tag(config=True)
    zip_expiry_seconds = Integer(
        24 * 3600, help="Seconds a deferred bulk-download zip is kept after it was built."
    ).tag(config=True)
    zip_workers = Integer(
        2, help="""Deferred zips this host builds at once (each on a thread of the host's "zip" pool, never the
        threads that serve database calls). More waiting jobs stay "pending" until a thread, here or on another
        replica, is free."""
    ).tag(config=True)
    zip_attempts = Integer(
        3, help="""How many times a deferred zip is started before it is marked failed: a build is started again
        only when its host died or stalled past claim_lease_seconds while building it, so a job that takes its host
        down every time fails instead of taking down every replica in turn."""
    ).tag(config=True)
    page_size_default = Integer(50, help="Items per page of a list when the client gives no limit.").tag(config=True)
    page_size_max = Integer(1000, help="Largest page a client may ask for.").tag(config=True)
    allow_host_paths = Bool(
        True,
        help="""Whether pipeline parameters and sample sheets may name files by host path, besides Flow data files
        (flow://datafile/<id>). Convenient on a single-user HPC login; set False for a multi-user hub, where only
        data files the user may read can reach a pipeline.""",
    ).tag(config=True)
    host_path_roots = List(
        Unicode(),
        ["~"],
        help="""With allow_host_paths on, the directories under which a host path named in a parameter or a
        sample-sheet cell must lie (after symbolic links are resolved), e.g. ['~', '/scratch', '/projects/lab'].
        Paths into Flow's own root are refused whatever this says: name a data file instead.
        Environment: FLOW_HOST_PATH_ROOTS (separated by ':').""",
    ).tag(config=True)

    @default("host_path_roots")
    def _default_host_path_roots(self) -> list[str]:
        value = os.environ.get("FLOW_HOST_PATH_ROOTS")
        return [part for part in value.split(os.pathsep) if part] if value else ["~"]

    allowed_url_schemes = List(
        Unicode(),
        ["http", "https", "ftp", "s3", "gs", "az"],
        help="""URL schemes a path-typed parameter (format file-path, directory-path, path) may use; Nextflow
        stages such files itself. 'file:' URLs are host paths and follow allow_host_paths.""",
    ).tag(config=True)
    output_params = List(
        Unicode(),
        ["outdir", "tracedir"],
        help="""Parameters a pipeline writes to. With allow_host_paths off they are pinned inside the run directory
        (a relative path without '..'); a parameter whose name ends in '_outdir' counts too.""",
    ).tag(config=True)
    strict_params = Bool(
        False,
        help="""Refuse parameters the pipeline's schema does not declare (nf-schema's failUnrecognisedParams).
        Off: they are reported as warnings and passed on, as nf-schema does. A pipeline turns it on for itself with
        validation.failUnrecognisedParams = true in its nextflow.config.""",
    ).tag(config=True)
    max_param_string_length = Integer(
        65536, help="Longest string a launch parameter (or an item inside one) may be, in characters."
    ).tag(config=True)
    max_params_bytes = Integer(
        1 << 20, help="Largest set of launch parameters, as JSON, in bytes."
    ).tag(config=True)
    max_text_length = Integer(
        65536,
        help="""Longest string (in characters) accepted anywhere in a JSON request body where the API sets no
        tighter bound of its own: object keys, sample metadata, sample-sheet cells, launch parameters. Names (255)
        and descriptions (10000) have their own bounds; launch parameters are also held to max_param_string_length,
        so raise both together.""",
    ).tag(config=True)
    max_json_depth = Integer(
        64,
        help="""Deepest nesting of arrays and objects accepted in a JSON request body. Checked by a flat scan
        before parsing, so a hostile body nested thousands deep is a 400, never a recursion error.""",
    ).tag(config=True)
    test_identity_header = Unicode(
        "",
        help="""TESTS ONLY. When set, the caller's user name is read from this request header (after the normal
        Jupyter authentication) so one test server can act as several users. Never set this in production.""",
    ).tag(config=True)
    validate_responses = Bool(
        False,
        help="""For tests and development: check every JSON reply of the API against the response schema of its
        route, method and status (flow_jupyter/api/responses.py, also served as /flow/api/openapi.json). A reply that
        breaks its contract is logged and answered with 500 response_contract_violation instead. Costs one schema
        validation per reply; leave it off in production.""",
    ).tag(config=True)

    @property
    def root(self) -> Path:
        return Path(self.root_dir)

    def required(self) -> set[str]:
        needed = set(self.required_components)
        if self.executor == "slurm":
            needed.add("slurm")
        return needed

    def slurm_env(self) -> dict[str, str]:
        """Environment for Slurm commands: this process's, plus SLURM_CONF when one is configured."""
        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env
