"""Executions when things go wrong, through the HTTP API with real Nextflow and real Slurm: the scheduler is down at
launch, a partition does not exist, an admin scancels the head job, the events file gets a garbage line, and a user
types hostile values into the params."""
from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import TEST_USER_HEADER
from test_executions_api import SLEEP_MAIN, TERMINAL, _repo, arrange, wait_for
from waiting import wait_for_async

from flow_jupyter.client import FlowClient
from flow_jupyter.db.models import Execution

ROOT = Path(__file__).resolve().parent.parent
ECHO_PIPELINE = ROOT / "tests" / "pipelines" / "echo_params"


def slurmctld(action: str) -> None:
    """Stop only the controller (the node daemon and any running job stay), or start what is missing."""
    # By the pid scripts/slurm.sh recorded when it started it: never a process found by name.
    verb = "stop-controller" if action == "stop" else "start"
    subprocess.run([str(ROOT / "scripts" / "slurm.sh"), verb], check=True, capture_output=True, timeout=120)


async def kept_after_a_try(user, host, execution: str) -> dict:
    """The execution's detail once the manager has tried to submit it: it plans the run directory first, so a
    'pending' status seen after that directory exists is the launch kept for another try (or an early end)."""
    def planned() -> bool:
        with host.db.session() as session:
            run_dir = session.scalars(select(Execution.run_dir).where(Execution.uuid == execution)).one()
        return host.storage.resolve(run_dir).is_dir()

    async def probe() -> tuple[bool, dict]:
        tried = await asyncio.to_thread(planned)  # first: then 'pending' cannot be the state before the first claim
        return tried, (await user.get(f"executions/{execution}")).json

    _, detail = await wait_for_async(
        probe, until=lambda seen: (seen[0] and seen[1]["status"] == "pending")
        or seen[1]["status"] not in {"pending", "submitted"},
        what=f"the manager to try execution {execution} and keep it", timeout=120, interval=0.2)
    return detail


async def add_sleeper(api, tmp_path: Path, seconds: int = 600) -> None:
    main = SLEEP_MAIN.replace("params.seconds = 600", f"params.seconds = {seconds}")
    added = await api.owner.post("pipelines", {"source": str(_repo(tmp_path / "sleeper", {"main.nf": main})),
                                               "ref": "v1.0"})
    assert added.code == 201, added.json


@pytest.mark.nextflow
@pytest.mark.slurm
@pytest.mark.stops_controller
async def test_a_launch_while_slurm_is_down_answers_503_and_runs_when_slurm_is_back(
        api, jp_serverapp, tmp_path, slurm_cluster) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    slurmctld("stop")
    try:
        launched = await alice.post("executions", {
            "pipeline": "tiny", "project": launchable["project"], "backend": "slurm",
            "params": {"names": {"datafile": launchable["names"]}}})
        assert launched.code == 503, launched.json
        assert launched.error["reason"] == "scheduler_unavailable"
        assert int(launched.headers["Retry-After"]) > 0
        kept = launched.json["execution"]
        # The notebook client hands the kept launch over (with a warning) instead of failing or launching twice.
        client = FlowClient(jp_serverapp.connection_url, jp_serverapp.identity_provider.token,
                            headers={TEST_USER_HEADER: "alice"})
        with pytest.warns(RuntimeWarning, match="scheduler"):
            from_client = await asyncio.to_thread(
                client.launch, "tiny", {"names": {"datafile": launchable["names"]}},
                project=launchable["project"], backend="slurm", provenance={})
        assert from_client.status == "pending"
        for execution in (kept["id"], from_client.id):  # the manager tries, and keeps them
            waiting = await kept_after_a_try(alice, launchable["host"], execution)
            # 'pending' until the backend accepts the head job (a claim is a lease, not a status); never failed.
            assert waiting["status"] == "pending" and "Slurm" in waiting["backend_error"], waiting
    finally:
        slurmctld("start")
    for execution in (kept["id"], from_client.id):
        detail = await wait_for(alice, execution, TERMINAL, timeout=400)
        assert detail["status"] == "succeeded", detail
        assert detail["backend_error"] is None
    assert {e["id"] for e in (await alice.get("executions")).json["items"]} == {kept["id"], from_client.id}


