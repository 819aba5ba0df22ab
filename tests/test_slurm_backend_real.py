"""The Slurm backend at site scale, against the real single-node Slurm (scripts/slurm.sh).

Held jobs (``--hold``: queued, never started) stand in for many runs, so nothing here waits for a node: the status of
several runs is ONE squeue (counted through a logging wrapper set as the status command, which also proves the trait
is used) even when one of them is long forgotten; a second submission of the same execution adopts the queued head
job; of several head jobs for one run the oldest is kept and the others cancelled; a cancel touches only the ids it
is given, and only those working in the run directory. Two head jobs really started for one run directory show the
lock: one runs, the other stops at once. Last, a real Nextflow run survives its controller being stopped for a minute
while it needs to submit a task: the generated config makes Nextflow's sbatch retry until the controller is back.
"""
from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import wait_for_slurm_job
from waiting import wait_for
from flow_jupyter import proc
from flow_jupyter.config import FlowSettings
from flow_jupyter.errors import FlowError
from flow_jupyter.execution.backends import BackendJob, BackendState, Launch, Resources, SlurmBackend
from flow_jupyter.execution.backends.base import utc_now_iso
from flow_jupyter.execution.backends.slurm import HEAD_LOCK_FILE, HEAD_LOCKED_EXIT_CODE, lock_holder
from flow_jupyter.execution.launch import plan_run
from flow_jupyter.execution.runfiles import EXIT_CODE_FILE, HEAD_FILE, LOG_FILE, SLURM_OUTPUT_FILE

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
#: How long a real job may take to start or end on a loaded machine.
JOB_TIMEOUT = 240.0
#: How long the controller stays down in the outage story: the length of the outage is the scenario itself.
OUTAGE_SECONDS = 60.0


# --- helpers ------------------------------------------------------------------------------------------------------
@pytest.fixture
def jobs_to_clean() -> Iterator[list[str]]:
    """Job ids a test queued; whatever is still there at the end is cancelled (held jobs never end on their own)."""
    ids: list[str] = []
    yield ids
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)


def held_launch(tmp_path: Path, name: str) -> Launch:
    run_dir = tmp_path / name
    run_dir.mkdir()
    return Launch(str(uuid.uuid4()), run_dir, ["sleep", "600"], {}, Resources(extra_directives=("--hold",)))


def sbatch(*args: str, script: str | None = None) -> str:
    """A job queued behind Flow's back (as a late sbatch, or a Nextflow task, would be); its id."""
    done = proc.run(["sbatch", "--parsable", *args], input=script, timeout=60)
    return done.stdout.strip().split(";")[0]


def listed(job_ids: list[str]) -> dict[str, str]:
    """Job id → state of those Slurm still lists (pending, running, completing)."""
    done = proc.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T"], check=False, timeout=60)
    return dict(line.split("|", 1) for line in done.stdout.split())


def logging_wrapper(tmp_path: Path, command: str) -> tuple[Path, Callable[[], list[str]]]:
    """A script that logs its arguments, then runs ``command`` with them: a site's wrapper, and our counter."""
    log = tmp_path / f"{command}.calls"
    wrapper = tmp_path / f"logged-{command}"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\nexec {command} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper, lambda: log.read_text().splitlines() if log.exists() else []


def slurmctld(verb: str) -> None:
    """Stop only the dev controller (by the pid file scripts/slurm.sh keeps; never by name) or start it again."""
    subprocess.run([str(ROOT / "scripts" / "slurm.sh"), verb], check=True, capture_output=True, timeout=180)


# --- one status query for many runs ---------------------------------------------------------------------------------
def test_the_statuses_of_several_runs_are_one_squeue_even_with_a_forgotten_job(
        tmp_path: Path, slurm_cluster, jobs_to_clean) -> None:
    wrapper, calls = logging_wrapper(tmp_path, "squeue")
    backend = SlurmBackend(FlowSettings(slurm_status_command=[str(wrapper)]))
    held = [backend.submit(held_launch(tmp_path, f"run{n}")) for n in range(3)]
    jobs_to_clean.extend(job.job_id for job in held)
    forgotten_dir = tmp_path / "forgotten"
    forgotten_dir.mkdir()
    (forgotten_dir / EXIT_CODE_FILE).write_text("0\n")
    # A job id Slurm never had answers exactly like one purged after MinJobAge (300 s, too long to wait for).
    forgotten = BackendJob("slurm", "987654321", str(uuid.uuid4()), str(forgotten_dir), utc_now_iso())
    before = len(calls())

    infos = backend.statuses([*held, forgotten])

    asked = calls()[before:]
    assert len(asked) == 1, asked
    assert f"-j {','.join([job.job_id for job in held] + ['987654321'])}" in asked[0]
    for job in held:
        assert (infos[job.job_id].status, infos[job.job_id].reason) == (BackendState.PENDING, "JobHeldUser")
    assert (infos["987654321"].status, infos["987654321"].exit_code) == (BackendState.COMPLETED, 0)

    # Alone, an unknown id makes squeue fail ('Invalid job id specified'): still "not listed", not an outage.
    alone_dir = tmp_path / "alone"
    alone_dir.mkdir()
    alone = BackendJob("slurm", "987654322", str(uuid.uuid4()), str(alone_dir), utc_now_iso())
    assert backend.status(alone).status is BackendState.UNKNOWN


