"""Downloads through the real Jupyter server with Flow enabled: one file with Range and ETag, zips streamed while
they are made, deferred zip jobs — and, always, nothing for someone who may not see it.

Data files are arranged directly (bytes under the Flow root, rows via register_file), not through the files API.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import update

from conftest import TEST_USER_HEADER
from waiting import wait_for_async
from flow_jupyter.data.safeopen import signed64
from flow_jupyter.data.zipjobs import ZIP_TASK, create_zip_job, expire_zips
from flow_jupyter.data.files import register_file
from flow_jupyter.db.models import DataFile, Group, Membership, Project, Sample, Share, Visibility
from flow_jupyter.identity import Identity
from flow_jupyter.metrics import REGISTRY

FASTQ = b"@read1\nACGTACGTAC\n+\nIIIIIIIIII\n@read2\nTTTTGGGGCC\n+\nIIIIIIIIII\n"


# --- arranging data ----------------------------------------------------------------------------------------------


@pytest.fixture
def host(jp_serverapp):
    """The Flow host of the test server: settings, database and storage, used to arrange data directly."""
    return jp_serverapp.web_app.settings["flow"]


def make_project(host, owner: str, name: str, visibility: Visibility = Visibility.private,
                 group: str | None = None) -> int:
    def create(session, actor):
        group_id = None
        if group:
            found = session.query(Group).filter_by(name=group).one_or_none() or Group(name=group)
            session.add(found)
            session.flush()
            group_id = found.id
        project = Project(name=name, owner_id=actor.user_id, visibility=visibility, group_id=group_id)
        session.add(project)
        session.flush()
        return project.id

    return host.run_as(Identity(owner), create)


def make_sample(host, owner: str, project_id: int, name: str) -> int:
    def create(session, actor):
        sample = Sample(project_id=project_id, name=name)
        session.add(sample)
        session.flush()
        return sample.id

    return host.run_as(Identity(owner), create)


def store(host, owner: str, project_id: int, filename: str, data: bytes, sample_id: int | None = None) -> int:
    """Bytes written under the Flow root and registered as the owner's data file; returns its id."""
    relative = host.storage.new_relative_path(filename)
    path = host.storage.resolve(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)

    def register(session, actor):
        return register_file(session, owner_id=actor.user_id, project_id=project_id, sample_id=sample_id,
                             filename=filename, storage_path=relative, size=len(data),
                             sha256=hashlib.sha256(data).hexdigest()).id

    return host.run_as(Identity(owner), register)


def join_group(host, user: str, group: str) -> int:
    def join(session, actor):
        found = session.query(Group).filter_by(name=group).one_or_none() or Group(name=group)
        session.add(found)
        session.flush()
        session.add(Membership(user_id=actor.user_id, group_id=found.id))
        return found.id

    return host.run_as(Identity(user), join)


def share_project_with_group(host, owner: str, project_id: int, group_id: int) -> None:
    def share(session, actor):
        session.add(Share(object_type="project", object_id=project_id, group_id=group_id, created_by_id=actor.user_id))

    host.run_as(Identity(owner), share)


def tamper_storage_path(host, datafile_id: int, storage_path: str) -> None:
    with host.db.session() as session:
        session.execute(update(DataFile).where(DataFile.id == datafile_id).values(storage_path=storage_path))


def downloaded_bytes() -> float:
    return REGISTRY.get_sample_value("flow_download_bytes_total") or 0.0


