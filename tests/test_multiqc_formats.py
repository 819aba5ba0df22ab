"""MultiQC's numbers from every file layout it writes: ``multiqc.parquet`` (the stable format since 1.29, read
first), ``multiqc_data.json`` with General Statistics as a dict keyed by section (1.29 on) or as a list per section
(up to 1.28), and missing values (NaN written as ``null``) as NaN. The files come from the real FastQC and MultiQC
(a custom-content General Statistics section adds an integer, a text and a missing column); the 1.28 layout is the
same data rewritten in that shape, and wide parquet comes from MultiQC's own ``parquet_format: wide``."""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flow_jupyter.reports import MultiQCDataError, general_stats, load_multiqc_data

SAMPLES = ("sampleA", "sampleB")
CUSTOM = ("# id: 'extra'\n# plot_type: 'generalstats'\n"
          "Sample\treads\tstatus\tratio\nsampleA\t10\tgood\tNaN\nsampleB\t20\tbad\t0.5\n")


def _multiqc(*args: str) -> None:
    beside = Path(sys.executable).parent / "multiqc"
    exe = str(beside) if beside.exists() else (shutil.which("multiqc") or "multiqc")
    subprocess.run([exe, "-f", "--no-version-check", *args], check=True, capture_output=True, timeout=300)


