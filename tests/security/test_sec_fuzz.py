"""Issue 14 (C): a bounded, deterministic fuzz of every JSON endpoint through the real server.

Every route of ``flow_jupyter.api.default_handlers`` whose POST/PATCH/PUT reads a JSON body gets a valid-looking base
body, then mutated bodies from one fixed seed: wrong types, extra and missing fields, huge, negative and zero ids (in
the body and in the URL), NaN/Infinity tokens, deep nesting, lone surrogates, NUL, very long strings, odd unicode,
bodies that are not objects or not JSON. For each reply: never a 5xx; a 4xx carries a JSON error; and a refusal
leaves the database (row count and a hash of the rows of every table) and the Flow root's files exactly as they were.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import select

from test_executions_api import arrange
from waiting import wait_for_async

from flow_jupyter.api import default_handlers
from flow_jupyter.db.models import Base

SEED = 1234
MUTATIONS_PER_ROUTE = 30
JSON_VERBS = ("post", "patch", "put")
#: Files SQLite rewrites on its own (checkpoints); the rows are compared instead.
DB_FILES = re.compile(r"^flow\.sqlite(-wal|-shm|-journal)?$")
#: Looking a ref up fetches into the pipeline's mirror (a cache of the upstream repository) and git notes the
#: fetch in FETCH_HEAD: that bookkeeping is not state a refusal leaves behind.
CACHE_FILES = re.compile(r"(^|/)mirror\.git/FETCH_HEAD$")

WRONG_VALUES: list[Any] = [None, True, False, 0, -1, 2**31, 2**63, 10**30, -(2**63), 1.5, -0.0, 1e308, "", "x",
                           [], {}, ["x"], {"a": 1}, [[[]]]]
ODD_TEXT = ["\U0001F600\u200d\U0001F52C", "\u202eevil\u202c", "e\u0301\u0301\u0301", "\ufeffbom", "\u0000nul",
            "tab\tnew\nline", "../../etc/passwd", "%2e%2e%2f", "\uff0e\uff0e\uff0f", "flow://datafile/1",
            "'; DROP TABLE users; --", "$(id)", "\\\\server\\share", " ", "\x7f", "\ud800", "x\udfff"]
RAW_BODIES = [b"", b"null", b"[]", b"1", b'"x"', b"{", b"\xff\xfe", b"NaN", b'{"a":1}{"b":2}', b"[" * 20_000,
              '{"a": "\\ud800"}'.encode(), b"\x00", b"true"]


# --- the routes -------------------------------------------------------------------------------------------------------
def json_routes() -> list[tuple[str, str]]:
    """(VERB, pattern) for every handler method that reads a JSON body, straight from the API's route table."""
    found = []
    for spec in default_handlers:
        pattern, handler = spec[0], spec[1]
        for verb in JSON_VERBS:
            method = getattr(handler, verb, None)
            if method is None or not getattr(method, "__module__", "").startswith("flow_jupyter"):
                continue
            if "json_body(" in inspect.getsource(method):
                found.append((verb.upper(), pattern))
    return found


async def arrange_world(api, jp_serverapp, tmp_path: Path) -> dict[str, Any]:
    """The tiny pipeline, alice's project with a sample and a data file, her group and a share to bob, and a
    project of bob's (a launch into it is refused, so no fuzzed body can start a run)."""
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice, bob = api.as_user("alice"), api.as_user("bob")
    project, names = launchable["project"], launchable["names"]
    bobs = (await bob.post("projects", {"name": "bob's"})).json["id"]
    sample = (await alice.post(f"projects/{project}/samples", {"name": "s1", "metadata": {"k": "v"}})).json["id"]
    group = (await alice.post("groups", {"name": "lab"})).json["id"]
    share = await alice.post("shares", {"object_type": "project", "object_id": project, "user": "bob",
                                        "level": "view"})
    assert share.code == 201, share.json
    return {"project": project, "names": names, "sample": sample, "group": group, "share": share.json["id"],
            "bobs": bobs, "host": launchable["host"]}


