"""Turning a validated launch into files and a Nextflow command line.

Only two things a user chose reach Nextflow, and both as data: the parameters, written to ``params.json`` and
passed with ``-params-file``; and Slurm task options, passed through environment variables that the generated
config reads with ``System.getenv``. The generated ``flow.config`` and the argv hold only values Flow controls
(paths it made, the plugin id, a validated session UUID), so no user text is ever parsed as Groovy or shell.

nextflow.py is not used to start runs: its ``submit_execution`` builds a shell string and pastes params between
unescaped quotes. Flow builds the argv itself and hands it to a backend (local process group or Slurm head job).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import FlowSettings, nextflow_duration_seconds
from ..errors import bad_request
from ..fsutil import atomic_write_text
from ..toolchain.nf_plugin import EVENTS_FILE_ENV, config_snippet
from .backends import Launch, Resources
from .runfiles import CONFIG_FILE, PARAMS_FILE, WORK_DIR, RunFiles

SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TASK_QUEUE_ENV = "FLOW_TASK_QUEUE"
TASK_ACCOUNT_ENV = "FLOW_TASK_ACCOUNT"

SLURM_PROCESS_CONFIG = f"""
process {{
    executor = 'slurm'
    queue = System.getenv('{TASK_QUEUE_ENV}') ?: null
    clusterOptions = System.getenv('{TASK_ACCOUNT_ENV}') ? "--account=${{System.getenv('{TASK_ACCOUNT_ENV}')}}" : null
}}
"""


def groovy_string(text: str) -> str:
    """A single-quoted Groovy string literal holding ``text`` exactly: no interpolation in single quotes, backslash
    and quote escaped. Only admin values that passed their trait's check ever come here; line breaks and control
    characters are refused outright rather than escaped."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise ValueError("control characters are not allowed in a generated config value")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def slurm_executor_config(settings: FlowSettings) -> str:
    """The ``executor`` scope of a Slurm run: site-friendly polling and Nextflow's task-``sbatch`` retries, from
    FlowSettings (each validated by its trait).

    What Nextflow 24.10.0 reads (sources of nextflow-24.10.0.jar): GridTaskHandler.retryPolicy() takes
    ``executor.retry.delay`` (default 500ms), ``.maxDelay`` (30s), ``.jitter`` (0.25), ``.maxAttempts`` (3) and
    ``executor.submit.retry.reason`` (default 'Socket timed out', searched in the failed sbatch's output): with the
    default, "Unable to contact slurm controller" fails the task at the first try. A failed queue listing is no
    danger: AbstractGridExecutor.getQueueStatus0 returns null and checkActiveStatus counts every job as active, so
    no task is failed while squeue cannot answer; ``exitReadTimeout`` (GridTaskHandler.READ_TIMEOUT, 270 s) only
    starts once squeue answers again and no longer lists a job, so it is set at least as long as the outage budget.
    """
    s = settings
    lines = [
        f"    queueStatInterval = {groovy_string(s.nextflow_queue_stat_interval)}",
        f"    pollInterval = {groovy_string(s.nextflow_poll_interval)}",
        f"    exitReadTimeout = {groovy_string(s.nextflow_exit_read_timeout)}",
    ]
    if s.nextflow_submit_rate_limit:
        lines.append(f"    submitRateLimit = {groovy_string(s.nextflow_submit_rate_limit)}")
    lines += [
        "    retry {",
        f"        delay = {groovy_string(s.nextflow_submit_retry_delay)}",
        f"        maxDelay = {groovy_string(s.nextflow_submit_retry_max_delay)}",
        f"        maxAttempts = {int(s.nextflow_submit_retry_max_attempts)}",
        f"        jitter = {float(s.nextflow_submit_retry_jitter)!r}",
        "    }",
        f"    submit.retry.reason = {groovy_string(s.nextflow_submit_retry_reason)}",
    ]
    return "executor {\n" + "\n".join(lines) + "\n}\n"


