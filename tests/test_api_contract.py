"""The API as a contract a typed client can rely on.

Every endpoint is exercised on a real server with ``validate_responses`` on, so each JSON reply is checked twice:
by the server before it is sent (a reply that breaks its schema becomes a 500 ``response_contract_violation``) and
here, against the OpenAPI document that same server serves. Each story ends by asserting that it reached every
operation of its part of the document with a successful status, so an endpoint added without a test is noticed.
Also: the document is well formed and names every route; every verb of every handler has its reply schemas; an
unknown path is a JSON 404, a verb a path does not have a JSON 405, and a stranger gets the same 403 for both.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowapi import Reply, UserAPI
from gitrepo import git
from jupyter_server.utils import url_path_join
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from waiting import wait_for_async

from flow_jupyter import __version__
from flow_jupyter.api import default_handlers, openapi, responses
from flow_jupyter.api.notfound import CATCH_ALL
from flow_jupyter.api.routes import implemented_verbs, path_template
from flow_jupyter.errors import FlowError

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}
TERMINAL = {"succeeded", "failed", "cancelled", "lost"}
PIPELINE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema", "title": "contract", "type": "object",
    "definitions": {"main": {"title": "Main options", "type": "object", "properties": {
        "greeting": {"type": "string", "default": "Hello", "description": "Printed into the report."},
        "input": {"type": "string", "format": "file-path", "mimetype": "text/csv",
                  "schema": "assets/schema_input.json"},
        "outdir": {"type": "string", "default": "results"}}}},
    "allOf": [{"$ref": "#/definitions/main"}],
}
SHEET_SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema", "type": "array", "items": {
    "type": "object", "required": ["sample", "fastq_1"],
    "properties": {"sample": {"type": "string"}, "fastq_1": {"type": "string", "format": "file-path"}}}}
#: One quick task that publishes a MultiQC-named report and data file, so reports have something to serve.
PIPELINE_MAIN = """nextflow.enable.dsl = 2
params.greeting = 'Hello'
params.input = null
params.outdir = 'results'
process REPORT {
    publishDir "${params.outdir}/multiqc", mode: 'copy'
    output:
    path 'multiqc_report.html'
    path 'multiqc_data.json'
    script:
    '''
    printf '<html><body><h1>Report</h1></body></html>\\n' > multiqc_report.html
    printf '{"report_general_stats_data": []}\\n' > multiqc_data.json
    '''
}
workflow { REPORT() }
"""


# --- the document as a checker --------------------------------------------------------------------------------------
def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


class Contract:
    """The served OpenAPI document, used to check each reply the tests receive and to count what they reached."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.registry = Registry().with_resource("urn:flow-openapi", DRAFT202012.create_resource(document))
        self.routes = [(re.compile(self._regex(template, item)), template) for template, item in
                       document["paths"].items()]
        self.reached: set[tuple[str, str]] = set()

    @staticmethod
    def _regex(template: str, item: dict[str, Any]) -> str:
        params = {p["name"]: p["schema"] for operation in item.values() for p in operation.get("parameters", [])
                  if p["in"] == "path"}
        return re.sub(r"\{(\w+)\}", lambda m: r"\d+" if params[m.group(1)].get("type") == "integer"
                      else params[m.group(1)]["pattern"].strip("^$"), re.escape(template).replace(r"\{", "{")
                      .replace(r"\}", "}"))

    def template(self, path: str) -> str | None:
        return next((template for regex, template in self.routes if regex.fullmatch("/" + path.strip("/"))), None)

    def check(self, method: str, path: str, reply: Reply) -> None:
        template = self.template(path)
        if template is None:
            assert reply.code == 404, (method, path, reply.code)
            if method != "HEAD":
                assert reply.error["reason"] == "not_found", (method, path)
            return
        verb = method.lower()
        operation = self.document["paths"][template].get(verb)
        if operation is None:
            assert reply.code in (403, 405), (method, path, reply.code)
            if method != "HEAD":
                self._validate(reply, _pointer("components", "schemas", "Error"))
            return
        status = str(reply.code)
        if status not in operation["responses"]:
            assert reply.code >= 400, f"{method} {template}: {reply.code} is not in the contract"
            status = "default"
        content = operation["responses"][status].get("content")
        if content is None:
            assert not reply.body, f"{method} {template} {reply.code} should have no body"
        elif "schema" in content.get("application/json", {}) and verb != "head":
            assert reply.headers["Content-Type"].startswith("application/json"), (method, template)
            self._validate(reply, _pointer("paths", template, verb, "responses", status, "content",
                                           "application/json", "schema"))
        if reply.code < 400:
            self.reached.add((verb, template))

    def _validate(self, reply: Reply, pointer: str) -> None:
        validator = jsonschema.Draft202012Validator({"$ref": "urn:flow-openapi#" + pointer}, registry=self.registry)
        error = jsonschema.exceptions.best_match(validator.iter_errors(reply.json))
        assert error is None, f"{pointer}: {error.message} at {list(error.absolute_path)}"

    def operations(self, tags: set[str], exclude: bool = False) -> set[tuple[str, str]]:
        return {(verb, template) for template, item in self.document["paths"].items()
                for verb, operation in item.items() if (operation["tags"][0] in tags) != exclude}


