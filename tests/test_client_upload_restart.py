"""FlowClient.upload survives the server dying mid-chunk: a real `jupyter server` process is killed with SIGKILL
while a chunk is on the wire and started again on the same port; the client backs off, asks the restarted server
for its offset and sends only the rest. The stored file is byte-for-byte the source.

Runs on the embedded SQLite only: what it checks is the client, the process and the files.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from conftest import TEST_USER_HEADER
from serverproc import TOKEN, Server

from flow_jupyter.client import FlowClient
from flow_jupyter.config import FlowSettings
from flow_jupyter.db.models import Project
from flow_jupyter.host import FlowHost
from flow_jupyter.identity import Identity

MiB = 1024 * 1024
CHUNK = 8 * MiB


def alices_project(root: Path, url: str) -> int:
    host = FlowHost(FlowSettings(root_dir=str(root), database_url=url))

    def create(session, actor) -> int:
        project = Project(name="restart", owner_id=actor.user_id)
        session.add(project)
        session.flush()
        return project.id

    try:
        return host.run_as(Identity("alice"), create)
    finally:
        host.close()


class KillMidChunk:
    """A progress callback that kills the server once ``at`` bytes are on the wire, then restarts it meanwhile."""

    def __init__(self, server: Server, at: int):
        self.server, self.at = server, at
        self.positions: list[int] = []
        self.killed_at: int | None = None
        self.restart: threading.Thread | None = None
        self.restart_errors: list[BaseException] = []

    def __call__(self, done: int, total: int | None) -> None:
        self.positions.append(done)
        if self.killed_at is None and done >= self.at:
            self.killed_at = len(self.positions)
            self.server.kill_9()
            self.restart = threading.Thread(target=self._start_again)
            self.restart.start()

    def _start_again(self) -> None:
        try:
            self.server.start()
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.restart_errors.append(exc)

    @property
    def after_kill(self) -> list[int]:
        return self.positions[self.killed_at:]


def test_an_upload_resumes_from_the_servers_offset_after_it_was_killed_mid_chunk(tmp_path: Path) -> None:
    root = tmp_path / "flow-root"
    database = f"sqlite:///{root / 'flow.sqlite'}"
    project = alices_project(root, database)
    source = tmp_path / "run7_R1.fastq.gz"
    source.write_bytes(os.urandom(3 * CHUNK + 4321))
    server = Server(tmp_path, root, database)
    killer = KillMidChunk(server, at=CHUNK + 2 * MiB)  # two MiB into the second chunk

    server.start()
    try:
        alice = FlowClient(server.base, TOKEN, headers={TEST_USER_HEADER: "alice"}, retries=12, backoff=0.25,
                           max_backoff=2.0)
        uploaded = alice.upload(source, project, progress=killer, chunk_size=CHUNK)
        listed = alice.files(project=project)
    finally:
        if killer.restart is not None:
            killer.restart.join(timeout=120)
        server.stop()

    assert killer.killed_at is not None and killer.restart_errors == []
    assert min(killer.after_kill) == CHUNK  # it went on from the acknowledged chunk, not from the first byte
    assert killer.positions[-1] == source.stat().st_size
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert uploaded.sha256 == expected and uploaded.size == source.stat().st_size
    assert [f.id for f in listed] == [uploaded.id]  # one data file, however many attempts
    stored = next((root / "uploads").rglob(source.name))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == expected