# --- idempotent submission --------------------------------------------------------------------------------------------
def test_submitting_an_execution_again_adopts_its_queued_head_job(tmp_path: Path, slurm_cluster, jobs_to_clean) -> None:
    backend = SlurmBackend(FlowSettings())
    launch = held_launch(tmp_path, "run")
    first = backend.submit(launch)
    jobs_to_clean.append(first.job_id)
    (launch.run_dir / HEAD_FILE).unlink()  # as if that sbatch had timed out before it answered

    again = backend.submit(launch)

    assert again.job_id == first.job_id
    named = proc.run(["squeue", "-h", "--name", f"flow-{launch.execution_uuid}", "-o", "%i"], timeout=60).stdout
    assert named.split() == [first.job_id]
    assert backend.find(launch.execution_uuid, launch.run_dir).job_id == first.job_id


def test_of_several_head_jobs_for_one_run_the_oldest_is_kept_and_the_others_cancelled(
        tmp_path: Path, slurm_cluster, jobs_to_clean) -> None:
    backend = SlurmBackend(FlowSettings())
    launch = held_launch(tmp_path, "run")
    script = backend.job_script(launch)
    # Three sbatch calls that all reached the controller (two of them "timed out" from Flow's side).
    ids = [sbatch(script=script) for _ in range(3)]
    jobs_to_clean.extend(ids)

    found = backend.find(launch.execution_uuid, launch.run_dir)

    assert found is not None and found.job_id == min(ids, key=int)
    wait_for(lambda: listed(ids), until=lambda states: list(states) == [found.job_id],
             what="the younger head jobs to be cancelled", timeout=JOB_TIMEOUT, interval=0.5)


# --- cancel asks only about the run's own jobs ------------------------------------------------------------------------
def test_cancel_touches_the_head_and_the_given_task_jobs_inside_the_run_and_nothing_else(
        tmp_path: Path, slurm_cluster, jobs_to_clean) -> None:
    backend = SlurmBackend(FlowSettings())
    launch = held_launch(tmp_path, "run")
    head = backend.submit(launch)
    task_dir = launch.run_dir / "work" / "ab" / "cdef"
    task_dir.mkdir(parents=True)
    elsewhere = tmp_path / "someone-else"
    elsewhere.mkdir()
    given = sbatch("--hold", f"--chdir={task_dir}", "--wrap", "sleep 600")
    not_given = sbatch("--hold", f"--chdir={task_dir}", "--wrap", "sleep 600")
    not_ours = sbatch("--hold", f"--chdir={elsewhere}", "--wrap", "sleep 600")
    jobs_to_clean.extend([head.job_id, given, not_given, not_ours])

    backend.cancel(head, [given, not_ours])

    everyone = [head.job_id, given, not_given, not_ours]
    wait_for(lambda: listed(everyone), until=lambda states: set(states) == {not_given, not_ours},
             what="the head job and the given task job to be cancelled", timeout=JOB_TIMEOUT, interval=0.5)
    assert set(listed(everyone).values()) == {"PENDING"}


