"""Registering a pipeline runs git and maybe a JVM; none of it may hold a write transaction open.

On SQLite an open write transaction is the whole database's write lock: while an admin registers a repository that
takes minutes to clone, every launch, upload and event would wait behind it. So each slow step here is held on an
Event (the real git or nextflow runs once it is let go) and, while it is held, another connection must still be
able to take the write lock (``BEGIN IMMEDIATE`` without waiting). Two registrations of the same pipeline or
version racing each other end with one registered and the other refused with the documented 409.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gitrepo import git
from flow_jupyter.config import FlowSettings
from flow_jupyter.db import Database
from flow_jupyter.db.models import Pipeline, PipelineVersion
from flow_jupyter.errors import FlowError
from flow_jupyter.host import FlowHost
from flow_jupyter.identity import Identity
from flow_jupyter.pipelines import git as git_ops
from flow_jupyter.pipelines import registry

ADMIN = Identity("admin", is_admin=True)
HOLD_LIMIT = 60.0
SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema", "type": "object",
          "properties": {"greeting": {"type": "string", "default": "Hello"}}}


class Gate:
    """Holds the first call of a slow step (matched by ``when``) until the test lets it go; later calls run."""

    def __init__(self, real: Callable[..., Any], when: Callable[[list[str]], bool]) -> None:
        self.real, self.when = real, when
        self.entered, self.released = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._used = False

    def __call__(self, argv: list[str], *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            hold = not self._used and self.when(argv)
            self._used = self._used or hold
        if hold:
            self.entered.set()
            assert self.released.wait(HOLD_LIMIT), "the test never let the held step go"
        return self.real(argv, *args, **kwargs)

    def wait_until_held(self) -> None:
        assert self.entered.wait(HOLD_LIMIT), "the slow step was never reached"


def git_step(name: str) -> Callable[[list[str]], bool]:
    return lambda argv: argv[0] == "git" and name in argv


def writable(database: Path) -> bool:
    """Whether another connection takes the database's write lock right now (no waiting)."""
    connection = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "root" / "flow.sqlite"


@pytest.fixture
def host(tmp_path: Path, sqlite_path: Path) -> Iterator[FlowHost]:
    flow_host = FlowHost(FlowSettings(root_dir=str(tmp_path / "root"), database_url=f"sqlite:///{sqlite_path}"))
    yield flow_host
    flow_host.close()


@pytest.fixture
def worker() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A pipeline repository with a schema, tagged v1.0 and v2.0."""
    path = tmp_path / "hello"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "main.nf").write_text("params.greeting = 'Hello'\nworkflow { println params.greeting }\n")
    (path / "nextflow_schema.json").write_text(json.dumps(SCHEMA))
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "v1")
    git(path, "tag", "v1.0")
    (path / "README.md").write_text("hello\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "v2")
    git(path, "tag", "v2.0")
    return path


def held(gate: Gate, sqlite_path: Path, work: Future) -> bool:
    """Whether the database was writable while ``gate`` held the step (then lets it go and waits for ``work``)."""
    gate.wait_until_held()
    try:
        return writable(sqlite_path)
    finally:
        gate.released.set()
        work.result(timeout=HOLD_LIMIT)


def test_the_probe_sees_a_held_write_lock(host: FlowHost, sqlite_path: Path) -> None:
    """The check the other tests rely on is not vacuous: an open write transaction does make it fail."""
    other = sqlite3.connect(sqlite_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert writable(sqlite_path) is False
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert writable(sqlite_path) is True


@pytest.mark.parametrize("step", ["ls-remote", "clone", "archive"])
def test_the_database_stays_writable_while_a_new_pipeline_is_fetched(host, sqlite_path, repo, worker, monkeypatch,
                                                                    step) -> None:
    gate = Gate(git_ops.run, git_step(step))
    monkeypatch.setattr(git_ops, "run", gate)

    work = worker.submit(registry.register_pipeline, host, ADMIN, {"source": str(repo), "ref": "v1.0"})

    assert held(gate, sqlite_path, work) is True
    assert [v["ref"] for v in work.result()["versions"]] == ["v1.0"]


@pytest.mark.parametrize("step", ["fetch", "archive"])
def test_the_database_stays_writable_while_a_version_is_fetched(host, sqlite_path, repo, worker, monkeypatch,
                                                               step) -> None:
    registry.register_pipeline(host, ADMIN, {"source": str(repo), "ref": "v1.0"})
    gate = Gate(git_ops.run, git_step(step))
    monkeypatch.setattr(git_ops, "run", gate)

    work = worker.submit(registry.register_version, host, ADMIN, "hello", {"ref": "v2.0"})

    assert held(gate, sqlite_path, work) is True
    assert work.result()["ref"] == "v2.0"


def test_the_database_stays_writable_while_nextflow_reads_a_schemaless_config(host, sqlite_path, tmp_path, worker,
                                                                              monkeypatch) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    git(bare, "init", "-q", "-b", "main")
    (bare / "main.nf").write_text("workflow { println params.genome }\n")
    (bare / "nextflow.config").write_text("params.genome = 'GRCh38'\n")
    git(bare, "add", ".")
    git(bare, "commit", "-q", "-m", "no schema")
    gate = Gate(registry.run, lambda argv: argv[0] == "nextflow")
    monkeypatch.setattr(registry, "run", gate)

    work = worker.submit(registry.register_pipeline, host, ADMIN, {"source": str(bare)})

    assert held(gate, sqlite_path, work) is True
    version = host.run_as(ADMIN, lambda s, a: s.query(PipelineVersion).join(Pipeline)
                          .filter(Pipeline.name == "bare").one().config_params)
    assert version == {"genome": "GRCh38"}


def test_bundled_pipelines_are_read_before_anything_is_written(tmp_path, worker, monkeypatch) -> None:
    """At start-up the bundled pipelines' files are read (a schema-less one would run nextflow) before the first
    row is added, so a fresh store's first start does not hold the write lock meanwhile."""
    database_file = tmp_path / "fresh.sqlite"
    database = Database(f"sqlite:///{database_file}")
    database.migrate()
    gate = Gate(registry.read_pipeline_files, lambda _argv: True)
    monkeypatch.setattr(registry, "read_pipeline_files", gate)

    def start_up() -> None:
        with database.session() as session:
            registry.ensure_bundled(session, FlowSettings(root_dir=str(tmp_path)))

    try:
        assert held(gate, database_file, worker.submit(start_up)) is True
        with database.session() as session:
            assert [p.name for p in session.query(Pipeline)] == ["demo"]
    finally:
        database.dispose()


