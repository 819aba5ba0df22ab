"""Flow's own Nextflow plugin (nf-flow): built from its Groovy sources against the assembled Nextflow, loaded offline,
and writing one JSON event per line while real runs progress — locally, resumed, failing, and as a Slurm head job
whose tasks go to Slurm.

Nextflow is started here as ``java … nextflow.cli.Launcher`` with the launcher's own JVM options rather than through
the ``nextflow`` launcher, because the launcher pins NXF_HOME to the real one and these tests install the plugin into
a throwaway NXF_HOME (the jars of the real cache are reused).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import TINY_PIPELINE, wait_for_slurm_job
from flow_jupyter.config import FlowSettings
from flow_jupyter.toolchain.nextflow_install import JVM_OPENS, JVM_PROPERTIES, NextflowInstall
from flow_jupyter.toolchain.nf_plugin import (
    EVENTS_FILE_ENV, PLUGIN_ID, PLUGIN_VERSION, build_plugin, config_snippet, plugin_dir, plugin_status,
)

NAMES = ["Rosalind", "Ada", "Grace"]
COMMON = {"v", "event", "time", "run_name", "session_id"}
TASK_EVENTS = {"task_pending", "task_submit", "task_start", "task_complete", "task_cached"}
FAILING_PIPELINE = """\
process PREPARE {
    output: stdout
    script: 'echo ready'
}
process BOOM {
    input: val x
    script:
    \"\"\"
    echo 'something broke' >&2
    exit 3
    \"\"\"
}
workflow { BOOM(PREPARE()) }
"""


def _settings(nxf_home: Path) -> FlowSettings:
    """Settings with a throwaway NXF_HOME and the real cache, so the assembled Nextflow's jars are reused."""
    return FlowSettings(nxf_home=str(nxf_home), cache_dir=FlowSettings().cache_dir)


def _lib_dir(settings: FlowSettings) -> Path:
    lib = NextflowInstall(settings).lib_dir
    assert any(lib.glob("nextflow-*.jar")), f"no assembled Nextflow in {lib}: run `flow-jupyter toolchain install`"
    return lib


@pytest.fixture(scope="module")
def plugin_settings(tmp_path_factory) -> FlowSettings:
    settings = _settings(tmp_path_factory.mktemp("nxf-home"))
    build_plugin(settings, _lib_dir(settings), log=lambda _msg: None)
    return settings


def _java_argv(settings: FlowSettings) -> list[str]:
    java = shutil.which("java")
    assert java, "java is not on PATH"
    return [java, *JVM_PROPERTIES, *JVM_OPENS, "-cp", str(_lib_dir(settings) / "*"), "nextflow.cli.Launcher"]


def _env(settings: FlowSettings, events: Path | None) -> dict[str, str]:
    env = dict(os.environ, NXF_HOME=settings.nxf_home, NXF_OFFLINE="true", NXF_ANSI_LOG="false")
    env.pop(EVENTS_FILE_ENV, None)
    if events is not None:
        env[EVENTS_FILE_ENV] = str(events)
    return env


def _arrange_tiny(tmp_path: Path) -> Path:
    """A run directory with the names file, a params file and a config holding only the plugins block."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "names.txt").write_text("\n".join(NAMES) + "\n")
    (run_dir / "params.json").write_text(json.dumps({
        "names": str(run_dir / "names.txt"), "greeting": "Hello", "outdir": str(run_dir / "results"),
    }))
    (run_dir / "flow.config").write_text(config_snippet())
    return run_dir


def _tiny_args(run_dir: Path, *extra: str) -> list[str]:
    return ["-log", str(run_dir / ".nextflow.log"), "run", str(TINY_PIPELINE / "main.nf"),
            "-params-file", str(run_dir / "params.json"), "-work-dir", str(run_dir / "work"),
            "-c", str(run_dir / "flow.config"), *extra]


def _run(settings: FlowSettings, run_dir: Path, args: list[str], events: Path | None) -> subprocess.CompletedProcess:
    return subprocess.run([*_java_argv(settings), *args], cwd=run_dir, capture_output=True, text=True, timeout=300,
                          env=_env(settings, events))


def _events(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert events, f"{path} is empty"
    for event in events:
        assert COMMON <= event.keys(), event
        assert event["v"] == 1
    assert len({(e["run_name"], e["session_id"]) for e in events}) == 1, "one run per file"
    return events


def identity(path: Path) -> tuple[int, int]:
    """Which file this is: a rebuild swaps in new files (a new inode), however coarse the file clock is."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def _names(events: list[dict], kind: str) -> list[str]:
    return [e["task"]["name"] for e in events if e["event"] == kind]


