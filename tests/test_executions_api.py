"""Executions through the HTTP API with the real Nextflow and the local backend: launch a registered pipeline into a
project, follow it to the end, list its tasks, find its outputs as data files, tail its log, resume it from the cache
and cancel a long run. Another user sees none of it. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitrepo import git
from conftest import TINY_PIPELINE
from waiting import wait_for_async
from flow_jupyter.data.files import store_bytes
from flow_jupyter.identity import Identity

TERMINAL = {"succeeded", "failed", "cancelled", "lost"}
SLEEP_MAIN = """nextflow.enable.dsl = 2
params.seconds = 600
process NAP {
    input:
    val n
    script:
    "sleep ${params.seconds}"
}
workflow { NAP(Channel.of(1)) }
"""


def _repo(path: Path, files: dict[str, str] | None = None, source: Path | None = None) -> Path:
    if source is not None:
        shutil.copytree(source, path)
    else:
        path.mkdir()
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "v1")
    git(path, "tag", "v1.0")
    return path


async def arrange(api, jp_serverapp, tmp_path: Path) -> dict:
    """The tiny pipeline registered by the admin, alice's project and her names file as a data file."""
    admin, alice = api.owner, api.as_user("alice")
    added = await admin.post("pipelines", {"source": str(_repo(tmp_path / "tiny", source=TINY_PIPELINE)),
                                           "ref": "v1.0"})
    assert added.code == 201, added.json
    project = (await alice.post("projects", {"name": "runs"})).json["id"]
    host = jp_serverapp.web_app.settings["flow"]

    def add_names(session, actor) -> int:
        return store_bytes(session, host.storage, owner_id=actor.user_id, project_id=project, sample_id=None,
                           filename="names.txt", content=b"Ada\nGrace\nLinus\n").id

    names = await host.call(Identity(name="alice"), add_names)
    return {"project": project, "names": names, "host": host}


async def wait_for(user, execution: str, statuses: set[str], timeout: float = 180) -> dict:
    """The execution's detail once its status is one of ``statuses``."""
    async def detail() -> dict:
        return (await user.get(f"executions/{execution}")).json

    return await wait_for_async(detail, until=lambda d: d["status"] in statuses,
                                what=f"execution {execution} to be {' or '.join(sorted(statuses))}",
                                timeout=timeout, interval=0.5)


@pytest.mark.nextflow
async def test_a_launch_runs_to_the_end_with_tasks_outputs_and_log_then_resumes_from_the_cache(
        api, jp_serverapp, tmp_path) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice, bob = api.as_user("alice"), api.as_user("bob")
    project = launchable["project"]
    launched = await alice.post("executions", {
        "pipeline": "tiny", "version": "v1.0", "project": project, "backend": "local",
        "params": {"names": {"datafile": launchable["names"]}, "greeting": "Hi"},
        "provenance": {"notebook": "analysis.ipynb", "cell": "c1"}})
    assert launched.code == 201, launched.json
    execution = launched.json["id"]
    assert launched.json["params"]["names"] == {"datafile": launchable["names"]}

    detail = await wait_for(alice, execution, TERMINAL)
    assert detail["status"] == "succeeded", detail
    assert detail["session_id"] and detail["finished_at"] and detail["monitor"]["mode"] == "events"
    assert detail["progress"]["succeeded"] == 4
    tasks = (await alice.get(f"executions/{execution}/tasks")).json["items"]
    assert len(tasks) == 4 and {t["status"] for t in tasks} == {"succeeded"}
    assert sorted(t["process"] for t in tasks) == ["GREET", "GREET", "GREET", "JOIN"]
    greet = (await alice.get(f"executions/{execution}/tasks", process="GREET")).json["items"]
    assert len(greet) == 3
    done = (await alice.get(f"executions/{execution}/tasks", status="succeeded")).json["items"]
    assert len(done) == 4 and (await alice.get(f"executions/{execution}/tasks", status="failed")).json["items"] == []
    nextflows_word = await alice.get(f"executions/{execution}/tasks", status="COMPLETED")
    assert (nextflows_word.code, nextflows_word.error["field"]) == (400, "status")  # one vocabulary: the API's

    files = (await alice.get("files", project=project)).json["items"]
    outputs = {f["filename"]: f for f in files if f["origin"] == "output"}
    assert set(outputs) == {"Ada.txt", "Grace.txt", "Linus.txt", "all.txt"}
    assert {f["execution"] for f in outputs.values()} == {execution}  # the run's uuid, never its row id
    assert {f["owner_name"] for f in outputs.values()} == {"alice"}
    content = await alice.get(f"files/{outputs['all.txt']['id']}/content")
    assert content.code == 200 and content.body == b"Hi, Ada!\nHi, Grace!\nHi, Linus!\n"

    log = (await alice.get(f"executions/{execution}/log")).json
    assert log["offset"] == 0 and log["next"] > 0 and "nextflow" in log["text"].lower()
    rest = (await alice.get(f"executions/{execution}/log", offset=log["next"])).json
    assert rest["offset"] == log["next"]
    listed = (await alice.get("executions", project=project)).json["items"]
    assert [e["id"] for e in listed] == [execution]
    assert (listed[0]["owner_name"], listed[0]["resumed_from"]) == ("alice", None) and "owner" not in listed[0]

    for method, path in [("GET", f"executions/{execution}"), ("GET", f"executions/{execution}/tasks"),
                         ("GET", f"executions/{execution}/log"), ("POST", f"executions/{execution}/cancel"),
                         ("POST", f"executions/{execution}/resume")]:
        reply = await bob.request(method, path, {} if method == "POST" else None)
        assert reply.code == 404, (method, path, reply.json)
    assert (await bob.get("executions")).json["items"] == []

    resumed = await alice.post(f"executions/{execution}/resume", {"params": {"greeting": "Hi"}})
    assert resumed.code == 201, resumed.json
    again = await wait_for(alice, resumed.json["id"], TERMINAL)
    assert again["status"] == "succeeded", again
    assert again["session_id"] == detail["session_id"] and again["resumed_from"] == execution
    cached = (await alice.get(f"executions/{again['id']}/tasks")).json["items"]
    assert len(cached) == 4 and {t["status"] for t in cached} == {"cached"}
    outputs_after = [f for f in (await alice.get("files", project=project)).json["items"] if f["origin"] == "output"]
    assert len(outputs_after) == 4  # each published file is registered once


