"""Backends: one interface to start, follow, stop and re-find Nextflow head jobs, locally or on Slurm.

Offline stories check the rendered sbatch script and replay scheduler exchanges captured from the real Slurm 22.05:
one status query for many runs, adoption instead of a second submission, a cancel that asks only about the run's own
jobs, and the traits that name the commands, the job-id pattern and the state map. The real stories run Nextflow (the
tiny pipeline, and a sleeping one to cancel) through each backend; test_slurm_backend_real.py has the real-Slurm
versions of the site-scale stories.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from traitlets import TraitError

from conftest import TINY_PIPELINE
from waiting import wait_for
from flow_jupyter import proc
from flow_jupyter.config import FlowSettings
from flow_jupyter.errors import FlowError
from flow_jupyter.execution.backends import (
    BackendJob,
    BackendState,
    JobInfo,
    Launch,
    LocalBackend,
    Resources,
    SlurmBackend,
)
from flow_jupyter.execution.backends import slurm as slurm_module
from flow_jupyter.execution.backends.base import read_head_file
from flow_jupyter.execution.backends.local import boot_id, session_alive
from flow_jupyter.config import BACKEND_STATE_NAMES
from flow_jupyter.execution.backends.slurm import (
    HEAD_LOCK_FILE, HEAD_LOCKED_EXIT_CODE, SQUEUE_MAX_IDS, parse_scontrol_job, parse_squeue_line,
)
from flow_jupyter.execution.runfiles import (
    CONFIG_FILE, EXIT_CODE_FILE, HEAD_FILE, LOCAL_STDERR_FILE, LOCAL_STDOUT_FILE, LOG_FILE, PARAMS_FILE,
    SLURM_OUTPUT_FILE, TRACE_FILE, WORK_DIR,
)

NAMES = ["Rosalind", "Ada", "Grace"]
EXPECTED = "".join(f"Hello, {name}!\n" for name in sorted(NAMES))
SLEEPY_PIPELINE = """
nextflow.enable.dsl = 2
process NAP {
    input:
    val x
    script:
    "sleep 600"
}
workflow { NAP(Channel.of(1, 2)) }
"""
SLURM_TASKS_CONFIG = (
    "process { executor = 'slurm'; cpus = 1; memory = '500 MB' }\n"
    "executor { queueStatInterval = '2s'; pollInterval = '1s' }\n"
)


# --- helpers ------------------------------------------------------------------------------------------------------
#: How long a real Nextflow run or a Slurm job may take to get somewhere on a loaded machine.
RUN_TIMEOUT = 300.0


def tiny_launch(tmp_path: Path, *extra: str, config: str | None = None) -> Launch:
    """A run dir holding the tiny pipeline's names and params files, and the argv the manager would build."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "names.txt").write_text("\n".join(NAMES) + "\n")
    (run_dir / PARAMS_FILE).write_text(json.dumps(
        {"names": str(run_dir / "names.txt"), "greeting": "Hello", "outdir": str(run_dir / "results")}))
    return _launch(run_dir, TINY_PIPELINE / "main.nf", config)


def sleepy_launch(tmp_path: Path, config: str | None = None) -> Launch:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "main.nf").write_text(SLEEPY_PIPELINE)
    (run_dir / PARAMS_FILE).write_text("{}")
    return _launch(run_dir, run_dir / "main.nf", config)


def _launch(run_dir: Path, main_nf: Path, config: str | None) -> Launch:
    argv = ["nextflow", "-log", LOG_FILE, "run", str(main_nf), "-params-file", PARAMS_FILE,
            "-work-dir", WORK_DIR, "-with-trace", TRACE_FILE]
    if config is not None:
        (run_dir / CONFIG_FILE).write_text(config)
        argv += ["-c", CONFIG_FILE]
    return Launch(execution_uuid=str(uuid.uuid4()), run_dir=run_dir, argv=argv, env={"NXF_ANSI_LOG": "false"})


def assert_tiny_outputs(run_dir: Path) -> None:
    assert (run_dir / "results" / "all.txt").read_text() == EXPECTED
    for name in NAMES:
        assert (run_dir / "results" / "greetings" / f"{name}.txt").read_text() == f"Hello, {name}!\n"


def follow(backend, job: BackendJob, timeout: float = RUN_TIMEOUT) -> tuple[set[BackendState], JobInfo]:
    """Poll a job to its end; the statuses seen on the way and the final JobInfo."""
    seen: set[BackendState] = set()

    def ended() -> JobInfo | None:
        info = backend.status(job)
        seen.add(info.status)
        return info if info.status.terminal or info.status is BackendState.UNKNOWN else None

    return seen, wait_for(ended, what=f"{job.backend} job {job.job_id} to end", timeout=timeout, interval=0.5)


def submitted_task_ids(run_dir: Path) -> list[str]:
    """Slurm job ids of the tasks Nextflow submitted, from its log ('[SLURM] submitted process … > jobId: 123;')."""
    try:
        text = (run_dir / LOG_FILE).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return sorted(set(re.findall(r"submitted process .*? > jobId: (\d+);", text)))


def run_log(run_dir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(run_dir.iterdir())
                     if p.name in {LOCAL_STDOUT_FILE, LOCAL_STDERR_FILE, SLURM_OUTPUT_FILE, LOG_FILE})