@pytest.mark.slurm
async def test_an_unknown_partition_is_a_400_naming_the_field_and_stores_nothing(
        api, jp_serverapp, tmp_path, slurm_cluster) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    reply = await alice.post("executions", {
        "pipeline": "tiny", "project": launchable["project"], "backend": "slurm",
        "resources": {"queue": "gpu-nowhere"}, "params": {"names": {"datafile": launchable["names"]}}})
    assert reply.code == 400 and reply.error["field"] == "/resources/queue", reply.json
    assert "gpu-nowhere" in reply.error["message"]
    assert (await alice.get("executions")).json["items"] == []


@pytest.mark.nextflow
@pytest.mark.slurm
async def test_a_head_job_scancelled_outside_flow_ends_cancelled_with_the_reason(
        api, jp_serverapp, tmp_path, slurm_cluster) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    await add_sleeper(api, tmp_path)
    alice = api.as_user("alice")
    launched = await alice.post("executions", {"pipeline": "sleeper", "project": launchable["project"],
                                               "backend": "slurm", "params": {}})
    assert launched.code == 201, launched.json
    execution = launched.json["id"]
    running = await wait_for(alice, execution, {"running"} | TERMINAL, timeout=300)
    assert running["status"] == "running", running

    head = subprocess.run(["squeue", "-h", "-n", f"flow-{execution}", "-o", "%i"], capture_output=True, text=True,
                          check=True, timeout=30).stdout.split()
    assert len(head) == 1, head
    subprocess.run(["scancel", head[0]], check=True, timeout=30)

    detail = await wait_for(alice, execution, TERMINAL, timeout=300)
    assert detail["status"] == "cancelled", detail
    assert "outside Flow" in detail["error"] and head[0] in detail["error"], detail
    assert detail["cancel_requested"] is False


@pytest.mark.nextflow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_garbage_line_in_the_events_file_is_skipped_counted_and_the_monitor_goes_on(
        api, jp_serverapp, tmp_path) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    await add_sleeper(api, tmp_path, seconds=8)
    alice = api.as_user("alice")
    launched = await alice.post("executions", {"pipeline": "sleeper", "project": launchable["project"],
                                               "backend": "local", "params": {}})
    execution = launched.json["id"]
    running = await wait_for(alice, execution, {"running"} | TERMINAL)
    assert running["status"] == "running", running

    events = launchable["host"].storage.root / "executions" / execution / f"events-{execution}.ndjson"
    with events.open("ab") as handle:
        handle.write(b'{"event": "task_completed", "task": [1, 2\n\x00\xff not json at all\n')
    detail = await wait_for(alice, execution, TERMINAL, timeout=120)
    assert detail["status"] == "succeeded", detail
    assert detail["monitor"]["malformed_lines"] == 2
    assert detail["progress"]["succeeded"] == 1


HOSTILE = {
    "greeting": "'; touch CANARY; echo '\"$(touch CANARY)\"`touch CANARY`",
    "note": "line one\nline two; ${new File('CANARY').text = 'x'} #SBATCH --uid=0\r\n" + "x" * 10_000,
    "nested": {"groovy": "${System.exit(3)}", "dollar": "$HOME", "quote": "\\\"'", "list": ["`id`", "$(id)"]},
}


@pytest.mark.nextflow
@pytest.mark.slurm
async def test_hostile_params_arrive_unchanged_on_slurm_and_nothing_runs_them(
        api, jp_serverapp, tmp_path, slurm_cluster) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    added = await api.owner.post("pipelines", {"source": str(_repo(tmp_path / "echo_params", source=ECHO_PIPELINE)),
                                               "ref": "v1.0"})
    assert added.code == 201, added.json
    alice = api.as_user("alice")
    launched = await alice.post("executions", {"pipeline": "echo_params", "project": launchable["project"],
                                               "backend": "slurm", "params": HOSTILE})
    assert launched.code == 201, launched.json
    detail = await wait_for(alice, launched.json["id"], TERMINAL, timeout=300)
    assert detail["status"] == "succeeded", detail

    outputs = (await alice.get("files", execution=detail["id"])).json["items"]
    assert [f["filename"] for f in outputs] == ["echo.json"]
    echoed = json.loads((await alice.get(f"files/{outputs[0]['id']}/content")).body)
    assert echoed == HOSTILE
    run_dir = launchable["host"].storage.root / "executions" / detail["id"]
    assert not list(run_dir.rglob("CANARY")) and not list(Path.cwd().glob("CANARY"))
    assert not (Path.home() / "CANARY").exists()
