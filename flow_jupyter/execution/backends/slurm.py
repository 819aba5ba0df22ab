"""Slurm backend: the Nextflow head process is an ``sbatch`` job; Nextflow sends its tasks to Slurm itself.

The job script is rendered by dask-jobqueue's `SLURMJob` (the ``#SBATCH`` header from typed options, the
``jobqueue.slurm`` vocabulary of FlowSettings) with our head command in place of the dask worker command. dask-jobqueue
pastes values into ``#SBATCH`` lines unchecked, so every value is validated first (and the rendered header once more).
The only shell text Flow ever produces is this script, built from validated, ``shlex.quote``d values Flow controls.

At site scale the scheduler is asked as little as possible (HPC sites forbid ``squeue`` per job in a loop):
`statuses` asks about every active run with one ``squeue -j id1,id2,…`` (500 ids per command, so 1,000 runs are two
commands per round); a job no longer listed is judged by the exit code its head script wrote in the run directory,
and only when that is missing by ``scontrol show job`` (accounting, ``sacct``, is never needed). Every command has a
time limit (``slurm_command_timeout``) and comes from a trait (``slurm_*_command``), as do the job-id pattern and the
state map.

Submission is idempotent: `submit` (and `find`, at reconcile) first looks for ``flow-<uuid>`` jobs working in the run
directory and adopts one rather than submitting again, because an ``sbatch`` that timed out may still be processed
when the controller wakes up. An ``sbatch`` that times out is a 503 saying the submission is uncertain. Should a
duplicate head job slip through anyway, the head script's exclusive ``flock`` on `HEAD_LOCK_FILE` makes it exit at
once with `HEAD_LOCKED_EXIT_CODE`, without touching the run.
"""
from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
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
from flow_jupyter.config import SLURM_JOB_ID_PATTERN, SLURM_UNREACHABLE_REASON, FlowSettings
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
from flow_jupyter.metrics import SCHEDULER_COMMANDS

log = logging.getLogger(__name__)

