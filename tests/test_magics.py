"""``%flow`` / ``%%flow`` in a real IPython shell: every subcommand against the real test server (upload, list,
launch a real Nextflow run, follow it, read its log, show its report, resume and cancel). A failing magic fails its
cell, so "Run All" stops there: bad arguments raise IPython's UsageError (one message with the usage line), server
refusals raise the client's FlowError (shown as ``FlowError: reason: message (field)``) — never a traceback, and
never a quiet None.

The magics call the client synchronously, like a notebook cell; the server runs on the test's event loop, so each
magic runs through ``asyncio.to_thread``. SQLite only: the magics speak HTTP (the API's own tests cover PostgreSQL).
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest
from conftest import TEST_USER_HEADER, TINY_PIPELINE
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from test_executions_api import _repo

from flow_jupyter.client import DataFile, Execution, FlowClient, FlowError
from flow_jupyter.magics import FlowMagics, coerce, split_params
from flow_jupyter.widgets import ReportViewer

to_thread = asyncio.to_thread
TOWER = "reports:\n  all.txt:\n    display: All greetings\n"


class NoServer:
    """Stands in for the client where a story must not reach any server: touching it fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the magic used the client ({name}) for a bad command line")


@pytest.fixture
def database_url(flow_root: Path) -> str:
    return f"sqlite:///{flow_root / 'flow.sqlite'}"


@pytest.fixture
def alice(jp_serverapp, jp_fetch) -> FlowClient:
    """A FlowClient for the test user alice, pointed at the test server by its URL and token."""
    return FlowClient(jp_serverapp.connection_url, jp_serverapp.identity_provider.token,
                      headers={TEST_USER_HEADER: "alice"})


@pytest.fixture
def flow_magics() -> FlowMagics:
    """``%load_ext flow_jupyter.magics`` in the process's IPython shell; the tests point its client."""
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("flow_jupyter.magics")
    magics = shell.magics_manager.registry["FlowMagics"]
    yield magics
    magics.client = None
    magics.upload_local_paths = False


@pytest.fixture
def flow(flow_magics):
    """Run ``%flow <line>`` (or ``%%flow <line>`` with a body) on a worker thread, as a cell would."""
    shell = InteractiveShell.instance()

    def run(line: str, cell: str | None = None):
        if cell is None:
            return to_thread(shell.run_line_magic, "flow", line)
        return to_thread(shell.run_cell_magic, "flow", line, cell)

    return run


@pytest.mark.parametrize("line", [
    "", "frobnicate", "run", "run tiny stray --greeting Hi", "logs", "status one two", "ls --limit many",
    "upload", "run tiny --backend moon", "run tiny --project", 'run tiny --greeting "unclosed', "cancel",
    "resume", "report", "upload /no/such/file.fastq --project p",
])
def test_bad_arguments_raise_a_usage_error_with_the_usage_line(flow_magics, line) -> None:
    flow_magics.client = NoServer()
    shell = InteractiveShell.instance()

    with pytest.raises(UsageError) as mistake:
        shell.run_line_magic("flow", line)

    assert type(mistake.value) is UsageError  # the exact class is what IPython shows without a traceback
    assert "usage: %flow" in str(mistake.value), str(mistake.value)


def test_a_bad_argument_fails_its_cell_with_one_short_message(flow_magics, capsys) -> None:
    flow_magics.client = NoServer()
    shell = InteractiveShell.instance()

    result = shell.run_cell("run = %flow run tiny -p greeting")

    assert result.success is False and isinstance(result.error_in_exec, UsageError)
    out = capsys.readouterr()
    assert out.err.startswith("UsageError: -p takes NAME=VALUE, not 'greeting'\nusage: %flow run PIPELINE"), out.err
    assert "Traceback" not in out.err + out.out and "run" not in shell.user_ns


def test_a_cell_body_is_only_for_run_and_must_be_a_yaml_mapping(flow_magics) -> None:
    flow_magics.client = NoServer()
    shell = InteractiveShell.instance()

    with pytest.raises(UsageError, match="only `%%flow run`"):
        shell.run_cell_magic("flow", "ls", "names: x\n")
    with pytest.raises(UsageError, match="YAML mapping"):
        shell.run_cell_magic("flow", "run tiny --project p", "- just\n- a list\n")
    with pytest.raises(UsageError, match="not YAML"):
        shell.run_cell_magic("flow", "run tiny --project p", "names: [unclosed\n")


def test_help_lists_every_subcommand(flow_magics, capsys) -> None:
    flow_magics.client = NoServer()
    InteractiveShell.instance().run_line_magic("flow", "help")
    text = capsys.readouterr().out
    for command in ("ls", "upload", "pipelines", "run", "status", "logs", "cancel", "resume", "report", "%%flow"):
        assert f"%flow {command}" in text or command in text


def test_parameters_take_the_type_their_form_field_declares() -> None:
    assert split_params(["--min_quality", "20", "--skip_fastqc", "--title=a b", "--x", "-1"]) == \
        {"min_quality": "20", "skip_fastqc": True, "title": "a b", "x": "-1"}
    assert coerce("20", {"types": ["integer"]}) == 20
    assert coerce("0.5", {"types": ["number"]}) == 0.5
    assert coerce("false", {"types": ["boolean"]}) is False
    assert coerce("1.10", {"types": ["string"]}) == "1.10"  # a version string stays a string
    assert coerce("many", {"types": ["integer"]}) == "many"  # the server names the field
    assert coerce("true", {"types": ["boolean", "string"]}) is True