class Replay:
    """Plays back scheduler exchanges (argv → Result) captured from the real Slurm, in order, like batchspawner's
    run_spawner_script; an unexpected command fails the test."""

    def __init__(self, *exchanges: tuple[list[str], int, str, str]):
        self.exchanges = list(exchanges)
        self.inputs: list[str | None] = []

    def __call__(self, argv, *, timeout, env, check, input=None) -> proc.Result:
        assert self.exchanges, f"unexpected command {argv}"
        expected, code, out, err = self.exchanges.pop(0)
        assert list(argv) == expected
        self.inputs.append(input)
        return proc.Result(list(argv), code, out, err)


# Captured from the real single-node Slurm 22.05 (scripts/slurm.sh).
SCONTROL_COMPLETED = """JobId=45 JobName=wrap
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=4294901717 Nice=0 Account=(null) QOS=(null)
   JobState=COMPLETED Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A
   StartTime=2026-11-25T15:48:24 EndTime=2026-11-25T15:48:24 Deadline=N/A
   Partition=debug AllocNode:Sid=localhost:18031
   NodeList=vm
   BatchHost=vm
   WorkDir=/tmp/cap
"""
SCONTROL_FAILED = SCONTROL_COMPLETED.replace("JobState=COMPLETED Reason=None", "JobState=FAILED Reason=NonZeroExitCode"
                                             ).replace("ExitCode=0:0", "ExitCode=3:0")
SCONTROL_CANCELLED = SCONTROL_COMPLETED.replace("JobState=COMPLETED", "JobState=CANCELLED").replace(
    "ExitCode=0:0", "ExitCode=0:15")
INVALID = "slurm_load_jobs error: Invalid job id specified\n"
UNREACHABLE = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"


def squeue(job_id: str) -> list[str]:
    return ["squeue", "-h", "-j", job_id, "-o", "%i|%T|%r|%S|%N"]


def named(execution_uuid: str) -> list[str]:
    """The look for an existing head job that comes before every submission (and at reconcile)."""
    return ["squeue", "-h", "--name", f"flow-{execution_uuid}", "-o", "%i|%T|%Z"]


def none_named(execution_uuid: str) -> tuple[list[str], int, str, str]:
    return named(execution_uuid), 0, "", ""


def scontrol(job_id: str) -> list[str]:
    return ["scontrol", "show", "job", job_id]


def slurm_job(run_dir: Path, job_id: str = "45") -> BackendJob:
    return BackendJob("slurm", job_id, "e1", str(run_dir), "2026-11-25T15:48:21+00:00")


# --- offline: the head-job script ----------------------------------------------------------------------------------
def test_the_head_script_carries_exactly_the_settings_and_the_requested_resources(tmp_path: Path) -> None:
    settings = FlowSettings(slurm_queue="debug", slurm_account="lab", slurm_walltime="12:00:00", slurm_cores=2,
                            slurm_memory="8GB", slurm_job_extra_directives=["--qos=normal"],
                            slurm_job_script_prologue=["module load java/17"])
    launch = Launch("e1", tmp_path, ["nextflow", "run", "/pipes/main.nf", "-params-file", "params.json"],
                    {"NXF_ANSI_LOG": "false", "FLOW_EVENTS_FILE": str(tmp_path / "events.ndjson")},
                    Resources(queue="long", walltime="2-00:00:00", cores=4, extra_directives=("--gres=gpu:1",)))

    script = SlurmBackend(settings).job_script(launch)

    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert [line for line in lines if line.startswith("#SBATCH")] == [
        "#SBATCH -J flow-e1",
        "#SBATCH -p long",
        "#SBATCH -A lab",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=8G",
        "#SBATCH -t 2-00:00:00",
        f"#SBATCH --chdir={tmp_path}",
        f"#SBATCH --output={tmp_path}/head.out",
        "#SBATCH --open-mode=append",
        "#SBATCH --qos=normal",
        "#SBATCH --gres=gpu:1",
    ]
    body = lines[lines.index("#SBATCH --gres=gpu:1") + 1:]
    assert body[0] == "module load java/17"
    assert body[1].startswith("if command -v flock") and "flock -n 9" in body[2]  # the duplicate guard comes first
    assert "export NXF_ANSI_LOG=false" in body
    assert f"export FLOW_EVENTS_FILE={tmp_path}/events.ndjson" in body
    assert "nextflow run /pipes/main.nf -params-file params.json </dev/null &" in body
    assert body[-1] == 'exit "$flow_rc"'


def test_without_resources_the_settings_defaults_apply_and_empty_queue_and_account_are_left_out(tmp_path) -> None:
    launch = Launch("e2", tmp_path, ["nextflow", "run", "main.nf"], {})

    script = SlurmBackend(FlowSettings()).job_script(launch)

    assert [line for line in script.splitlines() if line.startswith("#SBATCH")] == [
        "#SBATCH -J flow-e2", "#SBATCH -n 1", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=2G",
        "#SBATCH -t 24:00:00", f"#SBATCH --chdir={tmp_path}", f"#SBATCH --output={tmp_path}/head.out",
        "#SBATCH --open-mode=append",
    ]


def test_flow_controlled_values_are_shell_quoted_in_the_script(tmp_path: Path) -> None:
    launch = Launch("e3", tmp_path, ["nextflow", "run", "/pipes/it's here/main.nf"], {"FLOW_NOTE": "a b; $(x)"})

    script = SlurmBackend(FlowSettings()).job_script(launch)

    assert "export FLOW_NOTE='a b; $(x)'" in script
    assert "nextflow run '/pipes/it'\"'\"'s here/main.nf' </dev/null &" in script


