"""A Slurm run outlives its host: the real `jupyter server` is killed (`kill -9`) while the head job and its tasks
run on Slurm, started again on the same root and database, and the run is followed on from the stored offsets to
the right final status, task counts and outputs (each registered once).

Runs on the embedded SQLite: what it checks is the process and file side of durability.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests
from serverproc import Server, running
from sqlalchemy import create_engine, select
from waiting import wait_for

from flow_jupyter.db.models import Execution
from flow_jupyter.execution.runfiles import RunFiles

TASKS = 4
SLOW_MAIN = f"""nextflow.enable.dsl = 2
params.outdir = 'results'
process NAP {{
    publishDir "${{params.outdir}}", mode: 'copy'
    input:
    val n
    output:
    path "nap${{n}}.txt"
    script:
    "sleep ${{n * 5}}; echo \\"nap ${{n}}\\" > nap${{n}}.txt"
}}
workflow {{ NAP(Channel.of(1..{TASKS})) }}
"""


def _repo(path: Path) -> Path:
    path.mkdir()
    (path / "main.nf").write_text(SLOW_MAIN)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "v1"], ["tag", "v1.0"]):
        subprocess.run(["git", "-C", str(path), *argv], check=True, capture_output=True, env=env, timeout=60)
    return path


def _api(server: Server, method: str, path: str, user: str | None = "alice", **kw) -> requests.Response:
    return requests.request(method, f"{server.base}/flow/api/{path}", headers=server.headers(user), timeout=60, **kw)


def _detail(server: Server, execution: str) -> dict:
    return _api(server, "GET", f"executions/{execution}").json()


def _wait(server: Server, execution: str, done, timeout: float) -> dict:
    return wait_for(lambda: _detail(server, execution), until=done, what=f"execution {execution} to move on",
                    timeout=timeout, interval=0.5)


@pytest.mark.nextflow
@pytest.mark.slurm
def test_a_slurm_run_is_followed_to_its_end_across_a_kill_9_of_the_host(tmp_path: Path, slurm_cluster) -> None:
    root = tmp_path / "flow-root"
    url = f"sqlite:///{root / 'flow.sqlite'}"
    root.mkdir()
    first = Server(tmp_path, root, url)
    with running(first):
        added = _api(first, "POST", "pipelines", user=None, json={"source": str(_repo(tmp_path / "naps")),
                                                                   "ref": "v1.0"})
        assert added.status_code == 201, added.text
        project = _api(first, "POST", "projects", json={"name": "durable"}).json()["id"]
        launched = _api(first, "POST", "executions", json={"pipeline": "naps", "project": project,
                                                           "backend": "slurm", "params": {}})
        assert launched.status_code == 201, launched.text
        execution = launched.json()["id"]
        midway = _wait(first, execution, lambda d: d["progress"].get("succeeded", 0) >= 1
                       or d["status"] not in {"pending", "submitted", "running"}, timeout=300)
        assert midway["status"] == "running" and midway["progress"]["succeeded"] < TASKS, midway
        first.kill_9()

    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(select(Execution.status, Execution.monitor_offsets, Execution.run_dir)
                                    .where(Execution.uuid == execution)).one()
    engine.dispose()
    assert stored.status == "running" and stored.monitor_offsets["events"]["offset"] > 0, stored
    # The run goes on without a host: its plugin writes events past what the killed host had read.
    events = root / stored.run_dir / RunFiles.of(execution, resumed=False).events
    wait_for(lambda: events.stat().st_size, until=lambda size: size > stored.monitor_offsets["events"]["offset"],
             what="the headless run to write more events", timeout=300, interval=0.5)

    second = Server(tmp_path, root, url)
    with running(second):
        detail = _wait(second, execution, lambda d: d["status"] in {"succeeded", "failed", "cancelled", "lost"},
                       timeout=300)
        assert detail["status"] == "succeeded", detail
        assert detail["progress"]["succeeded"] == TASKS and detail["task_count"] == TASKS, detail
        assert detail["monitor"]["malformed_lines"] == 0
        tasks = _api(second, "GET", f"executions/{execution}/tasks").json()["items"]
        assert len(tasks) == TASKS and {t["status"] for t in tasks} == {"succeeded"}
        assert all(t["native_id"].isdigit() for t in tasks)
        outputs = _api(second, "GET", "files", params={"execution": execution}).json()["items"]
        assert sorted(f["filename"] for f in outputs) == [f"nap{n}.txt" for n in range(1, TASKS + 1)]
