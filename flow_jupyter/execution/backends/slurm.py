"""Slurm backend: the Nextflow head process is an ``sbatch`` job; Nextflow sends its tasks to Slurm itself.

The job script is rendered by dask-jobqueue's `SLURMJob` (the ``#SBATCH`` header from typed options, the
``jobqueue.slurm`` vocabulary of FlowSettings) with our head command in place of the dask worker command. dask-jobqueue
pastes values into ``#SBATCH`` lines unchecked, so every value is validated first (and the rendered header once more).
The only shell text Flow ever produces is this script, built from validated, ``shlex.quote``d values Flow controls.

Status comes from ``squeue`` while Slurm lists the job, then ``scontrol show job`` until ``MinJobAge`` purges it,
then from the run directory: the script records Nextflow's exit code atomically in ``run_dir/exit_code``.
Accounting (``sacct``) may be off on a site, so it is never needed.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType

import signal
from functools import cache

import dask
from dask.utils import parse_bytes


def _import_jobqueue() -> ModuleType:
    """dask_jobqueue.slurm, imported once at module load. Its runner module installs a SIGINT handler on import
    (which only works in the main thread, so the import cannot wait for a worker thread), replacing the Jupyter
    server's own Ctrl-C handling: the previous handler is put back."""
    previous = signal.getsignal(signal.SIGINT)
    from dask_jobqueue import slurm as jobqueue_slurm

    if previous is not None:
        signal.signal(signal.SIGINT, previous)
    return jobqueue_slurm


_jobqueue_slurm = _import_jobqueue()

from flow_jupyter import proc
from flow_jupyter.config import FlowSettings
from flow_jupyter.errors import FlowError, bad_request
from flow_jupyter.execution.backends.base import (
    Backend,
    BackendJob,
    BackendState,
    JobInfo,
    Launch,
    Resources,
    check_directive,
    check_sbatch_value,
    check_user_directive,
    clear_run_evidence,
    info_from_exit_code,
    mark_cancel_requested,
    read_exit_code,
    read_head_file,
    utc_now_iso,
    write_head_file,
)
from flow_jupyter.execution.runfiles import CANCEL_FILE, EXIT_CODE_FILE, SLURM_OUTPUT_FILE

JOB_NAME_PREFIX = "flow-"
SQUEUE_FORMAT = "%T|%r|%S|%N"
#: What ``sbatch --parsable`` prints: the id, optionally ``;cluster``. Anything else is an error, said loudly.
JOB_ID_REGEXP = re.compile(r"^(?P<job_id>\d+)(;[A-Za-z0-9_.-]+)?$")
NATIVE_ID = re.compile(r"^\d{1,12}(_\d{1,9})?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Every rendered header line must look like this (a second line of defence after the per-value checks).
_HEADER_LINE = re.compile(r"^#SBATCH [A-Za-z0-9_.,:=@%+/\- ]+$")
#: Messages that mean "Slurm is down or unreachable", not "your job was refused": the manager retries later.
_UNAVAILABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|connect failure|"
    r"Zero Bytes were transmitted|Slurm backup controller in standby|Communication connection failure",
    re.IGNORECASE,
)
_INVALID_JOB = re.compile(r"Invalid job id specified", re.IGNORECASE)

