"""Reports: a researcher's run produced FastQC + MultiQC output; Flow finds the reports, reads the numbers, serves
the HTML sandboxed. Uses real FastQC and real MultiQC once per module (they take a few seconds)."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flow_jupyter.reports import (
    MultiQCDataError, find_reports, general_stats, load_multiqc_data, report_globs, report_headers, sandbox_html,
)

CORPUS = Path(__file__).parent / "corpus" / "nf-schemas"
SAMPLES = ("sampleA", "sampleB")


def _multiqc_exe() -> str:
    """MultiQC from the interpreter's own venv first, then PATH."""
    beside = Path(sys.executable).parent / "multiqc"
    return str(beside) if beside.exists() else (shutil.which("multiqc") or "multiqc")


def _write_fastq(path: Path, seed: int) -> None:
    """2000 random 50 bp reads; a '5' quality every 10th read keeps FastQC on Sanger/phred33 (all-'I' looks phred64)."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(2000):
            seq = "".join(rng.choice("ACGT") for _ in range(50))
            qual = "I" * 49 + ("5" if i % 10 == 0 else "I")
            fh.write(f"@read{i}\n{seq}\n+\n{qual}\n")


@pytest.fixture(scope="module")
def run_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run's outdir laid out like the demo pipeline: fastqc/ and multiqc/ with real tool output."""
    outdir = tmp_path_factory.mktemp("run") / "results"
    fastqc_dir, reads = outdir / "fastqc", outdir.parent / "reads"
    fastqc_dir.mkdir(parents=True)
    reads.mkdir()
    for seed, name in enumerate(SAMPLES, 1):
        _write_fastq(reads / f"{name}.fastq", seed)
    env = {**os.environ, "JAVA_TOOL_OPTIONS": "-Xmx512m"}
    subprocess.run(["fastqc", "-q", "-o", str(fastqc_dir), *(str(reads / f"{n}.fastq") for n in SAMPLES)],
                   check=True, env=env, capture_output=True, timeout=300)
    subprocess.run([_multiqc_exe(), "-f", "--no-version-check", "-o", str(outdir / "multiqc"), str(fastqc_dir)],
                   check=True, capture_output=True, timeout=300)
    return outdir


def _tower(name: str) -> dict:
    return yaml.safe_load((CORPUS / name / "tower.yml").read_text())


def test_a_pipeline_without_tower_yml_still_shows_its_multiqc_report(run_outdir: Path) -> None:
    found = find_reports(run_outdir, report_globs(None))
    assert [f.path for f in found] == ["multiqc/multiqc_report.html"]
    assert found[0].display == "MultiQC HTML report" and found[0].mimetype == "text/html"
    assert found[0].size == (run_outdir / "multiqc" / "multiqc_report.html").stat().st_size > 100_000


def test_a_bare_file_name_matches_at_any_depth_for_every_corpus_pipeline(run_outdir: Path) -> None:
    towers = sorted(p.parent.name for p in CORPUS.glob("*/tower.yml"))
    assert len(towers) >= 8
    for name in towers:
        specs = report_globs(_tower(name))
        paths = [f.path for f in find_reports(run_outdir, specs)]
        declares_multiqc = any(s.pattern == "multiqc_report.html" for s in specs)
        assert ("multiqc/multiqc_report.html" in paths) == declares_multiqc, name


def test_methylseq_fastqc_globs_pick_per_sample_html_with_its_label(run_outdir: Path) -> None:
    found = {f.path: f for f in find_reports(run_outdir, report_globs(_tower("nf-core__methylseq")))}
    for name in SAMPLES:
        assert found[f"fastqc/{name}_fastqc.html"].display == "FastQC report, before trimming"
    assert found["multiqc/multiqc_report.html"].display == "MultiQC HTML report"
    assert not any(p.endswith(".zip") for p in found)


def test_directory_globs_follow_seqera_semantics() -> None:
    specs = report_globs(_tower("nf-core__taxprofiler")) + report_globs(_tower("nf-core__differentialabundance"))
    by = {s.pattern: s for s in specs}
    assert by["**/fastqc/raw/*.html"].matches("fastqc/raw/s1_fastqc.html")
    assert by["**/fastqc/raw/*.html"].matches("a/b/fastqc/raw/s1_fastqc.html")
    assert not by["**/fastqc/raw/*.html"].matches("fastqc/raw/deeper/s1_fastqc.html")
    assert by["pipeline_info/**"].matches("pipeline_info/execution_trace.txt")
    assert by["**/taxpasta/*tsv"].matches("taxpasta/kraken2_db.tsv")
    sarek = {s.pattern: s for s in report_globs(_tower("nf-core__sarek"))}
    assert sarek["**/variantcalling/cnvkit/**-scatter.png"].matches("variantcalling/cnvkit/t1/t1-scatter.png")
    (spec,) = report_globs({"reports": {"*/fastqc/*.html": {"display": "FastQC", "mimeType": "text/html"}}})
    assert spec.matches("raw/fastqc/s1.html") and not spec.matches("fastqc/s1.html") and spec.mimetype == "text/html"