class CheckedAPI(UserAPI):
    """A test user whose every reply is checked against the contract."""

    def __init__(self, fetch, user: str | None, contract: Contract):
        super().__init__(fetch, user)
        self.contract = contract

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
        reply = await super().request(method, path, body, **kw)
        self.contract.check(method, path, reply)
        return reply

    async def head(self, path: str, **kw: Any) -> Reply:
        return await self.request("HEAD", path, **kw)

    async def options(self, path: str, **kw: Any) -> Reply:
        return await self.request("OPTIONS", path, **kw)


# --- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture
def flow_config(flow_config: dict) -> dict:
    return {**flow_config, "validate_responses": True}


@pytest.fixture
def contract() -> Contract:
    """The document the server serves (a test below proves they are the same), as JSON text would carry it."""
    return Contract(json.loads(json.dumps(openapi.build_document(default_handlers))))


@pytest.fixture
def users(jp_fetch, contract: Contract):
    return lambda name=None: CheckedAPI(jp_fetch, name, contract)


@pytest.fixture
def pipeline_repo(tmp_path: Path) -> Path:
    """The 'contract' pipeline: a schema with a sample-sheet input, one task publishing a report; tags v1.0, v2.0."""
    repo = tmp_path / "contract"
    (repo / "assets").mkdir(parents=True)
    (repo / "main.nf").write_text(PIPELINE_MAIN)
    (repo / "nextflow_schema.json").write_text(json.dumps(PIPELINE_SCHEMA))
    (repo / "assets" / "schema_input.json").write_text(json.dumps(SHEET_SCHEMA))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1.0")
    (repo / "README.md").write_text("contract pipeline\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "tag", "v2.0")
    return repo


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def upload(user: CheckedAPI, project: int, filename: str, content: bytes) -> int:
    """A tus upload in two requests (create, then one chunk); the id of the data file it became."""
    created = await user.post("uploads", raw=b"", headers={
        **TUS, "Upload-Length": str(len(content)),
        "Upload-Metadata": f"filename {_b64(filename)},project {_b64(str(project))}"})
    assert created.code == 201, created.body
    location = created.headers["Location"].rsplit("/", 1)[-1]
    assert (await user.head(f"uploads/{location}", headers=TUS)).headers["Upload-Offset"] == "0"
    done = await user.patch(f"uploads/{location}", raw=content, headers={**CHUNK, "Upload-Offset": "0"})
    assert done.code == 204, done.body
    return int(done.headers["Flow-DataFile-Id"])


# --- the table, without a server ------------------------------------------------------------------------------------
def _routes() -> list[tuple[str, type]]:
    """(pattern, handler) of every documented route (all but the catch-all)."""
    return [(route[0], route[1]) for route in default_handlers
            if route[0] != CATCH_ALL and getattr(route[1], "openapi_alias_of", None) is None]


HANDLERS = [route[1] for route in default_handlers]


def test_every_verb_of_every_route_has_reply_schemas_and_the_table_names_no_stranger() -> None:
    missing = [f"{handler.__name__}.{verb}" for handler in HANDLERS for verb in implemented_verbs(handler)
               if responses.operation_for(handler, verb) is None]
    assert missing == []
    for _, handler in _routes():
        for verb in implemented_verbs(handler):
            operation = responses.operation_for(handler, verb)
            assert any(200 <= status < 300 for status in operation.replies), f"{handler.__name__}.{verb}"
    handler_names = {handler.__name__ for handler in HANDLERS}
    assert set(responses.ROUTES) - handler_names == set()
    extra_verbs = {f"{name}.{verb}" for name, table in responses.ROUTES.items() for verb in table
                   for handler in HANDLERS if handler.__name__ == name
                   and verb not in implemented_verbs(handler)}
    assert extra_verbs == set()
    responses.check_schemas()


def test_a_reply_that_breaks_its_contract_is_refused_with_a_500() -> None:
    handler = next(handler for handler in HANDLERS if handler.__name__ == "ProjectHandler")
    good = {"id": 1, "name": "p", "description": "", "owner_id": 1, "owner_name": "alice", "group": None,
            "visibility": "private", "access": "admin", "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00"}
    responses.check_reply(handler, "get", 200, json.dumps(good))
    responses.check_reply(handler, "get", 404, json.dumps({"error": {"reason": "not_found", "message": "No."}}))
    for status, body in [(200, {**good, "owner": "alice"}), (200, {**good, "visibility": "secret"}),
                         (201, good), (404, {"message": "No."})]:
        with pytest.raises(FlowError) as refused:
            responses.check_reply(handler, "get", status, json.dumps(body))
        assert (refused.value.status, refused.value.reason) == (500, "response_contract_violation")


#: What an OpenAPI 3.1 document must look like, as far as a client generator relies on it (the official meta-schema
#: is not a dependency; this checks the parts Flow writes).
OPENAPI_SHAPE = {
    "type": "object", "required": ["openapi", "info", "paths", "components"],
    "properties": {
        "openapi": {"const": "3.1.0"},
        "info": {"type": "object", "required": ["title", "version"]},
        "servers": {"type": "array", "items": {"type": "object", "required": ["url"]}},
        "paths": {"type": "object", "propertyNames": {"pattern": "^/"}, "additionalProperties": {
            "type": "object", "propertyNames": {"enum": ["get", "head", "post", "put", "patch", "delete", "options",
                                                         "parameters", "summary"]},
            "additionalProperties": {"type": "object", "required": ["operationId", "responses"], "properties": {
                "parameters": {"type": "array", "items": {
                    "type": "object", "required": ["name", "in", "schema"],
                    "properties": {"in": {"enum": ["path", "query", "header", "cookie"]}}}},
                "requestBody": {"type": "object", "required": ["content"]},
                "responses": {"type": "object", "minProperties": 1,
                              "propertyNames": {"pattern": "^([1-5][0-9]{2}|default)$"},
                              "additionalProperties": {"type": "object", "required": ["description"]}}}}}},
        "components": {"type": "object", "properties": {"schemas": {"type": "object"}}},
    },
}


def test_the_openapi_document_is_well_formed_and_names_every_route_and_verb() -> None:
    document = openapi.build_document(default_handlers)

    jsonschema.Draft202012Validator(OPENAPI_SHAPE).validate(document)
    ids = [operation["operationId"] for item in document["paths"].values() for operation in item.values()]
    assert len(ids) == len(set(ids))
    for pattern, handler in _routes():
        template, groups = path_template(pattern, handler)
        assert set(document["paths"][template]) == set(implemented_verbs(handler)), template
        for verb, operation in document["paths"][template].items():
            declared = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            assert declared == re.findall(r"\{(\w+)\}", template) == [name for name, _ in groups]
    assert len(document["paths"]) == len(_routes())
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(document)))
    assert refs <= set(document["components"]["schemas"]) and "Error" in refs
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_document_takes_request_schemas_and_queries_from_the_handlers_themselves() -> None:
    document = openapi.build_document(default_handlers)
    from flow_jupyter.api import schemas
    from flow_jupyter.data.downloads import BULK_SCHEMA

    def body(path: str, verb: str) -> dict:
        return document["paths"][path][verb]["requestBody"]

    assert body("/projects", "post")["content"]["application/json"]["schema"] == schemas.PROJECT_CREATE
    assert body("/downloads", "post")["content"]["application/json"]["schema"] == BULK_SCHEMA
    assert body("/executions/{execution}/resume", "post")["required"] is False
    assert body("/executions", "post")["required"] is True
    assert list(body("/uploads/{upload_id}", "patch")["content"]) == ["application/offset+octet-stream"]
    queries = {p["name"] for p in document["paths"]["/files"]["get"]["parameters"] if p["in"] == "query"}
    assert {"after", "limit", "project", "sample", "name", "type", "execution"} <= queries
    binary = document["paths"]["/files/{datafile_id}/content"]["get"]["responses"]["200"]["content"]
    assert binary == {"application/octet-stream": {}}


