"""The notebook widgets (flow_jupyter.widgets) as state, without a browser: forms built from real pipeline schemas,
the server's validation errors shown at their fields, data files paged and filtered, uploads by path and from the
browser, and a real Nextflow run followed by the monitor, cancelled and resumed from its buttons, with its report
in a sandboxed frame.

The widgets use the real client against the real test server. The server runs on the test's event loop, so every
widget action that talks to it goes through ``asyncio.to_thread`` (as a kernel's widgets would, the monitor then
polls from a daemon thread). The widgets only speak HTTP, so these stories run on SQLite alone (the API's own tests
cover PostgreSQL).
"""
from __future__ import annotations

import asyncio
import html
from pathlib import Path

import ipywidgets as widgets
import pytest
import requests
from conftest import TEST_USER_HEADER, TINY_PIPELINE
from test_executions_api import _repo
from waiting import wait_for_async

from flow_jupyter.client import FlowClient
from flow_jupyter.data.files import store_bytes
from flow_jupyter.identity import Identity
from flow_jupyter.pipelines import schema
from flow_jupyter.widgets import DataBrowser, ExecutionMonitor, PipelineLauncher, ReportViewer, SweepMonitor, \
    Uploader, dashboard
from flow_jupyter.widgets.poller import Poller

to_thread = asyncio.to_thread
CORPUS = Path(__file__).resolve().parent / "corpus" / "nf-schemas"
TOWER = "reports:\n  all.txt:\n    display: All greetings\n"
KIND_WIDGETS = {
    "checkbox": widgets.Checkbox, "select": widgets.Dropdown, "integer": (widgets.IntText, widgets.BoundedIntText),
    "number": (widgets.FloatText, widgets.BoundedFloatText), "textarea": widgets.Textarea, "json": widgets.Textarea,
    "text": widgets.Text, "directory": widgets.Text, "uri": widgets.Text, "file": widgets.Text,
    "path": widgets.Text, "glob": widgets.Text,
}


@pytest.fixture
def database_url(flow_root: Path) -> str:
    return f"sqlite:///{flow_root / 'flow.sqlite'}"


@pytest.fixture
def connect_as(jp_serverapp, jp_fetch):
    """A FlowClient for a test user, pointed at the test server by its URL and token."""
    def connect(user: str) -> FlowClient:
        return FlowClient(jp_serverapp.connection_url, jp_serverapp.identity_provider.token,
                          headers={TEST_USER_HEADER: user})

    return connect


def add_file(jp_serverapp, user: str, project: int, filename: str, content: bytes = b"x\n",
             sample: int | None = None) -> int:
    """A data file stored directly (the upload path has its own stories)."""
    host = jp_serverapp.web_app.settings["flow"]
    return host.run_as(Identity(user), lambda session, actor: store_bytes(
        session, host.storage, owner_id=actor.user_id, project_id=project, sample_id=sample, filename=filename,
        content=content).id)


def inside(widget: widgets.Widget, root: widgets.Widget) -> bool:
    """Whether ``widget`` is laid out somewhere under ``root``."""
    if widget is root:
        return True
    return any(inside(widget, child) for child in getattr(root, "children", ()) or ())


async def until(condition, timeout: float = 180) -> None:
    """Let the event loop (and the widgets' pollers on it) run until ``condition()`` holds."""
    await wait_for_async(condition, what="the widget to get there", timeout=timeout, interval=0.05)


# --- the launch form ------------------------------------------------------------------------------------------

async def test_every_corpus_schema_becomes_a_form_with_a_control_per_field_and_hidden_ones_under_advanced(
        connect_as) -> None:
    alice = connect_as("alice")
    await to_thread(alice.create_project, "forms")
    schemas = sorted(CORPUS.glob("*/nextflow_schema.json"))
    assert len(schemas) >= 10

    for path in schemas:
        model = schema.form_model(schema.load_schema(path.read_bytes()))
        launcher = await to_thread(PipelineLauncher, path.parent.name, client=alice, form=model)

        fields = [f for group in model["groups"] for f in group["fields"]]
        assert set(launcher.visible_fields) == {f["name"] for f in fields if not f["hidden"]}, path
        assert set(launcher.hidden_fields) == {f["name"] for f in fields if f["hidden"]}, path
        for spec in fields:
            field = launcher.fields[spec["name"]]
            assert inside(field.box, launcher.advanced if spec["hidden"] else launcher.sections), spec["name"]
            assert isinstance(field.input, KIND_WIDGETS[spec["widget"]]), (path.parent.name, spec)
            assert ('title="required">*' in field.label.value) == spec["required"]
            if spec["help"]:
                assert spec["help"] in html.unescape(field.help.value)
            if spec["widget"] == "select":
                assert len(field.input.options) >= len(spec["choices"])
            if spec["widget"] in ("file", "path", "glob"):
                assert field.browse_button is not None  # a picker over the DataBrowser
        if launcher.hidden_fields:
            assert launcher.advanced.get_title(0).startswith("Advanced")
        assert launcher.params() == {}, "untouched fields leave every parameter to the pipeline"
        launcher.close()


