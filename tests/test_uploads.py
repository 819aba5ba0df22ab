"""Resumable uploads over tus 1.0.0, through the real Jupyter server with Flow enabled (SQLite and PostgreSQL).

Every refused request is its own story and checks that nothing changed on the server: the upload's offset, its
bytes on disk, and the data files.
"""
from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from conftest import TEST_USER_HEADER
from flowapi import Reply, UserAPI
from sqlalchemy import func, select
from waiting import wait_for_async

from flow_jupyter.data import uploads as svc
from flow_jupyter.db.models import DataFile, Level, Project, Sample, Share, Upload, UploadState, User
from flow_jupyter.identity import Identity
from flow_jupyter.metrics import REGISTRY

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}


# --- arranging the server's database directly (the projects API is not needed for these stories) -----------------


@pytest.fixture
def host(jp_serverapp):
    """The Flow host inside the test server: settings, database, storage."""
    return jp_serverapp.web_app.settings["flow"]


def make_project(host, owner: str, name: str = "reads") -> int:
    def create(session, actor):
        project = Project(name=name, owner_id=actor.user_id)
        session.add(project)
        session.flush()
        return project.id

    return host.run_as(Identity(owner), create)


def make_sample(host, owner: str, project_id: int, name: str = "s1") -> int:
    def create(session, actor):
        sample = Sample(project_id=project_id, name=name, meta={})
        session.add(sample)
        session.flush()
        return sample.id

    return host.run_as(Identity(owner), create)


def share_project(host, owner: str, project_id: int, grantee: str, level: Level) -> None:
    grantee_id = host.run_as(Identity(grantee), lambda session, actor: actor.user_id)

    def grant(session, actor):
        session.add(Share(object_type="project", object_id=project_id, user_id=grantee_id, level=level,
                          created_by_id=actor.user_id))

    host.run_as(Identity(owner), grant)


def upload_row(host, upload_id: str) -> Upload | None:
    with host.db.session() as session:
        return session.get(Upload, upload_id)


def count(host, model) -> int:
    with host.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def datafile(host, datafile_id: int) -> DataFile:
    with host.db.session() as session:
        return session.get(DataFile, datafile_id)


def partial_size(host, upload_id: str) -> int:
    path = host.storage.partial_path(upload_id)
    return path.stat().st_size if path.exists() else 0


# --- speaking tus ---------------------------------------------------------------------------------------------


def metadata(**pairs: str | int) -> str:
    return ",".join(f"{key} {base64.b64encode(str(value).encode()).decode()}" for key, value in pairs.items())


async def create(user: UserAPI, length: int, headers: dict | None = None, body: bytes | None = None,
                 **meta: str | int) -> Reply:
    all_headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(**meta), **(headers or {})}
    return await user.request("POST", "uploads", raw=body if body is not None else b"", headers=all_headers)


def upload_id_of(reply: Reply) -> str:
    assert reply.code == 201, reply.body
    return reply.headers["Location"].rsplit("/", 1)[1]


async def patch(user: UserAPI, upload_id: str, offset: int, data: bytes, **headers: str) -> Reply:
    extra = {key.replace("_", "-"): value for key, value in headers.items()}
    return await user.request("PATCH", f"uploads/{upload_id}", raw=data,
                              headers={**CHUNK, "Upload-Offset": str(offset), **extra})


async def head(user: UserAPI, upload_id: str) -> Reply:
    return await user.request("HEAD", f"uploads/{upload_id}", headers=dict(TUS))


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


@pytest.fixture
def alice(api) -> UserAPI:
    return api.as_user("alice")


@pytest.fixture
def bob(api) -> UserAPI:
    return api.as_user("bob")


@pytest.fixture
def project(host) -> int:
    return make_project(host, "alice")


# --- the happy paths --------------------------------------------------------------------------------------------


async def test_options_advertises_the_tus_protocol(alice) -> None:
    reply = await alice.request("OPTIONS", "uploads")

    assert reply.code == 204
    assert reply.headers["Tus-Version"] == "1.0.0"
    assert reply.headers["Tus-Extension"] == "creation,creation-with-upload,checksum,termination,expiration"
    assert int(reply.headers["Tus-Max-Size"]) == 1 << 40
    assert reply.headers["Tus-Checksum-Algorithm"] == "sha1,sha256,md5"