def _write_fastq(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(2000):
            seq = "".join(rng.choice("ACGT") for _ in range(50))
            fh.write(f"@read{i}\n{seq}\n+\n{'I' * 49 + ('5' if i % 10 == 0 else 'I')}\n")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FastQC on two samples plus a custom General Statistics section, summarised by MultiQC twice: in its
    default (long parquet) and in its wide parquet layout."""
    root = tmp_path_factory.mktemp("multiqc")
    reads, inputs = root / "reads", root / "inputs"
    reads.mkdir()
    inputs.mkdir()
    for seed, name in enumerate(SAMPLES, 1):
        _write_fastq(reads / f"{name}.fastq", seed)
    subprocess.run(["fastqc", "-q", "-o", str(inputs), *(str(reads / f"{n}.fastq") for n in SAMPLES)],
                   check=True, env={**os.environ, "JAVA_TOOL_OPTIONS": "-Xmx512m"}, capture_output=True, timeout=300)
    (inputs / "extra_mqc.tsv").write_text(CUSTOM)
    _multiqc("-o", str(root / "long"), str(inputs))
    (root / "wide.yaml").write_text("parquet_format: wide\n")
    _multiqc("-c", str(root / "wide.yaml"), "-o", str(root / "wide"), str(inputs))
    return root


def data_dir(results: Path, layout: str = "long") -> Path:
    return results / layout / "multiqc_data"


def only(directory: Path, keep: str, into: Path) -> Path:
    """A copy of a multiqc_data/ directory holding just one of its data files."""
    into.mkdir()
    shutil.copy(directory / keep, into / keep)
    return into


def same(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


def test_the_installed_multiqc_writes_both_files(results: Path) -> None:
    names = {p.name for p in data_dir(results).iterdir()}
    assert {"multiqc.parquet", "multiqc_data.json"} <= names


def test_parquet_and_json_give_the_same_general_statistics(results: Path, tmp_path: Path) -> None:
    from_parquet = general_stats(data_dir(results) / "multiqc.parquet")
    from_json = general_stats(data_dir(results) / "multiqc_data.json")

    assert sorted(from_parquet.index) == sorted(from_json.index) == list(SAMPLES)
    assert set(from_parquet.columns) == set(from_json.columns)
    assert {"fastqc-total_sequences", "fastqc-percent_gc", "custom_content-reads", "custom_content-status",
            "custom_content-ratio"} <= set(from_parquet.columns)
    for sample in SAMPLES:
        for column in from_json.columns:
            assert same(from_parquet.loc[sample, column], from_json.loc[sample, column]), (sample, column)
    assert (from_parquet["fastqc-total_sequences"] == 2000).all()  # raw values, not MultiQC's "millions"
    reads = from_parquet["custom_content-reads"]
    assert list(reads) == [10, 20] and str(reads.dtype) == "int64"
    assert list(from_parquet["custom_content-status"]) == ["good", "bad"]


def test_missing_values_are_nan_in_both_files(results: Path) -> None:
    raw = json.loads((data_dir(results) / "multiqc_data.json").read_text())
    assert raw["report_general_stats_data"]["custom_content"]["sampleA"]["ratio"] is None  # MultiQC writes null
    for name in ("multiqc.parquet", "multiqc_data.json"):
        ratio = general_stats(data_dir(results) / name)["custom_content-ratio"]
        assert math.isnan(ratio["sampleA"]) and ratio["sampleB"] == 0.5 and ratio.dtype == "float64"


def test_a_directory_is_read_from_its_parquet_file_first(results: Path, tmp_path: Path) -> None:
    directory = tmp_path / "multiqc_data"
    shutil.copytree(data_dir(results), directory)
    doctored = json.loads((directory / "multiqc_data.json").read_text())
    doctored["report_general_stats_data"]["fastqc"]["sampleA"]["percent_gc"] = 99.0
    (directory / "multiqc_data.json").write_text(json.dumps(doctored))

    tables = load_multiqc_data(directory)

    assert tables["general_stats"].loc["sampleA", "fastqc-percent_gc"] != 99.0
    assert "multiqc_fastqc" in tables  # per-module raw data exists only in the JSON, and still comes from it
    assert general_stats(directory).loc["sampleA", "fastqc-percent_gc"] != 99.0
    parquet_only = only(data_dir(results), "multiqc.parquet", tmp_path / "parquet_only")
    assert list(load_multiqc_data(parquet_only)) == ["general_stats"]
    assert sorted(general_stats(parquet_only).index) == list(SAMPLES)


def as_multiqc_1_28(data: dict[str, Any]) -> dict[str, Any]:
    """The same dump in MultiQC <= 1.28's shape: General Statistics as lists aligned section by section."""
    old = dict(data)
    sections = list(data["report_general_stats_data"])
    old["report_general_stats_data"] = [data["report_general_stats_data"][s] for s in sections]
    old["report_general_stats_headers"] = [data["report_general_stats_headers"][s] for s in sections]
    old.pop("report_creation_date", None)
    old["config_creation_date"] = "2025-01-01, 00:00 UTC"
    return old


def test_the_list_layout_up_to_1_28_reads_like_the_dict_layout(results: Path, tmp_path: Path) -> None:
    current = json.loads((data_dir(results) / "multiqc_data.json").read_text())
    legacy = tmp_path / "multiqc_data.json"
    legacy.write_text(json.dumps(as_multiqc_1_28(current)))

    new, old = general_stats(data_dir(results) / "multiqc_data.json"), general_stats(legacy)

    assert "fastqc-percent_gc" in old.columns and sorted(old.index) == list(SAMPLES)
    fastqc_columns = [c for c in new.columns if c.startswith("fastqc-")]
    assert (old[fastqc_columns].sort_index() == new[fastqc_columns].sort_index()).all().all()


def test_bare_nan_grouped_rows_and_infinity_are_read_too(tmp_path: Path) -> None:
    dump = tmp_path / "multiqc_data.json"
    dump.write_text('{"report_creation_date": "x", "report_general_stats_data": {"fastqc": {'
                    '"grp": [{"sample": "s1", "data": {"percent_gc": NaN}}, {"sample": "s2", "data": '
                    '{"percent_gc": 41.0}}], "s3": {"percent_gc": Infinity}, "s4": {"percent_gc": null}}}}')

    stats = general_stats(dump)

    assert sorted(stats.index) == ["s1", "s2", "s3", "s4"]  # grouped rows keep their own sample names
    assert stats.loc["s2", "fastqc-percent_gc"] == 41.0
    assert stats["fastqc-percent_gc"].isna().tolist() == [True, False, True, True]


def test_wide_parquet_is_used_only_when_nothing_better_is_there(results: Path, tmp_path: Path) -> None:
    wide_dir = data_dir(results, "wide")
    schema = pq.read_schema(wide_dir / "multiqc.parquet")
    assert "general_stats_table / fastqc / total_sequences" in schema.names  # MultiQC's wide layout

    beside_json = general_stats(wide_dir)
    assert (beside_json["fastqc-total_sequences"] == 2000).all()  # raw values from the JSON
    alone = general_stats(only(wide_dir, "multiqc.parquet", tmp_path / "wide_only"))
    assert sorted(alone.index) == list(SAMPLES) and "fastqc-percent_gc" in alone.columns
    assert alone.attrs["multiqc_values"] == "displayed"  # the scaled numbers the report shows
    assert alone.loc["sampleA", "fastqc-percent_gc"] == beside_json.loc["sampleA", "fastqc-percent_gc"]


def test_files_that_are_not_multiqcs_are_refused_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "multiqc.parquet"
    garbage.write_bytes(b"PAR1 not really")
    with pytest.raises(MultiQCDataError, match="not a readable parquet file"):
        general_stats(garbage)
    foreign = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    with pytest.raises(MultiQCDataError, match="does not look like MultiQC"):
        load_multiqc_data(foreign)
    with pytest.raises(MultiQCDataError, match="over the 100 bytes limit"):
        general_stats(foreign, max_bytes=100)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MultiQCDataError, match="neither multiqc.parquet nor multiqc_data.json"):
        load_multiqc_data(empty)
