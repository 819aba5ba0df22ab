"""The bundled demo pipeline and its demo data: the data writer on its own, the schemas against the data, and the
real Nextflow running the pipeline (local executor) on the synthetic pool with barcodes (Ultraplex), the synthetic
paired-end samples, and Debian's real lambda phage reads.

Barcodes apply to a whole run: with `barcodes` every row of the sheet is a single-end pool, so the synthetic data
comes as two sheets (`samplesheet_barcoded.csv`: the pool; `samplesheet.csv`: two paired samples) and two runs.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from flow_jupyter.pipelines.demo_data import BARCODES, write_demo_data

DEMO = Path(__file__).resolve().parent.parent / "flow_jupyter" / "pipelines" / "bundled" / "demo"
READS = 400  # per sample: enough for FastQC and mapping rates, small enough for quick runs


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_demo_data(tmp_path_factory.mktemp("demo-data"), reads_per_sample=READS)


def _fastq_records(path: Path) -> list[tuple[str, str, str]]:
    """Parse a gzipped FASTQ strictly: 4-line records, '@' header, '+' separator, equal lengths."""
    lines = gzip.open(path, "rt").read().splitlines()
    assert len(lines) % 4 == 0, path
    records = []
    for start in range(0, len(lines), 4):
        header, sequence, plus, qualities = lines[start:start + 4]
        assert header.startswith("@") and plus == "+", (path, start)
        assert re.fullmatch("[ACGTN]+", sequence) and len(sequence) == len(qualities), (path, start)
        records.append((header, sequence, qualities))
    return records


def _sheet(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_write_demo_data_writes_reference_reads_sheets_and_barcodes(demo_data: dict[str, Path]) -> None:
    assert all(path.is_file() and path.is_absolute() for path in demo_data.values())
    names = [line[1:] for line in demo_data["fasta"].read_text().splitlines() if line.startswith(">")]
    assert names == ["contig1", "contig2", "contig3"]

    for key in ("sample1_1", "sample1_2", "sample2_1", "sample2_2", "pool"):
        records = _fastq_records(demo_data[key])
        assert len(records) == READS
        qualities = "".join(q for _, _, q in records)
        assert min(qualities) < "@" < max(qualities)  # FastQC then detects Sanger / Illumina 1.9
    read_1, read_2 = _fastq_records(demo_data["sample1_1"]), _fastq_records(demo_data["sample1_2"])
    assert [h.split()[0] for h, _, _ in read_1] == [h.split()[0] for h, _, _ in read_2]  # mates in step

    barcode_lines = demo_data["barcodes"].read_text().split()
    assert barcode_lines == [f"{pattern}:{name}" for name, pattern in BARCODES.items()]
    barcodes = [pattern.strip("N") for pattern in BARCODES.values()]
    pool = _fastq_records(demo_data["pool"])
    assert all(sequence[3:7] in barcodes for _, sequence, _ in pool)

    sheets = {key: _sheet(demo_data[key]) for key in ("samplesheet", "samplesheet_barcoded", "samplesheet_lambda")}
    assert all(list(rows[0]) == ["sample", "fastq_1", "fastq_2"] for rows in sheets.values())
    assert [row["sample"] for row in sheets["samplesheet"]] == ["sample1", "sample2"]
    assert sheets["samplesheet_barcoded"] == [{"sample": "pool", "fastq_1": str(demo_data["pool"]), "fastq_2": ""}]
    assert sheets["samplesheet_lambda"][0]["fastq_2"] == str(demo_data["lambda_2"])
    for rows in sheets.values():
        for row in rows:
            assert all(Path(row[column]).is_file() for column in ("fastq_1", "fastq_2") if row[column])


def test_write_demo_data_is_reproducible(tmp_path: Path) -> None:
    first = write_demo_data(tmp_path / "a", reads_per_sample=50, seed=7)
    second = write_demo_data(tmp_path / "b", reads_per_sample=50, seed=7)
    for key in ("fasta", "sample1_1", "sample2_2", "pool"):
        assert first[key].read_bytes() == second[key].read_bytes()


def test_write_demo_data_names_the_debian_package_when_lambda_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="bowtie2-examples"):
        write_demo_data(tmp_path / "out", reads_per_sample=10, bowtie2_examples=tmp_path / "absent")
    assert not (tmp_path / "out").exists()


def test_schemas_accept_the_demo_sheets_and_match_the_config(demo_data: dict[str, Path]) -> None:
    schema = json.loads((DEMO / "nextflow_schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    params = {name for group in schema["definitions"].values() for name in group["properties"]}
    config = (DEMO / "nextflow.config").read_text()
    config_params = set(re.findall(r"^\s+(\w+)\s+=", config.split("params {")[1].split("}")[0], re.MULTILINE))
    assert params == config_params
    assert schema["definitions"]["input_output_options"]["properties"]["input"]["schema"] == "assets/schema_input.json"
    assert yaml.safe_load((DEMO / "tower.yml").read_text())["reports"]["multiqc_report.html"]["display"]

    sheet_schema = json.loads((DEMO / "assets" / "schema_input.json").read_text())
    validator = jsonschema.Draft7Validator(sheet_schema)
    for key in ("samplesheet", "samplesheet_barcoded", "samplesheet_lambda"):
        rows = [{k: v for k, v in row.items() if v} for row in _sheet(demo_data[key])]  # empty cell = absent
        validator.validate(rows)
    assert not validator.is_valid([{"sample": "bad name;rm", "fastq_1": "a.fastq.gz"}])
    assert not validator.is_valid([{"sample": "s1", "fastq_1": "reads.bam"}])
    for path in (demo_data["fasta"], demo_data["lambda_fasta"]):
        assert re.search(schema["definitions"]["reference_genome_options"]["properties"]["fasta"]["pattern"],
                         str(path))


def _run_demo(run_dir: Path, params: dict) -> subprocess.CompletedProcess:
    """Launch the demo like Flow does: an argv list and a params file we wrote, never a shell string."""
    run_dir.mkdir()
    params_file = run_dir / "params.json"
    params_file.write_text(json.dumps({"outdir": str(run_dir / "results"), **params}))
    argv = [
        "nextflow", "-log", str(run_dir / ".nextflow.log"), "run", str(DEMO / "main.nf"),
        "-params-file", str(params_file), "-work-dir", str(run_dir / "work"),
        "-with-trace", str(run_dir / "trace.txt"),
    ]
    return subprocess.run(argv, cwd=run_dir, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NXF_ANSI_LOG="false"))


def _trace(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "trace.txt").open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _mapped_percent(flagstat: Path) -> float:
    match = re.search(r"^\d+ \+ \d+ mapped \(([\d.]+)%", flagstat.read_text(), re.MULTILINE)
    assert match, flagstat.read_text()
    return float(match.group(1))


def _general_stats_samples(results: Path) -> set[str]:
    with (results / "multiqc" / "multiqc_data" / "multiqc_general_stats.txt").open() as handle:
        return {row["Sample"] for row in csv.DictReader(handle, delimiter="\t")}


def _assert_outputs(results: Path, samples: dict[str, bool], min_mapped: float) -> None:
    """FastQC, Bowtie2 (BAM + log), flagstat and MultiQC outputs for every sample (name -> single-end?)."""
    reports = set()
    for sample, single_end in samples.items():
        stems = [sample] if single_end else [f"{sample}_1", f"{sample}_2"]
        for stem in stems:
            assert (results / "fastqc" / f"{stem}_fastqc.zip").is_file()
            assert (results / "fastqc" / f"{stem}_fastqc.html").is_file()
        reports.update(stems)
        assert (results / "bowtie2" / f"{sample}.bam").stat().st_size > 0
        assert (results / "bowtie2" / f"{sample}.bam.bai").is_file()
        assert "overall alignment rate" in (results / "bowtie2" / f"{sample}.bowtie2.log").read_text()
        assert _mapped_percent(results / "samtools" / f"{sample}.flagstat") > min_mapped
    assert (results / "multiqc" / "multiqc_report.html").stat().st_size > 0
    assert _general_stats_samples(results) == reports | set(samples)


@pytest.mark.nextflow
def test_demo_pipeline_demultiplexes_the_synthetic_pool(tmp_path: Path, demo_data: dict[str, Path]) -> None:
    run_dir = tmp_path / "pool"
    title = "Pool $(touch injected) 'quoted' \"double\""
    done = _run_demo(run_dir, {"input": str(demo_data["samplesheet_barcoded"]), "fasta": str(demo_data["fasta"]),
                               "barcodes": str(demo_data["barcodes"]), "multiqc_title": title})

    assert done.returncode == 0, done.stdout + done.stderr
    results = run_dir / "results"
    assert sorted(p.name for p in (results / "ultraplex" / "pool").glob("*.fastq.gz")) == [
        "ultraplex_demux_pool_bc1.fastq.gz", "ultraplex_demux_pool_bc2.fastq.gz"]
    assert "reads correctly assigned" in (results / "ultraplex" / "pool" / "pool.ultraplex.log").read_text()
    _assert_outputs(results, {"pool_bc1": True, "pool_bc2": True}, min_mapped=90.0)
    assert title in (results / "multiqc" / "multiqc_report.html").read_text()  # shown as text, never run
    assert not any(run_dir.rglob("injected"))
    processes = {row["name"].split(" ")[0] for row in _trace(run_dir) if row["status"] == "COMPLETED"}
    assert processes == {"ULTRAPLEX", "FASTQC", "BOWTIE2_BUILD", "BOWTIE2_ALIGN", "SAMTOOLS_FLAGSTAT", "MULTIQC"}


@pytest.mark.nextflow
def test_demo_pipeline_aligns_the_synthetic_paired_samples(tmp_path: Path, demo_data: dict[str, Path]) -> None:
    run_dir = tmp_path / "paired"
    done = _run_demo(run_dir, {"input": str(demo_data["samplesheet"]), "fasta": str(demo_data["fasta"])})

    assert done.returncode == 0, done.stdout + done.stderr
    _assert_outputs(run_dir / "results", {"sample1": False, "sample2": False}, min_mapped=90.0)
    assert not (run_dir / "results" / "ultraplex").exists()
    assert {row["status"] for row in _trace(run_dir)} == {"COMPLETED"}


@pytest.mark.nextflow
def test_demo_pipeline_aligns_real_lambda_phage_reads(tmp_path: Path, demo_data: dict[str, Path]) -> None:
    run_dir = tmp_path / "lambda"
    done = _run_demo(run_dir, {"input": str(demo_data["samplesheet_lambda"]),
                               "fasta": str(demo_data["lambda_fasta"]), "multiqc_title": "Lambda phage"})

    assert done.returncode == 0, done.stdout + done.stderr
    # bowtie2's simulated example reads: about 94 % of the pairs' reads align
    _assert_outputs(run_dir / "results", {"lambda": False}, min_mapped=80.0)


@pytest.mark.nextflow
@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([("bad;name", "sample1_1", "")], {}, "sample name 'bad;name' must match"),
        ([("s1", "sample1_1", ""), ("s1", "sample2_1", "")], {}, "sample 's1' appears more than once"),
        ([("s1", "sample1_1", "sample1_2")], {"barcodes": "barcodes"}, "every sample must be a single-end pool"),
        ([("s1", "sample1_1", "")], {"min_quality": "1; touch x"}, "--min_quality must be an integer"),
    ],
    ids=["unsafe-sample-name", "duplicate-sample", "paired-row-with-barcodes", "min-quality-not-an-integer"],
)
def test_demo_pipeline_rejects_bad_parameters_before_any_task(
    tmp_path: Path, demo_data: dict[str, Path], rows: list[tuple[str, str, str]], extra: dict[str, str], message: str
) -> None:
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("sample,fastq_1,fastq_2\n" + "".join(
        f"{name},{demo_data[r1]},{demo_data[r2] if r2 else ''}\n" for name, r1, r2 in rows))
    params = {"input": str(sheet), "fasta": str(demo_data["fasta"])}
    params.update({key: str(demo_data[value]) if value in demo_data else value for key, value in extra.items()})

    done = _run_demo(tmp_path / "run", params)

    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert not (tmp_path / "run" / "work").exists() or not any((tmp_path / "run" / "work").iterdir())