async def raw(jp_http_port, jp_base_url, method: str, path: str, *, body=None, headers: dict | None = None):
    """A request with no credentials at all (no token, no cookie): what a browser's CORS preflight sends."""
    from tornado.httpclient import AsyncHTTPClient

    return await AsyncHTTPClient().fetch(f"http://127.0.0.1:{jp_http_port}{jp_base_url}flow/api/{path}",
                                         method=method, body=body, headers=headers or {}, raise_error=False,
                                         allow_nonstandard_methods=True)


TUS_CAPABILITIES = {"Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm"}


async def test_options_answers_a_preflight_without_credentials_and_reveals_no_upload(host, project, alice,
                                                                                    jp_http_port,
                                                                                    jp_base_url) -> None:
    upload_id = upload_id_of(await create(alice, 10, filename="secret-name.txt", project=project))
    assert (await patch(alice, upload_id, 0, b"abcd")).code == 204
    preflight = {"Origin": "http://127.0.0.1", "Access-Control-Request-Method": "PATCH",
                 "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type"}

    answers = {path: await raw(jp_http_port, jp_base_url, "OPTIONS", path, headers=preflight)
               for path in ("uploads", "uploads/", f"uploads/{upload_id}", "uploads/00000000-0000-4000-8000-0")}

    for path, reply in answers.items():
        assert reply.code == 204, path
        assert TUS_CAPABILITIES <= set(reply.headers), path
        assert reply.headers["Tus-Version"] == "1.0.0" and int(reply.headers["Tus-Max-Size"]) == 1 << 40
        assert reply.body == b"", path
        assert not {"Upload-Offset", "Upload-Length", "Upload-Metadata", "Location", "Flow-DataFile-Id",
                    "Set-Cookie"} & set(reply.headers), path
        assert "upload-offset" in reply.headers["Access-Control-Allow-Headers"].lower()
    # An existing upload and a made-up id answer the same: nothing tells them apart.
    mine, made_up = answers[f"uploads/{upload_id}"], answers["uploads/00000000-0000-4000-8000-0"]
    assert {k: mine.headers[k] for k in TUS_CAPABILITIES} == {k: made_up.headers[k] for k in TUS_CAPABILITIES}
    # No loophole: every other verb without credentials is still refused, and nothing changed.
    assert (await raw(jp_http_port, jp_base_url, "HEAD", f"uploads/{upload_id}", headers=dict(TUS))).code == 403
    refused = await raw(jp_http_port, jp_base_url, "PATCH", f"uploads/{upload_id}", body=b"efgh",
                        headers={**CHUNK, "Upload-Offset": "4"})
    assert refused.code == 403
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "4"


async def test_the_collection_answers_with_a_trailing_slash_too(host, project, alice, jp_http_port, jp_base_url,
                                                                jp_serverapp, tmp_path) -> None:
    from tusclient import client

    token = {"Authorization": f"token {jp_serverapp.identity_provider.token}", TEST_USER_HEADER: "alice"}
    created = await raw(jp_http_port, jp_base_url, "POST", "uploads/", body=b"", headers={
        **TUS, **token, "Upload-Length": "6", "Upload-Metadata": metadata(filename="slash.txt", project=project)})
    assert created.code == 201 and created.effective_url.endswith("/flow/api/uploads/")
    upload_id = created.headers["Location"].rsplit("/", 1)[1]
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "0"
    done = await patch(alice, upload_id, 0, b"slash!")
    assert done.code == 204 and datafile(host, int(done.headers["Flow-DataFile-Id"])).size == 6

    # A stock client configured tusd-style, with the endpoint's trailing slash.
    source = tmp_path / "reads.fq"
    source.write_bytes(os.urandom(300_000))
    tus = client.TusClient(f"http://127.0.0.1:{jp_http_port}{jp_base_url}flow/api/uploads/", headers=token)
    uploader = tus.uploader(str(source), chunk_size=100_000, metadata={"filename": source.name,
                                                                       "project": str(project)})
    await asyncio.to_thread(uploader.upload)
    stored = datafile(host, upload_row(host, uploader.url.rsplit("/", 1)[1]).datafile_id)
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


