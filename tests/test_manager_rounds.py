"""The execution manager's rounds with a scripted backend in place of a scheduler: one status query for all active
runs, a launch that stays pending until its head job is really accepted, a hung submission that holds no other run,
an outage that keeps launches, and the rows a finished run leaves. The real Slurm versions of these stories are in
test_slurm_outages.py; here the scheduler's answers are under the test's control, so every step can be seen."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import TINY_PIPELINE
from gitrepo import git
from waiting import wait_for_async
from flow_jupyter.db.models import Execution, ProcessExecution
from flow_jupyter.errors import FlowError
from flow_jupyter.execution import manager as manager_module
from flow_jupyter.execution.backends import Backend, BackendJob, BackendState, JobInfo
from flow_jupyter.execution.backends.base import read_head_file, utc_now_iso, write_head_file


class ScriptedScheduler(Backend):
    """A backend whose answers the test decides; it records every call."""

    name = "local"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.states: dict[str, BackendState] = {}
        self.accepting = threading.Event()
        self.accepting.set()
        self.down = False
        self._next = 1000

    def submit(self, launch) -> BackendJob:
        self.calls.append(("submit", 1))
        self.accepting.wait(60)
        if self.down:
            raise FlowError(503, "scheduler_unavailable", "Slurm is not reachable: Unable to contact slurm controller")
        self._next += 1
        job = BackendJob(backend=self.name, job_id=str(self._next), execution_uuid=launch.execution_uuid,
                         run_dir=str(launch.run_dir), submitted_at=utc_now_iso())
        write_head_file(job)
        self.states[job.job_id] = BackendState.RUNNING
        return job

    def statuses(self, jobs: list[BackendJob]) -> dict[str, JobInfo]:
        self.calls.append(("statuses", len(jobs)))
        if self.down:
            raise FlowError(503, "scheduler_unavailable", "Slurm is not reachable: Unable to contact slurm controller")
        return {job.job_id: JobInfo(self.states.get(job.job_id, BackendState.UNKNOWN), exit_code=0)
                for job in jobs}

    def status(self, job: BackendJob) -> JobInfo:
        return self.statuses([job])[job.job_id]

    def cancel(self, job: BackendJob, task_ids=()) -> None:
        self.calls.append(("cancel", len(task_ids)))
        self.states[job.job_id] = BackendState.CANCELLED

    def find(self, execution_uuid: str, run_dir: Path) -> BackendJob | None:
        self.calls.append(("find", 1))
        return read_head_file(run_dir, execution_uuid)

    def count(self, verb: str) -> int:
        return sum(1 for name, _ in self.calls if name == verb)


@pytest.fixture
def flow_config(flow_config: dict) -> dict:
    return {**flow_config, "backend_poll_seconds": 0.5, "scheduler_start_jitter_seconds": 0.0}


@pytest.fixture
def scheduler(jp_serverapp) -> ScriptedScheduler:
    host = jp_serverapp.web_app.settings["flow"]
    scripted = ScriptedScheduler()
    host.manager._backends["local"] = scripted
    return scripted


async def _launch(api, tmp_path: Path, count: int) -> tuple[object, list[str]]:
    repo = tmp_path / "tiny"
    if not repo.exists():
        import shutil

        shutil.copytree(TINY_PIPELINE, repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "v1")
        git(repo, "tag", "v1.0")
        assert (await api.owner.post("pipelines", {"source": str(repo), "ref": "v1.0"})).code == 201
    alice = api.as_user("alice")
    project = (await alice.post("projects", {"name": f"runs-{count}-{len(list(tmp_path.iterdir()))}"})).json["id"]
    names = tmp_path / "names.txt"
    names.write_text("Ada\n")
    launched = []
    for _ in range(count):
        reply = await alice.post("executions", {"pipeline": "tiny", "version": "v1.0", "project": project,
                                                "backend": "local", "params": {"names": str(names)}})
        assert reply.code == 201, reply.json
        launched.append(reply.json["id"])
    return alice, launched


async def _statuses(alice, executions: list[str]) -> list[str]:
    return [(await alice.get(f"executions/{e}")).json["status"] for e in executions]


async def test_twenty_active_runs_cost_one_status_query_per_round(api, scheduler, tmp_path) -> None:
    alice, runs = await _launch(api, tmp_path, 20)
    await wait_for_async(lambda: _statuses(alice, runs), until=lambda s: set(s) == {"submitted"},
                         what="all twenty launches to be submitted", timeout=60)
    before = len(scheduler.calls)
    await wait_for_async(lambda: _count(scheduler, "statuses", before), until=lambda n: n >= 4,
                         what="four more status rounds", timeout=30)
    queries = [size for verb, size in scheduler.calls[before:] if verb == "statuses"]
    assert set(queries) == {20}, queries  # every query asks about all twenty runs at once
    assert scheduler.count("submit") == 20 and scheduler.count("find") == 0

    for job_id in scheduler.states:
        scheduler.states[job_id] = BackendState.COMPLETED
    await wait_for_async(lambda: _statuses(alice, runs), until=lambda s: set(s) == {"succeeded"},
                         what="all twenty runs to settle", timeout=60)


async def _count(scheduler: ScriptedScheduler, verb: str, since: int) -> int:
    return sum(1 for name, _ in scheduler.calls[since:] if name == verb)


async def test_a_hung_submission_stays_pending_and_holds_no_other_run(api, scheduler, tmp_path) -> None:
    alice, (first,) = await _launch(api, tmp_path, 1)
    await wait_for_async(lambda: _statuses(alice, [first]), until=lambda s: s == ["submitted"],
                         what="the first run to be submitted", timeout=30)
    scheduler.accepting.clear()  # the controller hangs: sbatch does not come back
    _, (second,) = await _launch(api, tmp_path, 1)
    await wait_for_async(lambda: _count(scheduler, "submit", 0), until=lambda n: n == 2,
                         what="the second submission to start", timeout=30)
    for job_id in scheduler.states:
        scheduler.states[job_id] = BackendState.COMPLETED
    await wait_for_async(lambda: _statuses(alice, [first]), until=lambda s: s == ["succeeded"],
                         what="the first run to settle while the second submission hangs", timeout=30)
    assert await _statuses(alice, [second]) == ["pending"]  # claimed, not yet accepted by the backend
    scheduler.accepting.set()
    await wait_for_async(lambda: _statuses(alice, [second]), until=lambda s: s == ["submitted"],
                         what="the second run to be submitted once the scheduler answers", timeout=30)


async def test_an_outage_keeps_the_launch_pending_with_the_reason_and_submits_it_later(
        api, scheduler, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(manager_module, "RETRY_SECONDS", 0.5)
    scheduler.down = True
    alice, (run,) = await _launch(api, tmp_path, 1)
    detail = await wait_for_async(lambda: _detail(alice, run), until=lambda d: bool(d.get("backend_error")),
                                  what="the launch to say why it waits", timeout=30)
    assert detail["status"] == "pending" and "Unable to contact" in detail["backend_error"]
    await wait_for_async(lambda: _count(scheduler, "submit", 0), until=lambda n: n >= 3,
                         what="the submission to be retried", timeout=30)
    assert await _statuses(alice, [run]) == ["pending"]
    scheduler.down = False
    detail = await wait_for_async(lambda: _detail(alice, run), until=lambda d: d["status"] == "submitted",
                                  what="the launch to be submitted after the outage", timeout=30)
    assert detail["backend_error"] is None


async def _detail(alice, run: str) -> dict:
    return (await alice.get(f"executions/{run}")).json


async def test_a_finished_run_leaves_no_task_unfinished(api, scheduler, jp_serverapp, tmp_path) -> None:
    alice, (run,) = await _launch(api, tmp_path, 1)
    await wait_for_async(lambda: _statuses(alice, [run]), until=lambda s: s == ["submitted"],
                         what="the run to be submitted", timeout=30)
    host = jp_serverapp.web_app.settings["flow"]
    with host.db.session() as session:
        execution = session.scalar(select(Execution).where(Execution.uuid == run))
        session.add(ProcessExecution(execution_id=execution.id, task_key="1", task_id=1, name="GREET (1)",
                                     process="GREET", status="RUNNING", native_id="4242"))
    await alice.post(f"executions/{run}/cancel", {})
    await wait_for_async(lambda: _statuses(alice, [run]), until=lambda s: s == ["cancelled"],
                         what="the run to be cancelled", timeout=30)
    assert ("cancel", 1) in scheduler.calls  # the head job and this run's own unfinished task, nothing else
    tasks = (await alice.get(f"executions/{run}/tasks")).json["items"]
    assert [task["status"] for task in tasks] == ["aborted"]


async def test_a_launch_whose_head_job_was_recorded_before_a_crash_is_adopted_not_submitted_again(
        api, scheduler, jp_serverapp, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(manager_module, "RETRY_SECONDS", 0.5)
    scheduler.down = True
    alice, (run,) = await _launch(api, tmp_path, 1)
    await wait_for_async(lambda: _count(scheduler, "submit", 0), until=lambda n: n >= 1,
                         what="the first submission attempt", timeout=30)
    host = jp_serverapp.web_app.settings["flow"]
    with host.db.session() as session:
        run_dir = host.storage.resolve(session.scalar(select(Execution).where(Execution.uuid == run)).run_dir)
    # A head job for this launch went through and was recorded in its run directory, but the database never heard.
    write_head_file(BackendJob(backend="local", job_id="777", execution_uuid=run, run_dir=str(run_dir),
                               submitted_at=utc_now_iso()))
    scheduler.states["777"] = BackendState.RUNNING
    attempts = scheduler.count("submit")
    scheduler.down = False
    await wait_for_async(lambda: _detail(alice, run), until=lambda d: d["status"] == "submitted",
                         what="the recorded head job to be adopted", timeout=30)
    assert scheduler.count("find") >= 1 and scheduler.count("submit") == attempts  # adopted, not submitted again
    with host.db.session() as session:
        assert session.scalar(select(Execution).where(Execution.uuid == run)).backend_job["job_id"] == "777"