def test_published_files_are_preferred_and_outside_paths_are_ignored(run_outdir: Path) -> None:
    report = run_outdir / "multiqc" / "multiqc_report.html"
    published = [str(report), "fastqc/sampleA_fastqc.html", "../etc/passwd", "/etc/passwd", "fastqc/gone.html"]
    found = find_reports(run_outdir, report_globs(_tower("nf-core__methylseq")), published)
    assert [f.path for f in found] == ["multiqc/multiqc_report.html", "fastqc/sampleA_fastqc.html"]
    assert find_reports(run_outdir, report_globs(None), published=[]) == []


def test_walking_skips_symlinks_leaving_the_root_and_nextflow_work(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "multiqc_report.html").write_text("<html>secret</html>")
    root = tmp_path / "run"
    (root / "work" / "ab" / "cdef").mkdir(parents=True)
    (root / "work" / "ab" / "cdef" / "multiqc_report.html").write_text("<html>task copy</html>")
    (root / "results" / "multiqc").mkdir(parents=True)
    (root / "results" / "multiqc" / "multiqc_report.html").write_text("<html>ok</html>")
    (root / "results" / "leak").symlink_to(outside, target_is_directory=True)
    (root / "results" / "leak.html").symlink_to(outside / "multiqc_report.html")
    specs = report_globs({"reports": {"multiqc_report.html": {"display": "MQC"}, "*.html": {"display": "any"}}})
    assert [f.path for f in find_reports(root, specs)] == ["results/multiqc/multiqc_report.html"]
    deep = root / "results" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "multiqc_report.html").write_text("<html>deep</html>")
    assert len(find_reports(root, specs, max_depth=3)) == 1
    assert len(find_reports(root, specs, max_files=1)) <= 1


def test_general_stats_lists_both_samples_with_fastqc_columns(run_outdir: Path) -> None:
    data_json = run_outdir / "multiqc" / "multiqc_data" / "multiqc_data.json"
    stats = general_stats(data_json)
    assert sorted(stats.index) == sorted(SAMPLES)
    assert {"fastqc-total_sequences", "fastqc-percent_gc", "fastqc-percent_duplicates"} <= set(stats.columns)
    assert (stats["fastqc-total_sequences"] == 2000).all()
    assert stats["fastqc-percent_gc"].between(40, 60).all()


def test_every_saved_raw_data_section_becomes_its_own_table(run_outdir: Path) -> None:
    tables = load_multiqc_data(run_outdir / "multiqc" / "multiqc_data")
    assert {"general_stats", "multiqc_fastqc"} <= set(tables)
    fastqc = tables["multiqc_fastqc"]
    assert sorted(fastqc.index) == sorted(SAMPLES)
    assert (fastqc["Encoding"] == "Sanger / Illumina 1.9").all()  # the quality pitfall was avoided
    assert (fastqc["per_base_sequence_quality"] == "pass").all()


def test_legacy_list_shaped_general_stats_still_load(tmp_path: Path) -> None:
    legacy = tmp_path / "multiqc_data.json"
    legacy.write_text('{"config_version": "1.14", "report_general_stats_headers": [{"percent_gc": '
                      '{"namespace": "FastQC"}}], "report_general_stats_data": [{"s1": {"percent_gc": NaN}, '
                      '"s2": {"percent_gc": 41.0}}]}')
    stats = general_stats(legacy)
    assert list(stats.columns) == ["fastqc-percent_gc"] and stats.loc["s2", "fastqc-percent_gc"] == 41.0