async def test_tuspy_uploads_a_multi_chunk_file_with_token_and_user_headers(host, project, jp_fetch, jp_http_port,
                                                                           jp_base_url, jp_serverapp,
                                                                           tmp_path) -> None:
    from tusclient import client

    source = tmp_path / "reads_R1.fastq.gz"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}flow/api/uploads"
    tus = client.TusClient(url, headers={"Authorization": f"token {jp_serverapp.identity_provider.token}",
                                         TEST_USER_HEADER: "alice"})
    uploader = tus.uploader(str(source), chunk_size=512 * 1024, upload_checksum=True,
                            metadata={"filename": source.name, "project": str(project)})
    received_before = REGISTRY.get_sample_value("flow_upload_bytes_total") or 0.0

    await asyncio.to_thread(uploader.upload)  # tuspy is synchronous; this loop keeps serving meanwhile

    upload = upload_row(host, uploader.url.rsplit("/", 1)[1])
    assert upload.state == UploadState.completed and upload.offset == source.stat().st_size
    stored = datafile(host, upload.datafile_id)
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert stored.sha256 == expected
    assert (stored.filename, stored.file_type, stored.project_id) == (source.name, "fastq", project)
    assert hashlib.sha256(host.storage.resolve(stored.storage_path).read_bytes()).hexdigest() == expected
    assert REGISTRY.get_sample_value("flow_upload_bytes_total") - received_before == source.stat().st_size
    assert not host.storage.partial_path(upload.id).exists()


async def test_chunks_resume_from_head_and_completion_happens_once(host, project, alice) -> None:
    data = os.urandom(300_000)
    completed_before = REGISTRY.get_sample_value("flow_uploads_completed_total") or 0.0
    meta = {"filename": "sample.bam", "project": project, "sha256": hashlib.sha256(data).hexdigest()}
    created = await create(alice, len(data), **meta)
    upload_id = upload_id_of(created)
    assert created.headers["Upload-Offset"] == "0" and created.headers["Upload-Expires"].endswith(" GMT")
    assert created.headers["Location"].endswith(f"/flow/api/uploads/{upload_id}")

    first = await patch(alice, upload_id, 0, data[:100_000])
    assert first.code == 204 and first.headers["Upload-Offset"] == "100000"
    assert "Flow-DataFile-Id" not in first.headers

    state = await head(alice, upload_id)
    assert state.code == 200
    assert (state.headers["Upload-Offset"], state.headers["Upload-Length"]) == ("100000", "300000")
    assert state.headers["Cache-Control"] == "no-store"
    assert state.headers["Upload-Metadata"] == metadata(**meta)

    last = await patch(alice, upload_id, 100_000, data[100_000:], Upload_Checksum=checksum("md5", data[100_000:]))
    assert last.code == 204 and last.headers["Upload-Offset"] == "300000"
    datafile_id = int(last.headers["Flow-DataFile-Id"])
    assert datafile(host, datafile_id).sha256 == hashlib.sha256(data).hexdigest()

    again = await patch(alice, upload_id, 300_000, b"")  # a client retrying its final PATCH
    after = await head(alice, upload_id)
    assert again.code == 204 and int(again.headers["Flow-DataFile-Id"]) == datafile_id
    assert after.code == 200 and int(after.headers["Flow-DataFile-Id"]) == datafile_id
    assert count(host, DataFile) == 1
    assert REGISTRY.get_sample_value("flow_uploads_completed_total") - completed_before == 1


async def test_creation_with_upload_writes_the_first_chunk(host, project, alice) -> None:
    data = b"ACGT" * 1000

    created = await create(alice, len(data) * 2, body=data,
                           headers={"Content-Type": "application/offset+octet-stream"},
                           filename="reads.fastq", project=project)

    upload_id = upload_id_of(created)
    assert created.headers["Upload-Offset"] == str(len(data))
    assert partial_size(host, upload_id) == len(data)
    done = await patch(alice, upload_id, len(data), data)
    assert done.code == 204 and "Flow-DataFile-Id" in done.headers


async def test_an_empty_file_is_complete_when_created(host, project, alice) -> None:
    created = await create(alice, 0, filename="empty.txt", project=project)

    assert created.code == 201 and created.headers["Upload-Offset"] == "0"
    stored = datafile(host, int(created.headers["Flow-DataFile-Id"]))
    assert stored.size == 0 and stored.sha256 == hashlib.sha256(b"").hexdigest()