def unzip(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


async def wait_for_job(user, job_id: int) -> dict:
    """Poll the job until it leaves pending/running (bounded, so a stuck job fails the test instead of hanging)."""
    reply = await wait_for_async(lambda: user.get(f"jobs/{job_id}"),
                                 until=lambda r: r.code != 200 or r.json["status"] not in ("pending", "running"),
                                 what=f"zip job {job_id} to finish", interval=0.05)
    assert reply.code == 200, reply.body
    return reply.json


# --- one file ------------------------------------------------------------------------------------------------------


async def test_owner_downloads_a_file_with_every_safety_header(api, host) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "sample1.fastq.gz", FASTQ)
    alice = api.as_user("alice")
    before = downloaded_bytes()

    reply = await alice.get(f"files/{file_id}/content")

    assert reply.code == 200, reply.body
    assert reply.body == FASTQ
    headers = reply.headers
    assert headers["Content-Length"] == str(len(FASTQ))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == f'"{hashlib.sha256(FASTQ).hexdigest()}"'
    assert headers["Last-Modified"].endswith(" GMT")
    assert headers["Content-Type"] == "application/gzip"  # never Content-Encoding: clients would gunzip it
    assert "Content-Encoding" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"sample1.fastq.gz\"; filename*=UTF-8''sample1.fastq.gz")
    assert downloaded_bytes() - before == len(FASTQ)


async def test_head_gives_the_headers_without_the_body(api, host) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "table.csv", b"a,b\n1,2\n")

    reply = await api.as_user("alice").request("HEAD", f"files/{file_id}/content")

    assert reply.code == 200
    assert reply.body == b""
    assert reply.headers["Content-Length"] == "8"
    assert reply.headers["Content-Type"] == "text/csv"
    assert reply.headers["Accept-Ranges"] == "bytes"


async def test_unknown_types_are_octet_streams(api, host) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "reads.fq", FASTQ)

    reply = await api.as_user("alice").get(f"files/{file_id}/content")

    assert reply.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(("range_header", "start", "end"), [
    ("bytes=2-5", 2, 5),          # first-last
    ("bytes=10-", 10, None),      # from an offset to the end (what `curl -C -` sends)
    ("bytes=-4", -4, None),       # the last n bytes
    ("bytes=30-9999", 30, None),  # a last position past the end is clamped
])
async def test_a_single_range_is_206_with_its_content_range(api, host, range_header, start, end) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "r.fq", FASTQ)
    expected = FASTQ[start:end + 1] if end is not None else FASTQ[start:]
    first = start if start >= 0 else len(FASTQ) + start

    reply = await api.as_user("alice").request("GET", f"files/{file_id}/content", headers={"Range": range_header})

    assert reply.code == 206, reply.body
    assert reply.body == expected
    assert reply.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(FASTQ)}"
    assert reply.headers["Content-Length"] == str(len(expected))


@pytest.mark.parametrize("range_header", [
    f"bytes={len(FASTQ)}-",                    # starts at the end
    "bytes=-0",                                # the last zero bytes
    f"bytes={len(FASTQ) + 5}-{len(FASTQ) + 9}",  # wholly past the end
])
async def test_an_unsatisfiable_range_is_416_with_the_size(api, host, range_header) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "r.fq", FASTQ)

    reply = await api.as_user("alice").request("GET", f"files/{file_id}/content", headers={"Range": range_header})

    assert reply.code == 416
    assert reply.headers["Content-Range"] == f"bytes */{len(FASTQ)}"
    assert reply.error["reason"] == "range_not_satisfiable"


async def test_several_ranges_or_a_stale_if_range_get_the_whole_file(api, host) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "r.fq", FASTQ)
    alice = api.as_user("alice")
    etag = (await alice.get(f"files/{file_id}/content")).headers["ETag"]

    several = await alice.request("GET", f"files/{file_id}/content", headers={"Range": "bytes=0-1,5-6"})
    stale = await alice.request("GET", f"files/{file_id}/content",
                                headers={"Range": "bytes=0-1", "If-Range": '"0000"'})
    current = await alice.request("GET", f"files/{file_id}/content",
                                  headers={"Range": "bytes=0-1", "If-Range": etag})

    assert (several.code, several.body) == (200, FASTQ)
    assert (stale.code, stale.body) == (200, FASTQ)
    assert (current.code, current.body) == (206, FASTQ[:2])


