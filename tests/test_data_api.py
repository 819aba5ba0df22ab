"""Projects, samples, data files, groups and shares through the real HTTP API, as three researchers:
alice (admin of group "lab"), bob (member of "lab") and carol (admin of group "core").
Every test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest

from flow_jupyter.data.files import store_bytes
from flow_jupyter.identity import Identity


@pytest.fixture
def people(api, jp_asyncio_loop):
    """Three users who have each used Flow once, and two groups."""
    alice, bob, carol = api.as_user("alice"), api.as_user("bob"), api.as_user("carol")

    async def arrange():
        for user in (alice, bob, carol):
            assert (await user.get("projects")).code == 200
        lab = (await alice.post("groups", {"name": "lab"})).json
        assert (await alice.post(f"groups/{lab['id']}/members", {"user": "bob"})).code == 201
        core = (await carol.post("groups", {"name": "core"})).json
        return {"alice": alice, "bob": bob, "carol": carol, "lab": lab["id"], "core": core["id"]}

    return jp_asyncio_loop.run_until_complete(arrange())


@pytest.fixture
def add_file(jp_serverapp):
    """Put real bytes under the Flow root and register them, as an upload would (the uploads API has its own tests)."""
    host = jp_serverapp.web_app.settings["flow"]

    def add(user: str, project: int, filename: str, content: bytes = b"ACGT\n", sample: int | None = None) -> int:
        def store(session, actor):
            return store_bytes(session, host.storage, owner_id=actor.user_id, project_id=project, sample_id=sample,
                               filename=filename, content=content).id

        return host.run_as(Identity(user), store)

    add.root = host.storage.root
    return add


async def test_a_new_project_is_private_to_its_owner(people) -> None:
    alice, bob = people["alice"], people["bob"]

    created = await alice.post("projects", {"name": "RNA-seq 2026", "description": "liver samples"})

    assert created.code == 201
    project = created.json
    assert (project["owner_name"], project["visibility"], project["access"]) == ("alice", "private", "admin")
    assert isinstance(project["owner_id"], int) and "owner" not in project
    assert [p["name"] for p in (await alice.get("projects")).json["items"]] == ["RNA-seq 2026"]
    assert (await bob.get("projects")).json["items"] == []
    missing = await bob.get(f"projects/{project['id']}")
    assert missing.code == 404 and missing.error["reason"] == "not_found"


async def test_group_visibility_lets_members_view_and_group_admins_edit(people) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    project = (await alice.post("projects", {"name": "shared", "visibility": "group", "group": people["lab"]})).json

    assert (await bob.get(f"projects/{project['id']}")).json["access"] == "view"
    assert (await carol.get(f"projects/{project['id']}")).code == 404
    refused = await bob.patch(f"projects/{project['id']}", {"name": "renamed by bob"})
    assert refused.code == 403 and refused.error["reason"] == "forbidden"
    assert (await alice.get(f"projects/{project['id']}")).json["name"] == "shared"

    await alice.post(f"groups/{people['lab']}/members", {"user": "bob", "role": "admin"})
    assert (await bob.patch(f"projects/{project['id']}", {"name": "renamed by bob"})).json["name"] == "renamed by bob"
    assert (await bob.patch(f"projects/{project['id']}", {"visibility": "public"})).code == 403


async def test_a_public_project_is_visible_to_everyone_read_only(people) -> None:
    alice, carol = people["alice"], people["carol"]
    project = (await alice.post("projects", {"name": "atlas", "visibility": "public"})).json

    assert (await carol.get(f"projects/{project['id']}")).json["access"] == "view"
    assert (await carol.delete(f"projects/{project['id']}")).code == 403


async def test_shares_grant_view_then_edit_and_revoking_hides_again(people) -> None:
    alice, carol = people["alice"], people["carol"]
    project = (await alice.post("projects", {"name": "collab"})).json
    pid = project["id"]

    share = await alice.post("shares", {"object_type": "project", "object_id": pid, "user": "carol"})
    assert share.code == 201 and share.json["level"] == "view"
    assert (await carol.get(f"projects/{pid}")).json["access"] == "view"
    view_only_edit = await carol.patch(f"projects/{pid}", {"description": "carol was here"})
    assert view_only_edit.code == 403
    assert (await alice.get(f"projects/{pid}")).json["description"] == ""

    assert (await alice.patch(f"shares/{share.json['id']}", {"level": "edit"})).json["level"] == "edit"
    assert (await carol.patch(f"projects/{pid}", {"description": "carol was here"})).code == 200
    assert (await carol.post("shares", {"object_type": "project", "object_id": pid, "user": "bob"})).code == 403

    assert (await alice.delete(f"shares/{share.json['id']}")).code == 204
    assert (await carol.get(f"projects/{pid}")).code == 404


async def test_sharing_with_a_group_reaches_its_members_only(people) -> None:
    """Only a member shares with a group (to anyone else it is "No such group.", as for one that does not exist),
    and a share names its group only to the group's members."""
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    pid = (await carol.post("projects", {"name": "core facility runs"})).json["id"]

    outsider = await carol.post("shares", {"object_type": "project", "object_id": pid, "group": people["lab"]})
    nonexistent = await carol.post("shares", {"object_type": "project", "object_id": pid, "group": 1_999_999_999})
    assert outsider.code == nonexistent.code == 404 and outsider.body == nonexistent.body

    await carol.post("shares", {"object_type": "project", "object_id": pid, "user": "alice", "level": "share"})
    granted = await alice.post("shares", {"object_type": "project", "object_id": pid, "group": people["lab"],
                                          "level": "share"})

    assert granted.code == 201 and granted.json["group_name"] == "lab"
    assert (await alice.get(f"projects/{pid}")).json["access"] == "share"
    assert (await bob.get(f"projects/{pid}")).json["access"] == "share"
    listed = await bob.get("shares", object_type="project", object_id=pid)
    assert sorted(str(s.get("group_name") or s.get("user")) for s in listed.json["items"]) == ["alice", "lab"]
    owners_view = await carol.get("shares", object_type="project", object_id=pid)
    assert owners_view.code == 200
    assert [s["group_name"] for s in owners_view.json["items"] if "group" in s] == [None]