async def test_server_validation_errors_land_on_their_fields_and_a_picked_data_file_is_a_reference(
        connect_as, jp_serverapp) -> None:
    alice = connect_as("alice")
    project = await to_thread(alice.create_project, "demo runs")
    genome = add_file(jp_serverapp, "alice", project.id, "lambda.fasta", b">l\nACGT\n")
    launcher = await to_thread(PipelineLauncher, "demo", client=alice, project="demo runs")
    assert launcher.project == project.id and launcher.pipeline == "demo"
    assert {"input", "outdir", "fasta", "min_quality"} <= set(launcher.visible_fields)
    assert {"skip_fastqc", "help"} <= set(launcher.hidden_fields)
    assert 'title="required">*' in launcher.fields["input"].label.value
    assert 'title="required"' not in launcher.fields["barcodes"].label.value
    assert isinstance(launcher.fields["min_quality"].input, widgets.BoundedIntText)
    assert launcher.fields["min_quality"].input.max == 60

    fasta = launcher.fields["fasta"]
    await to_thread(fasta.toggle_picker)  # "Data files…": a DataBrowser on the launcher's project
    picker = fasta.picker_area.children[0]
    browser, use = picker.children
    browser.select(genome)
    use.click()
    assert fasta.value == {"datafile": genome} and fasta.input.value == f"flow://datafile/{genome}"
    assert not fasta.picker_area.children

    launcher.fields["input"].input.value = "samples.txt"  # the schema wants a .csv
    launcher.fields["barcodes"].set_value({"datafile": 999_999})  # not a file alice may read
    launcher.fields["min_quality"].input.value = 20
    execution = await to_thread(launcher.launch)

    assert execution is None and launcher.result.children == ()
    assert launcher.fields["input"].error_message
    assert launcher.fields["barcodes"].error_message == "No such data file."
    for quiet in ("fasta", "outdir", "min_quality", "multiqc_title"):
        assert launcher.fields[quiet].error_message == "", quiet
    assert "problem" in launcher.message.value
    assert launcher.params()["min_quality"] == 20

    launcher.fields["input"].input.value = "samples.csv"  # editing a field clears its error
    assert launcher.fields["input"].error_message == ""
    launcher.close()


# --- data files ---------------------------------------------------------------------------------------------

async def test_the_data_browser_pages_with_cursors_filters_and_returns_the_selected_data_files(
        connect_as, jp_serverapp) -> None:
    alice, bob = connect_as("alice"), connect_as("bob")
    reads = await to_thread(alice.create_project, "reads")
    refs = await to_thread(alice.create_project, "refs")
    s1 = await to_thread(reads.create_sample, "S1")
    s2 = await to_thread(reads.create_sample, "S2")
    ids = {}
    for name, sample in [("S1_R1.fastq", s1), ("S1_R2.fastq", s1), ("S1_extra.fastq", s1), ("S1_notes.txt", s1),
                         ("S2_R1.fastq", s2), ("S2_R2.fastq", s2), ("pool.fastq", None)]:
        ids[name] = add_file(jp_serverapp, "alice", reads.id, name, sample=sample.id if sample else None)
    ids["genome.fa"] = add_file(jp_serverapp, "alice", refs.id, "genome.fa")

    browser = await to_thread(DataBrowser, alice, page_size=3)
    assert [label for label, _ in browser.project_picker.options] == ["All projects", "reads", "refs"]
    assert len(browser.files) == 3 and browser.has_next and browser.previous_button.disabled
    seen = [f.id for f in browser.files]
    await to_thread(browser.next_page)
    seen += [f.id for f in browser.files]
    await to_thread(browser.next_page)
    seen += [f.id for f in browser.files]
    assert sorted(seen) == sorted(ids.values()) and not browser.has_next and browser.next_button.disabled
    assert "page 3" in browser.page_label.value
    await to_thread(browser.previous_page)
    assert browser.page_number == 1 and [f.id for f in browser.files] == seen[3:6]

    await to_thread(browser.set_filters, project="reads", name="S1_")
    assert browser.page_number == 0
    assert {f.filename for f in browser.files} | {f.filename for f in await to_thread(
        lambda: (browser.next_page(), browser.files)[1])} == {"S1_R1.fastq", "S1_R2.fastq", "S1_extra.fastq",
                                                               "S1_notes.txt"}
    await to_thread(browser.set_filters, name="", sample="S2")
    assert [label for label, _ in browser.sample_picker.options] == ["All samples", "S1", "S2"]
    assert {f.filename for f in browser.files} == {"S2_R1.fastq", "S2_R2.fastq"} and not browser.has_next

    browser.select(ids["S2_R2.fastq"], "S2_R1.fastq")
    chosen = browser.selected
    assert {f.id for f in chosen} == {ids["S2_R1.fastq"], ids["S2_R2.fastq"]}
    assert all(f.project == reads.id and f.sample == s2.id for f in chosen)

    nothing = await to_thread(DataBrowser, bob)  # the server decides what a browser may list
    assert nothing.files == [] and "No data files" in nothing.message.value
    assert [label for label, _ in nothing.project_picker.options] == ["All projects"]


