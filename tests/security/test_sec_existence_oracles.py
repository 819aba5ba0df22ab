"""No existence oracle, as a matrix: for every route of the API and every id-shaped input it takes (URL segment,
query argument, body field, tus metadata), alice asking about *bob's* object gets exactly the answer she gets for
an id that does not exist — same status, same Content-Type, same body byte for byte (apart from the id itself
where a message quotes the request back).

Alice always owns everything else the request needs, so the varied input is the only thing that can fail. A
second story checks that the matrix covers every route and verb of `flow_jupyter.api.default_handlers`. Bob's
objects are all still there, unchanged, afterwards. Runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import pytest
from sqlalchemy import select

from flow_jupyter.api import default_handlers
from flow_jupyter.data.files import store_bytes
from flow_jupyter.db.models import Execution, Pipeline, PipelineVersion
from flow_jupyter.identity import Identity

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
MISSING_NUMBER = 2_000_000_000  # a valid row id that no row has
VERSION = "pipelines/demo/versions/0.1.0"


@dataclass
class Req:
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    """One id-shaped input of one route: ``build(target, mine)`` makes the request with ``target`` in that input."""

    route: str
    method: str
    kind: str
    build: Callable[[Any, dict], Req]

    def __str__(self) -> str:
        return f"{self.method} {self.route} [{self.kind}]"


def metadata(**pairs: Any) -> str:
    return ",".join(f"{key} {base64.b64encode(str(value).encode()).decode()}" for key, value in pairs.items())


def tus_create(**meta: Any) -> Req:
    return Req("POST", "uploads", raw=b"", headers={**TUS, "Upload-Length": "5", "Upload-Metadata": metadata(**meta)})


def launch_params(mine: dict, **changes: Any) -> dict:
    """Params of the bundled demo pipeline that are valid with alice's own files."""
    return {"input": {"datafile": mine["sheet"]}, "fasta": {"datafile": mine["fasta"]}, "outdir": "results",
            **changes}


def row(fastq: Any) -> dict:
    return {"sample": "S1", "fastq_1": f"flow://datafile/{fastq}"}


