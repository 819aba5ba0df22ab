"""The researcher's path through the HTTP API with the bundled demo pipeline and real tools: upload demo FASTQ and
a reference (tus), build and save a sample sheet that names the uploads, launch, follow the run to `succeeded`, list
its tasks, find its outputs as data files, open the MultiQC report (sandboxed), read MultiQC's numbers and download
the logs. On Slurm (SQLite and PostgreSQL) and on the local backend."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_executions_api import TERMINAL, wait_for

from flow_jupyter.pipelines.demo_data import write_demo_data

READS = 300
TUS = {"Tus-Resumable": "1.0.0"}


async def upload(user, path: Path, project: int) -> int:
    """One file through the tus API, in two chunks: what any tus client does."""
    data = path.read_bytes()
    meta = ",".join(f"{key} {base64.b64encode(str(value).encode()).decode()}"
                    for key, value in {"filename": path.name, "project": project}.items())
    created = await user.request("POST", "uploads", raw=b"", headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    assert created.code == 201, created.body
    upload_id = created.headers["Location"].rsplit("/", 1)[1]
    half = len(data) // 2
    for offset, chunk in ((0, data[:half]), (half, data[half:])):
        sent = await user.request("PATCH", f"uploads/{upload_id}", raw=chunk, headers={
            **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
        assert sent.code == 204, sent.body
    return int(sent.headers["Flow-DataFile-Id"])


async def run_demo(api, tmp_path: Path, backend: str) -> None:
    alice = api.as_user("alice")
    project = (await alice.post("projects", {"name": "demo"})).json["id"]
    demo = write_demo_data(tmp_path / "demo", reads_per_sample=READS)
    ids = {key: await upload(alice, demo[key], project)
           for key in ("fasta", "sample1_1", "sample1_2", "sample2_1", "sample2_2")}
    version = (await alice.get("pipelines/demo")).json["default_version"]

    rows = [{"sample": name, "fastq_1": f"flow://datafile/{ids[name + '_1']}",
             "fastq_2": f"flow://datafile/{ids[name + '_2']}"} for name in ("sample1", "sample2")]
    sheet = await alice.post(f"pipelines/demo/versions/{version}/samplesheet",
                             {"rows": rows, "save": {"project": project, "filename": "samplesheet.csv"}})
    assert sheet.code == 200, sheet.json
    launched = await alice.post("executions", {
        "pipeline": "demo", "project": project, "backend": backend,
        "params": {"input": {"datafile": sheet.json["datafile"]["id"]}, "fasta": {"datafile": ids["fasta"]},
                   "multiqc_title": "Demo run"}})
    assert launched.code == 201, launched.json
    execution = launched.json["id"]

    detail = await wait_for(alice, execution, TERMINAL, timeout=900)
    assert detail["status"] == "succeeded", (detail, (await alice.get(f"executions/{execution}/log")).json["text"])
    tasks = (await alice.get(f"executions/{execution}/tasks", limit=200)).json["items"]
    processes = {task["process"] for task in tasks}
    assert {"FASTQC", "BOWTIE2_BUILD", "BOWTIE2_ALIGN", "MULTIQC"} <= processes, processes
    assert {task["status"] for task in tasks} == {"succeeded"}
    if backend == "slurm":
        assert all(task["native_id"].isdigit() for task in tasks), tasks

    outputs = (await alice.get("files", execution=execution, limit=500)).json["items"]
    names = {item["filename"] for item in outputs}
    assert {"multiqc_report.html", "multiqc_data.json"} <= names, names
    assert any(name.endswith(".bam") for name in names), names
    assert all(item["origin"] == "output" and item["project"] == project for item in outputs)

    reports = (await alice.get(f"executions/{execution}/reports")).json["items"]
    assert [r["display"] for r in reports] == ["MultiQC HTML report"], reports
    assert reports[0]["url"] == f"executions/{execution}/reports/{reports[0]['path']}"  # relative to the API root
    page = await alice.get(reports[0]["url"])
    assert page.code == 200
    assert page.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert "allow-same-origin" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Content-Type"].startswith("text/html")
    assert b"MultiQC" in page.body and b"localStorage" in page.body[:4096]  # the sandbox's storage shim leads
    elsewhere = await alice.get(f"executions/{execution}/reports/params.json")
    assert elsewhere.code == 404  # only reports are served, never other files of the run

    data = await alice.get(f"executions/{execution}/multiqc_data.json")
    assert data.code == 200 and data.headers["X-Content-Type-Options"] == "nosniff"
    stats = json.loads(data.body)["report_general_stats_data"]
    assert stats, "MultiQC's general statistics are there for notebooks"

    nextflow_log = await alice.get(f"executions/{execution}/logs/nextflow")
    head_log = await alice.get(f"executions/{execution}/logs/head")
    assert nextflow_log.code == 200 and b"Execution complete" in nextflow_log.body
    assert "attachment" in nextflow_log.headers["Content-Disposition"]
    assert head_log.code == 200
    assert (await api.as_user("bob").get(f"executions/{execution}/reports")).code == 404


@pytest.mark.nextflow
@pytest.mark.slurm
async def test_the_demo_pipeline_on_slurm_from_upload_to_sandboxed_multiqc_report(api, tmp_path, slurm_cluster) -> None:
    await run_demo(api, tmp_path, "slurm")


@pytest.mark.nextflow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_demo_pipeline_on_the_local_backend(api, tmp_path) -> None:
    await run_demo(api, tmp_path, "local")