async def test_a_single_file_can_be_shared_without_its_project(people, add_file) -> None:
    alice, bob = people["alice"], people["bob"]
    pid = (await alice.post("projects", {"name": "private"})).json["id"]
    fid = add_file("alice", pid, "tumour_R1.fastq.gz")
    assert (await bob.get(f"files/{fid}")).code == 404

    await alice.post("shares", {"object_type": "datafile", "object_id": fid, "user": "bob"})

    shared = (await bob.get(f"files/{fid}")).json
    assert (shared["filename"], shared["owner_name"], shared["execution"]) == ("tumour_R1.fastq.gz", "alice", None)
    assert [(f["id"], f["owner_name"]) for f in (await bob.get("files")).json["items"]] == [(fid, "alice")]
    assert (await bob.get(f"projects/{pid}")).code == 404
    assert (await bob.patch(f"files/{fid}", {"filename": "mine.fastq.gz"})).code == 403


async def test_files_are_filtered_and_paged_with_a_keyset_cursor(people, add_file) -> None:
    alice = people["alice"]
    first = (await alice.post("projects", {"name": "first"})).json["id"]
    second = (await alice.post("projects", {"name": "second"})).json["id"]
    sample = (await alice.post(f"projects/{first}/samples", {"name": "S1", "metadata": {"tissue": "liver"}})).json
    names = ["S1_R1.fastq.gz", "S1_R2.fastq.gz", "S2_R1.fastq.gz", "ref.fa", "S1_stats.txt", "100%_done.txt",
             "100x_done.txt"]
    ids = {name: add_file("alice", first, name, sample=sample["id"] if name.startswith("S1") else None)
           for name in names}
    other = add_file("alice", second, "S1_R1.fastq.gz")

    async def all_pages(**filters) -> list[str]:
        seen, after = [], None
        while True:
            reply = await alice.get("files", limit=3, after=after, **filters)
            assert reply.code == 200 and len(reply.json["items"]) <= 3
            seen += [f["filename"] for f in reply.json["items"]]
            after = reply.json["next"]
            if after is None:
                return seen

    assert await all_pages() == names + ["S1_R1.fastq.gz"]
    assert await all_pages(project=first) == names
    assert await all_pages(sample=sample["id"]) == ["S1_R1.fastq.gz", "S1_R2.fastq.gz", "S1_stats.txt"]
    assert await all_pages(name="S1_R", project=first) == ["S1_R1.fastq.gz", "S1_R2.fastq.gz"]
    assert await all_pages(name="100%") == ["100%_done.txt"]  # % and _ are literal, not wildcards
    assert await all_pages(type="fastq", project=second) == ["S1_R1.fastq.gz"]
    detail = (await alice.get(f"files/{ids['ref.fa']}")).json
    assert (detail["type"], detail["project"], detail["size"]) == ("fasta", first, 5)
    assert "storage_path" not in detail and other > ids["ref.fa"]


async def test_rename_move_and_delete_a_file(people, add_file) -> None:
    alice, bob = people["alice"], people["bob"]
    source = (await alice.post("projects", {"name": "source"})).json["id"]
    target = (await alice.post("projects", {"name": "target"})).json["id"]
    bobs = (await bob.post("projects", {"name": "bob's"})).json["id"]
    fid = add_file("alice", source, "reads.fq.gz", b"@r1\nACGT\n+\nIIII\n")

    renamed = await alice.patch(f"files/{fid}", {"filename": "../../etc/passwd"})
    assert renamed.code == 200 and renamed.json["filename"] == "passwd"
    moved = await alice.patch(f"files/{fid}", {"project": target})
    assert moved.json["project"] == target
    assert (await alice.patch(f"files/{fid}", {"project": bobs})).code == 404
    assert (await alice.get(f"files/{fid}")).json["project"] == target

    stored = [p for p in add_file.root.joinpath("uploads").rglob("*") if p.is_file()]
    assert (await alice.delete(f"files/{fid}")).code == 204
    assert (await alice.get(f"files/{fid}")).code == 404
    assert not any(p.exists() for p in stored)


