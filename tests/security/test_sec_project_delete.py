"""Deleting a project that has a history: uploads (finished and unfinished) and executions.

The rule (flow_jupyter/data/projects.py, delete_project): the owner deletes a project once it holds no data files
(409 ``project_not_empty``) and no unfinished execution (409 ``project_has_active_runs``); the deletion then takes
its samples, shares, uploads, finished executions with their tasks, run directories and partial upload bytes, all
in one transaction. A file that came from one of its runs but now lives elsewhere stays, unlinked from the run.
Refusals change nothing. Through the API, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select
from waiting import wait_for_async

from flow_jupyter.data.files import store_bytes
from flow_jupyter.db.models import Execution, Pipeline, PipelineVersion, ProcessExecution, Sample, Share, Upload
from flow_jupyter.identity import Identity

TUS = {"Tus-Resumable": "1.0.0"}


def metadata(**pairs) -> str:
    return ",".join(f"{key} {base64.b64encode(str(value).encode()).decode()}" for key, value in pairs.items())


async def start_upload(user, project: int, data: bytes, length: int) -> tuple[str, dict]:
    """A tus upload into ``project`` with ``data`` sent; complete when ``len(data) == length``."""
    created = await user.request("POST", "uploads", raw=b"", headers={
        **TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(filename="reads.fq", project=project)})
    assert created.code == 201, created.body
    upload = created.headers["Location"].rsplit("/", 1)[1]
    sent = await user.request("PATCH", f"uploads/{upload}", raw=data, headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert sent.code == 204, sent.body
    return upload, sent.headers


class History:
    """Rows and run directories made directly, as the execution manager would have left them."""

    def __init__(self, host):
        self.host = host

    def execution(self, owner: str, project: int, status: str) -> str:
        run = str(uuid.uuid4())

        def create(session, actor):
            version = session.scalar(select(PipelineVersion).join(Pipeline).where(Pipeline.name == "demo"))
            execution = Execution(uuid=run, owner_id=actor.user_id, project_id=project,
                                  pipeline_version_id=version.id, params={}, status=status, backend="local",
                                  run_dir=f"executions/{run}", session_id=str(uuid.uuid4()))
            if status in ("succeeded", "failed"):
                execution.finished_at = datetime.now(timezone.utc)
            session.add(execution)
            session.flush()
            session.add(ProcessExecution(execution_id=execution.id, task_key="1", process="GREET",
                                         status="COMPLETED"))

        self.host.run_as(Identity(owner), create)
        work = self.run_dir(run) / "work" / "ab" / "cdef"
        work.mkdir(parents=True)
        (work / ".command.log").write_text("hello\n")
        (self.run_dir(run) / ".nextflow.log").write_text("Nextflow log\n")
        return run

    def run_dir(self, run: str):
        return self.host.storage.resolve(f"executions/{run}")

    def output_elsewhere(self, owner: str, run: str, project: int) -> int:
        """An output of ``run`` that was moved to ``project``."""
        def create(session, actor):
            datafile = store_bytes(session, self.host.storage, owner_id=actor.user_id, project_id=project,
                                   sample_id=None, filename="all.txt", content=b"Hi, Ada!\n")
            datafile.execution_id = session.scalar(select(Execution.id).where(Execution.uuid == run))
            return datafile.id

        return self.host.run_as(Identity(owner), create)

    def finish(self, run: str) -> None:
        with self.host.db.session() as session:
            session.scalar(select(Execution).where(Execution.uuid == run)).status = "failed"

    def count(self, model, **where) -> int:
        with self.host.db.session() as session:
            query = select(func.count()).select_from(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return session.scalar(query)


async def settled(host) -> None:
    """Wait for the execution manager's start-up round, after which it leaves an unsubmitted 'running' row alone
    (the first round would judge it a crashed submission and relaunch it)."""
    await wait_for_async(lambda: host.manager is not None and host.manager.rounds > 0,
                         what="the execution manager to finish its first round", interval=0.05)


@pytest.fixture
def history(jp_serverapp) -> History:
    return History(jp_serverapp.web_app.settings["flow"])


@pytest.fixture
def people(api, jp_asyncio_loop) -> dict:
    users = {name: api.as_user(name) for name in ("alice", "bob", "carol")}

    async def arrange() -> None:
        for user in users.values():
            assert (await user.get("projects")).code == 200

    jp_asyncio_loop.run_until_complete(arrange())
    return users


async def test_a_project_with_uploads_and_a_finished_run_goes_with_its_whole_history(people, history) -> None:
    alice, bob = people["alice"], people["bob"]
    project = (await alice.post("projects", {"name": "RNA-seq"})).json["id"]
    elsewhere = (await alice.post("projects", {"name": "results"})).json["id"]
    sample = (await alice.post(f"projects/{project}/samples", {"name": "S1"})).json["id"]
    await alice.post("shares", {"object_type": "project", "object_id": project, "user": "bob"})
    _, done = await start_upload(alice, project, b"ACGT\n", 5)
    unfinished, _ = await start_upload(alice, project, b"AC", 5)
    partial = history.host.storage.partial_path(unfinished)
    run = history.execution("alice", project, "succeeded")
    output = history.output_elsewhere("alice", run, elsewhere)
    uploaded = int(done["Flow-DataFile-Id"])

    not_empty = await alice.delete(f"projects/{project}")
    assert (not_empty.code, not_empty.error["reason"]) == (409, "project_not_empty")
    assert (await alice.get(f"executions/{run}")).code == 200 and partial.exists()
    assert (await bob.delete(f"projects/{project}")).code == 403
    assert (await people["carol"].delete(f"projects/{project}")).code == 404
    assert (await alice.delete(f"files/{uploaded}")).code == 204

    deleted = await alice.delete(f"projects/{project}")

    assert deleted.code == 204, deleted.json
    for path in (f"projects/{project}", f"samples/{sample}", f"executions/{run}", f"executions/{run}/tasks"):
        assert (await alice.get(path)).code == 404, path
    assert (await alice.request("HEAD", f"uploads/{unfinished}", headers=dict(TUS))).code == 404
    assert history.count(Upload, project_id=project) == 0
    assert history.count(Share, object_type="project", object_id=project) == 0
    assert history.count(Sample, project_id=project) == 0
    assert history.count(ProcessExecution) == 0
    assert not partial.exists() and not history.run_dir(run).exists()
    kept = (await alice.get(f"files/{output}")).json
    assert (kept["project"], kept["execution"]) == (elsewhere, None)
    assert (await alice.get(f"files/{output}/content")).body == b"Hi, Ada!\n"
    assert (await alice.get("executions")).json["items"] == []
    assert (await bob.get("projects")).json["items"] == []


async def test_an_unfinished_run_blocks_the_delete_and_nothing_changes(people, history) -> None:
    alice = people["alice"]
    await settled(history.host)
    project = (await alice.post("projects", {"name": "running"})).json["id"]
    sample = (await alice.post(f"projects/{project}/samples", {"name": "S1"})).json["id"]
    await alice.post("shares", {"object_type": "project", "object_id": project, "user": "bob"})
    unfinished, _ = await start_upload(alice, project, b"AC", 5)
    finished = history.execution("alice", project, "succeeded")
    running = history.execution("alice", project, "running")

    refused = await alice.delete(f"projects/{project}")

    assert (refused.code, refused.error["reason"]) == (409, "project_has_active_runs")
    assert (await alice.get(f"projects/{project}")).code == 200
    assert (await alice.get(f"samples/{sample}")).code == 200
    assert len((await alice.get("shares", object_type="project", object_id=project)).json["items"]) == 1
    head = await alice.request("HEAD", f"uploads/{unfinished}", headers=dict(TUS))
    assert head.code == 200 and head.headers["Upload-Offset"] == "2"
    assert {e["id"] for e in (await alice.get("executions")).json["items"]} == {finished, running}
    assert history.count(ProcessExecution) == 2
    assert history.run_dir(finished).exists() and history.run_dir(running).exists()

    history.finish(running)
    assert (await alice.delete(f"projects/{project}")).code == 204
    assert (await alice.get("executions")).json["items"] == []
    assert not history.run_dir(finished).exists() and not history.run_dir(running).exists()


async def test_a_resumed_run_and_its_original_go_together(people, history) -> None:
    alice = people["alice"]
    project = (await alice.post("projects", {"name": "resumed"})).json["id"]
    original = history.execution("alice", project, "succeeded")
    resumed = history.execution("alice", project, "succeeded")
    with history.host.db.session() as session:
        rows = {e.uuid: e for e in session.scalars(select(Execution))}
        rows[resumed].resumed_from_id = rows[original].id
        rows[resumed].run_dir = rows[original].run_dir

    assert (await alice.delete(f"projects/{project}")).code == 204
    assert history.count(Execution) == 0
    assert not history.run_dir(original).exists()


async def test_a_row_that_arrives_after_the_checks_undoes_the_whole_delete(people, history, monkeypatch) -> None:
    """As if an upload completed into the project between the checks and the commit: 409, and nothing is gone."""
    from flow_jupyter.data import projects

    alice = people["alice"]
    project = (await alice.post("projects", {"name": "raced"})).json["id"]
    sample = (await alice.post(f"projects/{project}/samples", {"name": "S1"})).json["id"]
    run = history.execution("alice", project, "succeeded")
    _, done = await start_upload(alice, project, b"ACGT\n", 5)
    monkeypatch.setattr(projects, "_check_deletable", lambda session, project: None)

    raced = await alice.delete(f"projects/{project}")

    assert (raced.code, raced.error["reason"]) == (409, "project_changed")
    assert (await alice.get(f"projects/{project}")).code == 200
    assert (await alice.get(f"samples/{sample}")).code == 200
    assert (await alice.get(f"executions/{run}/tasks")).json["items"][0]["process"] == "GREET"
    assert (await alice.get(f"files/{done['Flow-DataFile-Id']}/content")).body == b"ACGT\n"
    assert history.run_dir(run).exists() and history.count(Upload, project_id=project) == 1
