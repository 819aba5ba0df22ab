"""A launch becomes params.json + a generated config + an argv; run by a real backend with Flow's plugin loaded,
hostile parameter values reach the pipeline unchanged and nothing they contain is executed. On Slurm the config's
executor scope carries the admin's site settings (validated traits, never user text), which real Nextflow reads
back exactly, and by default lets a task sbatch outlast minutes of an unreachable controller."""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest
from traitlets import TraitError

from conftest import TINY_PIPELINE
from waiting import wait_for
from flow_jupyter import proc
from flow_jupyter.config import FlowSettings
from flow_jupyter.errors import FlowError
from flow_jupyter.execution.backends import BackendState, LocalBackend, Resources
from flow_jupyter.execution.launch import groovy_string, plan_run, slurm_config, submit_retry_window_seconds
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


# --- the Slurm executor's settings: site-friendly polling and a task sbatch that outlasts an outage -----------------
SITE = {"nextflow_queue_stat_interval": "2min", "nextflow_poll_interval": "10s",
        "nextflow_submit_rate_limit": "20/1min",
        "nextflow_exit_read_timeout": "10min", "nextflow_submit_retry_max_attempts": 30,
        "nextflow_submit_retry_delay": "2s", "nextflow_submit_retry_max_delay": "1min",
        "nextflow_submit_retry_jitter": 0.1,
        "nextflow_submit_retry_reason": r"Unable to contact slurm controller|Socket timed out|rc=\d+ $HOME \u0027"}


def test_the_slurm_config_takes_the_executor_settings_from_the_traits(tmp_path: Path) -> None:
    plan = plan_run(pipeline_dir=ECHO_PIPELINE, run_dir=tmp_path, params={}, executor="slurm",
                    settings=FlowSettings(**SITE))

    executor = plan.config_text[plan.config_text.index("executor {"):]
    assert executor.splitlines() == [
        "executor {",
        "    queueStatInterval = '2min'",
        "    pollInterval = '10s'",
        "    exitReadTimeout = '10min'",
        "    submitRateLimit = '20/1min'",
        "    retry {",
        "        delay = '2s'",
        "        maxDelay = '1min'",
        "        maxAttempts = 30",
        "        jitter = 0.1",
        "    }",
        r"    submit.retry.reason = 'Unable to contact slurm controller|Socket timed out|rc=\\d+ $HOME \\u0027'",
        "}",
    ]
    local = plan_run(pipeline_dir=ECHO_PIPELINE, run_dir=tmp_path, params={}, executor="local")
    assert "executor {" not in local.config_text
    no_limit = plan_run(pipeline_dir=ECHO_PIPELINE, run_dir=tmp_path, params={}, executor="slurm",
                        settings=FlowSettings(nextflow_submit_rate_limit=""))
    assert "submitRateLimit" not in no_limit.config_text


def test_by_default_a_task_sbatch_is_retried_through_five_minutes_of_an_unreachable_controller() -> None:
    settings = FlowSettings()
    reason = re.compile(settings.nextflow_submit_retry_reason)

    assert submit_retry_window_seconds(settings) >= 300
    for message in ["sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
                    "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
                    "sbatch: error: Slurm backup controller in standby mode",
                    "sbatch: error: Batch job submission failed: Zero Bytes were transmitted or received"]:
        assert reason.search(message), message
    for refusal in ["sbatch: error: Batch job submission failed: Invalid partition name specified",
                    "sbatch: error: Batch job submission failed: Requested node configuration is not available"]:
        assert not reason.search(refusal), refusal
    # Nextflow's own defaults (3 tries, 500ms doubling) give up within seconds.
    nextflow_default = FlowSettings(nextflow_submit_retry_max_attempts=3, nextflow_submit_retry_delay="500ms")
    assert submit_retry_window_seconds(nextflow_default) < 2


@pytest.mark.parametrize("name,value", [
    ("nextflow_queue_stat_interval", "1 fortnight"), ("nextflow_poll_interval", "5s'; System.exit(1); '"),
    ("nextflow_poll_interval", "0s"), ("nextflow_exit_read_timeout", "${System.exit(1)}"),
    ("nextflow_submit_rate_limit", "10/0s"), ("nextflow_submit_rate_limit", "ten per minute"),
    ("nextflow_submit_retry_reason", "it's down"), ("nextflow_submit_retry_reason", "down\n}"),
    ("nextflow_submit_retry_reason", "(unclosed"), ("nextflow_submit_retry_reason", ""),
    ("nextflow_submit_retry_reason", 'say "down"'), ("nextflow_submit_retry_max_attempts", 0),
    ("nextflow_submit_retry_jitter", 1.5), ("nextflow_submit_retry_delay", "soon"),
])
def test_executor_settings_that_are_not_what_nextflow_reads_are_refused(name: str, value) -> None:
    with pytest.raises(TraitError):
        FlowSettings(**{name: value})


def test_a_groovy_string_holds_its_text_exactly_and_refuses_control_characters() -> None:
    assert groovy_string(r"a\b'c$d") == r"'a\\b\'c$d'"
    with pytest.raises(ValueError):
        groovy_string("a\nb")


@pytest.mark.nextflow
def test_nextflow_reads_every_executor_setting_as_it_was_set(tmp_path: Path) -> None:
    (tmp_path / "main.nf").write_text(
        "workflow {\n"
        "    def e = session.config.executor\n"
        "    println('SEEN ' + groovy.json.JsonOutput.toJson([e.queueStatInterval, e.pollInterval, e.exitReadTimeout,"
        " e.submitRateLimit, e.retry.delay, e.retry.maxDelay, e.retry.maxAttempts, e.retry.jitter,"
        " e.submit.retry.reason]))\n"
        "}\n")
    (tmp_path / CONFIG_FILE).write_text(slurm_config(FlowSettings(**SITE)))

    done = proc.run(["nextflow", "-q", "run", "main.nf", "-c", CONFIG_FILE], cwd=str(tmp_path), timeout=240,
                    env={**os.environ, "NXF_ANSI_LOG": "false", "NXF_OFFLINE": "true"})

    seen = json.loads(done.stdout.split("SEEN ", 1)[1].splitlines()[0])
    assert seen == ["2min", "10s", "10min", "20/1min", "2s", "1min", 30, 0.1, SITE["nextflow_submit_retry_reason"]]
