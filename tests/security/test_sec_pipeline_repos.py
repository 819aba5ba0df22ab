"""A registered pipeline repository may hold nothing that leads out of it: a symbolic link to /etc/passwd as its
schema, as its sample-sheet schema, or a linked directory, is refused with a 400 naming the link, and the
registry is left as it was (no pipeline or version row, no mirror, no checkout on disk). Links that stay inside
the repository keep working. Through the HTTP API as the admin; runs on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitrepo import git

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "definitions": {"io": {"type": "object", "properties": {
        "input": {"type": "string", "format": "file-path", "schema": "assets/schema_input.json"},
        "outdir": {"type": "string", "format": "directory-path", "default": "results"}}}},
    "allOf": [{"$ref": "#/definitions/io"}],
}
SHEET = {"$schema": "http://json-schema.org/draft-07/schema", "type": "array",
         "items": {"type": "object", "properties": {"sample": {"type": "string"}}, "required": ["sample"]}}


def _repo(root: Path, name: str, links: dict[str, str]) -> Path:
    """A pipeline repository with a schema and sheet schema, where each of ``links`` replaces a file by a link."""
    repo = root / name
    (repo / "assets").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "main.nf").write_text("workflow {}\n")
    (repo / "nextflow_schema.json").write_text(json.dumps(SCHEMA))
    (repo / "assets" / "schema_input.json").write_text(json.dumps(SHEET))
    for path, target in links.items():
        link = repo / path
        if link.is_dir():
            for child in link.iterdir():
                child.unlink()
            link.rmdir()
        elif link.exists():
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1.0")
    return repo


def _on_disk(flow_root: Path) -> list[str]:
    """Everything the registry keeps under the Flow root (mirrors and checkouts)."""
    pipelines = [p for p in flow_root.rglob("pipelines") if p.is_dir()]
    return sorted(str(child.relative_to(flow_root)) for p in pipelines for child in p.rglob("*"))


@pytest.fixture
def admin(api):
    return api.owner


ESCAPES = [
    ("schema_to_etc_passwd", {"nextflow_schema.json": "/etc/passwd"}, "nextflow_schema.json"),
    ("sheet_schema_to_etc_passwd", {"assets/schema_input.json": "/etc/passwd"}, "assets/schema_input.json"),
    ("sheet_schema_climbing_out", {"assets/schema_input.json": "../../../../../../etc/passwd"},
     "assets/schema_input.json"),
    ("linked_directory", {"assets": "/etc"}, "assets"),
]


@pytest.mark.parametrize(("name", "links", "named"), ESCAPES, ids=[case[0] for case in ESCAPES])
async def test_a_repository_with_a_link_out_is_refused_and_nothing_is_registered(
        admin, tmp_path, flow_root, name, links, named) -> None:
    repo = _repo(tmp_path, name, links)
    before = _on_disk(flow_root)

    reply = await admin.post("pipelines", {"source": str(repo), "ref": "v1.0"})

    assert reply.code == 400, reply.json
    assert reply.error["reason"] == "unsafe_link"
    assert repr(named) in reply.error["message"] and reply.error["field"] == named
    assert "root:" not in reply.body.decode()  # nothing of the linked file comes back
    assert [p["name"] for p in (await admin.get("pipelines")).json["items"]] == ["demo"]
    assert (await admin.get(f"pipelines/{name}")).code == 404
    assert _on_disk(flow_root) == before


async def test_a_new_version_with_a_link_out_is_refused_and_the_pipeline_keeps_its_versions(
        admin, tmp_path, flow_root) -> None:
    repo = _repo(tmp_path, "greeter", {})
    assert (await admin.post("pipelines", {"source": str(repo), "ref": "v1.0"})).code == 201
    before = _on_disk(flow_root)
    (repo / "nextflow_schema.json").unlink()
    (repo / "nextflow_schema.json").symlink_to("/etc/passwd")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "tag", "v2.0")

    reply = await admin.post("pipelines/greeter/versions", {"ref": "v2.0"})

    assert (reply.code, reply.error["reason"], reply.error["field"]) == (400, "unsafe_link", "nextflow_schema.json")
    pipeline = (await admin.get("pipelines/greeter")).json
    assert [v["ref"] for v in pipeline["versions"]] == ["v1.0"]
    checkouts = [p for p in _on_disk(flow_root) if p not in before and "mirror.git" not in p]
    assert checkouts == []  # the mirror fetched v2.0, but no checkout of it is left


async def test_links_that_stay_inside_the_repository_still_work(admin, tmp_path) -> None:
    repo = _repo(tmp_path, "inside", {})
    (repo / "schemas").mkdir()
    (repo / "assets" / "schema_input.json").rename(repo / "schemas" / "input.json")
    (repo / "assets" / "schema_input.json").symlink_to("../schemas/input.json")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "tag", "v2.0")

    reply = await admin.post("pipelines", {"source": str(repo), "ref": "v2.0"})

    assert reply.code == 201, reply.json
    assert reply.json["versions"][0]["has_samplesheet_schema"] is True