HOSTILE = ["debug\n#SBATCH --uid=0", "#SBATCH --uid=0", "debug;rm -rf /", "deb'ug", 'deb"ug', "de bug", "$(id)"]


@pytest.mark.parametrize("name", ["queue", "account", "walltime", "memory"])
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_resource_values_are_a_400_naming_the_field(name: str, value: str) -> None:
    with pytest.raises(FlowError) as caught:
        Resources(**{name: value})
    assert (caught.value.status, caught.value.field) == (400, f"/resources/{name}")

    with pytest.raises(FlowError) as caught:
        Resources.from_json({name: value})
    assert (caught.value.status, caught.value.field) == (400, f"/resources/{name}")


@pytest.mark.parametrize("directive", [*HOSTILE, "--uid=0", "--ui=0", "--gid=0", "--chdir=/etc", "-D/etc",
                                       "--output=/etc/passwd", "--export=ALL,LD_PRELOAD=/x.so", "--job-name=x",
                                       "--wrap=id", "qos=normal"])
def test_hostile_extra_directives_are_refused_before_anything_is_submitted(tmp_path: Path, directive: str) -> None:
    replay = Replay()  # no exchange expected: nothing may reach sbatch
    backend = SlurmBackend(FlowSettings(), runner=replay)

    with pytest.raises(FlowError) as caught:
        backend.submit(Launch("e4", tmp_path, ["nextflow", "run", "main.nf"], {},
                              Resources.from_json({"extra_directives": ["--qos=normal", directive]})))

    assert (caught.value.status, caught.value.field) == (400, "/resources/extra_directives/1")
    assert replay.inputs == []
    assert not (tmp_path / HEAD_FILE).exists()


@pytest.mark.parametrize("env,field", [({"X": "a\nb"}, "/env/X"), ({"BAD NAME": "1"}, "/env/BAD NAME"),
                                       ({"X;id": "1"}, "/env/X;id")])
def test_environment_that_could_break_the_script_is_refused(tmp_path: Path, env: dict, field: str) -> None:
    replay = Replay()
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=replay).submit(Launch("e5", tmp_path, ["nextflow"], env))
    assert (caught.value.status, caught.value.field) == (400, field)
    assert replay.inputs == []


def test_other_bad_resources_are_400s_too() -> None:
    for body, field in [({"cores": 0}, "/resources/cores"), ({"cores": "4"}, "/resources/cores"),
                        ({"walltime": "forever"}, "/resources/walltime"), ({"queue": 3}, "/resources/queue"),
                        ({"gpus": 1}, "/resources/gpus"),
                        ({"extra_directives": "--qos=x"}, "/resources/extra_directives")]:
        with pytest.raises(FlowError) as caught:
            Resources.from_json(body)
        assert (caught.value.status, caught.value.field) == (400, field), body


def test_a_memory_that_is_not_a_size_is_a_400(tmp_path: Path) -> None:
    launch = Launch("e6", tmp_path, ["nextflow"], {}, Resources(memory="lots"))
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=Replay()).submit(launch)
    assert (caught.value.status, caught.value.field) == (400, "/resources/memory")


# --- offline: replayed scheduler exchanges ---------------------------------------------------------------------------
def test_sbatch_gets_the_script_on_stdin_and_its_parsable_id_is_recorded(tmp_path: Path) -> None:
    replay = Replay(none_named("e7"), (["sbatch", "--parsable"], 0, "47;flowdev\n", ""))
    launch = Launch("e7", tmp_path, ["nextflow", "run", "main.nf"], {})

    job = SlurmBackend(FlowSettings(), runner=replay).submit(launch)

    assert (job.backend, job.job_id, job.execution_uuid, job.run_dir) == ("slurm", "47", "e7", str(tmp_path))
    assert replay.inputs[1].startswith("#!/usr/bin/env bash\n")
    assert json.loads((tmp_path / HEAD_FILE).read_text())["job_id"] == "47"
    assert BackendJob.from_json(json.loads(json.dumps(job.to_json()))) == job


def test_an_unparsable_sbatch_answer_fails_loudly_with_the_output(tmp_path: Path) -> None:
    replay = Replay(none_named("e8"), (["sbatch", "--parsable"], 0, "Submitted batch job 47\n", ""))
    with pytest.raises(RuntimeError, match="Submitted batch job 47"):
        SlurmBackend(FlowSettings(), runner=replay).submit(Launch("e8", tmp_path, ["nextflow"], {}))


def test_a_refused_submission_is_a_400_and_an_unreachable_slurm_a_503(tmp_path: Path) -> None:
    refused = Replay(none_named("e9"), (["sbatch", "--parsable"], 1, "",
                      "sbatch: error: Batch job submission failed: Invalid partition name specified\n"))
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=refused).submit(Launch("e9", tmp_path, ["nextflow"], {}))
    assert (caught.value.status, caught.value.reason) == (400, "submission_rejected")
    assert "Invalid partition name" in caught.value.message

    down = Replay(none_named("e9"), (["sbatch", "--parsable"], 1, "", "sbatch: error: Batch job submission failed: "
                   "Unable to contact slurm controller (connect failure)\n"))
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=down).submit(Launch("e9", tmp_path, ["nextflow"], {}))
    assert (caught.value.status, caught.value.reason) == (503, "scheduler_unavailable")