async def test_the_uploader_streams_a_path_with_progress_and_states_the_browser_limit(connect_as, tmp_path) -> None:
    alice = connect_as("alice")
    project = await to_thread(alice.create_project, "uploads")
    reads = tmp_path / "S1_R1.fastq"
    reads.write_bytes(b"@r1\nACGT\n+\nIIII\n" * 50_000)  # ~900 kB: several progress updates
    uploader = await to_thread(Uploader, alice, project="uploads", browser_limit=1000)
    assert "1000 B per file" in uploader.browser_note.value and "path" in uploader.browser_note.value
    updates = []
    uploader.progress.observe(lambda change: updates.append(change["new"]), names="value")

    uploader.path.value = str(reads)
    uploaded = await to_thread(uploader.upload_path, uploader.path.value)

    assert uploaded.filename == "S1_R1.fastq" and uploaded.size == reads.stat().st_size
    assert uploaded.project == project.id and uploader.uploaded == [uploaded]
    assert uploader.progress.value == 1.0 and uploader.progress.bar_style == "success" and updates
    assert f"#{uploaded.id}" in uploader.status.value

    small = {"name": "barcodes.csv", "size": 12, "content": memoryview(b"NNNGGTTNN:b1")}
    large = {"name": "big.fastq", "size": 5000, "content": memoryview(b"@" * 5000)}
    done = await to_thread(uploader.upload_browser_files, [large, small])
    assert [d.filename for d in done] == ["barcodes.csv"]
    assert (await to_thread(done[0].read_bytes)) == b"NNNGGTTNN:b1"
    names = {f.filename for f in await to_thread(alice.files, project=project.id)}
    assert names == {"S1_R1.fastq", "barcodes.csv"}

    with pytest.raises(FileNotFoundError):
        await to_thread(uploader.upload_path, str(tmp_path / "missing.fastq"))
    assert "No such file" in uploader.status.value


# --- following a real run -----------------------------------------------------------------------------------