async def test_a_sample_of_the_project_is_attached_to_the_data_file(host, project, alice) -> None:
    sample = make_sample(host, "alice", project)
    created = await create(alice, 3, filename="a.txt", project=project, sample=sample)

    done = await patch(alice, upload_id_of(created), 0, b"abc")

    assert datafile(host, int(done.headers["Flow-DataFile-Id"])).sample_id == sample


async def test_method_override_lets_a_post_act_as_patch(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 4, filename="a.txt", project=project))

    reply = await alice.request("POST", f"uploads/{upload_id}", raw=b"abcd",
                                headers={**CHUNK, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"})

    assert reply.code == 204 and reply.headers["Upload-Offset"] == "4"


async def test_an_interrupted_body_keeps_the_bytes_that_arrived(host, project, alice, jp_http_port, jp_base_url,
                                                                 jp_serverapp) -> None:
    upload_id = upload_id_of(await create(alice, 1_000_000, filename="big.bin", project=project))
    half = os.urandom(400_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    request = (f"PATCH {jp_base_url}flow/api/uploads/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: token {jp_serverapp.identity_provider.token}\r\n{TEST_USER_HEADER}: alice\r\n"
               "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
               "Upload-Offset: 0\r\nContent-Length: 1000000\r\n\r\n")
    writer.write(request.encode() + half)
    await writer.drain()
    await wait_for_async(lambda: partial_size(host, upload_id), until=lambda size: size >= len(half),
                         what="the server to write what was sent")
    writer.close()  # the client dies mid-body

    # The server keeps the bytes on a worker thread; HEAD shows them once it has.
    kept = await wait_for_async(lambda: head(alice, upload_id), until=lambda r: r.headers["Upload-Offset"] != "0",
                                what="HEAD to show the bytes kept")
    assert kept.headers["Upload-Offset"] == str(len(half))
    assert host.storage.partial_path(upload_id).read_bytes() == half


# --- names from clients are never paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("../../etc/passwd", "passwd"),
    ("%2e%2e%2f%2e%2e%2fsecret", "%2e%2e%2f%2e%2e%2fsecret"),  # never URL-decoded, so never a path
    ("evil\x00.txt", "evil.txt"),
    ("/etc/shadow", "shadow"),
    ("x" * 300 + ".gz", "x" * 252 + ".gz"),
])
async def test_the_filename_is_sanitized_and_never_used_as_a_path(host, project, alice, flow_root, given,
                                                                  expected) -> None:
    created = await create(alice, 2, filename=given, project=project)
    done = await patch(alice, upload_id_of(created), 0, b"ok")

    stored = datafile(host, int(done.headers["Flow-DataFile-Id"]))
    assert stored.filename == expected and len(stored.filename.encode()) <= 255
    real = host.storage.resolve(stored.storage_path)
    assert real.name == expected and real.parent.parent.parent.parent == flow_root.resolve() / "uploads"
    assert real.read_bytes() == b"ok"
    assert not (flow_root / "etc").exists() and not (flow_root.parent / "secret").exists()


# --- refused requests change nothing ------------------------------------------------------------------------------


async def test_a_patch_at_the_wrong_offset_is_409(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 10, filename="a.txt", project=project))
    assert (await patch(alice, upload_id, 0, b"abcd")).code == 204

    reply = await patch(alice, upload_id, 2, b"cdef")

    assert reply.code == 409 and reply.json["error"]["field"] == "Upload-Offset"
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "4"
    assert host.storage.partial_path(upload_id).read_bytes() == b"abcd"


async def test_a_body_longer_than_the_upload_is_413_and_nothing_is_kept(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 10, filename="a.txt", project=project))
    assert (await patch(alice, upload_id, 0, b"abcd")).code == 204

    reply = await patch(alice, upload_id, 4, b"0123456789")

    assert reply.code == 413 and reply.json["error"]["reason"] == "too_large"
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "4"
    assert host.storage.partial_path(upload_id).read_bytes() == b"abcd"


@pytest.mark.parametrize("pieces", [[b"0123", b"4567", b"89AB"],  # two bytes too many
                                    [b"x" * 256 * 1024] * 3])  # far more than the upload has room for