async def test_a_matching_etag_is_304_without_a_body(api, host) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "r.fq", FASTQ)
    alice = api.as_user("alice")
    etag = (await alice.get(f"files/{file_id}/content")).headers["ETag"]

    same = await alice.request("GET", f"files/{file_id}/content", headers={"If-None-Match": etag})
    weak = await alice.request("GET", f"files/{file_id}/content", headers={"If-None-Match": f'"x", W/{etag}'})
    changed = await alice.request("GET", f"files/{file_id}/content", headers={"If-None-Match": '"other"'})

    assert (same.code, same.body, same.headers["ETag"]) == (304, b"", etag)
    assert weak.code == 304
    assert (changed.code, changed.body) == (200, FASTQ)


async def test_another_users_private_file_does_not_exist_for_bob(api, host) -> None:
    project = make_project(host, "alice", "private work")
    file_id = store(host, "alice", project, "secret.fq", FASTQ)
    bob = api.as_user("bob")

    hidden = await bob.get(f"files/{file_id}/content")
    missing = await bob.get(f"files/{file_id + 1000}/content")
    head = await bob.request("HEAD", f"files/{file_id}/content")

    assert hidden.code == 404 and hidden.error["reason"] == "not_found"
    assert hidden.body == missing.body  # no existence oracle
    assert head.code == 404
    assert FASTQ not in hidden.body


async def test_a_file_in_a_project_shared_with_bobs_group_downloads(api, host) -> None:
    project = make_project(host, "alice", "shared work")
    file_id = store(host, "alice", project, "shared.fq", FASTQ)
    lab = join_group(host, "bob", "lab")
    share_project_with_group(host, "alice", project, lab)

    reply = await api.as_user("bob").get(f"files/{file_id}/content")

    assert (reply.code, reply.body) == (200, FASTQ)


async def test_a_hostile_filename_gets_a_safe_content_disposition(api, host) -> None:
    project = make_project(host, "alice", "reads")
    hostile = '../../"quoted"\nnaïve ✓; x=1.fq.gz'
    file_id = store(host, "alice", project, hostile, FASTQ)

    reply = await api.as_user("alice").get(f"files/{file_id}/content")

    assert reply.code == 200, reply.body
    disposition = reply.headers["Content-Disposition"]
    assert disposition.isascii() and "\n" not in disposition and "\r" not in disposition
    assert disposition.startswith('attachment; filename="')
    fallback = disposition.split('filename="', 1)[1].split('"; filename*=', 1)[0]
    assert '"' not in fallback and "\\" not in fallback and "/" not in fallback
    assert fallback == "_quoted__naive _; x=1.fq.gz"
    exact = unquote(disposition.split("filename*=UTF-8''", 1)[1], errors="strict")
    assert exact == "_quoted__naïve ✓; x=1.fq.gz"
    assert ".." not in disposition


@pytest.mark.parametrize("storage_path", ["../../etc/passwd", "/etc/passwd", "uploads/../../outside.txt",
                                          "uploads"])
async def test_a_stored_path_leaving_the_root_is_never_served(api, host, storage_path) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "r.fq", FASTQ)
    tamper_storage_path(host, file_id, storage_path)

    reply = await api.as_user("alice").get(f"files/{file_id}/content")

    assert reply.code in (404, 500)
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.error["reason"] in ("bad_storage_path", "file_missing", "not_found")
    assert b"root:" not in reply.body


async def test_a_symlink_under_the_root_pointing_outside_is_refused(api, host, tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_bytes(b"TOP SECRET")
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "r.fq", FASTQ)
    relative = host.storage.new_relative_path("link.fq")
    link = host.storage.root / relative
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    tamper_storage_path(host, file_id, relative)

    reply = await api.as_user("alice").get(f"files/{file_id}/content")
    zipped = await api.as_user("alice").post("downloads", {"files": [file_id]})

    for refused in (reply, zipped):
        assert refused.code in (404, 500)
        assert refused.error["reason"] == "bad_storage_path"
        assert b"TOP SECRET" not in refused.body