def slurm_config(settings: FlowSettings) -> str:
    """The generated config's Slurm part: tasks go to Slurm (partition and account from the environment) and the
    grid executor is set up to ride out a controller outage."""
    return SLURM_PROCESS_CONFIG + slurm_executor_config(settings)


def submit_retry_window_seconds(settings: FlowSettings) -> float:
    """The shortest time Nextflow keeps retrying one task sbatch before failing it (every wait at its lowest
    jitter, the sbatch calls themselves not counted): Failsafe's backoff doubles from ``delay`` up to ``maxDelay``
    between ``maxAttempts`` tries."""
    delay = nextflow_duration_seconds(settings.nextflow_submit_retry_delay)
    most = nextflow_duration_seconds(settings.nextflow_submit_retry_max_delay)
    waits = [min(delay * 2 ** n, most) for n in range(settings.nextflow_submit_retry_max_attempts - 1)]
    return sum(waits) * (1 - settings.nextflow_submit_retry_jitter)


@dataclass(frozen=True)
class RunPlan:
    """Everything needed to start one Nextflow run; `write` puts the files in place, `launch` makes the request."""

    run_dir: Path
    argv: list[str]
    env: dict[str, str]
    params: dict[str, Any]
    config_text: str
    resources: Resources | None = None
    files: dict[str, str] = field(default_factory=dict)

    def write(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            atomic_write_text(self.run_dir / name, text)

    def launch(self, execution_uuid: str) -> Launch:
        return Launch(execution_uuid=execution_uuid, run_dir=self.run_dir, argv=self.argv, env=self.env,
                      resources=self.resources)


def nest_params(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted names from schema-less forms (``nested.key``) become the nested objects Nextflow expects."""
    nested: dict[str, Any] = {}
    for name, value in params.items():
        parts = name.split(".")
        target = nested
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise bad_request(f"Parameter '{name}' clashes with '{part}'.", field=f"/params/{name}")
            target = child
        target[parts[-1]] = value
    return nested


def plan_run(
    *,
    pipeline_dir: Path,
    run_dir: Path,
    params: dict[str, Any],
    executor: str,
    resources: Resources | None = None,
    resume_session: str | None = None,
    with_plugin: bool = True,
    files: RunFiles = RunFiles(),
    settings: FlowSettings | None = None,
) -> RunPlan:
    """The files and argv of one run in ``run_dir`` (its launch directory, where Nextflow's state lives); ``files``
    names the log, trace and events files this execution writes there; ``settings`` the host's FlowSettings (the
    Slurm executor's polling and retry settings; defaults when not given)."""
    main = Path(pipeline_dir) / "main.nf"
    if not main.is_file():
        raise bad_request("The pipeline version has no main.nf.", reason="no_main_script")
    if resume_session is not None and not SESSION_ID.match(resume_session):
        raise bad_request("Not a Nextflow session id.", field="/resume", reason="bad_session")
    slurm = slurm_config(settings or FlowSettings()) if executor == "slurm" else ""
    config = (config_snippet() + "\n" if with_plugin else "") + slurm
    argv = [
        "nextflow", "-log", files.log, "run", str(main),
        "-params-file", PARAMS_FILE, "-c", CONFIG_FILE, "-work-dir", WORK_DIR, "-with-trace", files.trace,
    ]
    if resume_session:
        argv += ["-resume", resume_session]
    env = {"NXF_ANSI_LOG": "false", "NXF_OFFLINE": "true", EVENTS_FILE_ENV: str(Path(run_dir) / files.events)}
    if executor == "slurm" and resources is not None:
        if resources.queue:
            env[TASK_QUEUE_ENV] = resources.queue
        if resources.account:
            env[TASK_ACCOUNT_ENV] = resources.account
    nested = nest_params(params)
    written = {PARAMS_FILE: json.dumps(nested, indent=2, ensure_ascii=False) + "\n", CONFIG_FILE: config}
    return RunPlan(run_dir=Path(run_dir), argv=argv, env=env, params=nested, config_text=config,
                   resources=resources, files=written)