async def test_a_chunked_body_longer_than_the_upload_is_413_and_nothing_is_kept(host, project, alice, jp_fetch,
                                                                                pieces) -> None:
    upload_id = upload_id_of(await create(alice, 14, filename="a.txt", project=project))
    assert (await patch(alice, upload_id, 0, b"abcd")).code == 204

    async def produce(write) -> None:  # no Content-Length: the server only learns the size while reading
        for piece in pieces:
            await write(piece)

    response = await jp_fetch("flow", "api", "uploads", upload_id, method="PATCH", body_producer=produce,
                              headers={**CHUNK, "Upload-Offset": "4", TEST_USER_HEADER: "alice"},
                              raise_error=False)

    assert response.code == 413 and response.headers["Tus-Resumable"] == "1.0.0"
    assert json.loads(response.body)["error"]["reason"] == "too_large"
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "4"
    assert host.storage.partial_path(upload_id).read_bytes() == b"abcd"


async def test_an_upload_beyond_the_quota_is_413(host, project, alice) -> None:
    host.settings.default_quota_bytes = 1000
    first = await create(alice, 600, filename="a.txt", project=project)
    assert first.code == 201

    reply = await create(alice, 600, filename="b.txt", project=project)  # the open upload counts

    assert reply.code == 413 and reply.json["error"]["reason"] == "quota_exceeded"
    assert count(host, Upload) == 1


async def test_a_users_own_quota_overrides_the_default(host, project, alice) -> None:
    def set_quota(session, actor):
        session.get(User, actor.user_id).quota_bytes = 10

    host.run_as(Identity("alice"), set_quota)

    reply = await create(alice, 11, filename="a.txt", project=project)

    assert reply.code == 413 and reply.json["error"]["reason"] == "quota_exceeded"
    assert count(host, Upload) == 0


async def test_an_upload_larger_than_the_maximum_is_413(host, project, alice) -> None:
    host.settings.max_upload_bytes = 100

    reply = await create(alice, 101, filename="a.txt", project=project)

    assert reply.code == 413 and reply.json["error"]["field"] == "Upload-Length"
    assert count(host, Upload) == 0


async def test_an_upload_that_would_fill_the_disk_is_507(host, project, alice) -> None:
    host.settings.min_free_upload_bytes = 1 << 62

    reply = await create(alice, 10, filename="a.txt", project=project)

    assert reply.code == 507 and reply.json["error"]["reason"] == "insufficient_storage"
    assert count(host, Upload) == 0


async def test_a_full_disk_while_writing_is_507_and_the_partial_chunk_is_discarded(host, project, alice,
                                                                                   monkeypatch) -> None:
    upload_id = upload_id_of(await create(alice, 300_000, filename="a.bin", project=project))
    assert (await patch(alice, upload_id, 0, b"x" * 1000)).code == 204
    host.settings.upload_buffer_bytes = 64 * 1024  # the chunk below is written in several pieces
    real_write = svc._write_at
    writes = []

    def disk_fills_up(fd, data, offset):  # the first piece lands, then the disk is full
        writes.append(len(data))
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data, offset)

    monkeypatch.setattr(svc, "_write_at", disk_fills_up)

    reply = await patch(alice, upload_id, 1000, os.urandom(200_000))

    assert len(writes) > 1  # the fake really ran mid-chunk
    assert reply.code == 507 and reply.json["error"]["reason"] == "insufficient_storage"
    monkeypatch.setattr(svc, "_write_at", real_write)
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "1000"
    assert partial_size(host, upload_id) == 1000