# --- streamed zips ---------------------------------------------------------------------------------------------


async def test_bulk_zip_names_files_safely_by_sample_with_duplicates_numbered(api, host) -> None:
    project = make_project(host, "alice", "reads")
    s1 = make_sample(host, "alice", project, "S1")
    first = store(host, "alice", project, "reads.fq.gz", b"first")
    second = store(host, "alice", project, "reads.fq.gz", b"second")
    in_sample = store(host, "alice", project, "../reads.fq.gz", b"in sample", sample_id=s1)
    folder_name = store(host, "alice", project, "S1", b"a file named like the folder")
    before = downloaded_bytes()

    reply = await api.as_user("alice").post("downloads", {"files": [first, second, in_sample, folder_name]})

    assert reply.code == 200, reply.body
    assert reply.headers["Content-Type"] == "application/zip"
    assert reply.headers["Content-Disposition"].startswith('attachment; filename="flow-download.zip"')
    assert reply.headers["Content-Security-Policy"] == "sandbox"
    assert unzip(reply.body) == {
        "reads.fq.gz": b"first",
        "reads (2).fq.gz": b"second",
        "S1/reads.fq.gz": b"in sample",
        "S1 (2)": b"a file named like the folder",
    }
    assert downloaded_bytes() - before == len(reply.body)


async def test_bulk_zip_with_one_invisible_file_is_404_naming_it_and_sends_nothing(api, host) -> None:
    mine = store(host, "bob", make_project(host, "bob", "bobs"), "mine.fq", FASTQ)
    theirs = store(host, "alice", make_project(host, "alice", "alices"), "theirs.fq", b"alice only")

    reply = await api.as_user("bob").post("downloads", {"files": [mine, theirs]})

    assert reply.code == 404
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.error == {"reason": "not_found", "message": "No such data file.", "field": "/files/1"}
    assert b"PK" not in reply.body[:2]


@pytest.mark.parametrize(("body", "reason", "field"), [
    (b"{not json", "malformed_json", None),
    (json.dumps({"files": [1], "extra": True}).encode(), "unknown_field", "/extra"),
    (json.dumps({}).encode(), "missing_field", "/files"),
    (json.dumps({"files": []}).encode(), "invalid_field", "/files"),
    (json.dumps({"files": ["1"]}).encode(), "invalid_field", "/files/0"),
    (json.dumps({"files": list(range(1, 10_002))}).encode(), "invalid_field", "/files"),
])
async def test_bad_bulk_requests_are_400_naming_the_problem(api, body, reason, field) -> None:
    reply = await api.as_user("alice").post("downloads", raw=body)

    assert reply.code == 400
    assert reply.error["reason"] == reason
    assert reply.error.get("field") == field


async def test_project_zip_has_every_file_of_the_project_by_sample(api, host) -> None:
    project = make_project(host, "alice", 'Liver "RNA" 2024')
    other = make_project(host, "alice", "other")
    sample = make_sample(host, "alice", project, "liver-1")
    store(host, "alice", project, "R1.fq.gz", b"r1", sample_id=sample)
    store(host, "alice", project, "R2.fq.gz", b"r2", sample_id=sample)
    store(host, "alice", project, "notes.txt", b"notes")
    store(host, "alice", other, "elsewhere.txt", b"not in this project")

    reply = await api.as_user("alice").get(f"projects/{project}/download")
    hidden = await api.as_user("bob").get(f"projects/{project}/download")

    assert reply.code == 200, reply.body
    assert reply.headers["Content-Disposition"].startswith('attachment; filename="Liver _RNA_ 2024.zip"')
    assert unzip(reply.body) == {"liver-1/R1.fq.gz": b"r1", "liver-1/R2.fq.gz": b"r2", "notes.txt": b"notes"}
    assert hidden.code == 404 and hidden.error["reason"] == "not_found"


