"""Shared fixtures: the real services (Slurm, PostgreSQL), a Flow root, and the Jupyter server with Flow enabled.

Services are started by the project's own scripts (idempotent), so `pytest` works on its own after `make install`,
and a missing component fails the test loudly instead of skipping it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from waiting import WaitTimeout, wait_for

from flow_jupyter.config import FlowSettings

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
TINY_PIPELINE = Path(__file__).resolve().parent / "pipelines" / "tiny"
TEST_USER_HEADER = "X-Flow-Test-User"

# The assembled `nextflow` launcher and the PyPI tools (multiqc, ultraplex) live beside this interpreter.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
# Where `flow-jupyter toolchain install` put Nextflow and Flow's plugin, read before pytest-jupyter moves HOME.
TOOLCHAIN_CACHE = FlowSettings().cache_dir


def _script(*argv: str) -> str:
    done = subprocess.run([str(SCRIPTS / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


SLURM_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


def wait_for_slurm_job(job_id: str, timeout: float) -> tuple[str, str]:
    """(JobState, ExitCode) of a Slurm job once it ended; cancels it and fails the test after ``timeout`` s."""
    def job() -> dict[str, str]:
        out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout
        return dict(part.split("=", 1) for part in out.split() if "=" in part)

    try:
        fields = wait_for(job, until=lambda f: f.get("JobState") in SLURM_ENDED, what=f"Slurm job {job_id} to end",
                          timeout=timeout, interval=1)
    except WaitTimeout:
        subprocess.run(["scancel", job_id], timeout=30)
        raise
    return fields["JobState"], fields.get("ExitCode", "")


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The single-node Slurm cluster of scripts/slurm.sh, started if it is not running (in site mode: the site's
    Slurm, checked to answer, never started)."""
    _script("slurm.sh", "start")


# --- site mode: FLOW_TEST_SLURM=site runs the Slurm tests on the machine's own Slurm ---------------------------------
#: The tests then never start, stop or signal a daemon (scripts/slurm.sh refuses to), so those that stop or stall the
#: controller (marked `stops_controller`) are skipped; every other test uses the site's Slurm as it is.
SLURM_SITE_MODE = os.environ.get("FLOW_TEST_SLURM", "") == "site"
SITE_MODE_SKIP = ("FLOW_TEST_SLURM=site: this test stops or stalls the Slurm controller, which on a site's Slurm "
                  "would be the site's own controller")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stops_controller: stops or stalls the dev Slurm controller (through "
                            "scripts/slurm.sh); skipped with FLOW_TEST_SLURM=site")


def skip_controller_tests_in_site_mode(items: list[pytest.Item]) -> None:
    if SLURM_SITE_MODE:
        for item in items:
            if item.get_closest_marker("stops_controller") is not None:
                item.add_marker(pytest.mark.skip(reason=SITE_MODE_SKIP))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs PostgreSQL `postgres`, so `-m postgres` (or `-m "not postgres"`) selects by it:
    the PostgreSQL half of each `database_url` test, and every test that asks for `postgres_url` itself."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("database_url") == "postgresql" or "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
    skip_controller_tests_in_site_mode(items)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the throwaway PostgreSQL database: given by `make test` (FLOW_TEST_DATABASE_URL), or started here
    when pytest runs alone. On CI the URL must be given: a run that silently fell back (or skipped) would not be
    testing the database CI was set up with."""
    url = os.environ.get("FLOW_TEST_DATABASE_URL")
    if url:
        return url
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail("FLOW_TEST_DATABASE_URL is not set on CI: run the suite with `make test`, which starts "
                    "PostgreSQL and sets it")
    return _script("postgres.sh", "start").splitlines()[-1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, flow_root: Path) -> str:
    """Each test that uses Flow's database runs twice: on the embedded SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{flow_root / 'flow.sqlite'}"
        return
    import sqlalchemy

    base = request.getfixturevalue("postgres_url")
    name = f"flowtest_{uuid.uuid4().hex[:12]}"
    # The superuser of the throwaway cluster (trust auth) creates and force-drops, even past autovacuum workers.
    superuser = sqlalchemy.make_url(base).set(username="postgres", password=None, database="postgres")
    admin = sqlalchemy.create_engine(superuser, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}" OWNER flow'))
    yield base.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def flow_root(tmp_path: Path) -> Path:
    root = tmp_path / "flow-root"
    root.mkdir()
    return root


@pytest.fixture
def flow_config(flow_root: Path, database_url: str) -> dict:
    """FlowSettings for a test server; fixtures listed before `jp_fetch` may update it before the server starts.
    The test identity header lets one server act for several users (see tests/flowapi.py). Every JSON reply of
    every test is checked against its response schema (api/responses.py): the contract holds wherever it is used."""
    return {"root_dir": str(flow_root), "database_url": database_url, "health_cache_seconds": 0.0,
            "test_identity_header": TEST_USER_HEADER, "cache_dir": TOOLCHAIN_CACHE, "validate_responses": True,
            "host_path_roots": [tempfile.gettempdir(), str(REPO)],
            # The single-node dev cluster answers at once: Nextflow may look at it as often as it likes.
            "nextflow_poll_interval": "2s", "nextflow_queue_stat_interval": "5s"}


@pytest.fixture
def api(jp_fetch) -> "FlowAPI":
    """Flow's REST API on the test server, as any user: `await api.as_user("alice").post("projects", {...})`."""
    from flowapi import FlowAPI

    return FlowAPI(jp_fetch)


@pytest.fixture
def jp_server_config(flow_config: dict) -> dict:
    return {"ServerApp": {"jpserver_extensions": {"flow_jupyter": True}}, "FlowSettings": flow_config}