P, E = "/flow/api/projects", "/flow/api/executions/([0-9a-fA-F-]{1,36})"
PIPE, VER = "/flow/api/pipelines/([^/]+)", "/flow/api/pipelines/([^/]+)/versions/([^/]+)"
CASES: list[Case] = [
    # groups
    Case("/flow/api/groups/(\\d+)", "GET", "group", lambda t, m: Req("GET", f"groups/{t}")),
    Case("/flow/api/groups/(\\d+)/members", "GET", "group", lambda t, m: Req("GET", f"groups/{t}/members")),
    Case("/flow/api/groups/(\\d+)/members", "POST", "group",
         lambda t, m: Req("POST", f"groups/{t}/members", {"user": "carol"})),
    # projects, including the group a project is given to
    Case(P, "POST", "group", lambda t, m: Req("POST", "projects", {"name": "x", "visibility": "group", "group": t})),
    Case(P + "/(\\d+)", "GET", "project", lambda t, m: Req("GET", f"projects/{t}")),
    Case(P + "/(\\d+)", "PATCH", "project", lambda t, m: Req("PATCH", f"projects/{t}", {"description": "x"})),
    Case(P + "/(\\d+)", "PATCH", "group",
         lambda t, m: Req("PATCH", f"projects/{m['project']}", {"group": t, "visibility": "group"})),
    Case(P + "/(\\d+)", "PATCH", "group", lambda t, m: Req("PATCH", f"projects/{m['project']}", {"group": t})),
    # samples
    Case(P + "/(\\d+)/samples", "GET", "project", lambda t, m: Req("GET", f"projects/{t}/samples")),
    Case(P + "/(\\d+)/samples", "POST", "project", lambda t, m: Req("POST", f"projects/{t}/samples", {"name": "S9"})),
    Case("/flow/api/samples/(\\d+)", "GET", "sample", lambda t, m: Req("GET", f"samples/{t}")),
    Case("/flow/api/samples/(\\d+)", "PATCH", "sample", lambda t, m: Req("PATCH", f"samples/{t}", {"name": "x"})),
    # data files, including the project and sample a file is moved to
    Case("/flow/api/files", "GET", "project", lambda t, m: Req("GET", "files", params={"project": t})),
    Case("/flow/api/files", "GET", "sample", lambda t, m: Req("GET", "files", params={"sample": t})),
    Case("/flow/api/files", "GET", "execution", lambda t, m: Req("GET", "files", params={"execution": t})),
    Case("/flow/api/files/(\\d+)", "GET", "file", lambda t, m: Req("GET", f"files/{t}")),
    Case("/flow/api/files/(\\d+)", "PATCH", "file", lambda t, m: Req("PATCH", f"files/{t}", {"filename": "x.txt"})),
    Case("/flow/api/files/(\\d+)", "PATCH", "project",
         lambda t, m: Req("PATCH", f"files/{m['file']}", {"project": t})),
    Case("/flow/api/files/(\\d+)", "PATCH", "sample", lambda t, m: Req("PATCH", f"files/{m['file']}", {"sample": t})),
    # shares: the object, the share, the group shared with
    Case("/flow/api/shares", "GET", "project",
         lambda t, m: Req("GET", "shares", params={"object_type": "project", "object_id": t})),
    Case("/flow/api/shares", "GET", "file",
         lambda t, m: Req("GET", "shares", params={"object_type": "datafile", "object_id": t})),
    Case("/flow/api/shares", "POST", "project",
         lambda t, m: Req("POST", "shares", {"object_type": "project", "object_id": t, "user": "carol"})),
    Case("/flow/api/shares", "POST", "file",
         lambda t, m: Req("POST", "shares", {"object_type": "datafile", "object_id": t, "user": "carol"})),
    Case("/flow/api/shares", "POST", "group",
         lambda t, m: Req("POST", "shares", {"object_type": "project", "object_id": m["project"], "group": t})),
    Case("/flow/api/shares/(\\d+)", "PATCH", "share", lambda t, m: Req("PATCH", f"shares/{t}", {"level": "edit"})),
    # uploads (tus): the target project and sample, the upload itself
    Case("/flow/api/uploads", "POST", "project", lambda t, m: tus_create(filename="a.txt", project=t)),
    Case("/flow/api/uploads", "POST", "sample",
         lambda t, m: tus_create(filename="a.txt", project=m["project"], sample=t)),
    Case("/flow/api/uploads/([^/]+)", "HEAD", "upload", lambda t, m: Req("HEAD", f"uploads/{t}", headers=dict(TUS))),
    Case("/flow/api/uploads/([^/]+)", "PATCH", "upload",
         lambda t, m: Req("PATCH", f"uploads/{t}", raw=b"ACGT\n", headers=dict(CHUNK))),
    # downloads and zip jobs
    Case("/flow/api/files/(\\d+)/content", "GET", "file", lambda t, m: Req("GET", f"files/{t}/content")),
    Case("/flow/api/files/(\\d+)/content", "HEAD", "file", lambda t, m: Req("HEAD", f"files/{t}/content")),
    Case("/flow/api/downloads", "POST", "file", lambda t, m: Req("POST", "downloads", {"files": [m["file"], t]})),
    Case("/flow/api/downloads", "POST", "file",
         lambda t, m: Req("POST", "downloads", {"files": [t], "deferred": True})),
    Case(P + "/(\\d+)/download", "GET", "project", lambda t, m: Req("GET", f"projects/{t}/download")),
    Case("/flow/api/jobs/(\\d+)", "GET", "job", lambda t, m: Req("GET", f"jobs/{t}")),
    Case("/flow/api/jobs/(\\d+)/content", "GET", "job", lambda t, m: Req("GET", f"jobs/{t}/content")),
    Case("/flow/api/jobs/(\\d+)/content", "HEAD", "job", lambda t, m: Req("HEAD", f"jobs/{t}/content")),
    # executions and what they left (reports, logs)
    Case("/flow/api/executions", "GET", "project", lambda t, m: Req("GET", "executions", params={"project": t})),
    Case("/flow/api/executions", "POST", "project",
         lambda t, m: Req("POST", "executions", {"pipeline": "demo", "project": t, "params": launch_params(m)})),
    Case("/flow/api/executions", "POST", "file", lambda t, m: Req("POST", "executions", {
        "pipeline": "demo", "project": m["project"], "params": launch_params(m, fasta={"datafile": t})})),
    Case(E, "GET", "execution", lambda t, m: Req("GET", f"executions/{t}")),
    Case(E + "/tasks", "GET", "execution", lambda t, m: Req("GET", f"executions/{t}/tasks")),
    Case(E + "/log", "GET", "execution", lambda t, m: Req("GET", f"executions/{t}/log")),
    Case(E + "/cancel", "POST", "execution", lambda t, m: Req("POST", f"executions/{t}/cancel", {})),
    Case(E + "/resume", "POST", "execution", lambda t, m: Req("POST", f"executions/{t}/resume", {})),
    Case(E + "/resume", "POST", "file", lambda t, m: Req(
        "POST", f"executions/{m['execution']}/resume", {"params": {"fasta": {"datafile": t}}})),
    Case(E + "/reports", "GET", "execution", lambda t, m: Req("GET", f"executions/{t}/reports")),
    Case(E + "/reports/(.+)", "GET", "execution",
         lambda t, m: Req("GET", f"executions/{t}/reports/multiqc/multiqc_report.html")),
    Case(E + "/multiqc_data\\.json", "GET", "execution", lambda t, m: Req("GET", f"executions/{t}/multiqc_data.json")),
    Case(E + "/logs/([a-z]+)", "GET", "execution", lambda t, m: Req("GET", f"executions/{t}/logs/nextflow")),
    # pipelines: the registry is shared by all; the data files and projects a request names are not
    Case(VER + "/validate", "POST", "file",
         lambda t, m: Req("POST", f"{VERSION}/validate", {"params": launch_params(m, fasta={"datafile": t})})),
    Case(VER + "/samplesheet", "POST", "file", lambda t, m: Req("POST", f"{VERSION}/samplesheet", {"datafile": t})),
    Case(VER + "/samplesheet", "POST", "file",
         lambda t, m: Req("POST", f"{VERSION}/samplesheet", {"rows": [row(t)]})),
    Case(VER + "/samplesheet", "POST", "project", lambda t, m: Req(
        "POST", f"{VERSION}/samplesheet", {"rows": [row(m["fastq"])], "save": {"project": t}})),
    # deletions last: if one wrongly succeeded, the stories above still saw bob's objects
    Case("/flow/api/groups/(\\d+)/members/([^/]+)", "DELETE", "group",
         lambda t, m: Req("DELETE", f"groups/{t}/members/bob")),
    Case("/flow/api/groups/(\\d+)", "DELETE", "group", lambda t, m: Req("DELETE", f"groups/{t}")),
    Case("/flow/api/shares/(\\d+)", "DELETE", "share", lambda t, m: Req("DELETE", f"shares/{t}")),
    Case("/flow/api/uploads/([^/]+)", "DELETE", "upload",
         lambda t, m: Req("DELETE", f"uploads/{t}", headers=dict(TUS))),
    Case("/flow/api/samples/(\\d+)", "DELETE", "sample", lambda t, m: Req("DELETE", f"samples/{t}")),
    Case("/flow/api/files/(\\d+)", "DELETE", "file", lambda t, m: Req("DELETE", f"files/{t}")),
    Case(P + "/(\\d+)", "DELETE", "project", lambda t, m: Req("DELETE", f"projects/{t}")),
]