# --- a real server --------------------------------------------------------------------------------------------------
async def test_the_served_document_is_the_route_table_with_this_servers_root(jp_fetch, jp_base_url) -> None:
    served = json.loads((await jp_fetch("flow", "api", "openapi.json")).body)

    assert served["servers"] == [{"url": url_path_join(jp_base_url, "flow/api")}]
    assert {k: v for k, v in served.items() if k != "servers"} == json.loads(json.dumps(
        openapi.build_document(default_handlers)))
    assert served["info"]["version"] == __version__


async def test_me_says_who_is_calling_their_groups_and_what_the_server_offers(users, jp_serverapp) -> None:
    alice, bob = users("alice"), users("bob")
    await bob.get("me")
    lab = (await alice.post("groups", {"name": "lab"})).json["id"]
    await alice.post(f"groups/{lab}/members", {"user": "bob"})
    settings = jp_serverapp.web_app.settings["flow"].settings

    mine, bobs, owners = (await alice.get("me")).json, (await bob.get("me")).json, (await users().get("me")).json

    assert (mine["name"], mine["is_admin"], mine["groups"]) == ("alice", False, [
        {"id": lab, "name": "lab", "role": "admin"}])
    assert bobs["groups"] == [{"id": lab, "name": "lab", "role": "member"}] and bobs["user_id"] != mine["user_id"]
    assert owners["is_admin"] is True and mine["version"] == __version__
    offered = mine["capabilities"]
    assert offered["executor"] == settings.executor and "local" in offered["backends"]
    assert offered["host_paths"] is settings.allow_host_paths
    assert offered["uploads"]["max_size"] == settings.max_upload_bytes
    assert offered["uploads"]["tus_version"] == "1.0.0" and "creation" in offered["uploads"]["extensions"]
    assert offered["page_size"] == {"default": settings.page_size_default, "max": settings.page_size_max}
    assert settings.root_dir not in json.dumps(mine)  # no filesystem paths


