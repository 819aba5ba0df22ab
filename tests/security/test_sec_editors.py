"""What an editor may do to files they do not own (the rule is in flow_jupyter/permissions.py's docstring).

alice owns "lab data" and "archive" and lets bob edit both; she lets bob only view "reference". bob has his own
private project, and carol lets bob edit "carol's". An editor renames and annotates alice's files and reorganises
them between alice's projects, but can neither carry them out of her projects (into his own, where he would be
their admin, or into carol's) nor delete them. His own files, even inside alice's project, are his to move and
delete; alice, who owns the project, may delete anything in it. Every refusal changes nothing. SQLite and
PostgreSQL.
"""
from __future__ import annotations

import pytest

from flow_jupyter.data.files import store_bytes
from flow_jupyter.identity import Identity

READS = b"@r1\nACGT\n+\nIIII\n"


@pytest.fixture
def lab(api, jp_serverapp, jp_asyncio_loop) -> dict:
    host = jp_serverapp.web_app.settings["flow"]
    alice, bob, carol, dave = (api.as_user(name) for name in ("alice", "bob", "carol", "dave"))

    def add_file(owner: str, project: int, filename: str) -> int:
        return host.run_as(Identity(owner), lambda session, actor: store_bytes(
            session, host.storage, owner_id=actor.user_id, project_id=project, sample_id=None, filename=filename,
            content=READS).id)

    async def share(owner, object_type: str, object_id: int, user: str, level: str) -> None:
        granted = await owner.post("shares", {"object_type": object_type, "object_id": object_id, "user": user,
                                              "level": level})
        assert granted.code == 201, granted.json

    async def arrange() -> dict:
        for user in (alice, bob, carol, dave):
            assert (await user.get("projects")).code == 200
        ids = {name: (await owner.post("projects", {"name": name})).json["id"] for owner, name in [
            (alice, "lab data"), (alice, "archive"), (alice, "reference"), (bob, "bob's private"),
            (carol, "carol's"), (dave, "dave's")]}
        await share(alice, "project", ids["lab data"], "bob", "edit")
        await share(alice, "project", ids["archive"], "bob", "edit")
        await share(alice, "project", ids["reference"], "bob", "view")
        await share(alice, "project", ids["lab data"], "carol", "view")
        await share(carol, "project", ids["carol's"], "bob", "edit")
        ids["sample"] = (await alice.post(f"projects/{ids['lab data']}/samples", {"name": "S1"})).json["id"]
        ids["alice's file"] = add_file("alice", ids["lab data"], "S1_R1.fastq.gz")
        ids["bob's file"] = add_file("bob", ids["lab data"], "bob_R1.fastq.gz")
        return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "ids": ids, "share": share}

    return jp_asyncio_loop.run_until_complete(arrange())


async def unchanged(lab: dict, datafile: int, filename: str = "S1_R1.fastq.gz", project: str = "lab data") -> None:
    """The file is where it was, named as it was, and its bytes are still served to its owner."""
    detail = (await lab["alice"].get(f"files/{datafile}")).json
    assert (detail["filename"], detail["project"]) == (filename, lab["ids"][project])
    assert (await lab["alice"].get(f"files/{datafile}/content")).body == READS


async def test_an_editor_renames_and_annotates_the_owners_file(lab) -> None:
    bob, ids = lab["bob"], lab["ids"]
    datafile = ids["alice's file"]

    changed = await bob.patch(f"files/{datafile}", {"filename": "liver_R1.fastq.gz", "sample": ids["sample"]})

    assert changed.code == 200, changed.json
    detail = (await lab["alice"].get(f"files/{datafile}")).json
    assert (detail["filename"], detail["sample"], detail["owner_name"]) == ("liver_R1.fastq.gz", ids["sample"],
                                                                            "alice")  # the owner stays the owner


async def test_an_editor_reorganises_files_between_the_owners_projects(lab) -> None:
    bob, ids = lab["bob"], lab["ids"]
    datafile = ids["alice's file"]

    moved = await bob.patch(f"files/{datafile}", {"project": ids["archive"]})

    assert moved.code == 200 and moved.json["project"] == ids["archive"]
    await unchanged(lab, datafile, project="archive")
    back = await bob.patch(f"files/{datafile}", {"project": ids["lab data"]})
    assert back.code == 200 and back.json["project"] == ids["lab data"]


async def test_an_editor_cannot_carry_the_owners_file_out_of_her_projects(lab) -> None:
    bob, ids = lab["bob"], lab["ids"]
    datafile = ids["alice's file"]

    for target in ("bob's private", "carol's"):
        refused = await bob.patch(f"files/{datafile}", {"filename": "mine.fastq.gz", "project": ids[target]})
        assert refused.code == 403, (target, refused.json)
        assert (refused.error["reason"], refused.error["field"]) == ("move_forbidden", "/project")
    view_only = await bob.patch(f"files/{datafile}", {"project": ids["reference"]})
    assert (view_only.code, view_only.error["reason"], view_only.error["field"]) == (403, "forbidden", "/project")
    invisible = await bob.patch(f"files/{datafile}", {"project": ids["dave's"]})
    assert (invisible.code, invisible.error["reason"]) == (404, "not_found")

    await unchanged(lab, datafile)
    assert (await bob.get("files", project=ids["bob's private"])).json["items"] == []


async def test_an_editor_or_a_viewer_cannot_delete_the_owners_file(lab) -> None:
    datafile = lab["ids"]["alice's file"]

    for who in ("bob", "carol"):
        refused = await lab[who].delete(f"files/{datafile}")
        assert refused.code == 403, (who, refused.json)
        assert refused.error["reason"] == "delete_forbidden"

    await unchanged(lab, datafile)


async def test_an_editor_moves_and_deletes_his_own_files_and_the_project_owner_deletes_any(lab) -> None:
    alice, bob, ids = lab["alice"], lab["bob"], lab["ids"]
    own = ids["bob's file"]

    moved = await bob.patch(f"files/{own}", {"project": ids["bob's private"]})
    assert moved.code == 200 and moved.json["project"] == ids["bob's private"]
    assert (await alice.get(f"files/{own}")).code == 404  # it left alice's project with its owner
    back = await bob.patch(f"files/{own}", {"project": ids["lab data"]})
    assert back.code == 200

    assert (await bob.delete(f"files/{own}")).code == 204
    assert (await bob.get(f"files/{own}")).code == 404
    editors_upload = (await bob.get("files", project=ids["lab data"])).json["items"]
    assert [f["id"] for f in editors_upload] == [ids["alice's file"]]


async def test_the_project_owner_deletes_an_editors_file_in_her_project(lab) -> None:
    editors = lab["ids"]["bob's file"]

    assert (await lab["alice"].delete(f"files/{editors}")).code == 204
    assert (await lab["bob"].get(f"files/{editors}")).code == 404


async def test_an_edit_share_on_one_file_allows_renaming_but_not_moving_or_deleting(lab) -> None:
    dave, ids = lab["dave"], lab["ids"]
    datafile = ids["alice's file"]
    await lab["share"](lab["alice"], "datafile", datafile, "dave", "edit")

    assert (await dave.patch(f"files/{datafile}", {"filename": "renamed.fastq.gz"})).code == 200
    carried = await dave.patch(f"files/{datafile}", {"project": ids["dave's"]})
    assert (carried.code, carried.error["reason"]) == (403, "move_forbidden")
    deleted = await dave.delete(f"files/{datafile}")
    assert (deleted.code, deleted.error["reason"]) == (403, "delete_forbidden")
    await unchanged(lab, datafile, filename="renamed.fastq.gz")