#: Route verbs with no input naming a user's object: the shared pipeline registry (every user sees every
#: pipeline), health, metrics, listings without filters, creating a group, tus OPTIONS.
NO_USER_IDS = {
    ("/flow/api/health", "GET"), ("/flow/api/metrics", "GET"), ("/flow/api/groups", "GET"),
    ("/flow/api/groups", "POST"), (P, "GET"),
    ("/flow/api/uploads", "OPTIONS"), ("/flow/api/uploads/([^/]+)", "OPTIONS"),
    # The collection with a trailing slash (tusd-style client configs): creating names no object either.
    ("/flow/api/uploads/", "OPTIONS"), ("/flow/api/uploads/", "POST"),
    ("/flow/api/pipelines", "GET"), ("/flow/api/pipelines", "POST"), (PIPE, "GET"), (PIPE, "DELETE"),
    (PIPE + "/refs", "GET"), (PIPE + "/versions", "GET"), (PIPE + "/versions", "POST"), (VER + "/form", "GET"),
    (VER + "/schema", "GET"), ("/flow/api/me", "GET"), (r"/flow/api/openapi\.json", "GET"),
    # The catch-all for unknown paths names no object: its 404 is the same for everyone.
    *(("/flow/api(/.*)?", verb.upper()) for verb in ("get", "head", "post", "put", "patch", "delete", "options")),
}
VERBS = ("get", "head", "post", "put", "patch", "delete", "options")