@pytest.mark.nextflow
async def test_a_run_launched_from_the_form_is_followed_cancelled_resumed_and_its_report_shown(
        connect_as, api, jp_serverapp, tmp_path) -> None:
    added = await api.owner.post("pipelines", {"source": str(_repo(tmp_path / "tiny", {"tower.yml": TOWER},
                                                                   source=TINY_PIPELINE)), "ref": "v1.0"})
    assert added.code == 201, added.json
    alice = connect_as("alice")
    project = await to_thread(alice.create_project, "runs")
    names = add_file(jp_serverapp, "alice", project.id, "names.txt", b"Ada\nGrace\nLinus\n")

    launcher = await to_thread(PipelineLauncher, "tiny", client=alice, project=project.id, backend="local")
    assert set(launcher.visible_fields) == {"names", "greeting", "outdir"}  # no schema: a field per param
    launcher.fields["names"].input.value = f"datafile:{names}"
    launcher.fields["greeting"].input.value = "Hi"
    run = await to_thread(launcher.launch)

    monitor = launcher.monitor
    assert run is not None and isinstance(monitor, ExecutionMonitor) and monitor.execution.id == run.id
    assert run.params == {"names": {"datafile": names}, "greeting": "Hi"}
    assert monitor.polling  # a daemon thread here (no event loop in this thread); the kernel's loop in a notebook
    await until(lambda: not monitor.polling)  # it stops by itself once the run has ended

    assert monitor.status == "succeeded" and "succeeded" in monitor.status_line.value
    assert (monitor.progress.value, monitor.progress.max) == (4, 4) and monitor.progress.bar_style == "success"
    assert monitor.process_progress == {"GREET": (3, 3), "JOIN": (1, 1)}
    assert monitor.task_table.value.count("GREET") == 3 and "succeeded" in monitor.task_table.value
    assert "nextflow" in monitor.log_text.lower() and monitor.log_view.value.startswith("<pre")
    assert monitor.cancel_button.disabled and not monitor.resume_button.disabled
    assert run.status == "succeeded", "the monitor keeps the user's Execution object current"
    assert await to_thread(monitor.refresh) is False  # nothing left to follow

    viewer = await to_thread(ReportViewer, run)
    assert [r["path"] for r in viewer.reports] == ["results/all.txt"]
    assert viewer.src == f"{alice.endpoint.api_path}executions/{run.id}/reports/results/all.txt"
    assert viewer.src.startswith(jp_serverapp.base_url)
    assert 'sandbox="allow-scripts allow-popups allow-downloads"' in viewer.frame.value
    assert f'src="{viewer.src}"' in viewer.frame.value
    served = await to_thread(requests.get, alice.endpoint.origin + viewer.src, timeout=30,
                             headers={"Authorization": f"token {jp_serverapp.identity_provider.token}",
                                      TEST_USER_HEADER: "alice"})
    assert served.status_code == 200 and served.content == b"Hi, Ada!\nHi, Grace!\nHi, Linus!\n"
    assert "sandbox" in served.headers["Content-Security-Policy"]

    watcher = await to_thread(ExecutionMonitor, run.id, alice)
    assert not watcher.polling  # a finished run is shown once, not polled
    watcher.close()

    await to_thread(monitor.resume_button.click)  # the button calls the API: a new execution, followed here
    resumed = monitor.execution
    assert resumed.id != run.id and monitor.resumed_from == [run.id] and "Resumed as" in monitor.message.value
    assert monitor.polling and not monitor.cancel_button.disabled
    second = await to_thread(ExecutionMonitor, resumed.id, alice)
    assert second.polling
    second.close()  # closing the widget stops its polling
    await until(lambda: not second.polling, timeout=10)
    await to_thread(monitor.cancel_button.click)
    assert "Cancel requested" in monitor.message.value
    await until(lambda: not monitor.polling)
    assert monitor.status == "cancelled", monitor.detail
    detail = (await api.as_user("alice").get(f"executions/{resumed.id}")).json
    assert detail["status"] == "cancelled" and detail["session_id"] == run.session_id

    sweep = await to_thread(SweepMonitor, [run, resumed], autostart=False)
    assert sweep.finished and (sweep.progress.value, sweep.progress.max) == (2, 2)
    assert "1 cancelled, 1 succeeded" in sweep.header.value and sweep.cancel_button.disabled
    monitor.close()
    assert not monitor.polling


async def test_the_dashboard_combines_browser_uploader_launcher_and_recent_executions(connect_as) -> None:
    alice = connect_as("alice")
    await to_thread(alice.create_project, "lab")

    tab = await to_thread(dashboard, alice)

    assert tab.titles == ("Data", "Upload", "Launch", "Executions")
    browser, uploader, launcher, recent = tab.children
    assert isinstance(browser, DataBrowser) and isinstance(uploader, Uploader)
    assert isinstance(launcher, PipelineLauncher) and launcher.pipeline == "demo" and "input" in launcher.fields
    assert launcher.project_picker.label == "lab" and uploader.project_picker.label == "lab"
    assert recent.executions == [] and "No executions yet" in recent.listing.value


async def test_the_poller_runs_on_the_event_loop_fetching_on_a_worker_thread_until_told_to_stop() -> None:
    import threading

    loop_thread = threading.get_ident()
    fetched_on, applied_on, rounds = [], [], []

    def fetch() -> int:
        fetched_on.append(threading.get_ident())
        return len(rounds)

    def apply(count: int) -> bool:
        applied_on.append(threading.get_ident())
        rounds.append(count)
        return count < 2  # a run that ends on the third round

    poller = Poller(fetch, apply, interval=0.01)
    poller.start()
    assert poller.mode == "asyncio" and poller.running
    await until(lambda: not poller.running, timeout=10)
    assert rounds == [0, 1, 2]
    assert set(applied_on) == {loop_thread} and loop_thread not in fetched_on

    endless_rounds = []

    def keep_going(_) -> bool:
        endless_rounds.append(None)
        return True

    endless = Poller(lambda: None, keep_going, interval=0.01)
    endless.start()
    await until(lambda: len(endless_rounds) >= 2, timeout=10)
    endless.stop()  # what closing a widget does
    await until(lambda: not endless.running, timeout=10)
