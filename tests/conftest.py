"""Shared fixtures: the real services (Slurm, PostgreSQL), a Flow root, and the Jupyter server with Flow enabled.

Services are started by the project's own scripts (idempotent), so `pytest` works on its own after `make install`,
and a missing component fails the test loudly instead of skipping it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
TINY_PIPELINE = Path(__file__).resolve().parent / "pipelines" / "tiny"

# The assembled `nextflow` launcher and the PyPI tools (multiqc, ultraplex) live beside this interpreter.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _script(*argv: str) -> str:
    done = subprocess.run([str(SCRIPTS / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The single-node Slurm cluster of scripts/slurm.sh, started if it is not running."""
    _script("slurm.sh", "start")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the throwaway PostgreSQL database (started by `make test`, or here when run alone)."""
    return os.environ.get("FLOW_TEST_DATABASE_URL") or _script("postgres.sh", "start").splitlines()[-1]


@pytest.fixture
def flow_root(tmp_path: Path) -> Path:
    root = tmp_path / "flow-root"
    root.mkdir()
    return root


@pytest.fixture
def flow_config(flow_root: Path) -> dict:
    """FlowSettings for a test server; tests update it before the server starts."""
    return {"root_dir": str(flow_root), "health_cache_seconds": 0.0}


@pytest.fixture
def jp_server_config(flow_config: dict) -> dict:
    return {"ServerApp": {"jpserver_extensions": {"flow_jupyter": True}}, "FlowSettings": flow_config}
