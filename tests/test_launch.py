"""A launch becomes params.json + a generated config + an argv; run by a real backend with Flow's plugin loaded,
hostile parameter values reach the pipeline unchanged and nothing they contain is executed."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from conftest import TINY_PIPELINE
from waiting import wait_for
from flow_jupyter.errors import FlowError
from flow_jupyter.execution.backends import BackendState, LocalBackend, Resources
from flow_jupyter.execution.launch import plan_run
from flow_jupyter.execution.monitor import Monitor
from flow_jupyter.execution.runfiles import CONFIG_FILE, EVENTS_FILE, LOG_FILE, PARAMS_FILE, TRACE_FILE

ECHO_PIPELINE = TINY_PIPELINE.parent / "echo_params"


def hostile(canary: Path) -> dict:
    return {
        "greeting": f"'; touch {canary}; echo '",
        "note": f"$(touch {canary}) `touch {canary}` ${{new File('{canary}').text = 'x'}}\n\"quoted\"; " + "x" * 10_000,
        "nested.key": "dotted names become objects",
    }


def test_the_plan_holds_user_values_only_in_the_params_file(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    plan = plan_run(pipeline_dir=ECHO_PIPELINE, run_dir=tmp_path / "run", params=hostile(canary), executor="slurm",
                    resources=Resources(queue="debug", account="lab"))
    plan.write()

    assert plan.argv[:2] == ["nextflow", "-log"] and "-params-file" in plan.argv
    assert not any(str(canary) in arg for arg in plan.argv)
    config = (tmp_path / "run" / CONFIG_FILE).read_text()
    assert "nf-flow@" in config and "executor = 'slurm'" in config
    assert "debug" not in config and "lab" not in config and str(canary) not in config
    assert plan.env["FLOW_TASK_QUEUE"] == "debug" and plan.env["FLOW_TASK_ACCOUNT"] == "lab"
    written = json.loads((tmp_path / "run" / PARAMS_FILE).read_text())
    assert written["note"] == hostile(canary)["note"] and written["nested"] == {"key": "dotted names become objects"}


def test_a_resume_needs_a_real_session_id(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as failure:
        plan_run(pipeline_dir=ECHO_PIPELINE, run_dir=tmp_path, params={}, executor="local",
                 resume_session="abc; rm -rf /")
    assert failure.value.field == "/resume"


@pytest.mark.nextflow
def test_hostile_values_arrive_unchanged_and_the_plugin_reports_the_run(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    run_dir = tmp_path / "run"
    params = hostile(canary) | {"outdir": str(run_dir / "results")}
    plan = plan_run(pipeline_dir=ECHO_PIPELINE, run_dir=run_dir, params=params, executor="local")
    plan.write()
    backend = LocalBackend()

    job = backend.submit(plan.launch(str(uuid.uuid4())))
    info = wait_for(lambda: backend.status(job), until=lambda i: i.status.terminal, what="the echo run to end",
                    timeout=240, interval=0.5)

    assert info.status == BackendState.COMPLETED, (run_dir / LOG_FILE).read_text()[-3000:]
    echoed = json.loads((run_dir / "results" / "echo.json").read_text())
    assert echoed == {"greeting": params["greeting"], "note": params["note"],
                      "nested": {"key": "dotted names become objects"}}
    assert not canary.exists()
    monitor = Monitor(run_dir)
    monitor.poll()
    assert monitor.state.mode == "events"
    assert monitor.state.status == "succeeded"
    assert [p["destination"] for p in monitor.state.published] == [str(run_dir / "results" / "echo.json")]


@pytest.mark.nextflow
def test_a_resumed_launch_takes_its_tasks_from_the_cache(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    names = tmp_path / "names.txt"
    names.write_text("Ada\nGrace\n")
    params = {"names": str(names), "outdir": str(run_dir / "results")}
    backend = LocalBackend()

    def run(resume: str | None) -> Monitor:
        plan = plan_run(pipeline_dir=TINY_PIPELINE, run_dir=run_dir, params=params, executor="local",
                        resume_session=resume)
        plan.write()
        (run_dir / EVENTS_FILE).unlink(missing_ok=True)
        (run_dir / TRACE_FILE).unlink(missing_ok=True)
        job = backend.submit(plan.launch(str(uuid.uuid4())))
        wait_for(lambda: backend.status(job), until=lambda i: i.status.terminal, what="the tiny run to end",
                 timeout=240, interval=0.5)
        monitor = Monitor(run_dir)
        monitor.poll()
        return monitor

    first = run(None)
    again = run(first.state.session_id)

    assert first.state.status == again.state.status == "succeeded"
    assert again.state.resumed is True and again.state.session_id == first.state.session_id
    assert {t.status for t in again.state.tasks.values()} == {"CACHED"}