JOB_NAME_PREFIX = "flow-"
#: One line per listed job of a status query: id, state, reason, expected start, nodes.
SQUEUE_FORMAT = "%i|%T|%r|%S|%N"
#: One line per job named flow-<uuid>: id, state, working directory (last: a path may hold '|').
NAMED_FORMAT = "%i|%T|%Z"
#: One line per job asked about when cancelling: id, working directory.
WORKDIR_FORMAT = "%i|%Z"
#: Most job ids one squeue command names (its argv stays a few KiB): 1,000 active runs are 2 commands per round.
SQUEUE_MAX_IDS = 500
#: The lock file in the run directory that the head script holds (``flock -n``) while it runs Nextflow; it also
#: holds the job ids of the head jobs that got it, one per line, the current holder last.
HEAD_LOCK_FILE = ".flow-head.lock"
#: How a duplicate head job ends when another head job already holds the run directory (EX_TEMPFAIL). It writes no
#: exit code into the run directory.
HEAD_LOCKED_EXIT_CODE = 75
#: The default of FlowSettings.slurm_job_id_pattern: what ``sbatch --parsable`` prints (the id, maybe ``;cluster``).
JOB_ID_REGEXP = re.compile(SLURM_JOB_ID_PATTERN)
NATIVE_ID = re.compile(r"^\d{1,12}(_\d{1,9})?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Every rendered header line must look like this (a second line of defence after the per-value checks).
_HEADER_LINE = re.compile(r"^#SBATCH [A-Za-z0-9_.,:=@%+/\- ]+$")
#: Messages that mean "Slurm is down or unreachable", not "your job was refused": the manager retries later.
_UNAVAILABLE = re.compile(SLURM_UNREACHABLE_REASON + "|connect failure", re.IGNORECASE)
#: ... of which these mean the request may have reached the controller: a submission is then uncertain.
_UNCERTAIN = re.compile(r"Socket timed out|Zero Bytes were transmitted|timed out", re.IGNORECASE)
_INVALID_JOB = re.compile(r"Invalid job id specified", re.IGNORECASE)

#: squeue/scontrol states → BackendState (FlowSettings.slurm_state_map is merged over it). Anything unknown maps to
#: UNKNOWN rather than guessing.
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


def parse_squeue_line(line: str, states: dict[str, BackendState] = SLURM_STATES) -> tuple[str, JobInfo]:
    """One line of ``squeue -h -o '%i|%T|%r|%S|%N'``: the job id and what it says (ValueError if malformed)."""
    parts = line.strip().split("|")
    if len(parts) != 5 or not NATIVE_ID.match(parts[0]):
        raise ValueError(f"unexpected squeue line {line!r}")
    job_id, state, reason, start, node = parts
    status = states.get(state, BackendState.UNKNOWN)
    return job_id, JobInfo(
        status,
        reason=None if reason in ("", "None", "(null)") else reason,
        queue_eta=parse_slurm_time(start) if status is BackendState.PENDING else None,
        node=node or None,
    )


def parse_scontrol_job(text: str, states: dict[str, BackendState] = SLURM_STATES) -> JobInfo:
    """The text of ``scontrol show job ID`` (accounting-free record of a job that left squeue)."""
    fields = dict(re.findall(r"(?:^|\s)([A-Za-z/:]+)=(\S*)", text))
    if "JobState" not in fields:
        raise ValueError(f"no JobState in scontrol output: {text[:200]!r}")
    state = fields["JobState"].rstrip("+")
    status = states.get(state, BackendState.UNKNOWN)
    reason = fields.get("Reason")
    node = fields.get("NodeList") or None
    return JobInfo(
        status,
        exit_code=_exit_code(fields.get("ExitCode", "")) if status.terminal else None,
        reason=None if reason in (None, "", "None", "(null)") else reason,
        queue_eta=parse_slurm_time(fields.get("StartTime", "")) if status is BackendState.PENDING else None,
        node=None if node in ("(null)",) else node,
    )


def chunked(items: Sequence[str], size: int = SQUEUE_MAX_IDS) -> Iterable[list[str]]:
    """``items`` in lists of at most ``size``: one squeue argv each."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def lock_holder(run_dir: Path) -> str | None:
    """The job id the head script last wrote into the run directory's lock file (the head that got the lock)."""
    try:
        lines = (Path(run_dir) / HEAD_LOCK_FILE).read_text(errors="replace")[-4096:].split()
    except OSError:
        return None
    return lines[-1] if lines and NATIVE_ID.match(lines[-1]) else None


def _job_number(job_id: str) -> tuple[int, int]:
    head, _, task = job_id.partition("_")
    return int(head), int(task or 0)


def _in_dir(workdir: str, run_dirs: tuple[Path, ...], exact: bool) -> bool:
    """Whether a job's working directory (squeue %Z) is the run directory (``exact``) or inside it."""
    if not workdir:
        return False
    path = Path(workdir)
    return any(path == run_dir if exact else path.is_relative_to(run_dir) for run_dir in run_dirs)


def _spellings(run_dir: Path) -> tuple[Path, ...]:
    """The run directory as Flow names it and as the kernel resolves it: a job started in it (--chdir, Nextflow's
    work directories under getcwd()) may carry either."""
    try:
        resolved = Path(run_dir).resolve()
    except OSError:
        return (Path(run_dir),)
    return (Path(run_dir),) if resolved == Path(run_dir) else (Path(run_dir), resolved)


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

    ``runner`` is `flow_jupyter.proc.run` (argv only); tests replay captured scheduler exchanges through it. The
    commands, their time limit, the job-id pattern and the state map come from FlowSettings (``slurm_*``).
    """

    name = "slurm"

    def __init__(self, settings: FlowSettings | None = None, runner: Runner = proc.run,
                 command_timeout: float | None = None) -> None:
        self.settings = settings or FlowSettings()
        self.runner = runner
        self.command_timeout = self.settings.slurm_command_timeout if command_timeout is None else command_timeout
        self.job_id_regexp = re.compile(self.settings.slurm_job_id_pattern)
        #: Job names whose sbatch timed out, and when Slurm first answered "no such job" since: a controller that
        #: wakes up answers a queued ``squeue`` before it has processed every queued ``sbatch``.
        self._uncertain_since: dict[str, float | None] = {}
        self.states = {**SLURM_STATES,
                       **{state: BackendState(value) for state, value in self.settings.slurm_state_map.items()}}

    # --- scheduler commands ---------------------------------------------------------------------------------
    def _submit_cmd(self, *args: str) -> list[str]:
        return [*self.settings.slurm_submit_command, *args]

    def _status_cmd(self, *args: str) -> list[str]:
        return [*self.settings.slurm_status_command, *args]

    def _cancel_cmd(self, *args: str) -> list[str]:
        return [*self.settings.slurm_cancel_command, *args]

    def _show_cmd(self, *args: str) -> list[str]:
        return [*self.settings.slurm_show_command, *args]

    def _info_cmd(self, *args: str) -> list[str]:
        return [*self.settings.slurm_info_command, *args]

    def _run(self, argv: list[str], input: str | None = None, *, submitting: str | None = None) -> proc.Result:
        """Run a Slurm command; an unreachable, hung or missing Slurm becomes a 503 the manager can retry on.

        ``submitting`` names the job an sbatch submits: when that sbatch times out, the controller may still have
        taken (or later take) the job, so the 503 says the submission is uncertain, never that nothing was
        submitted; the next `submit` looks for the job by that name first."""
        command = Path(argv[0]).name[:32]
        try:
            result = self.runner(argv, timeout=self.command_timeout, env=self.settings.slurm_env(), check=False,
                                 input=input)
        except proc.CommandError as exc:
            SCHEDULER_COMMANDS.labels(command, "unavailable").inc()
            if submitting and exc.why.startswith("timed out"):
                self._uncertain_since[submitting] = None
                raise self._uncertain(submitting, f"sbatch did not answer within {self.command_timeout:g} s")
            raise FlowError(503, "scheduler_unavailable", f"Slurm is not available: {exc.summary()}") from None
        unreachable = result.returncode != 0 and bool(_UNAVAILABLE.search(result.stderr + result.stdout))
        outcome = "unavailable" if unreachable else "ok" if result.returncode == 0 else "failed"
        SCHEDULER_COMMANDS.labels(command, outcome).inc()
        if unreachable:
            last = (result.stderr or result.stdout).strip().splitlines()[-1]
            if submitting and _UNCERTAIN.search(result.stderr + result.stdout):
                self._uncertain_since[submitting] = None
                raise self._uncertain(submitting, last)
            raise FlowError(503, "scheduler_unavailable", f"Slurm is not reachable: {last}")
        return result

    @staticmethod
    def _uncertain(name: str, why: str) -> FlowError:
        return FlowError(503, "scheduler_unavailable",
                         f"The submission is uncertain ({why}): Slurm may still queue the head job; the next attempt "
                         f"adopts a job named {name} if there is one instead of submitting again.")

    @staticmethod
    def _failed(result: proc.Result, what: str) -> FlowError:
        last = (result.stderr or result.stdout or f"{what} exited with {result.returncode}").strip().splitlines()[-1]
        return FlowError(503, "scheduler_unavailable", f"{what} failed: {last}")

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
            # append: a duplicate head job (stopped by the lock) must not truncate the real one's output
            job_extra_directives=[f"--chdir={run_dir}", f"--output={run_dir}/{SLURM_OUTPUT_FILE}", "--open-mode=append",
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
        """Take the run directory's lock, then exports, then Nextflow in the background so the script can forward
        SIGTERM (scancel, time limit) to it and still record Nextflow's exit code atomically in the run dir.

        The lock (``flock -n`` on `HEAD_LOCK_FILE`, held for the whole job through fd 9) is the last line of defence
        against a duplicate head job (an sbatch that timed out and was processed later): the duplicate finds it
        taken and exits at once with `HEAD_LOCKED_EXIT_CODE`, before it touches anything else, exit code included.
        The holder appends its job id through the locked descriptor itself (opening the file again would drop a
        POSIX lock, which is how NFS emulates flock), so `find` can tell which head job is the real one."""
        exit_file = shlex.quote(str(launch.run_dir / EXIT_CODE_FILE))
        lock_file = shlex.quote(str(launch.run_dir / HEAD_LOCK_FILE))
        lines = [
            "if command -v flock >/dev/null 2>&1 && { exec 9>>" + lock_file + "; } 2>/dev/null; then",
            "  if ! flock -n 9; then",
            "    echo \"flow: another head job holds \"" + lock_file + "\"; this one (job ${SLURM_JOB_ID:-?}) exits "
            "without touching the run\" >&2",
            f"    exit {HEAD_LOCKED_EXIT_CODE}",
            "  fi",
            "  printf '%s\\n' \"${SLURM_JOB_ID:-}\" >&9",
            "else",
            "  echo \"flow: cannot lock \"" + lock_file + "\" (no flock?); running without the duplicate guard\" >&2",
            "fi",
        ]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in launch.env.items()]
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

    # --- Backend: launch checks -----------------------------------------------------------------------------
    def check_launch(self, resources: Resources | None) -> None:
        """Before a launch is stored: the controller answers, the partition asked for exists, and — when the user
        set resources — Slurm would accept the head job they make (``sbatch --test-only``: too many cores, more
        memory than a node has, an option sbatch does not know). Otherwise sbatch would refuse it only later, after
        the execution was stored; here it is a 400 naming the field and nothing is stored."""
        listed = self._run(self._info_cmd("-h", "-o", "%R"))
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
        result = self._run(self._submit_cmd("--test-only"), input=self.job_script(probe))
        if result.returncode == 0:
            return None
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        return lines[0][:300] if lines else f"sbatch --test-only exited with {result.returncode}"

    # --- Backend: submit and find (idempotent) --------------------------------------------------------------
    def submit(self, launch: Launch) -> BackendJob:
        """Adopt a head job already queued for this execution in this run directory (an earlier sbatch that timed
        out may have been processed since), else submit one. A refused job is a 400 (``submission_rejected``); an
        unreachable or hung controller a 503 (``scheduler_unavailable``), uncertain when sbatch timed out."""
        script = self.job_script(launch)  # every value is checked before the scheduler is asked anything
        name = job_name(launch.execution_uuid)
        adopted = self._adopt(launch.execution_uuid, launch.run_dir)
        if adopted is not None:
            log.warning("execution %s: adopting Slurm job %s named %s instead of submitting again",
                        launch.execution_uuid, adopted, name)
            job = BackendJob(backend=self.name, job_id=adopted, execution_uuid=launch.execution_uuid,
                             run_dir=str(launch.run_dir), submitted_at=utc_now_iso())
            write_head_file(job)
            return job
        self._settle_uncertainty(name)
        clear_run_evidence(launch.run_dir)
        result = self._run(self._submit_cmd("--parsable"), input=script, submitting=name)
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip() or f"sbatch exited with {result.returncode}"
            raise FlowError(400, "submission_rejected", f"Slurm refused the job: {message}")
        match = self.job_id_regexp.match(result.stdout.strip())
        if not match or not NATIVE_ID.match(match["job_id"] or ""):
            raise RuntimeError(f"could not parse a job id from sbatch output: stdout={result.stdout!r} "
                               f"stderr={result.stderr!r}")
        job = BackendJob(backend=self.name, job_id=match["job_id"], execution_uuid=launch.execution_uuid,
                         run_dir=str(launch.run_dir), submitted_at=utc_now_iso())
        write_head_file(job)
        return job

    def _settle_uncertainty(self, name: str) -> None:
        """After an uncertain sbatch, submit again only once Slurm has said "no job by that name" for a while (a
        command timeout's worth): the first answers of a controller that wakes up may come before it processed the
        sbatch queued while it was hung. Until then a 503, and the manager retries."""
        if name not in self._uncertain_since:
            return
        first_absent = self._uncertain_since[name]
        moment = time.monotonic()
        if first_absent is None:
            self._uncertain_since[name] = moment
        if first_absent is None or moment - first_absent < self.command_timeout:
            raise FlowError(503, "scheduler_unavailable",
                            f"Waiting to see whether the earlier, uncertain submission of {name} went through before "
                            "submitting again.")
        del self._uncertain_since[name]

    def successor(self, job: BackendJob, info: JobInfo) -> BackendJob | None:
        """The head job that holds the run directory when ``job`` left only because it could not take the lock (a
        duplicate of an uncertain submission that was recorded instead of the one that runs): the job id the lock
        file names. A file read, no scheduler call."""
        if info.exit_code != HEAD_LOCKED_EXIT_CODE:
            return None
        holder = lock_holder(Path(job.run_dir))
        if holder is None or holder == job.job_id:
            return None
        found = BackendJob(backend=self.name, job_id=holder, execution_uuid=job.execution_uuid, run_dir=job.run_dir,
                           submitted_at=utc_now_iso())
        write_head_file(found)
        return found

    def find(self, execution_uuid: str, run_dir: Path) -> BackendJob | None:
        """The listed job named ``flow-<uuid>`` working in run_dir (even if head.json was never written; several:
        the same rule as `submit`, the others cancelled), else the job recorded in run_dir/head.json."""
        recorded = read_head_file(run_dir, execution_uuid)
        if recorded is not None and recorded.backend != self.name:
            recorded = None
        adopted = self._adopt(execution_uuid, Path(run_dir))
        if adopted is None:
            return recorded
        if recorded is not None and recorded.job_id == adopted:
            return recorded
        job = BackendJob(backend=self.name, job_id=adopted, execution_uuid=execution_uuid, run_dir=str(run_dir),
                         submitted_at=utc_now_iso())
        write_head_file(job)  # so the job is still found here once Slurm has forgotten it
        return job

    def _adopt(self, execution_uuid: str, run_dir: Path) -> str | None:
        """The one head job to keep among the listed jobs named ``flow-<uuid>`` working in run_dir, cancelling the
        others: the running one that holds the run directory's lock, else the oldest running one, else the oldest
        (lowest id: the first the controller took). None when there is none."""
        listed = self._run(self._status_cmd("-h", "--name", job_name(execution_uuid), "-o", NAMED_FORMAT))
        if listed.returncode != 0:
            raise self._failed(listed, "squeue")
        spellings = _spellings(run_dir)
        jobs: dict[str, BackendState] = {}
        for line in listed.stdout.splitlines():
            parts = line.strip().split("|", 2)
            if len(parts) == 3 and NATIVE_ID.match(parts[0]) and _in_dir(parts[2], spellings, exact=True):
                state = self.states.get(parts[1], BackendState.UNKNOWN)
                if not state.terminal:
                    jobs[parts[0]] = state
        if not jobs:
            return None
        running = sorted((i for i, state in jobs.items() if state is BackendState.RUNNING), key=_job_number)
        holder = lock_holder(run_dir)
        keep = holder if holder in running else (running or sorted(jobs, key=_job_number))[0]
        others = sorted((i for i in jobs if i != keep), key=_job_number)
        if others:
            log.warning("execution %s: %d head jobs in %s; keeping %s, cancelling %s", execution_uuid, len(jobs),
                        run_dir, keep, ", ".join(others))
            self._run(self._cancel_cmd(*others))
        return keep

    # --- Backend: status ------------------------------------------------------------------------------------
    def status(self, job: BackendJob) -> JobInfo:
        """One job's `statuses`."""
        return self.statuses([job])[job.job_id]

    def statuses(self, jobs: Sequence[BackendJob]) -> dict[str, JobInfo]:
        """Every job's JobInfo, keyed by job id, from ONE ``squeue -j id1,id2,…`` (per 500 ids) for all of them.

        A job still listed (pending, running, completing) is what squeue says. A job no longer listed ended: the
        exit code its head script wrote in the run directory says how (no scheduler call); only without one is
        ``scontrol show job`` asked (the job just left the queue, or was killed before it could write), and when
        Slurm has forgotten it too (MinJobAge) the run directory's cancel marker, else UNKNOWN. 503 while Slurm is
        unreachable."""
        by_id: dict[str, BackendJob] = {}
        for job in jobs:
            self._check_id(job.job_id)
            by_id.setdefault(job.job_id, job)
        listed = self._listed(list(by_id))
        infos: dict[str, JobInfo] = {}
        for job_id, job in by_id.items():
            info = listed.get(job_id)
            if info is not None and not info.status.terminal:
                infos[job_id] = info
                continue
            run_dir = Path(job.run_dir)
            code = read_exit_code(run_dir)
            if code is not None:
                infos[job_id] = info_from_exit_code(code, run_dir, "exit code recorded in the run directory")
            else:
                infos[job_id] = self._shown(job)
        return infos

    def _listed(self, job_ids: list[str]) -> dict[str, JobInfo]:
        """What squeue says about those of ``job_ids`` it still lists. For one unknown id squeue fails with
        'Invalid job id specified'; among several, unknown ids are just left out (Slurm 22.05): both mean 'not
        listed'."""
        wanted = set(job_ids)
        listed: dict[str, JobInfo] = {}
        for chunk in chunked(job_ids):
            result = self._run(self._status_cmd("-h", "-j", ",".join(chunk), "-o", SQUEUE_FORMAT))
            if result.returncode != 0:
                if _INVALID_JOB.search(result.stderr + result.stdout):
                    continue
                raise self._failed(result, "squeue")
            for line in result.stdout.splitlines():
                if not line.strip():
                    continue
                try:
                    job_id, info = parse_squeue_line(line, self.states)
                except ValueError:
                    log.warning("ignoring an unexpected squeue line: %r", line[:300])
                    continue
                if job_id in wanted:
                    listed[job_id] = info
        return listed

    def _shown(self, job: BackendJob) -> JobInfo:
        """A job squeue no longer lists and that left no exit code: scontrol's record, else the run directory."""
        shown = self._run(self._show_cmd("show", "job", job.job_id))
        if shown.returncode == 0 and "JobState=" in shown.stdout:
            info = parse_scontrol_job(shown.stdout, self.states)
            if info.exit_code == HEAD_LOCKED_EXIT_CODE:
                return JobInfo(BackendState.FAILED, HEAD_LOCKED_EXIT_CODE,
                               f"a duplicate head job: another head job held {HEAD_LOCK_FILE}, so it did not run",
                               node=info.node)
            return info
        if shown.returncode != 0 and not _INVALID_JOB.search(shown.stderr + shown.stdout):
            raise self._failed(shown, "scontrol")
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
        """``squeue --start`` for one job (the batch `statuses` already carries a pending job's expected start)."""
        self._check_id(job.job_id)
        result = self._run(self._status_cmd("--start", "-h", "-j", job.job_id, "-o", "%S"))
        if result.returncode != 0 or not result.stdout.strip():
            return None
        return parse_slurm_time(result.stdout.strip().splitlines()[0])

    # --- Backend: cancel ------------------------------------------------------------------------------------
    def cancel(self, job: BackendJob, task_ids: Sequence[str] = ()) -> None:
        """scancel the head job (its script forwards SIGTERM to Nextflow, which stops its tasks) and, with it, the
        run's own task jobs still listed: ``task_ids`` are the native ids of the run's unfinished tasks (from its
        events/trace: untrusted), so ids that are not plain job ids are dropped and one squeue keeps only jobs
        working inside the run directory. Nothing else in the cluster is listed or touched."""
        self._check_id(job.job_id)
        run_dir = Path(job.run_dir)
        mark_cancel_requested(run_dir)
        tasks = sorted({i for i in task_ids if isinstance(i, str) and NATIVE_ID.match(i)} - {job.job_id},
                       key=_job_number)
        inside = self.working_in(tasks, run_dir) if tasks else []
        self._run(self._cancel_cmd(job.job_id, *inside))  # an already finished/purged job is fine: nothing to do

    def working_in(self, job_ids: Sequence[str], run_dir: Path) -> list[str]:
        """Those of ``job_ids`` Slurm lists with a working directory inside run_dir (one squeue per 500 ids)."""
        spellings = _spellings(run_dir)
        inside: list[str] = []
        for chunk in chunked(list(job_ids)):
            listed = self._run(self._status_cmd("-h", "-j", ",".join(chunk), "-o", WORKDIR_FORMAT))
            if listed.returncode != 0 and not _INVALID_JOB.search(listed.stderr + listed.stdout):
                raise self._failed(listed, "squeue")
            for line in listed.stdout.splitlines():
                listed_id, _, workdir = line.strip().partition("|")
                if listed_id in chunk and _in_dir(workdir, spellings, exact=False):
                    inside.append(listed_id)
        return inside

    @staticmethod
    def _check_id(job_id: str) -> None:
        if not NATIVE_ID.match(job_id):
            raise bad_request(f"{job_id!r} is not a Slurm job id", "/job_id")