async def test_groups_are_managed_by_their_admins(people) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    lab = people["lab"]

    assert (await carol.get(f"groups/{lab}")).code == 404
    assert (await bob.post(f"groups/{lab}/members", {"user": "carol"})).code == 403
    members = (await alice.get(f"groups/{lab}")).json["members"]
    assert members == [{"user": "alice", "role": "admin"}, {"user": "bob", "role": "member"}]
    assert (await alice.post(f"groups/{lab}/members", {"user": "nobody"})).error["field"] == "/user"
    last_admin = await alice.delete(f"groups/{lab}/members/alice")
    assert last_admin.code == 400 and last_admin.error["reason"] == "last_admin"
    assert (await bob.delete(f"groups/{lab}/members/bob")).code == 204
    assert [g["name"] for g in (await bob.get("groups")).json["items"]] == []


async def test_shares_and_members_are_lists_a_page_at_a_time(people) -> None:
    alice, carol = people["alice"], people["carol"]
    lab, pid = people["lab"], (await alice.post("projects", {"name": "shared"})).json["id"]
    await alice.post(f"groups/{lab}/members", {"user": "carol"})
    for grantee in ({"user": "bob"}, {"user": "carol"}, {"group": lab}):
        assert (await alice.post("shares", {"object_type": "project", "object_id": pid, **grantee})).code == 201

    async def every(path: str, **query) -> list[dict]:
        items, after = [], None
        while True:
            page = (await alice.get(path, limit=2, after=after, **query)).json
            assert set(page) == {"items", "next"} and len(page["items"]) <= 2
            items += page["items"]
            if (after := page["next"]) is None:
                return items

    shares = await every("shares", object_type="project", object_id=pid)
    assert [(s.get("user"), s.get("group_name")) for s in shares] == [("bob", None), ("carol", None), (None, "lab")]
    members = await every(f"groups/{lab}/members")
    assert sorted((m["user"], m["role"]) for m in members) == [("alice", "admin"), ("bob", "member"),
                                                               ("carol", "member")]
    assert (await carol.get(f"groups/{people['core']}/members")).json["items"] == [{"user": "carol", "role": "admin"}]
    assert (await alice.get(f"groups/{people['core']}/members")).code == 404  # not her group


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"{not json", "malformed_json", None),
        (b'{"name": "x", "colour": "red"}', "unknown_field", "/colour"),
        (b'{"name": 42}', "invalid_field", "/name"),
        (b'{"description": "no name"}', "missing_field", "/name"),
        (b'{"name": "x", "visibility": "secret"}', "invalid_field", "/visibility"),
        (b'{"name": "x", "group": 99999999999}', "invalid_field", "/group"),
        (b'{"name": "bad\\u0000name"}', "invalid_field", "/name"),
    ],
)
async def test_bad_project_bodies_are_400_naming_the_field_and_change_nothing(people, raw, reason, field) -> None:
    alice = people["alice"]

    reply = await alice.post("projects", raw=raw, headers={"Content-Type": "application/json"})

    assert reply.code == 400
    assert reply.error["reason"] == reason
    assert reply.error.get("field") == field
    assert reply.error["message"]
    assert (await alice.get("projects")).json["items"] == []


async def test_ids_that_cannot_exist_and_bad_query_arguments(people) -> None:
    alice = people["alice"]
    assert (await alice.get("projects/99999999999999999999")).code == 404
    assert (await alice.get("files", after="abc")).error["field"] == "after"
    assert (await alice.get("files", limit="0")).error["field"] == "limit"
    assert (await alice.get("files", limit="100000")).code == 400
    assert (await alice.get("files", project="x")).error["field"] == "project"
    assert (await alice.get("shares", object_type="user", object_id=1)).code == 400


async def test_the_jupyter_user_is_admin_of_their_own_store(api, people) -> None:
    pid = (await people["alice"].post("projects", {"name": "alice's"})).json["id"]
    assert (await api.owner.get(f"projects/{pid}")).json["access"] == "admin"


async def test_a_project_with_files_cannot_be_deleted_until_emptied(people, add_file) -> None:
    alice = people["alice"]
    pid = (await alice.post("projects", {"name": "busy"})).json["id"]
    fid = add_file("alice", pid, "a.txt")

    refused = await alice.delete(f"projects/{pid}")
    assert refused.code == 409 and refused.error["reason"] == "project_not_empty"
    await alice.delete(f"files/{fid}")
    assert (await alice.delete(f"projects/{pid}")).code == 204