def test_squeue_lines_become_job_infos() -> None:
    job_id, running = parse_squeue_line("45|RUNNING|None|2026-11-25T15:48:21|vm")
    _, pending = parse_squeue_line("46|PENDING|Resources|2026-11-25T15:58:21|")
    _, configuring = parse_squeue_line("47|CONFIGURING|None|2026-11-25T15:58:21|vm")
    _, completing = parse_squeue_line("48|COMPLETING|None|2026-11-25T15:48:21|vm")

    assert job_id == "45"
    assert (running.status, running.node, running.reason, running.queue_eta) == (BackendState.RUNNING, "vm", None, None)
    assert (pending.status, pending.reason, pending.node) == (BackendState.PENDING, "Resources", None)
    assert pending.queue_eta.isoformat(timespec="seconds").startswith("2026-11-25T15:58:21")
    assert configuring.status is BackendState.PENDING and completing.status is BackendState.RUNNING
    assert parse_squeue_line("49|PENDING|Priority|N/A|")[1].queue_eta is None
    for garbage in ["RUNNING|None|2026-11-25T15:48:21|vm", "1;reboot|RUNNING|None|N/A|vm", ""]:
        with pytest.raises(ValueError):
            parse_squeue_line(garbage)


def test_scontrol_records_give_the_final_state_and_exit_code() -> None:
    assert parse_scontrol_job(SCONTROL_COMPLETED) == JobInfo(BackendState.COMPLETED, 0, None, None, "vm")
    assert parse_scontrol_job(SCONTROL_FAILED) == JobInfo(BackendState.FAILED, 3, "NonZeroExitCode", None, "vm")
    assert parse_scontrol_job(SCONTROL_CANCELLED) == JobInfo(BackendState.CANCELLED, 143, None, None, "vm")
    for state in ["TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"]:
        assert parse_scontrol_job(SCONTROL_FAILED.replace("JobState=FAILED", f"JobState={state}")).status \
            is BackendState.FAILED


def test_status_walks_from_squeue_to_the_run_dir_to_scontrol(tmp_path: Path) -> None:
    job = slurm_job(tmp_path)
    listed = Replay((squeue("45"), 0, "45|RUNNING|None|2026-11-25T15:48:21|vm\n", ""))
    assert SlurmBackend(FlowSettings(), runner=listed).status(job) == JobInfo(BackendState.RUNNING, node="vm")

    finished = Replay((squeue("45"), 0, "", ""), (scontrol("45"), 0, SCONTROL_FAILED, ""))
    assert SlurmBackend(FlowSettings(), runner=finished).status(job).exit_code == 3

    # One unknown id: squeue fails with 'Invalid job id specified' — that means "not listed", not an outage.
    purged = [(squeue("45"), 1, "", INVALID), (scontrol("45"), 1, "", INVALID)]
    assert SlurmBackend(FlowSettings(), runner=Replay(*purged)).status(job).status is BackendState.UNKNOWN
    # With the head script's exit code in the run dir, Slurm is not asked beyond the one squeue.
    (tmp_path / EXIT_CODE_FILE).write_text("0\n")
    info = SlurmBackend(FlowSettings(), runner=Replay(purged[0])).status(job)
    assert (info.status, info.exit_code) == (BackendState.COMPLETED, 0)
    (tmp_path / EXIT_CODE_FILE).write_text("1\n")
    assert SlurmBackend(FlowSettings(), runner=Replay(purged[0])).status(job).status is BackendState.FAILED

    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=Replay((squeue("45"), 1, "", UNREACHABLE))).status(job)
    assert (caught.value.status, caught.value.reason) == (503, "scheduler_unavailable")


def test_the_queue_eta_comes_from_squeue_start(tmp_path: Path) -> None:
    job = slurm_job(tmp_path, "44")
    start = ["squeue", "--start", "-h", "-j", "44", "-o", "%S"]
    assert SlurmBackend(FlowSettings(), runner=Replay((start, 0, "N/A\n", ""))).eta(job) is None
    eta = SlurmBackend(FlowSettings(), runner=Replay((start, 0, "2026-11-25T15:58:21\n", ""))).eta(job)
    assert eta.isoformat(timespec="seconds").startswith("2026-11-25T15:58:21")


# --- offline: one status query for many runs ------------------------------------------------------------------------
def test_many_runs_cost_one_squeue_and_only_the_unexplained_end_asks_scontrol(tmp_path: Path) -> None:
    dirs = {job_id: tmp_path / job_id for job_id in ["45", "46", "47", "48", "49"]}
    for run_dir in dirs.values():
        run_dir.mkdir()
    (dirs["47"] / EXIT_CODE_FILE).write_text("0\n")  # ended, and its head script said how
    jobs = [slurm_job(run_dir, job_id) for job_id, run_dir in dirs.items()]
    replay = Replay(
        (squeue("45,46,47,48,49"), 0, "46|PENDING|Priority|2026-11-25T15:58:21|\n45|RUNNING|None|N/A|vm\n", ""),
        (scontrol("48"), 0, SCONTROL_FAILED.replace("JobId=45", "JobId=48"), ""),  # killed before it could write
        (scontrol("49"), 1, "", INVALID),  # forgotten by Slurm too (MinJobAge)
    )

    infos = SlurmBackend(FlowSettings(), runner=replay).statuses(jobs)

    assert {job_id: info.status for job_id, info in infos.items()} == {
        "45": BackendState.RUNNING, "46": BackendState.PENDING, "47": BackendState.COMPLETED,
        "48": BackendState.FAILED, "49": BackendState.UNKNOWN}
    assert infos["46"].queue_eta is not None and infos["48"].exit_code == 3
    assert replay.exchanges == []