async def test_an_empty_project_is_an_empty_zip(api, host) -> None:
    project = make_project(host, "alice", "empty")

    reply = await api.as_user("alice").get(f"projects/{project}/download")

    assert reply.code == 200
    assert unzip(reply.body) == {}


async def test_a_client_that_hangs_up_stops_the_zip_producer(api, host, jp_serverapp) -> None:
    project = make_project(host, "alice", "big")
    big, _ = sparse_file(host, "alice", project, "big.bin", 256 << 20)  # far more than queue and socket buffers
    before = {t for t in threading.enumerate() if t.name == "flow-zip-stream"}
    reader, writer = await raw_post(jp_serverapp, "downloads", json.dumps({"files": [big]}).encode(), "alice")
    status = await reader.readline()
    await reader.readexactly(64 * 1024)  # the zip has started; the producer is now ahead, waiting for slots
    producers = [t for t in threading.enumerate() if t.name == "flow-zip-stream" and t not in before]
    writer.close()
    await writer.wait_closed()

    await wait_for_async(lambda: not any(t.is_alive() for t in producers), what="the zip producer to stop",
                         interval=0.05)
    assert status.startswith(b"HTTP/1.1 200")
    assert len(producers) == 1
    assert not producers[0].is_alive()


async def raw_post(jp_serverapp, path: str, body: bytes, user: str):
    """A hand-made HTTP/1.1 request, so a test can read a response piecemeal or hang up half-way."""
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_serverapp.port)
    writer.write(
        f"POST {jp_serverapp.base_url}flow/api/{path} HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: token {jp_serverapp.identity_provider.token}\r\n{TEST_USER_HEADER}: {user}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    return reader, writer


def sparse_file(host, owner: str, project: int, name: str, size: int) -> tuple[int, Path]:
    """A data file of ``size`` zero bytes that takes no disk space."""
    file_id = store(host, owner, project, name, b"")
    relative = host.run_as(Identity(owner), lambda session, actor: session.get(DataFile, file_id).storage_path)
    path = host.storage.root / relative
    with open(path, "r+b") as handle:
        handle.truncate(size)

    def registered_as_it_is_now(session, actor) -> None:  # the row must describe the bytes, or they are not served
        datafile, info = session.get(DataFile, file_id), path.stat()
        datafile.size, datafile.stat_inode, datafile.stat_mtime_ns = size, signed64(info.st_ino), info.st_mtime_ns

    host.run_as(Identity(owner), registered_as_it_is_now)
    return file_id, path


async def test_a_file_vanishing_mid_zip_drops_the_connection_instead_of_ending_the_zip(api, host,
                                                                                       jp_serverapp) -> None:
    project = make_project(host, "alice", "big")
    big, _ = sparse_file(host, "alice", project, "big.bin", 32 << 20)
    small = store(host, "alice", project, "small.fq", FASTQ)
    small_path = host.storage.root / host.run_as(Identity("alice"),
                                                 lambda session, actor: session.get(DataFile, small).storage_path)
    reader, writer = await raw_post(jp_serverapp, "downloads", json.dumps({"files": [big, small]}).encode(), "alice")
    status = await reader.readline()
    await reader.readexactly(64 * 1024)  # streaming has begun: the checks passed while small.fq still existed
    small_path.unlink()

    rest = await asyncio.wait_for(reader.read(), 30)  # to EOF: the server closes the connection
    writer.close()

    assert status.startswith(b"HTTP/1.1 200")
    assert not rest.endswith(b"0\r\n\r\n")  # no final chunk: the client knows the transfer failed


# --- deferred zips -----------------------------------------------------------------------------------------------


async def test_a_deferred_zip_is_built_as_a_job_and_served_with_ranges(api, host) -> None:
    project = make_project(host, "alice", "reads")
    sample = make_sample(host, "alice", project, "S1")
    ids = [store(host, "alice", project, "a.fq.gz", b"aaa", sample_id=sample),
           store(host, "alice", project, "b.fq.gz", b"bbbb")]
    alice, bob = api.as_user("alice"), api.as_user("bob")

    queued = await alice.post("downloads", {"files": ids, "deferred": True})

    assert queued.code == 202, queued.body
    assert queued.json["status"] == "pending"
    job_id = queued.json["job"]
    assert queued.headers["Location"].endswith(f"/flow/api/jobs/{job_id}")
    job = await wait_for_job(alice, job_id)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "zip" and job["result"]["files"] == 2 and job["owner_name"] == "alice"

    whole = await alice.get(f"jobs/{job_id}/content")
    assert whole.code == 200
    assert unzip(whole.body) == {"S1/a.fq.gz": b"aaa", "b.fq.gz": b"bbbb"}
    assert whole.headers["ETag"] == f'"{hashlib.sha256(whole.body).hexdigest()}"' == f'"{job["result"]["sha256"]}"'
    assert whole.headers["Content-Disposition"].startswith('attachment; filename="flow-download.zip"')
    tail = await alice.request("GET", f"jobs/{job_id}/content", headers={"Range": "bytes=-10"})
    assert (tail.code, tail.body) == (206, whole.body[-10:])

    for path in (f"jobs/{job_id}", f"jobs/{job_id}/content"):
        hidden = await bob.get(path)
        assert hidden.code == 404 and hidden.error["reason"] == "not_found"
    assert (await api.owner.get(f"jobs/{job_id}")).code == 200  # a Flow admin (the server's user) sees every job


async def test_a_deferred_zip_checks_rights_before_queueing(api, host) -> None:
    theirs = store(host, "alice", make_project(host, "alice", "alices"), "theirs.fq", FASTQ)

    reply = await api.as_user("bob").post("downloads", {"files": [theirs], "deferred": True})

    assert reply.code == 404 and reply.error["field"] == "/files/0"


async def test_a_job_checks_rights_again_when_it_is_built(api, host) -> None:
    project = make_project(host, "alice", "shared work")
    file_id = store(host, "alice", project, "shared.fq", FASTQ)
    lab = join_group(host, "bob", "lab")
    share_project_with_group(host, "alice", project, lab)

    def queue_then_revoke(session, actor):
        job_id = create_zip_job(session, actor, host.storage, [file_id])  # queued while shared ...
        session.query(Share).delete()  # ... and the share is revoked before any host could build it
        return job_id

    job_id = host.run_as(Identity("bob"), queue_then_revoke)
    await host.periodic.run_now(ZIP_TASK)

    bob = api.as_user("bob")
    job = await wait_for_job(bob, job_id)
    content = await bob.get(f"jobs/{job_id}/content")
    assert (job["status"], job["error"]) == ("failed", "No such data file. (/files/0)")
    assert content.code == 409 and content.error["reason"] == "job_failed"
    assert not list((host.storage.root / "zips").iterdir())


async def test_expired_zips_are_removed_and_gone(api, host) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "a.fq.gz", b"aaa")
    alice = api.as_user("alice")
    job_id = (await alice.post("downloads", {"files": [file_id], "deferred": True})).json["job"]
    await wait_for_job(alice, job_id)
    zips = host.storage.root / "zips"
    assert (zips / f"{job_id}.zip").is_file()
    (zips / ".999999.zip.partial").write_bytes(b"left over by a crash")

    kept = await asyncio.to_thread(expire_zips, host, 3600)
    removed = await asyncio.to_thread(expire_zips, host, 0)

    assert (kept, removed) == (0, 2)
    assert not (zips / f"{job_id}.zip").exists() and not (zips / ".999999.zip.partial").exists()
    gone = await alice.get(f"jobs/{job_id}/content")
    assert gone.code == 410 and gone.error["reason"] == "zip_expired"
    assert (await alice.get(f"jobs/{job_id}")).json["result"]["expired"] is True
