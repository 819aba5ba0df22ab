"""A run directory is the pipeline's, not Flow's (threat model A.2, A.3): links planted in it are never followed,
and a registered output never changes under its id.

With the real Nextflow, alice runs the tiny pipeline. Then someone with access to her run directory (a task of a
later run, or anyone who can write there) replaces the log with a link to a system file, swaps a published file for
a link into another user's store, and rewrites the stored bytes behind Flow's back. Flow serves none of it: the log
reads as empty, the output still serves the bytes that were registered, and rewritten bytes are a 409, not a
silent substitution. A resume that changes an output registers a new data file naming the one it replaces; the
old id still serves the old bytes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from flow_jupyter.db.models import DataFile, Execution
from test_executions_api import TERMINAL, arrange, wait_for


def _row(host, execution_uuid: str) -> tuple[Path, list[DataFile]]:
    with host.db.session() as session:
        execution = session.scalar(select(Execution).where(Execution.uuid == execution_uuid))
        files = session.scalars(select(DataFile).where(DataFile.execution_id == execution.id)).all()
        session.expunge_all()
        return host.storage.resolve(execution.run_dir), files


@pytest.mark.nextflow
async def test_links_planted_in_a_run_directory_are_never_followed_and_outputs_never_change(
        api, jp_serverapp, tmp_path) -> None:
    arranged = await arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    host, project = arranged["host"], arranged["project"]
    launched = await alice.post("executions", {"pipeline": "tiny", "project": project, "backend": "local",
                                               "params": {"names": {"datafile": arranged["names"]},
                                                          "greeting": "Hi"}})
    assert launched.code == 201, launched.json
    run = launched.json["id"]
    assert (await wait_for(alice, run, TERMINAL))["status"] == "succeeded"
    run_dir, registered = _row(host, run)
    outputs = {f.filename: f for f in registered}

    # Registered outputs live in Flow's store, not in the run directory the pipeline can rewrite.
    assert {f.run_path for f in registered} == {"results/all.txt", "results/greetings/Ada.txt",
                                               "results/greetings/Grace.txt", "results/greetings/Linus.txt"}
    assert all(f.storage_path.startswith("outputs/") and f.stat_inode is not None for f in registered)

    # The Nextflow log becomes a link to a system file: the tail and the download show nothing of it.
    log = run_dir / ".nextflow.log"
    log.unlink()
    log.symlink_to("/etc/passwd")
    tail = await alice.get(f"executions/{run}/log")
    assert tail.code == 200 and "root:" not in tail.json["text"] and tail.json["size"] == 0
    download = await alice.get(f"executions/{run}/logs/nextflow")
    assert download.code == 404 and b"root:" not in download.body

    # A published file is swapped for a link into another user's store: its data file still serves what was
    # registered, and the report/listing code never walks into the link.
    joined = outputs["all.txt"]
    published = run_dir / "results" / "all.txt"
    published.unlink()
    published.symlink_to(host.storage.resolve(arranged_secret(host)))
    content = await alice.get(f"files/{joined.id}/content")
    assert content.code == 200 and content.body == b"Hi, Ada!\nHi, Grace!\nHi, Linus!\n"
    assert hashlib.sha256(content.body).hexdigest() == joined.sha256
    published.unlink()

    # A resume that changes the greeting re-publishes changed files: new data files naming the ones they replace,
    # while the old ids keep serving the old bytes.
    resumed = await alice.post(f"executions/{run}/resume", {"params": {"greeting": "Bye"}})
    assert resumed.code == 201, resumed.json
    assert (await wait_for(alice, resumed.json["id"], TERMINAL))["status"] == "succeeded"
    _, newer = _row(host, resumed.json["id"])
    by_name = {f.filename: f for f in newer}
    assert by_name["all.txt"].replaces_id == joined.id
    assert (await alice.get(f"files/{by_name['all.txt'].id}/content")).body == b"Bye, Ada!\nBye, Grace!\nBye, Linus!\n"
    assert (await alice.get(f"files/{joined.id}/content")).body == b"Hi, Ada!\nHi, Grace!\nHi, Linus!\n"
    listed = (await alice.get(f"files/{by_name['all.txt'].id}")).json
    assert listed["replaces"] == joined.id

    # Stored bytes rewritten behind Flow's back are refused, not silently served.
    ada = outputs["Ada.txt"]
    with open(host.storage.resolve(ada.storage_path), "ab") as handle:
        handle.write(b"tampered\n")
    tampered = await alice.get(f"files/{ada.id}/content")
    assert tampered.code == 409 and tampered.error["reason"] == "file_changed"
    zipped = await alice.post("downloads", {"files": [ada.id]})
    assert zipped.code == 409 and zipped.error["reason"] == "file_changed"

    # The output directory becomes a link out of the run directory: a resume writing there is refused when the
    # manager checks the launch again in the real run directory, before Nextflow starts.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "results").rename(run_dir / "results.before")
    (run_dir / "results").symlink_to(elsewhere, target_is_directory=True)
    redirected = await alice.post(f"executions/{run}/resume", {"params": {"greeting": "Again"}})
    assert redirected.code == 201, redirected.json
    refused = await wait_for(alice, redirected.json["id"], TERMINAL)
    assert refused["status"] == "failed" and "symbolic link" in refused["error"], refused
    assert list(elsewhere.iterdir()) == []


LEAKY_MAIN = """nextflow.enable.dsl = 2
params.outdir = 'results'
process LEAK {
    publishDir "${params.outdir}", mode: 'symlink'
    output:
    path "*.txt"
    script:
    \"\"\"
    ln -s /etc/hostname leak.txt
    echo fine > ok.txt
    \"\"\"
}
workflow { LEAK() }
"""


@pytest.mark.nextflow
async def test_a_published_link_out_of_the_run_directory_is_not_registered(api, jp_serverapp, tmp_path) -> None:
    from test_executions_api import _repo

    arranged = await arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    added = await api.owner.post("pipelines", {"source": str(_repo(tmp_path / "leaky", {"main.nf": LEAKY_MAIN})),
                                               "ref": "v1.0"})
    assert added.code == 201, added.json
    launched = await alice.post("executions", {"pipeline": "leaky", "project": arranged["project"],
                                               "backend": "local", "params": {}})
    assert launched.code == 201, launched.json
    assert (await wait_for(alice, launched.json["id"], TERMINAL))["status"] == "succeeded"

    _, registered = _row(arranged["host"], launched.json["id"])
    assert [f.run_path for f in registered] == ["results/ok.txt"]
    served = await alice.get(f"files/{registered[0].id}/content")
    assert served.code == 200 and served.body == b"fine\n"


def arranged_secret(host) -> str:
    """A file of another user in the store: bob's upload-area bytes (any stored path will do)."""
    from flow_jupyter.data.files import store_bytes
    from flow_jupyter.db.models import Project
    from flow_jupyter.identity import Identity

    def bobs(session, actor):
        private = Project(name="bob's secrets", owner_id=actor.user_id)
        session.add(private)
        session.flush()
        return store_bytes(session, host.storage, owner_id=actor.user_id, project_id=private.id, sample_id=None,
                           filename="secret.txt", content=b"bob's secret\n").storage_path

    return host.run_as(Identity("bob"), bobs)