class Listing:
    """A scheduler that lists every job asked about as running, counting its commands (for large batches)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, argv, *, timeout, env, check, input=None) -> proc.Result:
        self.commands.append(list(argv))
        ids = argv[argv.index("-j") + 1].split(",")
        return proc.Result(list(argv), 0, "".join(f"{i}|RUNNING|None|N/A|vm\n" for i in ids), "")


def test_a_thousand_active_runs_are_two_squeue_commands_per_round(tmp_path: Path) -> None:
    jobs = [slurm_job(tmp_path, str(1000 + n)) for n in range(1000)]
    listing = Listing()

    infos = SlurmBackend(FlowSettings(), runner=listing).statuses(jobs)

    assert len(infos) == 1000 and {info.status for info in infos.values()} == {BackendState.RUNNING}
    assert [argv[:3] for argv in listing.commands] == [["squeue", "-h", "-j"]] * 2
    assert [len(argv[3].split(",")) for argv in listing.commands] == [SQUEUE_MAX_IDS, SQUEUE_MAX_IDS]


def test_an_unreachable_controller_makes_the_whole_round_a_503(tmp_path: Path) -> None:
    jobs = [slurm_job(tmp_path, "45"), slurm_job(tmp_path, "46")]
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=Replay((squeue("45,46"), 1, "", UNREACHABLE))).statuses(jobs)
    assert (caught.value.status, caught.value.reason) == (503, "scheduler_unavailable")


def test_statuses_refuse_a_job_id_that_is_not_one_before_asking_slurm(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=Replay()).statuses([slurm_job(tmp_path, "45,-u,root")])
    assert (caught.value.status, caught.value.field) == (400, "/job_id")


# --- offline: idempotent submission ---------------------------------------------------------------------------------
def test_a_head_job_already_queued_for_the_run_is_adopted_instead_of_submitted_again(tmp_path: Path) -> None:
    elsewhere = tmp_path.parent / "another-run"
    replay = Replay((named("e12"), 0, f"61|PENDING|{tmp_path}\n62|PENDING|{elsewhere}\n", ""))

    job = SlurmBackend(FlowSettings(), runner=replay).submit(Launch("e12", tmp_path, ["nextflow", "run"], {}))

    assert job.job_id == "61"  # 62 works elsewhere: not this run's, so neither adopted nor cancelled
    assert replay.exchanges == []  # no sbatch
    assert json.loads((tmp_path / HEAD_FILE).read_text())["job_id"] == "61"


def test_of_several_queued_head_jobs_the_oldest_is_kept_and_the_others_cancelled(tmp_path: Path) -> None:
    replay = Replay(
        (named("e13"), 0, f"73|PENDING|{tmp_path}\n71|PENDING|{tmp_path}\n72|PENDING|{tmp_path}\n", ""),
        (["scancel", "72", "73"], 0, "", ""),
    )
    job = SlurmBackend(FlowSettings(), runner=replay).submit(Launch("e13", tmp_path, ["nextflow"], {}))
    assert job.job_id == "71" and replay.exchanges == []


def test_a_running_head_job_is_kept_over_older_pending_ones_and_the_lock_holder_over_other_running_ones(
        tmp_path: Path) -> None:
    listed = f"81|PENDING|{tmp_path}\n82|RUNNING|{tmp_path}\n83|RUNNING|{tmp_path}\n"
    replay = Replay((named("e14"), 0, listed, ""), (["scancel", "81", "83"], 0, "", ""))
    assert SlurmBackend(FlowSettings(), runner=replay).find("e14", tmp_path).job_id == "82"

    (tmp_path / HEAD_LOCK_FILE).write_text("12\n83\n")  # 83 got the run directory's lock: it runs Nextflow
    replay = Replay((named("e14"), 0, listed, ""), (["scancel", "81", "82"], 0, "", ""))
    found = SlurmBackend(FlowSettings(), runner=replay).find("e14", tmp_path)
    assert found.job_id == "83" and replay.exchanges == []
    assert json.loads((tmp_path / HEAD_FILE).read_text())["job_id"] == "83"  # found again once Slurm forgets it


def timing_out(after: tuple[list[str], int, str, str] | None = None):
    """A scheduler whose sbatch hangs past the command's time limit; other commands replay ``after``."""
    replay = Replay(*([after] if after else []))

    def runner(argv, *, timeout, env, check, input=None) -> proc.Result:
        if argv[0] == "sbatch":
            raise proc.CommandError(argv, None, "", "", f"timed out after {timeout:g} s")
        return replay(argv, timeout=timeout, env=env, check=check, input=input)

    return runner


def test_an_sbatch_that_times_out_is_an_uncertain_503_and_the_next_attempt_adopts(tmp_path: Path) -> None:
    launch = Launch("e15", tmp_path, ["nextflow"], {})
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=timing_out(none_named("e15"))).submit(launch)
    assert (caught.value.status, caught.value.reason) == (503, "scheduler_unavailable")
    assert "uncertain" in caught.value.message and "flow-e15" in caught.value.message

    # The controller woke up and queued the job after all: the retry adopts it, it does not submit a second one.
    retry = Replay((named("e15"), 0, f"91|RUNNING|{tmp_path}\n", ""))
    assert SlurmBackend(FlowSettings(), runner=retry).submit(launch).job_id == "91"


