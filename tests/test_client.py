"""The Python client (flow_jupyter.client) against the real Jupyter server with Flow: projects, uploads and
downloads that come back identical, the server's errors as FlowError, sample sheets paired from uploaded reads,
real Nextflow runs launched, followed, read, resumed, cancelled and swept over a grid — plus unit stories for
server discovery, retries, provenance and display with small fakes.

The server runs on the test's event loop, so every blocking client call goes through ``asyncio.to_thread``. The
client only speaks HTTP, so these stories run on SQLite alone (the API's own tests cover PostgreSQL).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from conftest import TEST_USER_HEADER, TINY_PIPELINE
from test_executions_api import SLEEP_MAIN, _repo

from flow_jupyter.client import DataFile, FlowClient, FlowError, compare, discover
from flow_jupyter.client.discovery import api_url_of
from flow_jupyter.client.http import Transport
from flow_jupyter.client.provenance import capture
from flow_jupyter.client.samplesheet import read_name
from flow_jupyter.client.settings import FlowClientSettings

MiB = 1024 * 1024
to_thread = asyncio.to_thread


@pytest.fixture
def database_url(flow_root: Path) -> str:
    """SQLite only (overrides conftest's SQLite + PostgreSQL pair)."""
    return f"sqlite:///{flow_root / 'flow.sqlite'}"


@pytest.fixture
def connect_as(jp_serverapp, jp_fetch):
    """A FlowClient for a test user, pointed at the test server the way a user would: its URL and token."""
    def connect(user: str, **settings) -> FlowClient:
        return FlowClient(jp_serverapp.connection_url, jp_serverapp.identity_provider.token,
                          headers={TEST_USER_HEADER: user}, **settings)

    return connect


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- projects, uploads, downloads -----------------------------------------------------------------------------

async def test_a_file_goes_up_in_chunks_and_comes_back_identical(connect_as, tmp_path: Path) -> None:
    alice = connect_as("alice")
    source = tmp_path / "S1_R1.fastq.gz"
    source.write_bytes(os.urandom(3 * MiB + 123))

    project = await to_thread(alice.create_project, "RNA-seq", "liver samples")
    sample = await to_thread(project.create_sample, "S1", {"tissue": "liver"})
    uploaded = await to_thread(alice.upload, source, project, sample=sample, progress=False, chunk_size=MiB)

    assert (uploaded.filename, uploaded.type, uploaded.size) == ("S1_R1.fastq.gz", "fastq", source.stat().st_size)
    assert (uploaded.project, uploaded.sample, uploaded.origin) == (project.id, sample.id, "upload")
    assert (uploaded.owner_name, uploaded.execution) == ("alice", None) and uploaded.owner_id == project.owner_id
    assert uploaded.sha256 == sha256_of(source)
    assert [p.name for p in await to_thread(alice.projects)] == ["RNA-seq"]
    assert (await to_thread(alice.project, "RNA-seq")).access == "admin"
    assert [s.name for s in await to_thread(project.samples)] == ["S1"]
    page = await to_thread(alice.files, project=project.id)
    assert [f.id for f in page] == [uploaded.id] and page.next is None
    assert [f.id for f in await to_thread(lambda: list(alice.iter_files(sample=sample)))] == [uploaded.id]
    assert uploaded.url.endswith(f"/flow/api/files/{uploaded.id}/content") and "a%40b" in uploaded.url

    downloaded = await to_thread(uploaded.download, tmp_path / "back", False)
    assert downloaded == tmp_path / "back" and sha256_of(downloaded) == uploaded.sha256
    assert await to_thread(uploaded.read_bytes) == source.read_bytes()

    empty = tmp_path / "empty.fq"
    empty.touch()
    nothing = await to_thread(project.upload, empty, progress=False)
    assert (nothing.size, nothing.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert (await to_thread(nothing.download, tmp_path / "empty-back.fq", False)).read_bytes() == b""


async def test_a_download_resumes_from_its_partial_file_and_refuses_a_corrupt_one(connect_as, tmp_path) -> None:
    alice = connect_as("alice")
    source = tmp_path / "reads.fq"
    source.write_bytes(os.urandom(2 * MiB))
    project = await to_thread(alice.create_project, "resume")
    uploaded = await to_thread(alice.upload, source, project, progress=False)
    into = tmp_path / "into"
    into.mkdir()

    (into / "reads.fq.part").write_bytes(source.read_bytes()[:MiB])  # an earlier download, interrupted
    resumed = await to_thread(uploaded.download, into, False)
    assert resumed == into / "reads.fq" and sha256_of(resumed) == uploaded.sha256
    assert not (into / "reads.fq.part").exists()

    (into / "other.fq.part").write_bytes(b"\0" * MiB)  # a partial file whose bytes are wrong
    with pytest.raises(FlowError) as refused:
        await to_thread(uploaded.download, into / "other.fq", False)
    assert refused.value.reason == "checksum_mismatch"
    assert not (into / "other.fq").exists() and not (into / "other.fq.part").exists()


async def test_server_errors_arrive_with_their_reason_and_field(connect_as, tmp_path: Path) -> None:
    alice, bob = connect_as("alice"), connect_as("bob")
    source = tmp_path / "notes.txt"
    source.write_text("private\n")
    project = await to_thread(alice.create_project, "secret")
    private = await to_thread(alice.upload, source, project, progress=False)

    with pytest.raises(FlowError) as unknown:
        await to_thread(alice.create_project, "x", colour="red")
    with pytest.raises(FlowError) as hidden:
        await to_thread(bob.file, private.id)
    with pytest.raises(FlowError) as not_bobs:
        await to_thread(bob.upload, source, project.id, progress=False)
    with pytest.raises(FlowError) as no_name:
        await to_thread(alice.project, "no such project")

    assert (unknown.value.status, unknown.value.reason, unknown.value.field) == (400, "unknown_field", "/colour")
    assert (hidden.value.status, hidden.value.reason) == (404, "not_found")
    assert (not_bobs.value.status, not_bobs.value.reason) == (404, "not_found")
    assert no_name.value.reason == "not_found" and no_name.value.field == "/project"
    assert "colour" in str(unknown.value)


# --- sample sheets --------------------------------------------------------------------------------------------

async def test_a_sample_sheet_pairs_uploaded_reads_and_the_server_checks_it(connect_as, tmp_path: Path) -> None:
    alice = connect_as("alice")
    project = await to_thread(alice.create_project, "sheet")
    reads = {}
    for name in ["A_S1_L001_R1_001.fastq.gz", "A_S1_L001_R2_001.fastq.gz", "B_1.fq.gz", "B_2.fq.gz", "C.fastq.gz"]:
        path = tmp_path / name
        path.write_bytes(b"@r\nACGT\n+\nIIII\n")
        reads[name] = await to_thread(alice.upload, path, project, progress=False)

    sheet = await to_thread(alice.samplesheet, "demo", list(reads.values()))

    ref = {name: f"flow://datafile/{datafile.id}" for name, datafile in reads.items()}
    assert sheet.frame.to_dict(orient="records") == [
        {"sample": "A", "fastq_1": ref["A_S1_L001_R1_001.fastq.gz"], "fastq_2": ref["A_S1_L001_R2_001.fastq.gz"]},
        {"sample": "B", "fastq_1": ref["B_1.fq.gz"], "fastq_2": ref["B_2.fq.gz"]},
        {"sample": "C", "fastq_1": ref["C.fastq.gz"], "fastq_2": None},
    ]
    assert await to_thread(sheet.validate) == []

    sheet.frame.loc[1, "sample"] = "B and more"
    sheet.frame.loc[2, "fastq_2"] = "flow://datafile/999999"
    problems = await to_thread(sheet.validate)
    assert [(p["row"], p["column"]) for p in problems] == [(2, "sample"), (3, "fastq_2")]
    assert "letters, digits" in problems[0]["message"] and problems[1]["message"] == "No such data file."
    with pytest.raises(FlowError) as refused:
        await to_thread(sheet.save, project)
    assert refused.value.reason == "invalid_samplesheet" and len(refused.value.errors) == 2

    sheet.frame.loc[1, "sample"] = "B"
    sheet.frame.loc[2, "fastq_2"] = None
    saved = await to_thread(sheet.save, project, "sheet.csv")
    assert (saved.filename, saved.type, saved.project) == ("sheet.csv", "csv", project.id)
    lines = (await to_thread(saved.read_text)).splitlines()
    assert lines[0] == "sample,fastq_1,fastq_2" and lines[3] == f"C,{ref['C.fastq.gz']},"


def test_read_names_pair_by_stem_and_mate() -> None:
    assert read_name("S1_R1_001.fastq.gz") == ("S1", 1)
    assert read_name("S1_2.fq") == ("S1", 2)
    assert read_name("lib.R2.fastq") == ("lib", 2)
    assert read_name("sample_12.fastq.gz") == ("sample_12", None)
    assert read_name("notes.txt") == ("notes", None)


# --- executions -----------------------------------------------------------------------------------------------

@pytest.fixture
def tiny(api, jp_asyncio_loop, tmp_path: Path) -> str:
    """The tiny test pipeline, registered by the server's owner (the admin)."""
    added = jp_asyncio_loop.run_until_complete(api.owner.post(
        "pipelines", {"source": str(_repo(tmp_path / "tiny", source=TINY_PIPELINE)), "ref": "v1.0"}))
    assert added.code == 201, added.json
    return "tiny"


@pytest.mark.nextflow
async def test_a_run_launched_from_the_client_is_followed_read_and_resumed(connect_as, tiny, tmp_path) -> None:
    alice, bob = connect_as("alice", poll_interval=0.3), connect_as("bob")
    names = tmp_path / "names.txt"
    names.write_text("Ada\nGrace\nLinus\n")
    project = await to_thread(alice.create_project, "runs")
    names_file = await to_thread(project.upload, names, progress=False)
    pipeline = await to_thread(alice.pipeline, tiny)
    assert pipeline.versions == ["v1.0"] and pipeline.default_version == "v1.0"
    warnings = await to_thread(pipeline.validate, {"greeting": "Hi", "colour": "red"})
    assert [(w["field"], w["reason"]) for w in warnings] == [("/colour", "unknown_parameter")]

    run = await to_thread(pipeline.launch, {"names": names_file, "greeting": "Hi"}, project=project,
                          backend="local", provenance={"notebook": "analysis.ipynb", "cell": "c1"})
    assert run.status == "pending" and run.params["names"] == {"datafile": names_file.id}
    assert await to_thread(run.wait, 180, False) is run

    assert run.succeeded and run.finished and run.pipeline == "tiny" and run.version == "v1.0"
    assert run.progress["succeeded"] == 4
    assert await to_thread(run.provenance) == {"notebook": "analysis.ipynb", "cell": "c1"}
    tasks = await to_thread(lambda: run.tasks)
    assert sorted(tasks["process"]) == ["GREET", "GREET", "GREET", "JOIN"] and set(tasks["status"]) == {"succeeded"}
    assert str(tasks["finished_at"].dtype).startswith("datetime64")
    outputs = {f.filename: f for f in await to_thread(lambda: run.outputs)}
    assert set(outputs) == {"Ada.txt", "Grace.txt", "Linus.txt", "all.txt"}
    assert await to_thread(outputs["all.txt"].read_text) == "Hi, Ada!\nHi, Grace!\nHi, Linus!\n"
    log = await to_thread(run.logs)
    assert "nextflow" in log.lower() and (await to_thread(run.logs, len(log.encode()))) == ""
    assert (await to_thread(run.download_log, "nextflow", tmp_path)).read_text() == log
    assert await to_thread(run.reports) == []
    with pytest.raises(FlowError) as no_qc:
        await to_thread(run.multiqc)
    assert (no_qc.value.status, no_qc.value.reason) == (404, "no_multiqc_data")
    assert "succeeded" in run._repr_mimebundle_()["text/plain"]
    assert [e.id for e in await to_thread(alice.executions, project)] == [run.id]
    with pytest.raises(FlowError) as hidden:
        await to_thread(bob.execution, run.id)
    assert hidden.value.status == 404

    again = await to_thread(run.resume)
    await to_thread(again.wait, 180, False)
    assert again.succeeded and again.session_id == run.session_id
    assert set((await to_thread(lambda: again.tasks))["status"]) == {"cached"}
    assert again.resumed_from == run.id and {f.execution for f in outputs.values()} == {run.id}
    assert await to_thread(again.provenance) == {"notebook": "analysis.ipynb", "cell": "c1"}  # kept from the run
    differences = await to_thread(compare, run, again)
    assert differences["params"].empty and differences["versions"].loc["version"].tolist() == ["v1.0", "v1.0"]


QC_MAIN = '''nextflow.enable.dsl = 2
params.gc = 40
params.outdir = 'results'
process MULTIQC {
    publishDir "${params.outdir}/multiqc", mode: 'copy'
    output:
    path 'multiqc_report.html'
    path 'multiqc_data'
    script:
    def stats = '{"report_general_stats_data": {"fastqc": {"s1": {"percent_gc": ' + params.gc + '}}}}'
    """
    mkdir multiqc_data
    echo '${stats}' > multiqc_data/multiqc_data.json
    echo '<html><body>QC of s1</body></html>' > multiqc_report.html
    """
}
workflow { MULTIQC() }
'''


@pytest.mark.nextflow
async def test_a_sweep_runs_every_grid_point_and_compares_their_multiqc_numbers(api, connect_as, tmp_path) -> None:
    added = await api.owner.post("pipelines", {"source": str(_repo(tmp_path / "qc", {"main.nf": QC_MAIN})),
                                               "ref": "v1.0"})
    assert added.code == 201, added.json
    alice = connect_as("alice", poll_interval=0.3)
    project = await to_thread(alice.create_project, "sweep")

    sweep = await to_thread(alice.sweep, "qc", {}, {"gc": [40, 55]}, project=project, backend="local",
                            provenance={})
    await to_thread(sweep.wait, 240, False)

    table = sweep.frame()
    assert table["gc"].tolist() == [40, 55] and table["status"].tolist() == ["succeeded"] * 2
    low, high = sweep
    assert await to_thread(low.provenance) == {}
    reports = await to_thread(low.reports)
    assert [r["path"] for r in reports] == ["results/multiqc/multiqc_report.html"]
    url = await to_thread(low.report_url)
    assert url == f"/a%40b/flow/api/executions/{low.id}/reports/results/multiqc/multiqc_report.html"
    assert reports[0]["url"] == url  # the server's relative URL, resolved against the client's base URL
    tables = await to_thread(low.multiqc)
    assert tables["general_stats"].loc["s1", "fastqc-percent_gc"] == 40

    differences = await to_thread(compare, low, high)
    a, b = low.id[:8], high.id[:8]
    assert differences["params"].to_dict(orient="index") == {"gc": {a: 40, b: 55}}
    assert differences["general_stats"]["fastqc-percent_gc"].to_dict() == {(a, "s1"): 40, (b, "s1"): 55}
    assert differences["versions"].loc["pipeline"].tolist() == ["qc", "qc"]


@pytest.mark.nextflow
async def test_a_long_run_is_cancelled_from_the_client(api, connect_as, tmp_path) -> None:
    added = await api.owner.post("pipelines", {"source": str(_repo(tmp_path / "sleeper", {"main.nf": SLEEP_MAIN})),
                                               "ref": "v1.0"})
    assert added.code == 201, added.json
    alice = connect_as("alice", poll_interval=0.3)
    project = await to_thread(alice.create_project, "long")
    run = await to_thread(alice.launch, "sleeper", {}, project=project, backend="local", provenance={})

    for _ in range(180):  # until Nextflow runs the task (each wait returns after at most a second)
        await to_thread(run.wait, 1, False)
        if run.status not in ("pending", "submitted"):
            break
    assert run.status == "running"
    assert (await to_thread(run.cancel)) is run and run.cancel_requested
    await to_thread(run.wait, 120, False)

    assert run.status == "cancelled" and run.finished and not run.succeeded


async def test_bad_launches_are_refused_with_every_bad_field_and_nothing_runs(connect_as, tiny) -> None:
    alice = connect_as("alice")
    project = await to_thread(alice.create_project, "refused")

    with pytest.raises(FlowError) as refused:
        await to_thread(alice.launch, tiny, {"names": "../another-run/names.txt", "outdir": "/etc"}, project=project,
                        provenance={})
    with pytest.raises(FlowError) as no_project:
        await to_thread(alice.launch, tiny, {})

    assert refused.value.reason == "invalid_params", refused.value
    assert sorted(e["field"] for e in refused.value.errors) == ["/names", "/outdir"]
    assert no_project.value.field == "/project"
    assert await to_thread(alice.executions) == []


# --- discovery ------------------------------------------------------------------------------------------------

def fake_servers(*infos: dict):
    """list_running_servers as seen from a runtime directory: each info may name the directory it is in."""
    def list_servers(runtime_dir: str | None = None):
        return [dict(i) for i in infos if runtime_dir is None or i.get("runtime_dir") == runtime_dir]

    return list_servers


def server(port: int, root: Path, **extra) -> dict:
    return {"url": f"http://127.0.0.1:{port}/", "token": f"t{port}", "root_dir": str(root), "pid": 10**9 + port,
            **extra}


def test_an_explicit_url_wins_and_may_name_the_server_or_the_api() -> None:
    assert api_url_of("http://h:8888/base") == "http://h:8888/base/flow/api/"
    assert api_url_of("http://h:8888/base/flow/api") == "http://h:8888/base/flow/api/"
    assert api_url_of("http://0.0.0.0:8888/") == "http://127.0.0.1:8888/flow/api/"
    found = discover("http://h:8888/user/ada/", "secret", environ={"FLOW_API_URL": "http://hub/services/flow/"})
    assert (found.api_url, found.token, found.api_path) == ("http://h:8888/user/ada/flow/api/", "secret",
                                                             "/user/ada/flow/api/")
    borrowed = discover("http://127.0.0.1:9001", environ={}, servers=fake_servers(server(9001, Path("/srv"))))
    assert borrowed.token == "t9001"
    with pytest.raises(FlowError) as bad:
        discover("ftp://h/", environ={})
    assert bad.value.reason == "invalid_url"


def test_inside_jupyterhub_the_environment_names_the_flow_service() -> None:
    found = discover(environ={"FLOW_API_URL": "http://hub:8000/services/flow/", "JUPYTERHUB_API_TOKEN": "hub-t"},
                     servers=fake_servers(server(9001, Path("/srv"))))
    assert (found.api_url, found.token, found.source) == ("http://hub:8000/services/flow/flow/api/", "hub-t",
                                                           "environment")


def test_the_server_hosting_the_kernel_is_found_among_several(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "home" / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "notebooks" / "qc.ipynb").write_text("{}")
    a, b = server(9001, home, runtime_dir="/run/a"), server(9002, project, runtime_dir="/run/b")
    servers = fake_servers(a, b)

    def find(**kw) -> str:
        kw.setdefault("environ", {})
        kw.setdefault("cwd", "/elsewhere")
        kw.setdefault("connection_file", "")
        return discover(servers=kw.pop("servers", servers), **kw).api_url

    assert find(connection_file="/run/b/kernel-1.json") == "http://127.0.0.1:9002/flow/api/"
    assert find(environ={"JPY_SESSION_NAME": str(project / "notebooks" / "qc.ipynb")}) == \
        "http://127.0.0.1:9002/flow/api/"  # the deepest root holding the notebook
    assert find(environ={"JPY_SESSION_NAME": "notebooks/qc.ipynb"}) == "http://127.0.0.1:9002/flow/api/"
    assert find(cwd=str(home)) == "http://127.0.0.1:9001/flow/api/"
    assert find(servers=fake_servers(a)) == "http://127.0.0.1:9001/flow/api/"  # the only one running
    parent = discover(environ={}, cwd="/elsewhere", connection_file="",
                      servers=fake_servers(a, {**b, "pid": os.getppid()}))
    assert (parent.api_url, parent.token, parent.root_dir) == ("http://127.0.0.1:9002/flow/api/", "t9002",
                                                               str(project))
    with pytest.raises(FlowError) as ambiguous:
        find()
    with pytest.raises(FlowError) as none:
        find(servers=fake_servers(server(9003, home, sock="/run/jupyter.sock")))
    assert (ambiguous.value.reason, none.value.reason) == ("ambiguous_server", "no_server")


# --- retries --------------------------------------------------------------------------------------------------

class FakeSession:
    """Answers from a script: each entry is a (status, headers, body) triple or an exception to raise."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs["headers"]))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        status, headers, body = step
        response = requests.Response()
        response.status_code, response.url = status, url
        response.headers.update(headers)
        response._content = json.dumps(body).encode() if body is not None else b""
        response._content_consumed = True
        return response

    def close(self) -> None:
        pass


def transport(*script, **settings) -> tuple[Transport, FakeSession, list[float]]:
    session, slept = FakeSession(*script), []
    endpoint = discover("http://flow.test/base/", "tok", environ={})
    return (Transport(endpoint, FlowClientSettings(**settings), session=session, sleep=slept.append,
                      headers={"X-Extra": "1"}), session, slept)


def refused_connection() -> requests.ConnectionError:
    import urllib3

    cause = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", cause))


def test_reads_back_off_exponentially_and_honour_retry_after() -> None:
    http, session, slept = transport(refused_connection(), (502, {}, None), (503, {"Retry-After": "7"}, None),
                                     requests.ReadTimeout("slow"), (200, {}, {"items": []}))

    assert http.get("projects", name=None) == {"items": []}

    assert slept == [0.5, 1.0, 7.0, 4.0]
    method, url, headers = session.calls[0]
    assert (method, url) == ("GET", "http://flow.test/base/flow/api/projects")
    assert headers["Authorization"] == "token tok" and headers["X-Extra"] == "1"


def test_retries_stop_after_the_budget_and_pauses_are_capped() -> None:
    http, session, slept = transport(*[(504, {"Retry-After": "100"}, None)] * 4, retries=3, max_backoff=5)
    with pytest.raises(FlowError) as gave_up:
        http.get("health")
    assert gave_up.value.status == 504 and gave_up.value.reason == "gateway_timeout" and slept == [5, 5, 5]


def test_a_post_is_repeated_only_when_the_server_cannot_have_seen_it() -> None:
    http, session, slept = transport(refused_connection(), (503, {}, None), (201, {}, {"id": 1}))
    assert http.post("projects", {"name": "x"}) == {"id": 1} and len(session.calls) == 3

    http, session, slept = transport(requests.ReadTimeout("sent, no answer"))
    with pytest.raises(FlowError) as lost:
        http.post("executions", {"pipeline": "tiny"})
    assert lost.value.reason == "unreachable" and len(session.calls) == 1 and slept == []

    http, session, slept = transport((504, {}, None))
    with pytest.raises(FlowError) as timeout:
        http.post("executions", {"pipeline": "tiny"})
    assert timeout.value.status == 504 and len(session.calls) == 1

    kept = {"error": {"reason": "scheduler_unavailable", "message": "Slurm is not reachable."},
            "execution": {"id": "0f3c", "status": "pending"}}
    http, session, slept = transport((503, {"Content-Type": "application/json", "Retry-After": "10"}, kept))
    with pytest.raises(FlowError) as stored:  # Flow itself answered: the launch exists, never send it again
        http.post("executions", {"pipeline": "tiny"})
    assert stored.value.reason == "scheduler_unavailable" and len(session.calls) == 1 and slept == []
    assert stored.value.body["execution"]["id"] == "0f3c"


def test_error_bodies_become_flow_errors_with_every_detail() -> None:
    errors = [{"field": "/a", "reason": "type", "message": "bad a"}, {"field": "/b", "reason": "enum",
                                                                      "message": "bad b"}]
    http, _, slept = transport((400, {}, {"error": {"reason": "invalid_params", "message": "2 parameter(s) are "
                                                    "not valid.", "field": "/a", "errors": errors}}))
    with pytest.raises(FlowError) as refused:
        http.post("executions", {})
    assert (refused.value.status, refused.value.reason, refused.value.field) == (400, "invalid_params", "/a")
    assert refused.value.errors == errors and slept == []

    http, _, _ = transport((500, {}, None))
    with pytest.raises(FlowError) as crashed:
        http.get("projects")
    assert (crashed.value.status, crashed.value.reason) == (500, "internal_error")


# --- provenance -----------------------------------------------------------------------------------------------

def fake_shell(parent: dict, history: list[str] = ()) -> SimpleNamespace:
    return SimpleNamespace(kernel=SimpleNamespace(get_parent=lambda: parent),
                           history_manager=SimpleNamespace(input_hist_raw=list(history)))


def test_provenance_is_the_notebook_and_cell_running_now(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "work" / "qc.ipynb"))
    jupyterlab = fake_shell({"metadata": {"cellId": "8f2c"}, "content": {"code": "run = flow.launch(...)"}})
    classic = fake_shell({"metadata": {}, "content": {"code": "run = flow.launch(...)"}})
    bare = fake_shell({}, history=["x = 1", "run = flow.launch(...)"])

    assert capture(root_dir=str(tmp_path), shell=jupyterlab) == {"notebook": "work/qc.ipynb", "cell": "8f2c"}
    digest = "sha256:" + hashlib.sha256(b"run = flow.launch(...)").hexdigest()
    assert capture(shell=classic)["cell"] == digest and capture(shell=bare)["cell"] == digest
    assert capture() == {}  # no kernel here: nothing is made up


def test_sessions_name_the_notebook_when_the_environment_does_not(monkeypatch) -> None:
    from flow_jupyter.client import provenance

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setattr("flow_jupyter.client.discovery.kernel_connection_file", lambda: "/run/kernel-abc.json")
    sessions = [{"path": "other.ipynb", "kernel": {"id": "zzz"}}, {"path": "qc.ipynb", "kernel": {"id": "abc"}}]
    assert provenance.notebook_path(sessions=lambda: sessions) == "qc.ipynb"


def test_importing_the_client_never_imports_the_server() -> None:
    import subprocess
    import sys

    code = ("import sys, flow_jupyter.client as c; c.FlowError; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tornado', 'jupyter_server', 'sqlalchemy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_datafiles_in_params_become_references() -> None:
    from flow_jupyter.client import to_params

    reads = DataFile(id=7, filename="r.fq")
    assert to_params({"input": reads, "files": [reads, Path("/x")], "n": 3}) == {
        "input": {"datafile": 7}, "files": [{"datafile": 7}, "/x"], "n": 3}



def test_health_is_an_answer_even_when_a_component_fails() -> None:
    failing = {"status": "fail", "failing": ["slurm"], "components": {"slurm": {"ok": False}}}
    session = FakeSession((503, {}, failing))
    client = FlowClient("http://flow.test/", "tok", session=session)
    assert client.health() == failing and len(session.calls) == 1


def test_connect_keeps_one_default_client_until_told_otherwise(monkeypatch) -> None:
    from flow_jupyter.client import connect

    monkeypatch.setattr("flow_jupyter.client.api._default", None)
    first = connect(url="http://flow.test/", token="a")
    assert connect() is first
    second = connect(url="http://other.test/", token="b")
    assert second is not first and connect() is second and second.url == "http://other.test/flow/api/"


def test_without_the_widgets_a_run_shows_a_text_summary(monkeypatch, capsys) -> None:
    import sys

    from flow_jupyter.client import Execution

    monkeypatch.setitem(sys.modules, "flow_jupyter.widgets", None)  # `from flow_jupyter.widgets import …` fails
    monkeypatch.setattr("flow_jupyter.client.display._factories", {})  # none registered by an earlier import
    registry = SimpleNamespace(version_info=lambda version: {"pipeline": "tiny", "ref": "v1.0"})
    run = Execution.from_json(registry, {"id": "0f3c", "status": "failed", "pipeline_version": 1,
                                         "error": "GREET exited with 1", "progress": {"succeeded": 2, "failed": 1}})
    run._ipython_display_()
    shown = capsys.readouterr().out
    assert "0f3c (tiny v1.0): failed" in shown and "2 succeeded, 1 failed" in shown and "GREET exited" in shown
    assert "<table>" in run._repr_mimebundle_()["text/html"]