def _assert_successful_tiny_run(events: list[dict], run_dir: Path, executor: str) -> None:
    kinds = [e["event"] for e in events]
    assert kinds[0] == "flow_create" and kinds[-1] == "flow_complete"
    assert "flow_error" not in kinds
    create = events[0]
    assert create["resumed"] is False
    assert create["work_dir"] == str(run_dir / "work")
    assert create["launch_dir"] == str(run_dir)
    assert create["nextflow_version"] == "24.10.0"

    # Every process is announced before any task is submitted (per-process progress knows them up front).
    first_submit = kinds.index("task_submit")
    assert {e["process"] for e in events[:first_submit] if e["event"] == "process_create"} == {"GREET", "JOIN"}

    expected = sorted([f"GREET ({n})" for n in NAMES] + ["JOIN"])
    assert sorted(_names(events, "task_complete")) == expected
    for name in expected:
        order = [e["event"] for e in events if e["event"] in TASK_EVENTS and e["task"]["name"] == name]
        # Nextflow reports submit and start from different threads, so under load a start can come first;
        # each task is still submitted, started and completed exactly once, completion last.
        seen = [k for k in order if k != "task_pending"]
        assert sorted(seen) == ["task_complete", "task_start", "task_submit"] and seen[-1] == "task_complete", name
        if "task_pending" in order:
            assert order[0] == "task_pending", name

    for event in (e for e in events if e["event"] == "task_complete"):
        task = event["task"]
        assert task["status"] == "COMPLETED" and task["exit"] == 0
        assert task["process"] in {"GREET", "JOIN"} and task["executor"] == executor
        assert isinstance(task["task_id"], int) and len(task["hash"]) == 9
        assert Path(task["workdir"]).is_dir()
        assert isinstance(task["native_id"], str) and task["native_id"]
        for field in ("submit", "start", "complete", "duration", "realtime"):
            assert isinstance(task[field], int), (field, task)
        assert task["submit"] <= task["start"] <= task["complete"]
        assert "script" not in task and "env" not in task
    greet = next(e["task"] for e in events if e["event"] == "task_complete" and e["task"]["process"] == "GREET")
    assert greet["tag"] in NAMES

    published = {e["destination"]: e["source"] for e in events if e["event"] == "file_publish"}
    results = run_dir / "results"
    assert set(published) == {str(results / "all.txt")} | {str(results / "greetings" / f"{n}.txt") for n in NAMES}
    for destination, source in published.items():
        assert Path(destination).is_file()
        assert source.startswith(str(run_dir / "work")) and Path(source).name == Path(destination).name

    complete = events[-1]
    assert complete["success"] is True and complete["exit_status"] == 0 and complete["error_message"] is None
    assert complete["stats"] == {"succeeded": 4, "failed": 0, "ignored": 0, "cached": 0, "retries": 0, "aborted": 0}
    assert isinstance(complete["duration"], int) and complete["duration"] > 0
    assert all(a["time"] <= b["time"] for a, b in zip(events, events[1:]))


def test_config_snippet_declares_the_pinned_plugin_and_nothing_else() -> None:
    assert config_snippet().split() == ["plugins", "{", "id", f"'{PLUGIN_ID}@{PLUGIN_VERSION}'", "}"]