@pytest.mark.parametrize("upload_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "..%2F..%2Fflow.sqlite"])
async def test_an_unknown_or_malformed_upload_id_is_404(alice, upload_id) -> None:
    assert (await head(alice, upload_id)).code == 404
    assert (await patch(alice, upload_id, 0, b"x")).code == 404
    reply = await alice.request("DELETE", f"uploads/{upload_id}", headers=dict(TUS))
    assert reply.code == 404 and reply.json["error"]["reason"] == "not_found"


async def test_someone_elses_project_is_404(host, project, bob) -> None:
    reply = await create(bob, 10, filename="a.txt", project=project)

    assert reply.code == 404 and reply.json["error"]["reason"] == "not_found"
    assert count(host, Upload) == 0


async def test_someone_elses_upload_is_404(host, project, alice, bob) -> None:
    upload_id = upload_id_of(await create(alice, 10, filename="a.txt", project=project))
    assert (await patch(alice, upload_id, 0, b"abcd")).code == 204

    assert (await head(bob, upload_id)).code == 404
    assert (await patch(bob, upload_id, 4, b"efgh")).code == 404
    assert (await bob.request("DELETE", f"uploads/{upload_id}", headers=dict(TUS))).code == 404

    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "4"
    assert host.storage.partial_path(upload_id).read_bytes() == b"abcd"


async def test_a_view_only_user_cannot_upload_into_a_project(host, project, bob) -> None:
    share_project(host, "alice", project, "bob", Level.view)

    reply = await create(bob, 10, filename="a.txt", project=project)

    assert reply.code == 403 and reply.json["error"]["reason"] == "forbidden"
    assert count(host, Upload) == 0


async def test_an_editor_may_upload_into_a_shared_project(host, project, bob) -> None:
    share_project(host, "alice", project, "bob", Level.edit)

    created = await create(bob, 2, filename="a.txt", project=project)
    done = await patch(bob, upload_id_of(created), 0, b"ok")

    assert done.code == 204 and datafile(host, int(done.headers["Flow-DataFile-Id"])).project_id == project


async def test_a_sample_of_another_project_is_refused(host, project, alice) -> None:
    other = make_project(host, "alice", "other")
    sample = make_sample(host, "alice", other)

    reply = await create(alice, 10, filename="a.txt", project=project, sample=sample)

    assert reply.code == 404 and reply.json["error"]["field"] == "Upload-Metadata/sample"
    assert count(host, Upload) == 0


async def test_a_chunk_checksum_mismatch_is_460_and_the_chunk_is_discarded(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 8, filename="a.txt", project=project))
    assert (await patch(alice, upload_id, 0, b"abcd", Upload_Checksum=checksum("sha1", b"abcd"))).code == 204

    reply = await patch(alice, upload_id, 4, b"efgh", Upload_Checksum=checksum("sha256", b"EFGH"))

    assert reply.code == 460 and reply.json["error"]["reason"] == "checksum_mismatch"
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "4"
    assert host.storage.partial_path(upload_id).read_bytes() == b"abcd"
    assert count(host, DataFile) == 0


async def test_an_unsupported_checksum_algorithm_is_400(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 4, filename="a.txt", project=project))

    reply = await patch(alice, upload_id, 0, b"abcd", Upload_Checksum="crc32 AAAAAA==")

    assert reply.code == 400 and reply.json["error"]["field"] == "Upload-Checksum"
    assert partial_size(host, upload_id) == 0


async def test_a_whole_file_sha256_mismatch_removes_the_upload(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 4, filename="a.txt", project=project,
                                          sha256=hashlib.sha256(b"good").hexdigest()))

    reply = await patch(alice, upload_id, 0, b"evil")

    assert reply.code == 460 and reply.json["error"]["field"] == "Upload-Metadata/sha256"
    assert (await head(alice, upload_id)).code == 404
    assert upload_row(host, upload_id).state == UploadState.terminated
    assert count(host, DataFile) == 0 and not host.storage.partial_path(upload_id).exists()


async def test_two_concurrent_patches_at_the_same_offset_give_one_204(host, project, alice, jp_fetch) -> None:
    upload_id = upload_id_of(await create(alice, 200_000, filename="a.bin", project=project))
    first_half_sent = asyncio.Event()
    other_answered = asyncio.Event()
    body = os.urandom(100_000)

    async def slow_body(write) -> None:  # holds the upload mid-chunk until the rival has its answer
        await write(body[:50_000])
        first_half_sent.set()
        await other_answered.wait()
        await write(body[50_000:])

    async def holder():
        return await jp_fetch("flow", "api", "uploads", upload_id, method="PATCH", body_producer=slow_body,
                              headers={**CHUNK, "Upload-Offset": "0", "Content-Length": str(len(body)),
                                       TEST_USER_HEADER: "alice"}, raise_error=False)

    holding = asyncio.ensure_future(holder())
    await first_half_sent.wait()
    await wait_for_async(lambda: partial_size(host, upload_id), until=lambda size: size >= 50_000,
                         what="the first half to reach the disk", interval=0.01)
    rival = await patch(alice, upload_id, 0, os.urandom(100_000))
    other_answered.set()
    held = await holding

    assert sorted([held.code, rival.code]) == [204, 409]
    assert rival.json["error"]["field"] == "Upload-Offset"
    assert host.storage.partial_path(upload_id).read_bytes() == body