#: squeue/scontrol states → BackendState. Anything unknown maps to UNKNOWN rather than guessing.
SLURM_STATES: dict[str, BackendState] = {
    **dict.fromkeys(["PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                     "SUSPENDED", "STOPPED", "POWER_UP_NODE"], BackendState.PENDING),
    **dict.fromkeys(["RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "UPDATE_DB"], BackendState.RUNNING),
    "COMPLETED": BackendState.COMPLETED,
    "CANCELLED": BackendState.CANCELLED,
    **dict.fromkeys(["FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED",
                     "SPECIAL_EXIT", "REVOKED"], BackendState.FAILED),
}

Runner = Callable[..., proc.Result]


@cache
def head_job_class() -> type:
    """dask-jobqueue's SLURMJob with the Nextflow head command in place of the dask worker command.

    No dask scheduler exists: the address is a placeholder that never reaches the script.
    """

    class FlowHeadJob(_jobqueue_slurm.SLURMJob):  # type: ignore[name-defined]  # imported at run time (SIGINT)
        DUMMY_SCHEDULER = "tcp://127.0.0.1:1"

        def __init__(self, *, command: str, **kwargs) -> None:
            # Keys we do not pass must not leak in from a site's jobqueue.yaml (e.g. a log directory adding -o/-e).
            with dask.config.set({"jobqueue.slurm.log-directory": None, "jobqueue.slurm.job-directives-skip": [],
                                  "jobqueue.slurm.project": None}):
                super().__init__(scheduler=self.DUMMY_SCHEDULER, **kwargs)
            self._command_template = command

    return FlowHeadJob


def slurm_memory(memory: str) -> str:
    """'4GB' → Slurm's --mem value, as dask-jobqueue writes it (ValueError/TypeError for a bad size)."""
    return _jobqueue_slurm.slurm_format_bytes_ceil(parse_bytes(memory))


# --- pure parsers (tested against outputs captured from a real Slurm) ---------------------------------------------
def parse_slurm_time(text: str) -> datetime | None:
    """``2026-11-25T15:58:21`` (local time of the cluster) → aware datetime; ``N/A``/``Unknown``/empty → None."""
    text = text.strip()
    try:
        return datetime.fromisoformat(text).astimezone()
    except ValueError:
        return None


def _exit_code(text: str) -> int | None:
    """Slurm's ``N:SIG`` → the shell convention: N, or 128 + SIG when a signal ended the job."""
    match = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not match:
        return None
    code, sig = int(match[1]), int(match[2])
    return 128 + sig if sig else code


def parse_squeue_line(line: str) -> JobInfo:
    """One line of ``squeue -h -o '%T|%r|%S|%N'``."""
    parts = line.strip().split("|")
    if len(parts) != 4:
        raise ValueError(f"unexpected squeue line {line!r}")
    state, reason, start, node = parts
    status = SLURM_STATES.get(state, BackendState.UNKNOWN)
    return JobInfo(
        status,
        reason=None if reason in ("", "None", "(null)") else reason,
        queue_eta=parse_slurm_time(start) if status is BackendState.PENDING else None,
        node=node or None,
    )


def parse_scontrol_job(text: str) -> JobInfo:
    """The text of ``scontrol show job ID`` (accounting-free record of a job that left squeue)."""
    fields = dict(re.findall(r"(?:^|\s)([A-Za-z/:]+)=(\S*)", text))
    if "JobState" not in fields:
        raise ValueError(f"no JobState in scontrol output: {text[:200]!r}")
    state = fields["JobState"].rstrip("+")
    status = SLURM_STATES.get(state, BackendState.UNKNOWN)
    reason = fields.get("Reason")
    node = fields.get("NodeList") or None
    return JobInfo(
        status,
        exit_code=_exit_code(fields.get("ExitCode", "")) if status.terminal else None,
        reason=None if reason in (None, "", "None", "(null)") else reason,
        queue_eta=parse_slurm_time(fields.get("StartTime", "")) if status is BackendState.PENDING else None,
        node=None if node in ("(null)",) else node,
    )


def job_name(execution_uuid: str) -> str:
    return JOB_NAME_PREFIX + execution_uuid


def _one_at_a_time(resources: Resources):
    """Each field the user set, alone (with the partition, which decides the limits), as (field, Resources): the
    probes that tell which field a refused job failed on."""
    queue = resources.queue
    for name in ("account", "walltime", "cores", "memory"):
        value = getattr(resources, name)
        if value is not None:
            yield f"/resources/{name}", Resources(queue=queue, **{name: value})
    for index, item in enumerate(resources.extra_directives):
        yield f"/resources/extra_directives/{index}", Resources(queue=queue, extra_directives=(item,))
    if queue is not None:
        yield "/resources/queue", Resources(queue=queue)


def _check_line(value: str, field_name: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise bad_request("line breaks and NUL are not allowed", field_name)


class SlurmBackend(Backend):
    """Submits head jobs with sbatch and follows them with squeue/scontrol (no accounting needed).

    ``runner`` is `flow_jupyter.proc.run` (argv only); tests replay captured scheduler exchanges through it.
    """

    name = "slurm"

    def __init__(self, settings: FlowSettings | None = None, runner: Runner = proc.run,
                 command_timeout: float = 60.0) -> None:
        self.settings = settings or FlowSettings()
        self.runner = runner
        self.command_timeout = command_timeout

    # --- scheduler commands ---------------------------------------------------------------------------------
    def _run(self, argv: list[str], input: str | None = None) -> proc.Result:
        """Run a Slurm command; an unreachable or missing Slurm becomes a 503 the manager can retry on."""
        try:
            result = self.runner(argv, timeout=self.command_timeout, env=self.settings.slurm_env(), check=False,
                                 input=input)
        except proc.CommandError as exc:
            raise FlowError(503, "scheduler_unavailable", f"Slurm is not available: {exc.summary()}") from None
        if result.returncode != 0 and _UNAVAILABLE.search(result.stderr + result.stdout):
            last = (result.stderr or result.stdout).strip().splitlines()[-1]
            raise FlowError(503, "scheduler_unavailable", f"Slurm is not reachable: {last}")
        return result

    # --- the job script -------------------------------------------------------------------------------------
    def job_script(self, launch: Launch) -> str:
        """Render the head-job script; every value is checked first (400 naming the field), nothing is submitted."""
        s = self.settings
        res = launch.resources or Resources()
        run_dir = str(launch.run_dir)
        check_sbatch_value(run_dir, "/run_dir")
        queue = res.queue if res.queue is not None else s.slurm_queue
        account = res.account if res.account is not None else s.slurm_account
        walltime = res.walltime if res.walltime is not None else s.slurm_walltime
        cores = res.cores if res.cores is not None else s.slurm_cores
        memory = res.memory if res.memory is not None else s.slurm_memory
        for name, value in (("queue", queue), ("account", account), ("walltime", walltime), ("memory", memory)):
            where = "/resources" if getattr(res, name) is not None else "/settings/slurm"
            check_sbatch_value(value, f"{where}/{name}")
        try:
            mem = slurm_memory(memory) if memory else None
        except (ValueError, TypeError):
            raise bad_request(f"memory {memory!r} is not a size like '4GB'",
                              "/resources/memory" if res.memory is not None else "/settings/slurm/memory") from None
        for index, item in enumerate(s.slurm_job_extra_directives):
            check_directive(item, f"/settings/slurm/job_extra_directives/{index}")
        for index, item in enumerate(res.extra_directives):
            check_user_directive(item, f"/resources/extra_directives/{index}")
        for index, line in enumerate(s.slurm_job_script_prologue):
            _check_line(line, f"/settings/slurm/job_script_prologue/{index}")
        for key, value in launch.env.items():
            if not _ENV_NAME.match(key):
                raise bad_request(f"environment name {key!r} is not valid", f"/env/{key}")
            _check_line(value, f"/env/{key}")
        for index, arg in enumerate(launch.argv):
            _check_line(arg, f"/argv/{index}")

        job = head_job_class()(
            command=self._head_command(launch),
            name=job_name(launch.execution_uuid),
            job_name=job_name(launch.execution_uuid),
            queue=queue or None,
            account=account or None,
            walltime=walltime or None,
            cores=cores,
            job_cpu=cores,
            memory=memory or "1GB",
            job_mem=mem,
            processes=1,
            job_extra_directives=[f"--chdir={run_dir}", f"--output={run_dir}/{SLURM_OUTPUT_FILE}",
                                  *s.slurm_job_extra_directives, *res.extra_directives],
            job_script_prologue=list(s.slurm_job_script_prologue),
            shebang="#!/usr/bin/env bash",
            log_directory=None,
        )
        for line in job.job_header.splitlines():
            if not _HEADER_LINE.match(line):
                raise bad_request(f"rendered header line {line!r} is not a plain #SBATCH option", "/resources")
        return job.job_script()

    @staticmethod
    def _head_command(launch: Launch) -> str:
        """Exports, then Nextflow in the background so the script can forward SIGTERM (scancel, time limit) to it
        and still record Nextflow's exit code atomically in the run dir when it ends."""
        exit_file = shlex.quote(str(launch.run_dir / EXIT_CODE_FILE))
        lines = [f"export {key}={shlex.quote(value)}" for key, value in launch.env.items()]
        lines += [
            "flow_child=''",
            "flow_signal=0",
            "flow_forward() { flow_signal=$1; [ -n \"$flow_child\" ] && kill -TERM \"$flow_child\" 2>/dev/null; }",
            "trap 'flow_forward 15' TERM",
            "trap 'flow_forward 2' INT",
            " ".join(shlex.quote(arg) for arg in launch.argv) + " </dev/null &",
            "flow_child=$!",
            "wait \"$flow_child\"; flow_rc=$?",
            "while kill -0 \"$flow_child\" 2>/dev/null; do wait \"$flow_child\"; flow_rc=$?; done",
            "if [ \"$flow_signal\" != 0 ] && [ \"$flow_rc\" != 0 ]; then flow_rc=$((128 + flow_signal)); fi",
            f"printf '%s\\n' \"$flow_rc\" > {exit_file}.tmp.$$ && mv -f {exit_file}.tmp.$$ {exit_file}",
            "exit \"$flow_rc\"",
        ]
        return "\n".join(lines)

    # --- Backend --------------------------------------------------------------------------------------------
    def check_launch(self, resources: Resources | None) -> None:
        """Before a launch is stored: the controller answers, the partition asked for exists, and — when the user
        set resources — Slurm would accept the head job they make (``sbatch --test-only``: too many cores, more
        memory than a node has, an option sbatch does not know). Otherwise sbatch would refuse it only later, after
        the execution was stored; here it is a 400 naming the field and nothing is stored."""
        listed = self._run(["sinfo", "-h", "-o", "%R"])
        if listed.returncode != 0:
            last = (listed.stderr or listed.stdout or "sinfo failed").strip().splitlines()[-1]
            raise FlowError(503, "scheduler_unavailable", f"Slurm is not reachable: {last}")
        queue = (resources.queue if resources is not None else None) or self.settings.slurm_queue
        partitions = set(listed.stdout.split())
        if queue and queue not in partitions:
            field_name = "/resources/queue" if resources is not None and resources.queue else "/backend"
            raise bad_request(f"Slurm has no partition {queue!r} (it has: {', '.join(sorted(partitions))}).",
                              field_name)
        if resources is not None and resources != Resources():
            self.check_resources(resources)

    def check_resources(self, resources: Resources) -> None:
        """Render the head job these resources make (every value checked as at submission) and ask Slurm whether it
        would take it; on a refusal, find the one field that Slurm refuses on its own (400 naming it)."""
        resources.check_user_values()
        refusal = self._test_only(resources)
        if refusal is None:
            return
        field_name = next((name for name, alone in _one_at_a_time(resources) if self._test_only(alone) is not None),
                          "/resources")
        raise bad_request(f"Slurm would refuse this job: {refusal}", field_name, reason="resources_refused")

    def _test_only(self, resources: Resources) -> str | None:
        """sbatch's complaint about a head job with these resources (``--test-only``: nothing is submitted), or None
        when it would be accepted. The probe's run dir is never created: sbatch does not look at it."""
        probe = Launch("launch-check", self.settings.root / "executions" / "launch-check", ["true"], {}, resources)
        result = self._run(["sbatch", "--test-only"], input=self.job_script(probe))
        if result.returncode == 0:
            return None
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        return lines[0][:300] if lines else f"sbatch --test-only exited with {result.returncode}"

    def submit(self, launch: Launch) -> BackendJob:
        script = self.job_script(launch)
        clear_run_evidence(launch.run_dir)
        result = self._run(["sbatch", "--parsable"], input=script)
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip() or f"sbatch exited with {result.returncode}"
            raise FlowError(400, "submission_rejected", f"Slurm refused the job: {message}")
        match = JOB_ID_REGEXP.match(result.stdout.strip())
        if not match:
            raise RuntimeError(f"could not parse a job id from sbatch output: stdout={result.stdout!r} "
                               f"stderr={result.stderr!r}")
        job = BackendJob(backend=self.name, job_id=match["job_id"], execution_uuid=launch.execution_uuid,
                         run_dir=str(launch.run_dir), submitted_at=utc_now_iso())
        write_head_file(job)
        return job

    def status(self, job: BackendJob) -> JobInfo:
        """squeue while listed, else scontrol, else the run dir's exit code, else UNKNOWN. 503 if Slurm is down."""
        self._check_id(job.job_id)
        queued = self._run(["squeue", "-h", "-j", job.job_id, "-o", SQUEUE_FORMAT])
        if queued.returncode == 0 and queued.stdout.strip():
            info = parse_squeue_line(queued.stdout.strip().splitlines()[0])
            if not info.status.terminal:
                return info
        shown = self._run(["scontrol", "show", "job", job.job_id])
        if shown.returncode == 0 and "JobState=" in shown.stdout:
            return parse_scontrol_job(shown.stdout)
        if shown.returncode != 0 and not _INVALID_JOB.search(shown.stderr + shown.stdout):
            raise FlowError(503, "scheduler_unavailable", f"scontrol failed: {(shown.stderr or shown.stdout).strip()}")
        return self._from_run_dir(Path(job.run_dir))

    @staticmethod
    def _from_run_dir(run_dir: Path) -> JobInfo:
        """Slurm has forgotten the job (MinJobAge): the exit code the head script recorded is the evidence."""
        code = read_exit_code(run_dir)
        if code is not None:
            return info_from_exit_code(code, run_dir, "Slurm no longer knows the job; exit code from the run directory")
        if (run_dir / CANCEL_FILE).exists():
            return JobInfo(BackendState.CANCELLED, None, "cancelled; Slurm no longer knows the job")
        return JobInfo(BackendState.UNKNOWN, None, "Slurm no longer knows the job and it left no exit code")

    def eta(self, job: BackendJob) -> datetime | None:
        self._check_id(job.job_id)
        result = self._run(["squeue", "--start", "-h", "-j", job.job_id, "-o", "%S"])
        if result.returncode != 0 or not result.stdout.strip():
            return None
        return parse_slurm_time(result.stdout.strip().splitlines()[0])

    def cancel(self, job: BackendJob) -> None:
        """scancel the head job (its script forwards SIGTERM to Nextflow, which stops its tasks), then scancel any
        task job still listed whose working directory lies in the run directory."""
        self._check_id(job.job_id)
        mark_cancel_requested(Path(job.run_dir))
        self._run(["scancel", job.job_id])  # an already finished/purged job is fine: nothing to do
        self.cancel_tasks([task for task in self.task_jobs(job) if task != job.job_id], run_dir=Path(job.run_dir))

    def task_jobs(self, job: BackendJob) -> list[str]:
        """Ids of listed jobs (other than the head) whose working directory is inside the run directory."""
        listed = self._run(["squeue", "-h", "-o", "%i|%Z"])
        run_dir = Path(job.run_dir)
        found = []
        for line in listed.stdout.splitlines():
            job_id, _, workdir = line.strip().partition("|")
            if job_id != job.job_id and NATIVE_ID.match(job_id) and workdir and Path(workdir).is_relative_to(run_dir):
                found.append(job_id)
        return found

    def cancel_tasks(self, native_ids: list[str], run_dir: Path | None = None) -> list[str]:
        """scancel Nextflow task jobs by the native ids its trace/events name. Those files are untrusted: ids that are
        not plain job ids are dropped, and with ``run_dir`` only jobs working inside it are touched."""
        ids = sorted({i for i in native_ids if isinstance(i, str) and NATIVE_ID.match(i)})
        if ids and run_dir is not None:
            listed = self._run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%Z"])
            inside = set()
            for line in listed.stdout.splitlines():
                job_id, _, workdir = line.strip().partition("|")
                if workdir and Path(workdir).is_relative_to(run_dir):
                    inside.add(job_id)
            ids = [i for i in ids if i in inside]
        if ids:
            self._run(["scancel", *ids])
        return ids

    def find(self, execution_uuid: str, run_dir: Path) -> BackendJob | None:
        """The listed job named ``flow-<uuid>`` working in run_dir (even if head.json was never written), else the
        job recorded in run_dir/head.json."""
        recorded = read_head_file(run_dir, execution_uuid)
        if recorded is not None and recorded.backend != self.name:
            recorded = None
        listed = self._run(["squeue", "-h", "--name", job_name(execution_uuid), "-o", "%i|%Z"])
        ids = []
        for line in listed.stdout.splitlines():
            job_id, _, workdir = line.strip().partition("|")
            if NATIVE_ID.match(job_id) and workdir and Path(workdir) == Path(run_dir):
                ids.append(job_id)
        if ids:
            job_id = max(ids, key=lambda i: int(i.split("_")[0]))
            if recorded is not None and recorded.job_id == job_id:
                return recorded
            return BackendJob(backend=self.name, job_id=job_id, execution_uuid=execution_uuid, run_dir=str(run_dir),
                              submitted_at=utc_now_iso())
        return recorded

    @staticmethod
    def _check_id(job_id: str) -> None:
        if not NATIVE_ID.match(job_id):
            raise bad_request(f"{job_id!r} is not a Slurm job id", "/job_id")