def base_requests(w: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str, dict[str, Any]]]:
    """(VERB, pattern) → (user, path, a valid-looking body). A new JSON endpoint fails the test until added here."""
    p, n = w["project"], w["names"]
    version = "pipelines/tiny/versions/v1.0"
    return {
        ("POST", r"/flow/api/groups"): ("alice", "groups", {"name": "fuzz"}),
        ("POST", r"/flow/api/groups/(\d+)/members"): ("alice", f"groups/{w['group']}/members",
                                                      {"user": "bob", "role": "member"}),
        ("POST", r"/flow/api/projects"): ("alice", "projects", {"name": "p", "description": "d",
                                                                "visibility": "private", "group": None}),
        ("PATCH", r"/flow/api/projects/(\d+)"): ("alice", f"projects/{p}", {"description": "changed",
                                                                           "visibility": "group"}),
        ("POST", r"/flow/api/projects/(\d+)/samples"): ("alice", f"projects/{p}/samples",
                                                        {"name": "s", "metadata": {"k": "v", "n": 1}}),
        ("PATCH", r"/flow/api/samples/(\d+)"): ("alice", f"samples/{w['sample']}", {"metadata": {"k": "v2"}}),
        ("PATCH", r"/flow/api/files/(\d+)"): ("alice", f"files/{n}", {"filename": "n.txt", "project": p,
                                                                      "sample": None}),
        ("POST", r"/flow/api/shares"): ("alice", "shares", {"object_type": "datafile", "object_id": n,
                                                            "user": "bob", "level": "view"}),
        ("PATCH", r"/flow/api/shares/(\d+)"): ("alice", f"shares/{w['share']}", {"level": "edit"}),
        ("POST", r"/flow/api/downloads"): ("alice", "downloads", {"files": [n], "deferred": False}),
        ("POST", r"/flow/api/pipelines"): (None, "pipelines", {"source": "/nowhere/repo", "ref": "v1.0",
                                                               "name": "ghost", "curated": False}),
        ("POST", r"/flow/api/pipelines/([^/]+)/versions"): (None, "pipelines/tiny/versions", {"ref": "v9.9"}),
        ("POST", r"/flow/api/pipelines/([^/]+)/versions/([^/]+)/validate"): (
            "alice", f"{version}/validate", {"params": {"names": {"datafile": n}, "greeting": "hi"}}),
        ("POST", r"/flow/api/pipelines/([^/]+)/versions/([^/]+)/samplesheet"): (
            "alice", f"{version}/samplesheet", {"rows": [{"sample": "a", "fastq_1": "x.fq"}],
                                                "save": {"project": p, "filename": "sheet.csv"}}),
        ("POST", r"/flow/api/executions"): ("alice", "executions", {
            "pipeline": "tiny", "version": "v1.0", "project": w["bobs"], "backend": "local",
            "params": {"names": {"datafile": n}}, "resources": {"cores": 1},
            "provenance": {"notebook": "a.ipynb", "cell": "c1"}}),
        ("POST", r"/flow/api/executions/([0-9a-fA-F-]{1,36})/resume"): (
            "alice", f"executions/{uuid.UUID(int=7)}/resume", {"params": {"greeting": "x"}}),
    }


# --- mutations: each returns (path, raw body) -------------------------------------------------------------------------
def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a base body (bodies are tiny and shallow, so recursion is fine here)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


def _set(body: Any, path: tuple, value: Any) -> Any:
    body = json.loads(json.dumps(body))
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


def _delete(body: Any, path: tuple) -> Any:
    body = json.loads(json.dumps(body))
    target = body
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return body


def _raw_at(body: Any, path: tuple, token: str) -> bytes:
    """The body with the value at ``path`` replaced by raw JSON text (a NaN token, deep brackets...)."""
    marker = f"__fuzz_{uuid.uuid4().hex}__"
    return json.dumps(_set(body, path, marker)).replace(f'"{marker}"', token).encode()