def test_after_an_uncertain_sbatch_a_first_no_such_job_is_not_trusted_at_once(tmp_path: Path, monkeypatch) -> None:
    """A controller that wakes up may answer a queued squeue before it processed the sbatch queued while it hung: an
    empty answer right after the timeout is a 503 to retry, and only an empty answer a command timeout later lets a
    second submission go."""
    launch = Launch("e18", tmp_path, ["nextflow"], {})
    clock = [1000.0]
    monkeypatch.setattr(slurm_module.time, "monotonic", lambda: clock[0])
    exchanges = Replay(none_named("e18"), none_named("e18"), none_named("e18"),
                       (["sbatch", "--parsable"], 0, "93\n", ""))
    backend = SlurmBackend(FlowSettings(), runner=exchanges, command_timeout=30)
    backend._uncertain_since["flow-e18"] = None  # the last sbatch for it timed out
    for _ in range(2):
        with pytest.raises(FlowError) as caught:
            backend.submit(launch)
        assert caught.value.status == 503 and "uncertain" in caught.value.message
        clock[0] += 10
    clock[0] += 30
    assert backend.submit(launch).job_id == "93"


def test_a_recorded_head_job_that_lost_the_lock_hands_the_run_to_the_one_that_holds_it(tmp_path: Path) -> None:
    (tmp_path / HEAD_LOCK_FILE).write_text("428\n")
    backend = SlurmBackend(FlowSettings())
    recorded = slurm_job(tmp_path, "427")
    locked_out = JobInfo(BackendState.FAILED, exit_code=HEAD_LOCKED_EXIT_CODE)

    successor = backend.successor(recorded, locked_out)
    assert successor is not None and successor.job_id == "428"
    assert read_head_file(tmp_path, "e1").job_id == "428"  # found again here after a restart
    assert backend.successor(recorded, JobInfo(BackendState.FAILED, exit_code=1)) is None
    assert backend.successor(slurm_job(tmp_path, "428"), locked_out) is None


def test_sbatchs_own_socket_timeout_is_uncertain_too_but_a_refused_connection_is_not(tmp_path: Path) -> None:
    launch = Launch("e16", tmp_path, ["nextflow"], {})
    timed_out = Replay(none_named("e16"), (["sbatch", "--parsable"], 1, "", "sbatch: error: Batch job submission "
                                           "failed: Socket timed out on send/recv operation\n"))
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=timed_out).submit(launch)
    assert caught.value.status == 503 and "uncertain" in caught.value.message

    refused = Replay(none_named("e16"), (["sbatch", "--parsable"], 1, "", "sbatch: error: Batch job submission "
                                         "failed: Unable to contact slurm controller (connect failure)\n"))
    with pytest.raises(FlowError) as caught:
        SlurmBackend(FlowSettings(), runner=refused).submit(launch)
    assert caught.value.status == 503 and "not reachable" in caught.value.message


def test_the_head_script_stops_a_duplicate_before_it_touches_the_run(tmp_path: Path) -> None:
    script = SlurmBackend(FlowSettings()).job_script(Launch("e17", tmp_path, ["nextflow", "run"], {"X": "1"}))
    body = script[script.index("if command -v flock"):]
    guard, rest = body.split("\nfi\n", 1)

    assert f"exec 9>>{tmp_path}/{HEAD_LOCK_FILE}" in guard and "flock -n 9" in guard
    assert f"exit {HEAD_LOCKED_EXIT_CODE}" in guard and EXIT_CODE_FILE not in guard
    assert "\"${SLURM_JOB_ID:-}\" >&9" in guard  # the holder names itself through the locked descriptor
    assert rest.startswith("export X=1") and "nextflow run" in rest


# --- offline: cancel asks only about the run's own jobs -------------------------------------------------------------
def test_cancel_scancels_the_head_and_only_the_given_task_jobs_working_in_the_run(tmp_path: Path) -> None:
    job = slurm_job(tmp_path, "50")
    replay = Replay(
        (["squeue", "-h", "-j", "51,52,53", "-o", "%i|%Z"], 0,
         f"51|{tmp_path}/work/ab/cdef\n52|/home/someone-else\n53|{tmp_path}/work/12/3456\n", ""),
        (["scancel", "50", "51", "53"], 0, "", ""),
    )

    SlurmBackend(FlowSettings(), runner=replay).cancel(job, ["51", "52", "53", "1;reboot", "-1", "--uid=0", "50"])

    assert replay.exchanges == []
    assert (tmp_path / "cancel_requested").exists()


def test_cancel_without_task_ids_lists_nothing(tmp_path: Path) -> None:
    replay = Replay((["scancel", "50"], 0, "", ""))
    SlurmBackend(FlowSettings(), runner=replay).cancel(slurm_job(tmp_path, "50"))
    assert replay.exchanges == []


