"""Issue 14 (C): hostile JSON bodies, through the real server on SQLite and PostgreSQL. Each one is a clear 400 with
a JSON error naming what broke, never a 500, and nothing is stored: nesting tens of thousands deep, lone surrogates
and NUL in keys and values, NaN/Infinity tokens, huge strings, bodies that are not objects or not JSON at all."""
from __future__ import annotations

import json

from flow_jupyter.api.base import dumps_strict


def strict(body: bytes):
    """Parse like a browser's JSON.parse would: NaN/Infinity tokens are errors, not numbers."""
    def refuse(token: str):
        raise AssertionError(f"reply carries the non-JSON token {token}")

    return json.loads(body, parse_constant=refuse)


async def refused(user, method: str, path: str, raw: bytes, reason: str | None = None,
                  field: str | None = None) -> dict:
    reply = await user.request(method, path, raw=raw, headers={"Content-Type": "application/json"})
    assert reply.code == 400, (raw[:120], reply.code, reply.body[:300])
    error = strict(reply.body)["error"]
    assert error["message"] and error["reason"], error
    if reason is not None:
        assert error["reason"] == reason, (raw[:120], error)
    if field is not None:
        assert error.get("field") == field, (raw[:120], error)
    return error


async def state(user, project: int) -> tuple:
    """What alice can see: her projects and the samples of her project (what a refusal must leave alone)."""
    projects = strict((await user.get("projects")).body)
    samples = strict((await user.get(f"projects/{project}/samples")).body)
    return projects, samples


async def setup(api) -> tuple:
    alice = api.as_user("alice")
    created = await alice.post("projects", {"name": "lab book", "description": "before"})
    assert created.code == 201, created.json
    project = created.json["id"]
    sample = await alice.post(f"projects/{project}/samples", {"name": "s1", "metadata": {"tissue": "liver"}})
    assert sample.code == 201, sample.json
    return alice, project, sample.json["id"], await state(alice, project)


async def test_a_body_nested_tens_of_thousands_deep_is_a_400_and_the_limit_is_exact(api) -> None:
    alice, project, sample, before = await setup(api)

    await refused(alice, "POST", "projects", b"[" * 50_000, reason="too_deep")
    await refused(alice, "POST", "projects", b'{"name": ' * 50_000, reason="too_deep")
    await refused(alice, "POST", f"projects/{project}/samples",
                  b'{"name": "deep", "metadata": ' + b'{"a": ' * 30_000 + b"1" + b"}" * 30_001, reason="too_deep")
    # Brackets inside strings are text, not nesting.
    quoted = await alice.post(f"projects/{project}/samples", {"name": "brackets", "metadata": {"a": "[{" * 500}})
    assert quoted.code == 201, quoted.json
    assert (await alice.delete(f"samples/{quoted.json['id']}")).code == 204

    # The whole body nests at most max_json_depth (64) levels: the body itself, then 63 inside it.
    def nested(levels: int) -> bytes:
        return b'{"name": "n", "metadata": ' + b'{"a": ' * levels + b"1" + b"}" * (levels + 1)

    await refused(alice, "POST", f"projects/{project}/samples", nested(64), reason="too_deep")
    assert await state(alice, project) == before
    fits = await alice.request("POST", f"projects/{project}/samples", raw=nested(63))
    assert fits.code == 201, fits.body[:300]


async def test_lone_surrogates_and_nul_in_keys_or_values_are_400s_naming_the_field(api) -> None:
    alice, project, sample, before = await setup(api)
    samples = f"projects/{project}/samples"

    await refused(alice, "POST", "projects", rb'{"name": "\ud800"}', "invalid_character", "/name")
    await refused(alice, "POST", "projects", rb'{"name": "ok", "description": "tail \udfff"}', "invalid_character",
                  "/description")
    await refused(alice, "PATCH", f"projects/{project}", rb'{"description": "a\ude00b\ud83d"}', "invalid_character",
                  "/description")
    # In a key, the field names the key with U+FFFD for the character that cannot be sent back.
    error = await refused(alice, "POST", samples, rb'{"name": "s2", "metadata": {"x\udc00/y": 1}}',
                          "invalid_character", "/metadata/x\ufffd~1y")
    assert "\\ud" not in json.dumps(error)
    await refused(alice, "PATCH", f"samples/{sample}", rb'{"metadata": {"deep": [{"\ud800": "v"}]}}',
                  "invalid_character", "/metadata/deep/0/\ufffd")
    await refused(alice, "PATCH", f"samples/{sample}", rb'{"metadata": {"k": "nul \u0000 here"}}',
                  "invalid_character", "/metadata/k")
    await refused(alice, "POST", samples, b'{"name": "s3", "metadata": {"k\\u0000": 1}}', "invalid_character")
    assert await state(alice, project) == before

    # A proper surrogate pair is one character, stored and read back as it was, on either database.
    emoji = await alice.request("PATCH", f"samples/{sample}", raw=rb'{"metadata": {"mood": "\ud83d\ude00 ok"}}')
    assert emoji.code == 200, emoji.body
    assert strict((await alice.get(f"samples/{sample}")).body)["metadata"]["mood"] == "\U0001F600 ok"