async def test_unknown_paths_are_json_404_unknown_verbs_json_405_and_strangers_get_403_for_both(
        users, http_server_client, jp_base_url) -> None:
    alice = users("alice")

    for method, path in [("GET", "nothing/here"), ("POST", "projects/abc"), ("DELETE", "files/1/bytes"),
                         ("PUT", ""), ("HEAD", "executions/x/y/z"), ("PATCH", "projects/1/nothing")]:
        reply = await alice.request(method, path, {} if method in ("POST", "PUT", "PATCH") else None)
        assert reply.code == 404 and reply.headers["Content-Type"].startswith("application/json"), (method, path)
        if method != "HEAD":
            assert reply.error["reason"] == "not_found"

    refused = await alice.put("projects", {"name": "x"})
    assert (refused.code, refused.error["reason"]) == (405, "method_not_allowed")
    assert refused.headers["Allow"] == "GET, POST, OPTIONS"
    assert (await alice.delete("me")).code == 405

    for method, path in [("GET", "nothing/here"), ("PUT", "projects"), ("GET", "projects")]:
        stranger = await http_server_client.fetch(url_path_join(jp_base_url, "flow/api", path), method=method,
                                                  body=b"{}" if method == "PUT" else None, raise_error=False)
        assert stranger.code == 403, (method, path)
        assert json.loads(stranger.body)["error"]["reason"] == "forbidden"