# --- offline: the scheduler's commands, job-id pattern and states are traits ------------------------------------------
def test_the_commands_job_id_pattern_and_state_map_come_from_the_settings(tmp_path: Path) -> None:
    settings = FlowSettings(
        slurm_submit_command=["ssh", "head", "sbatch"], slurm_status_command=["ssh", "head", "squeue"],
        slurm_cancel_command=["ssh", "head", "scancel"], slurm_show_command=["ssh", "head", "scontrol"],
        slurm_info_command=["ssh", "head", "sinfo"], slurm_job_id_pattern=r"^Submitted batch job (?P<job_id>\d+)$",
        slurm_state_map={"PREEMPTED": "pending", "BURST_BUFFER": "running"}, slurm_command_timeout=7.0)
    replay = Replay(
        (["ssh", "head", "sinfo", "-h", "-o", "%R"], 0, "debug\n", ""),
        (["ssh", "head", "squeue", "-h", "--name", "flow-e18", "-o", "%i|%T|%Z"], 0, "", ""),
        (["ssh", "head", "sbatch", "--parsable"], 0, "Submitted batch job 47\n", ""),
        (["ssh", "head", "squeue", "-h", "-j", "47,48", "-o", "%i|%T|%r|%S|%N"], 0,
         "47|PREEMPTED|None|N/A|\n48|BURST_BUFFER|None|N/A|vm\n", ""),
        (["ssh", "head", "squeue", "-h", "-j", "60", "-o", "%i|%Z"], 0, f"60|{tmp_path}/work/aa/bb\n", ""),
        (["ssh", "head", "scancel", "47", "60"], 0, "", ""),
    )
    timeouts: list[float] = []

    def runner(argv, *, timeout, env, check, input=None) -> proc.Result:
        timeouts.append(timeout)
        return replay(argv, timeout=timeout, env=env, check=check, input=input)

    backend = SlurmBackend(settings, runner=runner)
    backend.check_launch(None)
    job = backend.submit(Launch("e18", tmp_path, ["nextflow"], {}))
    infos = backend.statuses([job, slurm_job(tmp_path, "48")])
    backend.cancel(job, ["60"])

    assert job.job_id == "47"
    assert (infos["47"].status, infos["48"].status) == (BackendState.PENDING, BackendState.RUNNING)
    assert replay.exchanges == [] and set(timeouts) == {7.0}


@pytest.mark.parametrize("settings", [
    {"slurm_job_id_pattern": r"^(\d+)$"},  # no job_id group
    {"slurm_job_id_pattern": "(?P<job_id>"},
    {"slurm_state_map": {"PREEMPTED": "paused"}},
    {"slurm_state_map": {"preempted; rm": "failed"}},
    {"slurm_status_command": []},
    {"slurm_submit_command": ["sbatch", ""]},
    {"slurm_command_timeout": 0.0},
])
def test_bad_scheduler_settings_are_refused_when_set(settings: dict) -> None:
    with pytest.raises(TraitError):
        FlowSettings(**settings)


def test_the_state_map_vocabulary_is_the_backend_states() -> None:
    assert set(BACKEND_STATE_NAMES) == {state.value for state in BackendState}


def test_an_sbatch_answer_the_pattern_matches_but_that_is_no_job_id_fails_loudly(tmp_path: Path) -> None:
    settings = FlowSettings(slurm_job_id_pattern=r"^(?P<job_id>\S+)$")
    replay = Replay(none_named("e19"), (["sbatch", "--parsable"], 0, "--uid=0\n", ""))
    with pytest.raises(RuntimeError, match="could not parse a job id"):
        SlurmBackend(settings, runner=replay).submit(Launch("e19", tmp_path, ["nextflow"], {}))

# --- real local runs -------------------------------------------------------------------------------------------------
@pytest.mark.nextflow
def test_the_tiny_pipeline_runs_locally_from_running_to_completed(tmp_path: Path) -> None:
    launch = tiny_launch(tmp_path)
    backend = LocalBackend()

    job = backend.submit(launch)
    seen, final = follow(backend, job)

    assert BackendState.RUNNING in seen
    assert (final.status, final.exit_code) == (BackendState.COMPLETED, 0), run_log(launch.run_dir)
    assert_tiny_outputs(launch.run_dir)
    assert (launch.run_dir / EXIT_CODE_FILE).read_text() == "0\n"
    assert job.pid_start_ticks is not None and job.boot_id
    assert not session_alive(int(job.job_id))


def _task_started(run_dir: Path) -> bool:
    return any((run_dir / WORK_DIR).glob("*/*/.command.begin"))