async def test_many_patches_racing_at_one_offset_give_exactly_one_204(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 400_000, filename="a.bin", project=project))
    bodies = [bytes([n]) * 200_000 for n in range(6)]

    replies = await asyncio.gather(*(patch(alice, upload_id, 0, body) for body in bodies))

    codes = sorted(reply.code for reply in replies)
    assert codes == [204, 409, 409, 409, 409, 409]
    winner = bodies[[reply.code for reply in replies].index(204)]
    assert host.storage.partial_path(upload_id).read_bytes() == winner
    assert (await head(alice, upload_id)).headers["Upload-Offset"] == "200000"


@pytest.mark.parametrize("version", [None, "0.2.2"])
async def test_a_request_without_tus_resumable_1_0_0_is_412(host, project, alice, version) -> None:
    headers = {"Upload-Length": "10", "Upload-Metadata": metadata(filename="a.txt", project=project)}
    if version:
        headers["Tus-Resumable"] = version

    reply = await alice.request("POST", "uploads", raw=b"", headers=headers)

    assert reply.code == 412 and reply.headers["Tus-Version"] == "1.0.0"
    assert reply.json["error"]["field"] == "Tus-Resumable"
    assert count(host, Upload) == 0


@pytest.mark.parametrize(("headers", "field"), [
    ({"Upload-Length": None}, "Upload-Length"),
    ({"Upload-Length": "-1"}, "Upload-Length"),
    ({"Upload-Length": None, "Upload-Defer-Length": "1"}, "Upload-Defer-Length"),
    ({"Upload-Metadata": metadata(project=1)}, "Upload-Metadata/filename"),
    ({"Upload-Metadata": metadata(filename="a.txt")}, "Upload-Metadata/project"),
    ({"Upload-Metadata": metadata(filename="a.txt", project="one")}, "Upload-Metadata/project"),
    ({"Upload-Metadata": "filename !!!"}, "Upload-Metadata/filename"),
])
async def test_bad_creation_headers_are_400_naming_the_header(host, project, alice, headers, field) -> None:
    all_headers = {**TUS, "Upload-Length": "10", "Upload-Metadata": metadata(filename="a.txt", project=project),
                   **headers}

    reply = await alice.request("POST", "uploads", raw=b"",
                                headers={k: v for k, v in all_headers.items() if v is not None})

    assert reply.code == 400 and reply.json["error"]["field"] == field
    assert count(host, Upload) == 0


async def test_a_chunk_without_the_offset_content_type_is_415(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 4, filename="a.txt", project=project))

    reply = await alice.request("PATCH", f"uploads/{upload_id}", raw=b"abcd",
                                headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/json"})

    assert reply.code == 415 and partial_size(host, upload_id) == 0


# --- termination and expiry ---------------------------------------------------------------------------------------


async def test_delete_terminates_an_upload_and_removes_its_bytes(host, project, alice) -> None:
    upload_id = upload_id_of(await create(alice, 10, filename="a.txt", project=project))
    assert (await patch(alice, upload_id, 0, b"abcd")).code == 204

    reply = await alice.request("DELETE", f"uploads/{upload_id}", headers=dict(TUS))

    assert reply.code == 204
    assert (await head(alice, upload_id)).code == 404
    assert (await patch(alice, upload_id, 4, b"efgh")).code == 404
    assert upload_row(host, upload_id).state == UploadState.terminated
    assert not host.storage.partial_path(upload_id).exists()


async def test_expiry_collects_an_idle_upload(host, project, alice) -> None:
    stale = upload_id_of(await create(alice, 10, filename="a.txt", project=project))
    assert (await patch(alice, stale, 0, b"abcd")).code == 204
    fresh = upload_id_of(await create(alice, 10, filename="b.txt", project=project))
    later = datetime.now(timezone.utc) + timedelta(seconds=host.settings.upload_expiry_seconds + 60)

    def touch(session, actor):  # the fresh upload had activity just before the job runs
        session.get(Upload, fresh).expires_at = later + timedelta(hours=1)

    host.run_as(Identity("alice"), touch)

    assert svc.expire_uploads(host) == 0  # nothing is idle yet
    assert await asyncio.to_thread(svc.expire_uploads, host, later) == 1

    assert upload_row(host, stale).state == UploadState.expired
    assert not host.storage.partial_path(stale).exists()
    assert (await head(alice, stale)).code == 404
    assert upload_row(host, fresh).state == UploadState.active
    assert (await head(alice, fresh)).code == 200
