"""The real Nextflow (JVM, assembled from Maven Central or found on PATH) runs a tiny DSL2 pipeline:
with the local executor, through nextflow.py, and as a Slurm head job whose tasks go to Slurm."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import TINY_PIPELINE, wait_for_slurm_job

NAMES = ["Rosalind", "Ada", "Grace"]
EXPECTED = "".join(f"Hello, {name}!\n" for name in sorted(NAMES))


def _arrange_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run directory with the names file and a params file; returns (run dir, params file)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    names = run_dir / "names.txt"
    names.write_text("\n".join(NAMES) + "\n")
    params = run_dir / "params.json"
    params.write_text(json.dumps({"names": str(names), "greeting": "Hello", "outdir": str(run_dir / "results")}))
    return run_dir, params


def _nextflow_argv(run_dir: Path, params: Path, *extra: str) -> list[str]:
    return [
        "nextflow", "-log", str(run_dir / ".nextflow.log"), "run", str(TINY_PIPELINE / "main.nf"),
        "-params-file", str(params), "-work-dir", str(run_dir / "work"),
        "-with-trace", str(run_dir / "trace.txt"), *extra,
    ]


def _trace_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "trace.txt").open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _assert_outputs(run_dir: Path) -> None:
    results = run_dir / "results"
    assert (results / "all.txt").read_text() == EXPECTED
    for name in NAMES:
        assert (results / "greetings" / f"{name}.txt").read_text() == f"Hello, {name}!\n"


@pytest.mark.nextflow
def test_tiny_pipeline_runs_with_the_local_executor(tmp_path: Path) -> None:
    run_dir, params = _arrange_run(tmp_path)

    done = subprocess.run(_nextflow_argv(run_dir, params), cwd=run_dir, capture_output=True, text=True,
                          timeout=300, env=_env())

    assert done.returncode == 0, done.stdout + done.stderr
    _assert_outputs(run_dir)
    rows = _trace_rows(run_dir)
    assert sorted(row["name"] for row in rows) == sorted([f"GREET ({n})" for n in NAMES] + ["JOIN"])
    assert {row["status"] for row in rows} == {"COMPLETED"}


@pytest.mark.nextflow
def test_a_resumed_run_takes_every_task_from_the_cache(tmp_path: Path) -> None:
    run_dir, params = _arrange_run(tmp_path)
    first = subprocess.run(_nextflow_argv(run_dir, params), cwd=run_dir, capture_output=True, text=True,
                           timeout=300, env=_env())
    assert first.returncode == 0, first.stdout + first.stderr
    (run_dir / "trace.txt").unlink()

    again = subprocess.run(_nextflow_argv(run_dir, params, "-resume"), cwd=run_dir, capture_output=True, text=True,
                           timeout=300, env=_env())

    assert again.returncode == 0, again.stdout + again.stderr
    assert {row["status"] for row in _trace_rows(run_dir)} == {"CACHED"}
    _assert_outputs(run_dir)


@pytest.mark.nextflow
def test_nextflow_py_drives_the_same_launcher(tmp_path: Path) -> None:
    import nextflow  # refuses to import unless an executable `nextflow` is on PATH

    run_dir, params = _arrange_run(tmp_path)
    settings = json.loads(params.read_text())

    # Only values this test controls reach nextflow.py's shell command (see DESIGN: its quoting is unsafe).
    execution = nextflow.run(str(TINY_PIPELINE / "main.nf"), run_path=str(run_dir), params=settings)

    assert execution.status == "OK", execution.stderr
    assert execution.return_code == "0"
    assert sorted(p.process for p in execution.process_executions) == ["GREET"] * 3 + ["JOIN"]
    _assert_outputs(run_dir)


@pytest.mark.nextflow
@pytest.mark.slurm
def test_tiny_pipeline_runs_as_a_slurm_head_job_with_slurm_tasks(tmp_path: Path, slurm_cluster) -> None:
    run_dir, params = _arrange_run(tmp_path)
    config = run_dir / "slurm.config"
    config.write_text(
        "process { executor = 'slurm'; cpus = 1; memory = '500 MB' }\n"
        "executor { queueStatInterval = '2s'; pollInterval = '1s' }\n"
    )
    job_name = f"flow-{uuid.uuid4()}"
    script = run_dir / "head.sbatch"
    argv = " ".join(_nextflow_argv(run_dir, params, "-c", str(config)))  # test-owned paths without spaces
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name={job_name}\n"
        f"#SBATCH --output={run_dir}/head.out\n"
        "#SBATCH --cpus-per-task=1\n"
        "#SBATCH --mem=2G\n"
        "export NXF_ANSI_LOG=false\n"
        f"exec {argv}\n"
    )

    job_id = subprocess.run(["sbatch", "--parsable", "-D", str(run_dir), str(script)], capture_output=True,
                            text=True, check=True, timeout=60, env=_env()).stdout.strip().split(";")[0]
    state, exit_code = wait_for_slurm_job(job_id, timeout=300)

    assert (state, exit_code) == ("COMPLETED", "0:0"), (run_dir / "head.out").read_text()
    _assert_outputs(run_dir)
    task_job_ids = [row["native_id"] for row in _trace_rows(run_dir)]
    assert len(task_job_ids) == 4 and all(jid.isdigit() and jid != job_id for jid in task_job_ids)


def _env() -> dict[str, str]:
    return dict(os.environ, NXF_ANSI_LOG="false")