@pytest.mark.nextflow
def test_a_plugin_build_is_installed_complete_and_not_repeated(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "nxf-home")
    assert plugin_status(settings)[0] is False

    target = build_plugin(settings, _lib_dir(settings), log=lambda _msg: None)

    assert target == plugin_dir(settings) == Path(settings.nxf_home) / "plugins" / f"{PLUGIN_ID}-{PLUGIN_VERSION}"
    meta = target / "classes" / "META-INF"
    manifest = (meta / "MANIFEST.MF").read_text()
    assert f"Plugin-Id: {PLUGIN_ID}" in manifest and f"Plugin-Version: {PLUGIN_VERSION}" in manifest
    assert "Plugin-Class: flowjupyter.nf.FlowPlugin" in manifest
    assert (meta / "extensions.idx").read_text().split() == ["flowjupyter.nf.FlowObserverFactory"]
    observer = target / "classes" / "flowjupyter" / "nf" / "FlowEventsObserver.class"
    assert observer.is_file()
    assert plugin_status(settings)[0] is True
    assert not [p.name for p in Path(settings.nxf_home).iterdir() if p.name.startswith(f".{PLUGIN_ID}-")]

    built = identity(observer)
    said: list[str] = []
    assert build_plugin(settings, _lib_dir(settings), log=said.append) == target
    assert said == [] and identity(observer) == built, "an up-to-date plugin must not be recompiled"

    # A plugin built from other sources (recorded hash differs) is rebuilt and swapped in.
    info = target / "flow-build.json"
    info.write_text(json.dumps({"source_hash": "stale"}))
    assert plugin_status(settings)[0] is False
    build_plugin(settings, _lib_dir(settings), log=said.append)
    assert len(said) == 1 and identity(observer) != built
    assert plugin_status(settings) == (True, f"{PLUGIN_ID}@{PLUGIN_VERSION} ({target})")


@pytest.mark.nextflow
def test_a_local_run_writes_its_events_in_order(tmp_path: Path, plugin_settings: FlowSettings) -> None:
    run_dir = _arrange_tiny(tmp_path)
    events_file = tmp_path / "events" / "run.ndjson"  # the directory does not exist yet: the plugin creates it

    done = _run(plugin_settings, run_dir, _tiny_args(run_dir), events_file)

    assert done.returncode == 0, done.stdout + done.stderr
    events = _events(events_file)
    _assert_successful_tiny_run(events, run_dir, executor="local")
    complete = [e["task"] for e in events if e["event"] == "task_complete"]
    assert all(t["native_id"].isdigit() for t in complete)  # local tasks: the process id
    assert all("%cpu" in t and "peak_rss" in t for t in complete), "metrics are collected for task events"
    assert not (run_dir / "events.ndjson").exists()


@pytest.mark.nextflow
def test_a_resumed_run_reports_every_task_as_cached(tmp_path: Path, plugin_settings: FlowSettings) -> None:
    run_dir = _arrange_tiny(tmp_path)
    first = _run(plugin_settings, run_dir, _tiny_args(run_dir), tmp_path / "first.ndjson")
    assert first.returncode == 0, first.stdout + first.stderr

    again = _run(plugin_settings, run_dir, _tiny_args(run_dir, "-resume"), tmp_path / "again.ndjson")

    assert again.returncode == 0, again.stdout + again.stderr
    before, events = _events(tmp_path / "first.ndjson"), _events(tmp_path / "again.ndjson")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "flow_create" and events[0]["resumed"] is True and kinds[-1] == "flow_complete"
    assert events[0]["session_id"] == before[0]["session_id"] and events[0]["run_name"] != before[0]["run_name"]
    assert not {"task_submit", "task_start", "task_complete"} & set(kinds)
    cached = [e["task"] for e in events if e["event"] == "task_cached"]
    assert sorted(t["name"] for t in cached) == sorted(_names(before, "task_complete"))
    assert {t["status"] for t in cached} == {"CACHED"} and {t["exit"] for t in cached} == {0}
    assert events[-1]["success"] is True and events[-1]["stats"]["cached"] == 4
    assert events[-1]["stats"]["succeeded"] == 0