def own_verbs(handler: type) -> set[str]:
    """The HTTP verbs a Flow handler class (or a Flow base of it) implements itself."""
    return {verb.upper() for verb in VERBS
            if any(verb in cls.__dict__ for cls in handler.__mro__ if cls.__module__.startswith("flow_jupyter."))}


def test_the_matrix_covers_every_route_and_verb() -> None:
    served = {(pattern, verb) for pattern, handler, *_ in default_handlers for verb in own_verbs(handler)}
    covered = {(case.route, case.method) for case in CASES}

    assert covered <= served, sorted(covered - served)
    assert served - covered == NO_USER_IDS, sorted((served - covered) ^ NO_USER_IDS)


# --- arranging: bob's objects, and alice's own ones the requests also need ------------------------------------


def add_execution(host, owner: str, project: int) -> str:
    """A finished run of the bundled demo pipeline (rows only, plus a run directory with a log)."""
    run = str(uuid.uuid4())

    def create(session, actor):
        version = session.scalar(select(PipelineVersion).join(Pipeline).where(Pipeline.name == "demo"))
        session.add(Execution(uuid=run, owner_id=actor.user_id, project_id=project, pipeline_version_id=version.id,
                              params={}, status="succeeded", backend="local", run_dir=f"executions/{run}",
                              session_id=str(uuid.uuid4()), finished_at=datetime.now(timezone.utc)))

    host.run_as(Identity(owner), create)
    run_dir = host.storage.resolve(f"executions/{run}")
    run_dir.mkdir(parents=True)
    (run_dir / ".nextflow.log").write_text("Nextflow log\n")
    return run


async def create_upload(user, project: int) -> str:
    reply = await user.request("POST", "uploads", raw=b"", headers={
        **TUS, "Upload-Length": "5", "Upload-Metadata": metadata(filename="partial.txt", project=project)})
    assert reply.code == 201, reply.body
    return reply.headers["Location"].rsplit("/", 1)[1]


@pytest.fixture
def world(api, jp_serverapp, jp_asyncio_loop) -> dict:
    host = jp_serverapp.web_app.settings["flow"]
    alice, bob, carol = api.as_user("alice"), api.as_user("bob"), api.as_user("carol")

    def add_file(owner: str, project: int, filename: str, content: bytes) -> int:
        return host.run_as(Identity(owner), lambda session, actor: store_bytes(
            session, host.storage, owner_id=actor.user_id, project_id=project, sample_id=None, filename=filename,
            content=content).id)

    async def arrange() -> dict:
        for user in (alice, bob, carol):
            assert (await user.get("projects")).code == 200
        theirs: dict[str, Any] = {"group": (await bob.post("groups", {"name": "bobs-lab"})).json["id"]}
        theirs["project"] = (await bob.post("projects", {"name": "bob's private"})).json["id"]
        theirs["sample"] = (await bob.post(f"projects/{theirs['project']}/samples", {"name": "B1"})).json["id"]
        theirs["file"] = add_file("bob", theirs["project"], "bob.fa", b">chr1\nACGT\n")
        theirs["share"] = (await bob.post("shares", {"object_type": "project", "object_id": theirs["project"],
                                                     "user": "carol"})).json["id"]
        theirs["execution"] = add_execution(host, "bob", theirs["project"])
        theirs["upload"] = await create_upload(bob, theirs["project"])
        job = await bob.post("downloads", {"files": [theirs["file"]], "deferred": True})
        assert job.code == 202, job.json
        theirs["job"] = job.json["job"]

        mine: dict[str, Any] = {"group": (await alice.post("groups", {"name": "alices-lab"})).json["id"]}
        mine["project"] = (await alice.post("projects", {"name": "alice's"})).json["id"]
        mine["sample"] = (await alice.post(f"projects/{mine['project']}/samples", {"name": "A1"})).json["id"]
        mine["file"] = add_file("alice", mine["project"], "notes.txt", b"notes\n")
        mine["fasta"] = add_file("alice", mine["project"], "ref.fa", b">chr1\nACGT\n")
        mine["fastq"] = add_file("alice", mine["project"], "S1_R1.fastq.gz", b"@r\nACGT\n+\nIIII\n")
        mine["sheet"] = add_file("alice", mine["project"], "sheet.csv",
                                 f"sample,fastq_1\nS1,flow://datafile/{mine['fastq']}\n".encode())
        mine["execution"] = add_execution(host, "alice", mine["project"])
        return {"alice": alice, "bob": bob, "carol": carol, "theirs": theirs, "mine": mine}

    return jp_asyncio_loop.run_until_complete(arrange())