@pytest.mark.nextflow
async def test_every_subcommand_against_the_server(flow, flow_magics, alice, api, tmp_path, capsys,
                                                  monkeypatch) -> None:
    added = await api.owner.post("pipelines", {"source": str(_repo(tmp_path / "tiny", {"tower.yml": TOWER},
                                                                   source=TINY_PIPELINE)), "ref": "v1.0"})
    assert added.code == 201, added.json
    flow_magics.client = alice
    project = await to_thread(alice.create_project, "runs")
    names = tmp_path / "names.txt"
    names.write_text("Ada\nGrace\nLinus\n")

    pipelines = await flow("pipelines")
    assert isinstance(pipelines, pd.DataFrame) and set(pipelines["name"]) == {"demo", "tiny"}

    uploaded = await flow(f"upload {names} --project runs")
    assert isinstance(uploaded, DataFile) and uploaded.project == project.id
    assert f"data file #{uploaded.id}" in capsys.readouterr().out
    listed = await flow("ls runs")
    assert list(listed["filename"]) == ["names.txt"] and list(listed["id"]) == [uploaded.id]

    run = await flow(f"run tiny --project runs --backend local --names datafile:{uploaded.id} --greeting Hi")
    assert isinstance(run, Execution)
    assert run.params == {"names": {"datafile": uploaded.id}, "greeting": "Hi"} and run.backend == "local"
    assert f"execution {run.id}" in capsys.readouterr().out
    table = await flow("status")
    assert list(table["id"]) == [run.id]
    assert (await flow(f"status {run.id}")).id == run.id

    await to_thread(run.wait, 180, False)
    assert run.status == "succeeded", run.raw
    await flow(f"logs {run.id}")
    assert "nextflow" in capsys.readouterr().out.lower()

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objects, **kw: shown.extend(objects))
    assert await flow(f"report {run.id}") is None
    [viewer] = shown
    assert isinstance(viewer, ReportViewer)
    assert viewer.src.endswith(f"/flow/api/executions/{run.id}/reports/results/all.txt")
    assert 'sandbox="allow-scripts allow-popups allow-downloads"' in viewer.frame.value

    resumed = await flow(f"resume {run.id} --greeting Hej")
    assert isinstance(resumed, Execution) and resumed.params["greeting"] == "Hej"
    await flow(f"cancel {resumed.id}")
    assert f"Execution {resumed.id}: cancel" in capsys.readouterr().out

    monkeypatch.chdir(tmp_path)  # a local file named by a relative path is sent as its absolute path
    from_cell = await flow("run tiny --project runs --backend local --greeting Hoi", "names: names.txt\n")
    assert isinstance(from_cell, Execution)
    assert from_cell.params == {"names": str(names.resolve()), "greeting": "Hoi"}
    await to_thread(from_cell.cancel)

    for launched in (resumed, from_cell):
        await to_thread(launched.wait, 180, False)
        assert launched.status == "cancelled", launched.raw


async def test_server_refusals_raise_the_clients_error_with_reason_and_field(flow, flow_magics, alice,
                                                                           tmp_path) -> None:
    flow_magics.client = alice
    await to_thread(alice.create_project, "demo runs")
    await to_thread(alice.create_project, "other")

    with pytest.raises(FlowError) as refused:
        await flow("run demo --project 'demo runs' --min_quality 99 --input samples.txt")
    assert (refused.value.status, refused.value.reason) == (400, "invalid_params")
    assert refused.value.field.startswith("/")
    assert {"/min_quality", "/input"} <= {e["field"] for e in refused.value.errors}  # 99 was sent as a number

    with pytest.raises(FlowError) as missing:
        await flow("status 3f1c0a4e-0000-4000-8000-000000000000")
    assert (missing.value.status, missing.value.reason) == (404, "not_found")
    with pytest.raises(FlowError, match="not_found"):
        await flow("run nosuch --project other")
    with pytest.raises(UsageError, match=r"give --project \(your projects: demo runs, other\)"):
        await flow("run demo")  # two projects: which one?

    sheet = tmp_path / "samples.csv"  # where the server cannot read the kernel's disk, local files go up first
    sheet.write_text("sample,fastq_1,fastq_2\n")
    flow_magics.upload_local_paths = True
    with pytest.raises(FlowError) as refused:
        await flow(f"run demo --project other --input {sheet} --min_quality 99")
    assert "/min_quality" in {e["field"] for e in refused.value.errors}
    assert [f.filename for f in await to_thread(alice.files, project="other")] == ["samples.csv"]


async def test_a_refused_run_fails_its_cell_and_shows_the_refusal_not_a_traceback(flow_magics, alice,
                                                                                  capsys) -> None:
    flow_magics.client = alice
    await to_thread(alice.create_project, "demo runs")
    shell = InteractiveShell.instance()
    shell.user_ns.pop("run", None)

    result = await to_thread(shell.run_cell, "run = %flow run demo --project 'demo runs' --min_quality 99")

    assert result.success is False and isinstance(result.error_in_exec, FlowError)
    assert result.error_in_exec.reason == "invalid_params"
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "FlowError: invalid_params: " in text and "  /min_quality: " in text
    assert "Traceback" not in text and "run" not in shell.user_ns  # never a quiet `run = None`
