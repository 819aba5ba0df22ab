"""`flow-jupyter toolchain`: a suitable nextflow on PATH is used as it is; otherwise the pinned Nextflow is
assembled from Maven Central and started through a generated launcher."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flow_jupyter.config import FlowSettings
from flow_jupyter.toolchain import NextflowInstall, parse_nextflow_version
from flow_jupyter.toolchain.nextflow_install import LAUNCHER_MARKER


def fake_nextflow(directory: Path, version: str) -> Path:
    """A stand-in `nextflow` that only prints a version banner (for PATH-selection logic, not for running)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "nextflow"
    script.write_text(f"#!/bin/sh\necho '      version {version} build 1'\n")
    script.chmod(0o755)
    return script


def test_version_banner_is_parsed() -> None:
    banner = "\n      N E X T F L O W\n      version 24.10.0 build 5928\n      created 27-10-2024 18:36 UTC\n"
    assert parse_nextflow_version(banner) == "24.10.0"
    assert parse_nextflow_version("command not found") is None


def test_an_old_nextflow_on_path_is_not_usable(tmp_path: Path) -> None:
    fake_nextflow(tmp_path / "old", "23.04.1")
    status = NextflowInstall(FlowSettings()).status(path=str(tmp_path / "old"))
    assert not status.usable and status.version == "23.04.1" and "older than 24.04.0" in status.problem


def test_a_recent_site_nextflow_is_used_as_it_is(tmp_path: Path, monkeypatch) -> None:
    site = fake_nextflow(tmp_path / "site", "24.10.4")
    monkeypatch.setenv("PATH", f"{site.parent}{os.pathsep}{os.environ['PATH']}")
    bin_dir = tmp_path / "venv-bin"

    status = NextflowInstall(FlowSettings(bin_dir=str(bin_dir))).install(log=lambda _: None)

    assert status.usable and status.path == str(site) and not status.flow_launcher
    assert not (bin_dir / "nextflow").exists()


@pytest.mark.nextflow
def test_the_generated_launcher_runs_the_cached_real_nextflow_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # nothing called nextflow here
    settings = FlowSettings(bin_dir=str(tmp_path / "bin"), nxf_home=str(tmp_path / "nxf home"))
    install = NextflowInstall(settings)
    assert install.status().path is None

    status = install.install(log=lambda _: None)

    launcher = tmp_path / "bin" / "nextflow"
    assert status.usable and status.flow_launcher and status.version == settings.nextflow_version
    text = launcher.read_text()
    assert LAUNCHER_MARKER in text and "export NXF_OFFLINE=true" in text
    assert "export NXF_HOME='" + str(tmp_path / "nxf home") + "'" in text  # quoted: the path has a space
    banner = subprocess.run([str(launcher), "-version"], capture_output=True, text=True, timeout=120).stdout
    assert f"version {settings.nextflow_version}" in banner


@pytest.mark.nextflow
def test_a_version_missing_on_maven_central_is_reported_with_its_missing_artifacts(tmp_path: Path) -> None:
    settings = FlowSettings(nextflow_version="24.10.6", cache_dir=str(tmp_path / "cache"),
                            bin_dir=str(tmp_path / "bin"))

    with pytest.raises(RuntimeError) as failure:
        NextflowInstall(settings)._resolve_jars(log=lambda _: None)

    assert "io.nextflow:nf-commons:jar:24.10.6" in str(failure.value)
    assert not (tmp_path / "cache" / "nextflow" / "24.10.6" / "lib").exists()


def test_toolchain_status_command_names_the_nextflow_in_use() -> None:
    done = subprocess.run([sys.executable, "-m", "flow_jupyter", "toolchain", "status"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("nextflow: 24.") and "pinned version: 24.10.0" in done.stdout