async def test_nan_and_infinity_are_refused_wherever_they_appear(api) -> None:
    alice, project, sample, before = await setup(api)

    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"):
        error = await refused(alice, "PATCH", f"samples/{sample}", b'{"metadata": {"ratio": ' + token + b"}}",
                              "non_finite_number")
        assert token.decode() in error["message"]
        await refused(alice, "POST", f"projects/{project}/samples",
                      b'{"name": "n", "metadata": {"xs": [1, [2, ' + token + b"]]}}", "non_finite_number")
        await refused(alice, "POST", "projects", token, "non_finite_number")
    assert await state(alice, project) == before
    # Large but finite numbers are numbers.
    big = await alice.request("PATCH", f"samples/{sample}", raw=b'{"metadata": {"ratio": 1.5e300}}')
    assert big.code == 200 and strict(big.body)["metadata"]["ratio"] == 1.5e300


async def test_huge_strings_are_400s_naming_the_field(api) -> None:
    alice, project, sample, before = await setup(api)
    limit = 65536  # FlowSettings.max_text_length

    await refused(alice, "POST", "projects", json.dumps({"name": "n" * 256}).encode(), "invalid_field", "/name")
    await refused(alice, "PATCH", f"projects/{project}", json.dumps({"description": "d" * 10_001}).encode(),
                  "invalid_field", "/description")
    await refused(alice, "PATCH", f"samples/{sample}", json.dumps({"metadata": {"note": "x" * (limit + 1)}}).encode(),
                  "too_long", "/metadata/note")
    await refused(alice, "PATCH", f"samples/{sample}", json.dumps({"metadata": {"k" * (limit + 1): 1}}).encode(),
                  "too_long")
    error = await refused(alice, "POST", "projects", json.dumps({"name": "y" * 1_000_000}).encode(), "invalid_field")
    assert len(error["message"]) < 300  # the value is not echoed back whole
    error = await refused(alice, "POST", "projects", json.dumps({"name": "ok", "z" * 50_000: 1}).encode(),
                          "unknown_field")
    assert len(error["message"]) < 300
    assert await state(alice, project) == before
    at_limit = await alice.patch(f"samples/{sample}", {"metadata": {"note": "x" * limit}})
    assert at_limit.code == 200, at_limit.body[:300]


async def test_bodies_that_are_not_json_objects_are_400s(api) -> None:
    alice, project, sample, before = await setup(api)

    for raw in (b"[]", b'"lab"', b"1", b"null", b"true", b"", b'[{"name": "x"}]'):
        await refused(alice, "POST", "projects", raw)
        await refused(alice, "PATCH", f"projects/{project}", raw)
        await refused(alice, "POST", f"projects/{project}/samples", raw)
    await refused(alice, "PATCH", f"projects/{project}", b"{}", field="/")  # nothing to change is a mistake too
    assert await state(alice, project) == before


async def test_bodies_that_are_not_utf8_json_are_400s(api) -> None:
    alice, project, sample, before = await setup(api)

    for raw in (b"\xff\xfe\x00", json.dumps({"name": "utf16"}).encode("utf-16"), b"name=form&description=x",
                b'{"name": "truncated"', b'{"name": "a"} {"name": "b"}', b'{"name": "a",}', b"{'name': 'a'}",
                b'{"name": "\xc3\x28"}', b'{"name": "unterminated', b'"' + b'\\"' * 100_000):
        await refused(alice, "POST", "projects", raw, "malformed_json")
        await refused(alice, "PATCH", f"samples/{sample}", raw, "malformed_json")
    assert await state(alice, project) == before
    # A UTF-8 byte-order mark is tolerated (RFC 8259 lets a parser ignore it).
    bom = await alice.request("POST", "projects", raw=b"\xef\xbb\xbf" + json.dumps({"name": "bom"}).encode())
    assert bom.code == 201, bom.body


def test_a_reply_never_carries_a_nan_token() -> None:
    """Anything non-finite that reaches a reply (e.g. a pandas gap in a parsed sample sheet) goes out as null."""
    reply = dumps_strict({"rows": [{"depth": float("nan")}, {"depth": float("inf")}], "ratio": (1.0, float("-inf"))})
    assert strict(reply.encode()) == {"rows": [{"depth": None}, {"depth": None}], "ratio": [1.0, None]}