def _processes_in(run_dir: Path) -> list[int]:
    """Live processes whose working directory is inside the run dir (Nextflow, its tasks, their sleeps)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(run_dir) and \
                        (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.nextflow
def test_cancelling_a_local_run_ends_it_and_leaves_no_process_behind(tmp_path: Path) -> None:
    launch = sleepy_launch(tmp_path)
    backend = LocalBackend()
    job = backend.submit(launch)
    wait_for(lambda: _task_started(launch.run_dir), what="a sleeping task to start", timeout=RUN_TIMEOUT)
    assert backend.status(job).status is BackendState.RUNNING

    backend.cancel(job)

    final = backend.status(job)
    assert final.status is BackendState.CANCELLED, (final, run_log(launch.run_dir))
    assert not session_alive(int(job.job_id))
    assert _processes_in(launch.run_dir) == []


@pytest.mark.nextflow
def test_a_restarted_host_finds_a_local_run_and_follows_it_to_its_end(tmp_path: Path) -> None:
    launch = tiny_launch(tmp_path)
    # The "old host": another Python process submits and exits, so the run is no longer anyone's child of ours.
    submitter = (
        "import json, sys; from pathlib import Path\n"
        "from flow_jupyter.execution.backends import Launch, LocalBackend\n"
        "launch = Launch(sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]))\n"
        "print(json.dumps(LocalBackend().submit(launch).to_json()))\n"
    )
    done = subprocess.run([sys.executable, "-c", submitter, launch.execution_uuid, str(launch.run_dir),
                           json.dumps(launch.argv), json.dumps(launch.env)],
                          capture_output=True, text=True, timeout=120, check=True)
    submitted = BackendJob.from_json(json.loads(done.stdout))

    restarted = LocalBackend()
    found = restarted.find(launch.execution_uuid, launch.run_dir)

    assert found == submitted
    assert restarted.find(str(uuid.uuid4()), launch.run_dir) is None
    seen, final = follow(restarted, found)
    assert (final.status, final.exit_code) == (BackendState.COMPLETED, 0), run_log(launch.run_dir)
    assert_tiny_outputs(launch.run_dir)
    # Once ended, a fresh instance still tells the same story from the exit_code file.
    assert LocalBackend().status(LocalBackend().find(launch.execution_uuid, launch.run_dir)).status \
        is BackendState.COMPLETED


def test_a_reused_pid_is_not_taken_for_the_run(tmp_path: Path) -> None:
    # This very process is alive, but it is not the process the record names (other start time).
    job = BackendJob("local", str(os.getpid()), "e10", str(tmp_path), "2026-01-01T00:00:00+00:00",
                     pid_start=0.0, pid_start_ticks=1, boot_id=boot_id())
    backend = LocalBackend()

    assert backend.status(job).status is BackendState.UNKNOWN
    (tmp_path / EXIT_CODE_FILE).write_text("1\n")
    assert backend.status(job) == JobInfo(BackendState.FAILED, 1, "exit code recorded in the run directory")
    backend.cancel(job)  # must not signal this (unrelated) process
    assert backend.status(job).status is BackendState.CANCELLED  # a cancel was requested; 1 is read as cancelled


# --- real Slurm ---------------------------------------------------------------------------------------------------
@pytest.mark.nextflow
@pytest.mark.slurm
def test_the_tiny_pipeline_runs_as_a_slurm_head_job_and_is_found_by_name(tmp_path: Path, slurm_cluster) -> None:
    launch = tiny_launch(tmp_path, config=SLURM_TASKS_CONFIG)
    backend = SlurmBackend(FlowSettings())

    job = backend.submit(launch)
    # A restarted host that lost head.json still finds the job by its name while Slurm lists it.
    (launch.run_dir / HEAD_FILE).rename(launch.run_dir / "head.json.away")
    found = backend.find(launch.execution_uuid, launch.run_dir)
    (launch.run_dir / "head.json.away").rename(launch.run_dir / HEAD_FILE)
    seen, final = follow(backend, job)

    assert found is not None and found.job_id == job.job_id
    assert seen & {BackendState.PENDING, BackendState.RUNNING}
    assert (final.status, final.exit_code) == (BackendState.COMPLETED, 0), run_log(launch.run_dir)
    assert_tiny_outputs(launch.run_dir)
    assert (launch.run_dir / EXIT_CODE_FILE).read_text() == "0\n"
    assert backend.find(launch.execution_uuid, launch.run_dir) == job  # from head.json once it left squeue


@pytest.mark.nextflow
@pytest.mark.slurm
def test_cancelling_a_slurm_run_cancels_the_head_job_and_its_task_jobs(tmp_path: Path, slurm_cluster) -> None:
    launch = sleepy_launch(tmp_path, config=SLURM_TASKS_CONFIG)
    backend = SlurmBackend(FlowSettings())
    job = backend.submit(launch)
    # The manager passes the native ids of the run's unfinished tasks; here they come from Nextflow's own log.
    tasks = wait_for(lambda: submitted_task_ids(launch.run_dir), until=lambda ids: len(ids) == 2,
                     what="both task jobs to be submitted", timeout=RUN_TIMEOUT, interval=0.5)

    backend.cancel(job, tasks)

    seen, final = follow(backend, job)
    assert final.status is BackendState.CANCELLED, (final, run_log(launch.run_dir))

    def task_state(task_id: str) -> str:
        out = proc.run(["scontrol", "show", "job", task_id], check=False).stdout
        return parse_scontrol_job(out).status if "JobState=" in out else BackendState.UNKNOWN

    wait_for(lambda: all(task_state(t) is not BackendState.RUNNING and task_state(t) is not BackendState.PENDING
                         for t in tasks), what="the task jobs to end", timeout=RUN_TIMEOUT, interval=0.5)
    assert {task_state(t) for t in tasks} <= {BackendState.CANCELLED, BackendState.UNKNOWN}
    assert backend.working_in(tasks, launch.run_dir) == []


@pytest.mark.slurm
def test_a_job_slurm_has_forgotten_is_judged_by_the_run_dir(tmp_path: Path, slurm_cluster) -> None:
    # Waiting for MinJobAge (300 s) is too long: a job id Slurm never had answers exactly like a purged one.
    job = slurm_job(tmp_path, "987654321")
    backend = SlurmBackend(FlowSettings())

    assert backend.status(job).status is BackendState.UNKNOWN
    (tmp_path / EXIT_CODE_FILE).write_text("0\n")
    assert backend.status(job).status is BackendState.COMPLETED
    (tmp_path / EXIT_CODE_FILE).write_text("143\n")
    assert backend.status(job).status is BackendState.CANCELLED
    assert backend.eta(job) is None
    backend.cancel(job)  # already gone: nothing to do, no error


@pytest.mark.slurm
def test_an_unreachable_slurm_is_a_503_the_manager_can_retry(tmp_path: Path, slurm_cluster) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=down\nSlurmctldHost=localhost\nSlurmctldPort=1\n"
                    "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=ALL Default=YES\n")
    backend = SlurmBackend(FlowSettings(slurm_conf=str(conf)))

    with pytest.raises(FlowError) as caught:
        backend.submit(Launch("e11", tmp_path, ["nextflow", "run", "main.nf"], {}))

    assert (caught.value.status, caught.value.reason) == (503, "scheduler_unavailable")