async def test_bad_launches_are_400_naming_every_field_and_store_nothing(api, jp_serverapp, tmp_path) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice, bob = api.as_user("alice"), api.as_user("bob")
    project = launchable["project"]
    await bob.get("projects")

    bad = await alice.post("executions", {"pipeline": "tiny", "project": project,
                                          "params": {"names": "../another-run/names.txt", "outdir": "/etc"}})
    secret = await bob.post("executions", {"pipeline": "tiny", "project": project,
                                           "params": {"names": {"datafile": launchable["names"]}}})
    not_theirs = await bob.post("executions", {"pipeline": "tiny", "project": project, "params": {}})
    hostile = await alice.post("executions", {"pipeline": "tiny", "project": project, "backend": "slurm",
                                              "params": {}, "resources": {"queue": "debug\n#SBATCH --uid=0"}})
    no_pipeline = await alice.post("executions", {"pipeline": "no-such-pipeline", "project": project, "params": {}})
    no_version = await alice.post("executions", {"pipeline": "tiny", "version": "v9.9", "project": project,
                                                 "params": {}})

    assert bad.code == 400 and bad.error["reason"] == "invalid_params"
    assert sorted(e["field"] for e in bad.error["errors"]) == ["/names", "/outdir"]
    assert secret.code == 400 and secret.error["field"] == "/names"
    assert not_theirs.code == 404
    assert hostile.code == 400 and hostile.error["field"] == "/resources/queue"
    assert no_pipeline.code == 404 and no_version.code == 404
    assert (await alice.get("executions")).json["items"] == []


@pytest.mark.nextflow
async def test_a_long_run_is_cancelled(api, jp_serverapp, tmp_path: Path) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    admin, alice = api.owner, api.as_user("alice")
    added = await admin.post("pipelines", {"source": str(_repo(tmp_path / "sleeper", {"main.nf": SLEEP_MAIN})),
                                           "ref": "v1.0"})
    assert added.code == 201, added.json
    launched = await alice.post("executions", {"pipeline": "sleeper", "project": launchable["project"],
                                               "backend": "local", "params": {}})
    assert launched.code == 201, launched.json
    execution = launched.json["id"]
    running = await wait_for(alice, execution, {"running"} | TERMINAL)
    assert running["status"] == "running", running

    cancelled = await alice.post(f"executions/{execution}/cancel")
    assert cancelled.code == 200 and cancelled.json["cancel_requested"] is True
    detail = await wait_for(alice, execution, TERMINAL)
    assert detail["status"] == "cancelled", detail


@pytest.mark.nextflow
@pytest.mark.slurm
async def test_a_launch_on_slurm_runs_its_head_job_and_tasks_as_slurm_jobs(api, jp_serverapp, tmp_path,
                                                                            slurm_cluster) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    launched = await alice.post("executions", {
        "pipeline": "tiny", "project": launchable["project"], "backend": "slurm", "resources": {"cores": 1},
        "params": {"names": {"datafile": launchable["names"]}}})
    assert launched.code == 201, launched.json

    detail = await wait_for(alice, launched.json["id"], TERMINAL, timeout=400)
    assert detail["status"] == "succeeded", detail
    assert detail["backend"] == "slurm" and detail["resources"]["cores"] == 1
    tasks = (await alice.get(f"executions/{detail['id']}/tasks")).json["items"]
    assert len(tasks) == 4 and all(t["native_id"] and t["native_id"].isdigit() for t in tasks)