def test_oversized_or_foreign_json_is_refused_with_a_clear_error(run_outdir: Path, tmp_path: Path) -> None:
    data_json = run_outdir / "multiqc" / "multiqc_data" / "multiqc_data.json"
    with pytest.raises(MultiQCDataError, match="over the 1000 bytes limit"):
        load_multiqc_data(data_json, max_bytes=1000)
    big = tmp_path / "multiqc_data.json"
    with big.open("wb") as fh:
        fh.truncate(200 * 1024 * 1024 + 1)  # sparse: costs no disk
    with pytest.raises(MultiQCDataError, match="200 MB limit"):
        general_stats(big)
    evil = tmp_path / "evil.json"
    evil.write_text("__import__('os').system('touch pwned')")
    with pytest.raises(MultiQCDataError, match="not valid JSON"):
        general_stats(evil)
    assert not Path("pwned").exists()


def test_report_headers_sandbox_the_report_away_from_jupyter() -> None:
    headers = report_headers("multiqc_report.html")
    csp = headers["Content-Security-Policy"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp
    assert "'unsafe-inline'" in csp and "data:" in csp and "connect-src 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
    for name, ctype in [("x.pdf", "application/pdf"), ("x.tsv", "text/tab-separated-values; charset=utf-8"),
                        ("x.png", "image/png"), ("x.unknownext", "application/octet-stream")]:
        assert report_headers(name)["Content-Type"] == ctype
        assert "allow-same-origin" not in report_headers(name)["Content-Security-Policy"]
    assert report_headers("x.html", "text/html\r\nSet-Cookie: a=b")["Content-Type"] == "text/html; charset=utf-8"


def test_sandboxed_html_gets_its_storage_shim_before_any_report_script(run_outdir: Path) -> None:
    html = (run_outdir / "multiqc" / "multiqc_report.html").read_bytes()
    prepared = sandbox_html(html)
    shim_at = prepared.find(b"localStorage")
    assert 0 < shim_at < prepared.find(b"<script", prepared.find(b"</script>", shim_at))
    assert len(prepared) > len(html) and sandbox_html(b"<p>x</p>").endswith(b"<p>x</p>")


# --- through the API: a run's reports are a list with URLs relative to the API root ------------------------------


def _plant_run_with_reports(host, paths: list[str]) -> str:
    """Alice's finished demo run that published an HTML report at each run-relative path; its uuid."""
    import hashlib
    import uuid

    from sqlalchemy import select

    from flow_jupyter.db.models import DataFile, Execution, Origin, Pipeline, PipelineVersion, Project
    from flow_jupyter.identity import Identity

    run = str(uuid.uuid4())
    run_dir = f"executions/{run}"

    def create(session, actor) -> None:
        project = Project(name="liver", owner_id=actor.user_id)
        version = session.scalar(select(PipelineVersion).join(Pipeline).where(Pipeline.name == "demo"))
        session.add(project)
        session.flush()
        execution = Execution(uuid=run, owner_id=actor.user_id, project_id=project.id, params={},
                              pipeline_version_id=version.id, status="succeeded", backend="local", run_dir=run_dir)
        session.add(execution)
        session.flush()
        for path in paths:
            stored = host.storage.resolve(f"{run_dir}/{path}")
            stored.parent.mkdir(parents=True, exist_ok=True)
            stored.write_text(f"<html><head></head><body>{path}</body></html>")
            data = stored.read_bytes()
            session.add(DataFile(owner_id=actor.user_id, project_id=project.id, filename=stored.name, size=len(data),
                                 sha256=hashlib.sha256(data).hexdigest(), storage_path=f"{run_dir}/{path}",
                                 run_path=path, origin=Origin.output, execution_id=execution.id))

    host.run_as(Identity("alice"), create)
    return run


async def test_a_runs_reports_page_by_spec_then_path_with_urls_relative_to_the_api_root(api, jp_serverapp) -> None:
    from urllib.parse import unquote

    alice = api.as_user("alice")
    assert (await alice.get("projects")).code == 200  # alice has used Flow once
    run = _plant_run_with_reports(jp_serverapp.web_app.settings["flow"],
                                  ["results/multiqc/multiqc_report.html", "results/a b/multiqc_report.html"])

    first = (await alice.get(f"executions/{run}/reports", limit=1)).json
    second = (await alice.get(f"executions/{run}/reports", limit=1, after=first["next"])).json

    assert [r["path"] for r in first["items"] + second["items"]] == ["results/a b/multiqc_report.html",
                                                                     "results/multiqc/multiqc_report.html"]
    assert second["next"] is None
    url = first["items"][0]["url"]
    assert url == f"executions/{run}/reports/results/a%20b/multiqc_report.html"  # no /flow/api/ prefix, quoted
    shown = await alice.get(unquote(url))
    assert shown.code == 200 and b"results/a b/multiqc_report.html" in shown.body