def test_two_admins_registering_the_same_pipeline_get_one_pipeline_and_a_409(host, repo, worker,
                                                                              monkeypatch) -> None:
    gate = Gate(git_ops.run, git_step("archive"))
    monkeypatch.setattr(git_ops, "run", gate)
    first = worker.submit(registry.register_pipeline, host, ADMIN, {"source": str(repo), "ref": "v1.0"})
    gate.wait_until_held()

    second = registry.register_pipeline(host, Identity("other-admin", is_admin=True),
                                        {"source": str(repo), "ref": "v1.0"})
    gate.released.set()
    with pytest.raises(FlowError) as refused:
        first.result(timeout=HOLD_LIMIT)

    assert (refused.value.status, refused.value.reason, refused.value.field) == (409, "duplicate_name", "/name")
    pipelines = host.run_as(ADMIN, lambda s, a: [(p.id, p.name) for p in s.query(Pipeline).order_by(Pipeline.id)])
    assert [name for _, name in pipelines] == ["demo", "hello"]
    home = host.storage.root / "pipelines"
    commit = second["versions"][0]["commit"]
    assert sorted(p.name for p in home.iterdir()) == [str(second["id"])]  # the loser's staging is gone
    assert (home / str(second["id"]) / commit / "nextflow_schema.json").is_file()


def test_two_admins_registering_the_same_version_get_one_version_and_a_409(host, repo, worker,
                                                                            monkeypatch) -> None:
    added = registry.register_pipeline(host, ADMIN, {"source": str(repo), "ref": "v1.0"})
    gate = Gate(git_ops.run, git_step("archive"))
    monkeypatch.setattr(git_ops, "run", gate)
    first = worker.submit(registry.register_version, host, ADMIN, "hello", {"ref": "v2.0"})
    gate.wait_until_held()

    second = registry.register_version(host, ADMIN, "hello", {"ref": "v2.0"})
    gate.released.set()
    with pytest.raises(FlowError) as refused:
        first.result(timeout=HOLD_LIMIT)

    assert (refused.value.status, refused.value.reason) == (409, "duplicate_version")
    refs = host.run_as(ADMIN, registry.list_versions, "hello")["items"]
    assert [v["ref"] for v in refs] == ["v1.0", "v2.0"]
    checkout = host.storage.root / "pipelines" / str(added["id"]) / second["commit"]
    assert (checkout / "README.md").is_file()  # the loser did not remove the winner's checkout


def test_a_refused_registration_leaves_nothing_on_disk(host, tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    git(broken, "init", "-q", "-b", "main")
    (broken / "main.nf").write_text("workflow {}\n")
    (broken / "nextflow_schema.json").write_text("{ not json")
    git(broken, "add", ".")
    git(broken, "commit", "-q", "-m", "broken")

    with pytest.raises(FlowError) as refused:
        registry.register_pipeline(host, ADMIN, {"source": str(broken)})

    assert refused.value.reason == "invalid_schema"
    home = host.storage.root / "pipelines"
    assert not home.exists() or list(home.iterdir()) == []


def test_a_non_admin_never_makes_flow_run_git(host, repo, monkeypatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(git_ops, "run", lambda argv, *a, **k: ran.append(argv))

    with pytest.raises(FlowError) as refused:
        registry.register_pipeline(host, Identity("alice"), {"source": str(repo)})

    assert (refused.value.status, ran) == (403, [])