@pytest.mark.nextflow
def test_a_failing_task_ends_with_flow_error_then_an_unsuccessful_flow_complete(
    tmp_path: Path, plugin_settings: FlowSettings
) -> None:
    run_dir = tmp_path / "fail"
    run_dir.mkdir()
    (run_dir / "main.nf").write_text(FAILING_PIPELINE)
    (run_dir / "flow.config").write_text(config_snippet())

    # Without FLOW_EVENTS_FILE the plugin writes events.ndjson in the launch directory.
    done = _run(plugin_settings, run_dir, ["run", "main.nf", "-c", "flow.config"], events=None)

    assert done.returncode != 0
    events = _events(run_dir / "events.ndjson")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "flow_create" and kinds[-2:] == ["flow_error", "flow_complete"], kinds
    assert kinds.count("flow_error") == 1
    failed = next(e["task"] for e in events if e["event"] == "task_complete" and e["task"]["name"] == "BOOM")
    assert failed["status"] == "FAILED" and failed["exit"] == 3

    error = events[-2]
    assert error["task"] == "BOOM" and error["process"] == "BOOM" and error["exit"] == 3
    assert "terminated with an error exit status (3)" in error["error_message"]
    assert "something broke" in error["error_report"]
    assert Path(error["workdir"]).is_dir()

    complete = events[-1]
    assert complete["success"] is False and complete["exit_status"] == 3
    assert complete["error_message"] and "something broke" in complete["error_report"]
    assert complete["stats"]["failed"] == 1 and complete["stats"]["succeeded"] == 1


@pytest.mark.nextflow
@pytest.mark.slurm
def test_a_slurm_head_job_reports_slurm_job_ids_of_its_tasks(
    tmp_path: Path, plugin_settings: FlowSettings, slurm_cluster
) -> None:
    run_dir = _arrange_tiny(tmp_path)
    (run_dir / "flow.config").write_text(
        config_snippet()
        + "process { executor = 'slurm'; cpus = 1; memory = '500 MB' }\n"
        + "executor { queueStatInterval = '2s'; pollInterval = '1s' }\n"
    )
    events_file = run_dir / "flow-events.ndjson"
    job_name = f"flow-{uuid.uuid4()}"
    exports = _env(plugin_settings, events_file)
    script = run_dir / "head.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name={job_name}\n"
        f"#SBATCH --output={run_dir}/head.out\n"
        "#SBATCH --cpus-per-task=1\n"
        "#SBATCH --mem=2G\n"
        + "".join(f"export {key}={shlex.quote(exports[key])}\n"
                  for key in ("NXF_HOME", "NXF_OFFLINE", "NXF_ANSI_LOG", EVENTS_FILE_ENV))
        + "exec " + shlex.join([*_java_argv(plugin_settings), *_tiny_args(run_dir)]) + "\n"
    )

    job_id = subprocess.run(["sbatch", "--parsable", "-D", str(run_dir), str(script)], capture_output=True,
                            text=True, check=True, timeout=60).stdout.strip().split(";")[0]
    state, exit_code = wait_for_slurm_job(job_id, timeout=300)

    assert (state, exit_code) == ("COMPLETED", "0:0"), (run_dir / "head.out").read_text()
    events = _events(events_file)
    _assert_successful_tiny_run(events, run_dir, executor="slurm")
    native_ids = [e["task"]["native_id"] for e in events if e["event"] == "task_complete"]
    assert len(native_ids) == 4 and all(jid.isdigit() and jid != job_id for jid in native_ids)
    submitted = {e["task"]["name"]: e["task"]["native_id"] for e in events if e["event"] == "task_submit"}
    assert sorted(submitted.values()) == sorted(native_ids), "the Slurm job id is known from submission on"
