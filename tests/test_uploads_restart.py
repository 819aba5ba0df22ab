"""An upload survives `kill -9` of a real `jupyter server` process: acknowledged chunks are durable, bytes that
were written but never acknowledged are dropped, and the client resumes from HEAD's offset after a restart.

Runs on the embedded SQLite only: what it checks is the file and process side, not the database backend.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
from pathlib import Path

import pytest
import requests
from conftest import TEST_USER_HEADER
from serverproc import TOKEN, Server, running
from sqlalchemy import create_engine, select
from waiting import wait_for

from flow_jupyter.config import FlowSettings
from flow_jupyter.db.models import DataFile, Project, Upload, UploadState
from flow_jupyter.host import FlowHost
from flow_jupyter.identity import Identity

MiB = 1024 * 1024


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "sample_R1.fastq.gz"
    path.write_bytes(os.urandom(20 * MiB + 4321))
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, str, int]:
    """A Flow root and SQLite database with alice's project in it, made before any server runs."""
    root = tmp_path / "flow-root"
    url = f"sqlite:///{root / 'flow.sqlite'}"
    host = FlowHost(FlowSettings(root_dir=str(root), database_url=url))

    def create(session, actor):
        project = Project(name="restart", owner_id=actor.user_id)
        session.add(project)
        session.flush()
        return project.id

    project_id = host.run_as(Identity("alice"), create)
    host.close()
    return root, url, project_id