# --- the lock: a duplicate head job that slipped through does not run ------------------------------------------------
def test_of_two_head_jobs_started_for_one_run_directory_only_one_runs(tmp_path: Path, slurm_cluster,
                                                                      jobs_to_clean) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ran, release = run_dir / "ran.txt", run_dir / "release"
    # The "pipeline" notes that it ran, then holds the run until the test releases it.
    body = f"echo \"$SLURM_JOB_ID\" >> {ran}; while [ ! -e {release} ]; do sleep 0.2; done"
    launch = Launch(str(uuid.uuid4()), run_dir, ["bash", "-c", body], {})
    script = SlurmBackend(FlowSettings()).job_script(launch)
    first, second = sbatch(script=script), sbatch(script=script)
    jobs_to_clean.extend([first, second])

    def outcome() -> tuple[list[str], dict[str, str]]:
        return (ran.read_text().split() if ran.exists() else []), listed([first, second])

    # One of them holds the lock and runs; the other ends at once, while the first is still running.
    runner_ids, still_listed = wait_for(outcome, until=lambda seen: len(seen[0]) == 1 and len(seen[1]) == 1,
                                        what="one head job to run and the other to stop", timeout=JOB_TIMEOUT,
                                        interval=0.5)
    holder = runner_ids[0]
    duplicate = second if holder == first else first
    assert list(still_listed) == [holder] and lock_holder(run_dir) == holder
    assert wait_for_slurm_job(duplicate, JOB_TIMEOUT) == ("FAILED", f"{HEAD_LOCKED_EXIT_CODE}:0")
    assert not (run_dir / EXIT_CODE_FILE).exists()  # the duplicate wrote no exit code
    duplicate_info = SlurmBackend(FlowSettings()).status(BackendJob("slurm", duplicate, launch.execution_uuid,
                                                                    str(run_dir), utc_now_iso()))
    assert (duplicate_info.status, duplicate_info.exit_code) == (BackendState.FAILED, HEAD_LOCKED_EXIT_CODE)

    release.touch()

    assert wait_for_slurm_job(holder, JOB_TIMEOUT) == ("COMPLETED", "0:0")
    assert ran.read_text().split() == [holder]
    assert (run_dir / EXIT_CODE_FILE).read_text() == "0\n"
    assert "another head job holds" in (run_dir / SLURM_OUTPUT_FILE).read_text()
    assert (run_dir / HEAD_LOCK_FILE).read_text().split() == [holder]


# --- a controller outage in the middle of a real run -----------------------------------------------------------------
OUTAGE_PIPELINE = """
nextflow.enable.dsl = 2
params.gate = 'gate'
params.outdir = 'results'

process FIRST {
    output:
    path 'first.txt'
    script:
    "while [ ! -e '${params.gate}' ]; do sleep 1; done; echo one > first.txt"
}

process SECOND {
    publishDir "${params.outdir}", mode: 'copy'
    input:
    path first
    output:
    path 'second.txt'
    script:
    "cat ${first} > second.txt; echo two >> second.txt"
}

workflow { SECOND(FIRST()) }
"""


@pytest.mark.nextflow
@pytest.mark.stops_controller
def test_a_run_that_must_submit_a_task_while_the_controller_is_down_for_a_minute_succeeds(
        tmp_path: Path, slurm_cluster, jobs_to_clean) -> None:
    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    (pipeline / "main.nf").write_text(OUTAGE_PIPELINE)
    run_dir, gate = tmp_path / "run", tmp_path / "gate"
    # Site-friendly defaults everywhere but the polling, which only makes the test quicker.
    settings = FlowSettings(nextflow_poll_interval="1s", nextflow_queue_stat_interval="5s")
    plan = plan_run(pipeline_dir=pipeline, run_dir=run_dir, executor="slurm", settings=settings,
                    params={"gate": str(gate), "outdir": str(run_dir / "results")})
    plan.write()
    backend = SlurmBackend(settings)
    job = backend.submit(plan.launch(str(uuid.uuid4())))
    jobs_to_clean.append(job.job_id)
    wait_for(lambda: list((run_dir / "work").glob("*/*/.command.begin")), what="the first task to start",
             timeout=JOB_TIMEOUT, interval=0.5)

    slurmctld("stop-controller")
    try:
        stopped_at = time.monotonic()
        gate.touch()  # the first task ends now, so Nextflow must sbatch the second one while the controller is down
        with pytest.raises(FlowError) as caught:
            backend.status(job)
        assert (caught.value.status, caught.value.reason) == (503, "scheduler_unavailable")
        # Nextflow logs each failed try it will retry; with its default retry reason it gives up at the first.
        met = wait_for(lambda: (run_dir / LOG_FILE).read_text(errors="replace"),
                       until=lambda log: "Failed to submit process 'SECOND'" in log or "Session aborted" in log,
                       what="Nextflow to meet the outage when it submits the second task", timeout=JOB_TIMEOUT,
                       interval=1)
        assert "Session aborted" not in met, f"Nextflow gave up on the outage at once:\n{met[-3000:]}"
        wait_for(lambda: time.monotonic() - stopped_at, until=lambda down: down >= OUTAGE_SECONDS,
                 what=f"the outage to last {OUTAGE_SECONDS:g} s", timeout=OUTAGE_SECONDS + 10, interval=1)
    finally:
        slurmctld("start")

    info = wait_for(lambda: backend.status(job), until=lambda i: i.status.terminal or i.status is BackendState.UNKNOWN,
                    what="the run to end after the outage", timeout=JOB_TIMEOUT, interval=1)
    log = (run_dir / LOG_FILE).read_text(errors="replace")
    assert (info.status, info.exit_code) == (BackendState.COMPLETED, 0), log[-4000:]
    assert (run_dir / "results" / "second.txt").read_text() == "one\ntwo\n"
    assert "Unable to contact slurm controller" in log  # what Nextflow's default retry reason would not retry