async def test_every_endpoint_but_executions_answers_as_its_contract_says(users, contract, pipeline_repo) -> None:
    admin, alice, bob = users(), users("alice"), users("bob")
    for path in ("health", "metrics", "me", "openapi.json"):
        assert (await alice.get(path)).code in (200, 503)
    await bob.get("me")

    # Groups and members.
    lab = (await alice.post("groups", {"name": "lab"})).json["id"]
    assert (await alice.post(f"groups/{lab}/members", {"user": "bob"})).code == 201
    assert (await alice.post(f"groups/{lab}/members", {"user": "bob", "role": "admin"})).code == 200
    assert (await alice.get("groups")).json["items"][0]["id"] == lab
    assert len((await alice.get(f"groups/{lab}")).json["members"]) == 2
    assert [m["user"] for m in (await alice.get(f"groups/{lab}/members", limit=1)).json["items"]] == ["alice"]
    assert (await alice.delete(f"groups/{lab}/members/bob")).code == 204

    # Projects, samples, uploads, data files.
    project = (await alice.post("projects", {"name": "contract", "visibility": "group", "group": lab})).json["id"]
    assert (await alice.patch(f"projects/{project}", {"description": "every endpoint"})).code == 200
    assert (await alice.get(f"projects/{project}")).json["owner_name"] == "alice"
    assert (await alice.get("projects", limit=1)).code == 200
    sample = (await alice.post(f"projects/{project}/samples", {"name": "S1", "metadata": {"tissue": "liver"}}))
    sample_id = sample.json["id"]
    assert (await alice.patch(f"samples/{sample_id}", {"metadata": {"tissue": "brain"}})).code == 200
    assert (await alice.get(f"samples/{sample_id}")).code == 200
    assert len((await alice.get(f"projects/{project}/samples")).json["items"]) == 1
    assert (await alice.options("uploads", headers=TUS)).code == 204
    assert (await alice.options("uploads/nothing", headers=TUS)).code == 204
    reads = await upload(alice, project, "S1_R1.fastq.gz", b"@r1\nACGT\n+\nIIII\n")
    abandoned = await alice.post("uploads", raw=b"", headers={
        **TUS, "Upload-Length": "10", "Upload-Metadata": f"filename {_b64('x.txt')},project {_b64(str(project))}"})
    assert (await alice.delete("uploads/" + abandoned.headers["Location"].rsplit("/", 1)[-1], headers=TUS)).code == 204
    assert (await alice.patch(f"files/{reads}", {"sample": sample_id})).json["sample"] == sample_id
    datafile = (await alice.get(f"files/{reads}")).json
    assert (datafile["owner_name"], datafile["execution"]) == ("alice", None)
    assert [f["id"] for f in (await alice.get("files", project=project)).json["items"]] == [reads]

    # Downloads: one file (whole, a range, unchanged), a streamed zip, a deferred zip, a project zip.
    whole = await alice.get(f"files/{reads}/content")
    assert whole.body.startswith(b"@r1")
    assert (await alice.request("GET", f"files/{reads}/content", headers={"Range": "bytes=0-2"})).code == 206
    assert (await alice.request("GET", f"files/{reads}/content",
                                headers={"If-None-Match": whole.headers["ETag"]})).code == 304
    assert (await alice.head(f"files/{reads}/content")).code == 200
    assert (await alice.post("downloads", {"files": [reads]})).headers["Content-Type"] == "application/zip"
    job = (await alice.post("downloads", {"files": [reads], "deferred": True})).json["job"]
    built = await wait_for_async(lambda: alice.get(f"jobs/{job}"), until=lambda r: r.json["status"] in
                                 ("succeeded", "failed"), what="the zip job to end")
    assert built.json["status"] == "succeeded", built.json
    assert (await alice.get(f"jobs/{job}/content")).code == 200
    assert (await alice.head(f"jobs/{job}/content")).code == 200
    assert (await alice.get(f"projects/{project}/download")).code == 200

    # Shares.
    share = await alice.post("shares", {"object_type": "datafile", "object_id": reads, "user": "bob"})
    assert share.code == 201
    assert (await alice.post("shares", {"object_type": "datafile", "object_id": reads, "user": "bob",
                                        "level": "edit"})).code == 200
    group_share = await alice.post("shares", {"object_type": "project", "object_id": project, "group": lab})
    assert group_share.json["group_name"] == "lab"
    assert len((await alice.get("shares", object_type="datafile", object_id=reads)).json["items"]) == 1
    assert (await alice.patch(f"shares/{share.json['id']}", {"level": "share"})).json["level"] == "share"
    assert (await alice.delete(f"shares/{share.json['id']}")).code == 204

    # Pipelines: the bundled demo and a git repository with two versions.
    assert (await alice.get("pipelines/demo")).json["bundled"] is True
    assert (await alice.get("pipelines/demo/refs")).code == 200
    assert (await admin.post("pipelines", {"source": str(pipeline_repo), "ref": "v1.0"})).code == 201
    assert (await admin.post("pipelines/contract/versions", {"ref": "v2.0"})).code == 201
    versions = (await alice.get("pipelines/contract/versions")).json["items"]
    assert [v["ref"] for v in versions] == ["v1.0", "v2.0"]
    listed = await alice.get("pipelines", limit=1)
    assert len(listed.json["items"]) == 1 and listed.json["next"] is not None
    assert {r["name"] for r in (await alice.get("pipelines/contract/refs")).json["items"]} >= {"v1.0", "v2.0"}
    form = (await alice.get("pipelines/contract/versions/latest/form")).json
    assert {f["name"] for g in form["form"]["groups"] for f in g["fields"]} == {"greeting", "input", "outdir"}
    assert (await alice.get("pipelines/contract/versions/v2.0/schema")).json["samplesheet_schema"] == SHEET_SCHEMA
    checked = await alice.post("pipelines/contract/versions/v2.0/validate", {"params": {"greeting": "Hi"}})
    assert checked.json["valid"] is True
    sheet = await alice.post("pipelines/contract/versions/v2.0/samplesheet", {
        "rows": [{"sample": "S1", "fastq_1": f"flow://datafile/{reads}"}],
        "save": {"project": project, "filename": "sheet.csv"}})
    assert sheet.json["rows"] == 1, sheet.json
    assert (await admin.delete("pipelines/contract")).code == 204

    # Deleting: files first (a project with files is kept), then the sample, the project and the group.
    for datafile_id in (reads, sheet.json["datafile"]["id"]):
        assert (await alice.delete(f"files/{datafile_id}")).code == 204
    assert (await alice.delete(f"samples/{sample_id}")).code == 204
    assert (await alice.delete(f"projects/{project}")).code == 204
    assert (await alice.delete(f"groups/{lab}")).code == 204

    missed = contract.operations({"executions"}, exclude=True) - contract.reached
    assert missed == set(), f"no successful call reached {sorted(missed)}"