def missing(kind: str) -> Any:
    return str(uuid.uuid4()) if kind in ("execution", "upload") else MISSING_NUMBER


async def send(user, request: Req):
    return await user.request(request.method, request.path, request.body, raw=request.raw,
                              headers=request.headers or None, params=request.params or None)


def answer(reply, target: Any) -> tuple:
    """What a caller learns: status, content type and body, with the requested id itself blanked out where a
    message may quote it back (a uuid anywhere, a number only as a data-file reference: small numbers are also
    counts and row numbers, which must match as they are)."""
    echoed = str(target) if isinstance(target, str) else f"flow://datafile/{target}"
    return reply.code, reply.headers.get("Content-Type"), reply.body.decode("utf-8", "replace").replace(echoed, "<id>")


async def test_someone_elses_object_answers_exactly_like_a_missing_one(world) -> None:
    alice, mine, theirs = world["alice"], world["mine"], world["theirs"]
    # The requests are meaningful: with alice's own objects in place of bob's, they get past the lookup.
    assert (await alice.post(f"{VERSION}/validate", {"params": launch_params(mine)})).code == 200
    assert (await alice.post(f"{VERSION}/samplesheet", {"rows": [row(mine["fastq"])]})).code == 200

    differences = []
    for case in CASES:
        absent, hidden = missing(case.kind), theirs[case.kind]
        for_missing = answer(await send(alice, case.build(absent, mine)), absent)
        for_bobs = answer(await send(alice, case.build(hidden, mine)), hidden)
        if for_bobs != for_missing or for_bobs[0] < 400 and case.method not in ("GET",):
            differences.append(f"{case}:\n    missing -> {for_missing}\n    bob's   -> {for_bobs}")

    assert not differences, "existence oracles:\n" + "\n".join(differences)
    await assert_untouched(world)


async def assert_untouched(world: dict) -> None:
    """Every one of bob's objects is still there, unchanged, and alice's requests created nothing."""
    alice, bob, theirs, mine = world["alice"], world["bob"], world["theirs"], world["mine"]
    assert (await bob.get(f"projects/{theirs['project']}")).json["description"] == ""
    assert (await bob.get(f"samples/{theirs['sample']}")).json["name"] == "B1"
    assert (await bob.get(f"files/{theirs['file']}")).json["filename"] == "bob.fa"
    assert (await bob.get(f"files/{theirs['file']}/content")).body == b">chr1\nACGT\n"
    shares = (await bob.get("shares", object_type="project", object_id=theirs["project"])).json["items"]
    assert [(s["id"], s["user"], s["level"]) for s in shares] == [(theirs["share"], "carol", "view")]
    assert [m["user"] for m in (await bob.get(f"groups/{theirs['group']}")).json["members"]] == ["bob"]
    head = await bob.request("HEAD", f"uploads/{theirs['upload']}", headers=dict(TUS))
    assert head.code == 200 and head.headers["Upload-Offset"] == "0"
    run = (await bob.get(f"executions/{theirs['execution']}")).json
    assert (run["status"], run["cancel_requested"]) == ("succeeded", False)
    assert (await bob.get(f"jobs/{theirs['job']}")).code == 200
    assert [p["name"] for p in (await alice.get("projects")).json["items"]] == ["alice's"]
    assert [run["id"] for run in (await alice.get("executions")).json["items"]] == [mine["execution"]]


async def test_a_share_names_a_group_only_to_its_members(world) -> None:
    """carol may see alice's project and its shares, but not the name of alice's group it is shared with."""
    alice, carol, mine = world["alice"], world["carol"], world["mine"]
    for grantee in ({"group": mine["group"]}, {"user": "carol"}):
        granted = await alice.post("shares", {"object_type": "project", "object_id": mine["project"], **grantee})
        assert granted.code == 201, granted.json
    assert granted.json.get("group_name") is None

    seen_by_carol = (await carol.get("shares", object_type="project", object_id=mine["project"])).json["items"]
    seen_by_alice = (await alice.get("shares", object_type="project", object_id=mine["project"])).json["items"]

    assert [(s.get("group"), s.get("group_name")) for s in seen_by_carol] == [(mine["group"], None), (None, None)]
    assert [s.get("group_name") for s in seen_by_alice] == ["alices-lab", None]
