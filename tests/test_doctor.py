"""`flow-jupyter doctor`: one line per component, a fix hint for what fails, non-zero exit on failure."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def doctor(*args: str, path: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = dict(os.environ, **(env or {}))
    if path is not None:
        environ["PATH"] = path
    return subprocess.run([sys.executable, "-m", "flow_jupyter", "doctor", *args], capture_output=True, text=True,
                          timeout=120, env=environ)


def path_without_nextflow(tmp_path: Path) -> str:
    """PATH as it is, minus every directory holding a `nextflow`; the PyPI tools stay reachable via links."""
    keep = tmp_path / "tools"
    keep.mkdir()
    for tool in ("multiqc", "fastqc", "java", "sinfo"):
        if found := shutil.which(tool):
            (keep / tool).symlink_to(found)
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "nextflow").exists()]
    return os.pathsep.join([str(keep), *dirs])


@pytest.mark.nextflow
def test_doctor_reports_every_component_and_exits_zero_when_healthy(flow_root: Path) -> None:
    done = doctor(f"--root={flow_root}")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    states = {line.split()[1]: line.split()[0] for line in lines[:-1]}
    assert states == {name: "OK" for name in ("java", "nextflow", "database", "disk", "fastqc", "multiqc",
                                              "nf-plugin")} | {"slurm": states["slurm"]}
    assert "24.10.0" in next(line for line in lines if " nextflow " in line)
    assert lines[-1].endswith("healthy")


def test_doctor_names_nextflow_and_fails_when_it_is_not_on_path(flow_root: Path, tmp_path: Path) -> None:
    done = doctor(f"--root={flow_root}", path=path_without_nextflow(tmp_path))

    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if " nextflow " in line)
    assert line.startswith("FAIL nextflow")
    assert "not found on PATH" in line and "flow-jupyter toolchain install" in line
    assert done.stdout.splitlines()[-1].endswith("FAILING: nextflow")


@pytest.mark.slurm
def test_doctor_requires_slurm_only_for_the_slurm_executor(flow_root: Path, tmp_path: Path, slurm_cluster) -> None:
    stopped = tmp_path / "stopped.conf"
    stopped.write_text("ClusterName=x\nSlurmctldHost=localhost\nSlurmctldPort=9\nMessageTimeout=2\n"
                       "NodeName=localhost CPUs=1\nPartitionName=d Nodes=ALL\n")

    local = doctor(f"--root={flow_root}", f"--FlowSettings.slurm_conf={stopped}")
    on_slurm = doctor(f"--root={flow_root}", "--executor=slurm", f"--FlowSettings.slurm_conf={stopped}")
    healthy_slurm = doctor(f"--root={flow_root}", "--executor=slurm")

    assert local.returncode == 0 and "WARN slurm" in local.stdout
    assert on_slurm.returncode == 1 and "FAIL slurm" in on_slurm.stdout and "scripts/slurm.sh start" in on_slurm.stdout
    assert healthy_slurm.returncode == 0 and "OK   slurm" in healthy_slurm.stdout


def test_doctor_reads_flow_settings_from_the_jupyter_config_file(tmp_path: Path) -> None:
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    root = tmp_path / "configured-root"
    (config_dir / "jupyter_server_config.py").write_text(
        f"c.FlowSettings.root_dir = {str(root)!r}\nc.FlowSettings.min_free_disk_gb = 1e9\n"
    )

    done = doctor(env={"JUPYTER_CONFIG_DIR": str(config_dir)})

    disk = next(line for line in done.stdout.splitlines() if " disk " in line)
    assert disk.startswith("FAIL disk") and str(root) in disk
    assert done.returncode == 1