def mutate(rng: random.Random, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
    spots = _paths(body) or [("extra",)]
    spot = rng.choice(spots)
    kind = rng.randrange(11)
    if kind == 0:
        return path, json.dumps(_set(body, spot, rng.choice(WRONG_VALUES))).encode()
    if kind == 1:
        where = rng.choice([()] + [s for s in spots if isinstance(_get(body, s), dict)])
        extra = rng.choice(["extra", "owner_id", "is_admin", "id", "__proto__", "storage_path", "../x"])
        return path, json.dumps(_set(body, where + (extra,), rng.choice(WRONG_VALUES + ["x"]))).encode()
    if kind == 2:
        return path, json.dumps(_delete(body, spot)).encode()
    if kind == 3:
        huge = rng.choice([0, -1, -(2**31), 2**31, 2**31 - 1, 2**53 + 1, 2**63, 10**40])
        return path, json.dumps(_set(body, spot, huge)).encode()
    if kind == 4:
        if re.search(r"/\d+(/|$)", path):  # an id in the URL
            bad = rng.choice(["0", "99999999999999999999999", "2147483648", "9223372036854775808", "00001"])
            return re.sub(r"(?<=/)\d+(?=/|$)", bad, path, count=1), json.dumps(body).encode()
        return path, json.dumps(_set(body, spot, -1)).encode()
    if kind == 5:
        return path, _raw_at(body, spot, rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]))
    if kind == 6:
        depth = rng.choice([65, 100, 1_000, 30_000])
        return path, _raw_at(body, spot, "[" * depth + "]" * depth)
    if kind == 7:
        return path, json.dumps(_set(body, spot, rng.choice(["\ud800", "a\udc00b", "\udbff\udbff", "x\x00y"])),
                                ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    if kind == 8:
        length = rng.choice([256, 10_001, 65_537, 300_000])
        return path, json.dumps(_set(body, spot, rng.choice("xé\U0001F600") * length)).encode()
    if kind == 9:
        return path, json.dumps(_set(body, spot, rng.choice(ODD_TEXT)),
                                ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    return path, rng.choice(RAW_BODIES)


def _get(body: Any, path: tuple) -> Any:
    for part in path:
        body = body[part]
    return body


# --- the snapshot a refusal must leave alone --------------------------------------------------------------------------
def snapshot(engine: sqlalchemy.Engine, root: Path) -> dict[str, Any]:
    """Row count and a hash of the rows of every table (in primary-key order), and the Flow root's files."""
    tables = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            digest = hashlib.sha256(repr([tuple(row) for row in rows]).encode("utf-8", "surrogatepass")).hexdigest()
            tables[table.name] = (len(rows), digest)
    files = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if folder == str(root) and DB_FILES.match(name):
                continue
            path = Path(folder, name)
            if CACHE_FILES.search(str(path.relative_to(root))):
                continue
            files.append((str(path.relative_to(root)), path.lstat().st_size))
    return {"tables": tables, "files": files}


async def settled(engine: sqlalchemy.Engine, root: Path) -> dict[str, Any]:
    """The snapshot once work an accepted request started in the background (a deferred zip) has ended."""
    jobs = Base.metadata.tables["background_jobs"]

    def busy() -> object:
        with engine.connect() as conn:
            return conn.execute(select(jobs.c.id).where(jobs.c.status.in_(["pending", "running"]))).first()

    await wait_for_async(busy, until=lambda job: job is None,
                         what="the background jobs started by accepted requests to end")
    return snapshot(engine, root)


def strict_json(body: bytes) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"reply carries the non-JSON token {token}")

    return json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_no_json_endpoint_answers_5xx_and_no_refusal_changes_anything(
        api, jp_serverapp, tmp_path: Path, database_url: str) -> None:
    world = await arrange_world(api, jp_serverapp, tmp_path)
    bases = base_requests(world)
    routes = json_routes()
    assert len(routes) >= 14 and set(routes) <= set(bases), sorted(set(routes) - set(bases))
    engine = sqlalchemy.create_engine(database_url)
    root = world["host"].storage.root
    rng = random.Random(SEED)
    problems: list[str] = []
    try:
        before = snapshot(engine, root)
        for verb, pattern in routes:
            user, path, body = bases[(verb, pattern)]
            caller = api.as_user(user) if user else api.owner
            for _ in range(MUTATIONS_PER_ROUTE):
                sent_path, raw = mutate(rng, path, body)
                reply = await caller.request(verb, sent_path, raw=raw, headers={"Content-Type": "application/json"})
                where = f"{verb} {sent_path} {raw[:160]!r} -> {reply.code} {reply.body[:300]!r}"
                if reply.code >= 500:
                    problems.append(f"5xx: {where}")
                    continue
                is_json = reply.headers.get("Content-Type", "").startswith("application/json")
                if reply.code >= 400:
                    error = strict_json(reply.body).get("error") if is_json else None
                    if not (isinstance(error, dict) and isinstance(error.get("reason"), str)
                            and isinstance(error.get("message"), str)):
                        problems.append(f"no JSON error: {where}")
                    after = snapshot(engine, root)
                    if after != before:
                        changed = [t for t in after["tables"] if after["tables"][t] != before["tables"].get(t)]
                        files = sorted(set(after["files"]) ^ set(before["files"]))[:6]
                        problems.append(f"state changed after a refusal ({changed or files}): {where}")
                        before = after
                else:
                    if is_json and reply.body:
                        strict_json(reply.body)
                    before = await settled(engine, root)  # accepted: this is the new state to keep
    finally:
        engine.dispose()
    assert not problems, "\n".join(problems)