def _patch(server: Server, location: str, offset: int, data: bytes) -> requests.Response:
    return requests.patch(server.base + location, data=data, timeout=60, headers=server.headers(**{
        "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}))


def _head(server: Server, location: str) -> requests.Response:
    return requests.head(server.base + location, timeout=30, headers=server.headers(**{"Tus-Resumable": "1.0.0"}))


def _start_unacknowledged_chunk(server: Server, location: str, offset: int, partial: Path,
                                data: bytes) -> socket.socket:
    """Begin a PATCH whose body never finishes, and wait until the server has written part of it to disk."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = (f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {TOKEN}\r\n"
            f"{TEST_USER_HEADER}: alice\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {len(data) * 2}\r\n\r\n")
    sock.sendall(head.encode() + data)
    wait_for(lambda: partial.stat().st_size, until=lambda size: size >= offset + len(data),
             what="the server to write the chunk's first half", interval=0.05)
    assert partial.stat().st_size == offset + len(data)  # written, but never acknowledged
    return sock


def test_an_upload_resumes_after_the_server_is_killed(tmp_path: Path, setup, source: Path) -> None:
    from tusclient import client

    root, url, project_id = setup
    data = source.read_bytes()
    metadata = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                        for key, value in {"filename": source.name, "project": str(project_id)}.items())
    chunk = 2 * MiB
    acknowledged = 5 * chunk

    first = Server(tmp_path, root, url)
    with running(first):
        created = requests.post(f"{first.base}/flow/api/uploads", timeout=30, headers=first.headers(**{
            "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": metadata}))
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        upload_id = location.rsplit("/", 1)[1]
        for offset in range(0, acknowledged, chunk):
            reply = _patch(first, location, offset, data[offset:offset + chunk])
            assert reply.status_code == 204 and int(reply.headers["Upload-Offset"]) == offset + chunk
        partial = root / "uploads" / ".partial" / upload_id
        hanging = _start_unacknowledged_chunk(first, location, acknowledged, partial, b"\xff" * MiB)
        first.kill_9()
        hanging.close()

    second = Server(tmp_path, root, url)
    with running(second):
        state = _head(second, location)
        assert state.status_code == 200
        assert int(state.headers["Upload-Offset"]) == acknowledged  # the acknowledged chunks, nothing more

        tus = client.TusClient(f"{second.base}/flow/api/uploads", headers=second.headers())
        uploader = tus.uploader(str(source), url=second.base + location, chunk_size=3 * MiB)
        assert uploader.offset == acknowledged  # tuspy asked the restarted server with HEAD
        uploader.upload()

        done = _head(second, location)
        assert done.status_code == 200 and int(done.headers["Upload-Offset"]) == len(data)
        datafile_id = int(done.headers["Flow-DataFile-Id"])

    expected = hashlib.sha256(data).hexdigest()
    engine = create_engine(url)
    with engine.connect() as conn:
        upload = conn.execute(select(Upload.state, Upload.datafile_id).where(Upload.id == upload_id)).one()
        stored = conn.execute(select(DataFile.sha256, DataFile.size, DataFile.storage_path)
                              .where(DataFile.id == datafile_id)).one()
        datafiles = conn.execute(select(DataFile.id)).all()
    engine.dispose()
    assert upload == (UploadState.completed, datafile_id) and len(datafiles) == 1
    assert stored.sha256 == expected and stored.size == len(data)
    stored_path = (root / stored.storage_path).resolve()
    assert root.resolve() in stored_path.parents
    assert hashlib.sha256(stored_path.read_bytes()).hexdigest() == expected  # the bytes on disk, not a download
    assert not partial.exists()


def _create(server: Server, project_id: int, data: bytes, name: str) -> str:
    metadata = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in {
        "filename": name, "project": str(project_id), "sha256": hashlib.sha256(data).hexdigest()}.items())
    created = requests.post(f"{server.base}/flow/api/uploads", timeout=30, headers=server.headers(**{
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": metadata}))
    assert created.status_code == 201, created.text
    return created.headers["Location"]


def test_after_a_crash_the_file_length_decides_bounded_by_what_was_acknowledged(tmp_path: Path, setup) -> None:
    """The offset lives beside the bytes (an fsynced ack record), not in the database: a crash may leave bytes
    past it (never acknowledged: a body cut short, or what a power cut leaves of unsynced writes) or — on a file
    system that lost data — fewer bytes than it says. Either way HEAD tells the truth and the resumed upload still
    matches the sha256 declared at creation."""
    root, url, project_id = setup
    chunk = 2 * MiB
    data = {"tail": os.urandom(8 * MiB + 77), "lost": os.urandom(8 * MiB + 99)}
    acknowledged = 3 * chunk

    first = Server(tmp_path, root, url)
    with running(first):
        locations = {key: _create(first, project_id, content, f"{key}.bin") for key, content in data.items()}
        for key, location in locations.items():
            for offset in range(0, acknowledged, chunk):
                reply = _patch(first, location, offset, data[key][offset:offset + chunk])
                assert reply.status_code == 204 and int(reply.headers["Upload-Offset"]) == offset + chunk
        first.kill_9()

    engine = create_engine(url)
    with engine.connect() as conn:  # chunks wrote no row: the database still has the creation's offset
        assert conn.execute(select(Upload.offset)).scalars().all() == [0, 0]
    engine.dispose()
    partials = {key: root / "uploads" / ".partial" / location.rsplit("/", 1)[1]
                for key, location in locations.items()}
    with open(partials["tail"], "ab") as tail:
        tail.write(b"\0" * MiB + os.urandom(12345))  # on disk, never acknowledged
    os.truncate(partials["lost"], acknowledged - 1000)  # acknowledged, then lost by the file system

    second = Server(tmp_path, root, url)
    with running(second):
        offsets = {key: int(_head(second, location).headers["Upload-Offset"])
                   for key, location in locations.items()}
        assert offsets == {"tail": acknowledged, "lost": acknowledged - 1000}

        for key, location in locations.items():
            offset = offsets[key]
            while offset < len(data[key]):
                reply = _patch(second, location, offset, data[key][offset:offset + chunk])
                assert reply.status_code == 204, reply.text
                offset = int(reply.headers["Upload-Offset"])
            assert "Flow-DataFile-Id" in reply.headers  # the declared sha256 matched: completed, not 460

    engine = create_engine(url)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(DataFile.filename, DataFile.sha256)).all())
    engine.dispose()
    assert stored == {f"{key}.bin": hashlib.sha256(content).hexdigest() for key, content in data.items()}