@pytest.mark.nextflow
async def test_every_execution_endpoint_answers_as_its_contract_says(users, contract, pipeline_repo) -> None:
    admin, alice = users(), users("alice")
    assert (await admin.post("pipelines", {"source": str(pipeline_repo), "ref": "v1.0"})).code == 201
    project = (await alice.post("projects", {"name": "runs"})).json["id"]

    launched = await alice.post("executions", {"pipeline": "contract", "version": "v1.0", "project": project,
                                               "backend": "local", "params": {"greeting": "Hi"}})
    assert launched.code == 201, launched.json
    run = launched.json["id"]
    assert [e["id"] for e in (await alice.get("executions", project=project)).json["items"]] == [run]
    detail = await wait_for_async(lambda: alice.get(f"executions/{run}"), until=lambda r: r.json["status"] in
                                  TERMINAL, what="the run to end", timeout=180)
    assert detail.json["status"] == "succeeded", detail.json
    assert (detail.json["owner_name"], detail.json["progress"]["succeeded"]) == ("alice", 1)

    assert [t["process"] for t in (await alice.get(f"executions/{run}/tasks")).json["items"]] == ["REPORT"]
    assert (await alice.get(f"executions/{run}/log")).json["next"] > 0
    outputs = (await alice.get("files", execution=run)).json["items"]
    assert {f["filename"] for f in outputs} == {"multiqc_report.html", "multiqc_data.json"}
    assert {f["execution"] for f in outputs} == {run}
    reports = (await alice.get(f"executions/{run}/reports")).json["items"]
    assert [r["path"] for r in reports] == ["results/multiqc/multiqc_report.html"]
    assert reports[0]["url"] == f"executions/{run}/reports/{reports[0]['path']}"
    report = await alice.get(f"executions/{run}/reports/{reports[0]['path']}")
    assert report.code == 200 and b"<h1>Report</h1>" in report.body
    assert (await alice.get(f"executions/{run}/multiqc_data.json")).code == 200
    assert (await alice.get(f"executions/{run}/logs/nextflow")).code == 200
    assert (await alice.get(f"executions/{run}/logs/head")).code == 200
    assert (await alice.post(f"executions/{run}/cancel")).json["status"] == "succeeded"  # too late: nothing to stop

    resumed = await alice.post(f"executions/{run}/resume", {"params": {"greeting": "Hello again"}})
    assert resumed.code == 201, resumed.json
    await alice.post(f"executions/{resumed.json['id']}/cancel")
    await wait_for_async(lambda: alice.get(f"executions/{resumed.json['id']}"),
                         until=lambda r: r.json["status"] in TERMINAL, what="the resumed run to end", timeout=180)

    missed = contract.operations({"executions"}) - contract.reached
    assert missed == set(), f"no successful call reached {sorted(missed)}"
