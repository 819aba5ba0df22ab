"""FlowSettings: every tunable of flow_jupyter, as traitlets with help text.

One Configurable serves both hosts and the CLI, so `c.FlowSettings.root_dir = ...` in a Jupyter config file,
`--FlowSettings.root_dir=...` on a command line and `FLOW_ROOT=...` in the environment all reach the same value.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from traitlets import Bool, Enum, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

#: Characters allowed in a value that ends up on an ``#SBATCH`` line. No newline, no quote, no shell syntax.
SBATCH_VALUE = re.compile(r"^[A-Za-z0-9_.,:=@%+/\-]*$")
NEXTFLOW_PIN = "24.10.0"


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
    zip_expiry_seconds = Integer(
        24 * 3600, help="Seconds a deferred bulk-download zip is kept after it was built."
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
