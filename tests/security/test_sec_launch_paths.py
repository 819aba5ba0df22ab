"""Launch parameters are no way around permissions (threat model A.1).

Bob has a run with outputs and a private data file; alice, with an account and no rights to any of it, tries every
shape of path a parameter can carry — relative with ``..``, absolute, ``~``, ``file:`` URLs, nested in arrays and
objects, as an output directory, in a sample-sheet cell — to make Nextflow read or write Bob's files or the store.
Each is a 400 naming the field, and nothing is stored. With host paths on (single user) only the allowed roots are
reachable, never the store. What may pass (her own data files, relative paths, allowed URLs) still passes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitrepo import git
from flow_jupyter.config import FlowSettings
from flow_jupyter.data.files import store_bytes
from flow_jupyter.db.models import Project
from flow_jupyter.identity import Identity
from flow_jupyter.pipelines.paths import PathPolicy, check_path

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "paths", "type": "object",
    "$defs": {"io": {"title": "Input/output", "type": "object", "required": ["input", "outdir"], "properties": {
        "input": {"type": "string", "format": "file-path", "exists": True, "schema": "assets/schema_input.json"},
        "fasta": {"type": "string", "format": "file-path", "exists": True},
        "reference_dir": {"type": "string", "format": "directory-path"},
        "extra_files": {"type": "array", "items": {"type": "string", "format": "file-path"}},
        "outdir": {"type": "string", "format": "directory-path"},
        "title": {"type": "string"},
    }}},
    "allOf": [{"$ref": "#/$defs/io"}],
}
SHEET_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array",
    "items": {"type": "object", "required": ["sample", "fastq_1"], "properties": {
        "sample": {"type": "string"},
        "fastq_1": {"type": "string", "format": "file-path", "exists": True},
    }},
}


def _paths_repo(path: Path) -> Path:
    (path / "assets").mkdir(parents=True)
    (path / "main.nf").write_text("workflow { println params.input }\n")
    (path / "nextflow.config").write_text("params {\n  genomes = [:]\n}\nvalidation {\n"
                                          "  ignoreParams = ['igenomes_base']\n}\n")
    (path / "nextflow_schema.json").write_text(json.dumps(SCHEMA))
    (path / "assets" / "schema_input.json").write_text(json.dumps(SHEET_SCHEMA))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "v1")
    git(path, "tag", "v1.0")
    return path


@pytest.fixture
def multi_user(flow_config: dict) -> dict:
    """The hub's default: no host paths at all."""
    flow_config["allow_host_paths"] = False
    return flow_config


async def _arrange(api, jp_serverapp, tmp_path: Path) -> dict:
    """The 'paths' pipeline; alice's project with her reads; bob's private reads and a run directory of his."""
    admin, alice, bob = api.owner, api.as_user("alice"), api.as_user("bob")
    added = await admin.post("pipelines", {"source": str(_paths_repo(tmp_path / "paths")), "ref": "v1.0"})
    assert added.code == 201, added.json
    project = (await alice.post("projects", {"name": "mine"})).json["id"]
    await bob.get("projects")
    host = jp_serverapp.web_app.settings["flow"]

    def alices_reads(session, actor) -> int:
        return store_bytes(session, host.storage, owner_id=actor.user_id, project_id=project, sample_id=None,
                           filename="reads.fq", content=b"@r\nACGT\n+\nIIII\n").id

    def bobs_secret(session, actor) -> int:
        private = Project(name="bob's", owner_id=actor.user_id)
        session.add(private)
        session.flush()
        return store_bytes(session, host.storage, owner_id=actor.user_id, project_id=private.id, sample_id=None,
                           filename="secret.fq", content=b"@s\nTTTT\n+\nIIII\n").id

    reads = await host.call(Identity("alice"), alices_reads)
    secret = await host.call(Identity("bob"), bobs_secret)
    bobs_run = Path(host.settings.root_dir) / "executions" / "0b0b0b0b-0000-4000-8000-000000000000"
    (bobs_run / "results").mkdir(parents=True)
    (bobs_run / "results" / "variants.vcf").write_text("##fileformat=VCFv4.2\n")
    return {"project": project, "reads": reads, "secret": secret, "bobs_run": bobs_run, "host": host,
            "root": Path(host.settings.root_dir)}


def _fields(reply) -> dict[str, str]:
    return {error["field"]: error["reason"] for error in reply.error.get("errors", [])}


async def test_every_path_into_another_run_or_the_store_is_refused_naming_its_field(
        multi_user, api, jp_serverapp, tmp_path) -> None:
    arranged = await _arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    bobs_run, root = arranged["bobs_run"], arranged["root"]
    mine = {"input": {"datafile": arranged["reads"]}, "outdir": "results"}
    attempts = {
        "/input": f"../{bobs_run.name}/results/variants.vcf",
        "/fasta": str(bobs_run / "results" / "variants.vcf"),
        "/reference_dir": "~/.ssh",
        "/extra_files/1": f"file://{root}/flow.sqlite",
        "/outdir": f"../{bobs_run.name}/results",
        "/title": "/etc/passwd",
    }
    params = {"input": attempts["/input"], "fasta": attempts["/fasta"], "reference_dir": attempts["/reference_dir"],
              "extra_files": ["ok.txt", attempts["/extra_files/1"]], "outdir": attempts["/outdir"],
              "title": attempts["/title"]}

    validated = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": params})
    launched = await alice.post("executions", {"pipeline": "paths", "project": arranged["project"],
                                               "params": params})

    for reply in (validated, launched):
        assert reply.code == 400 and reply.error["reason"] == "invalid_params", reply.json
        assert set(attempts) <= set(_fields(reply)), _fields(reply)
        assert {_fields(reply)[f] for f in attempts} == {"path_not_allowed"}
        assert str(bobs_run) not in reply.body.decode()
    assert (await alice.get("executions")).json["items"] == []

    # Bob's private data file is "no such data file", exactly like one that does not exist.
    theirs = await alice.post("pipelines/paths/versions/v1.0/validate",
                              {"params": {**mine, "fasta": {"datafile": arranged["secret"]}}})
    missing = await alice.post("pipelines/paths/versions/v1.0/validate",
                               {"params": {**mine, "fasta": {"datafile": 1_999_999_999}}})
    assert theirs.code == missing.code == 400 and theirs.body == missing.body

    # What alice may use still passes: her own data file, relative paths inside the run, an allowed URL scheme.
    fine = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": {
        **mine, "fasta": "https://example.org/genome.fa", "reference_dir": "refs", "title": "QC of ../ and /x",
        "extra_files": ["extra/one.txt"]}})
    assert fine.code == 200, fine.json
    refused_scheme = await alice.post("pipelines/paths/versions/v1.0/validate",
                                      {"params": {**mine, "fasta": "gopher://example.org/genome.fa"}})
    assert _fields(refused_scheme) == {"/fasta": "url_scheme_not_allowed"}
    pinned = await alice.post("pipelines/paths/versions/v1.0/validate",
                              {"params": {**mine, "outdir": "s3://bucket/elsewhere"}})
    assert _fields(pinned) == {"/outdir": "path_not_allowed"}


async def test_a_sample_sheet_cannot_name_another_users_file_or_a_host_path(
        multi_user, api, jp_serverapp, tmp_path) -> None:
    arranged = await _arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    rows = [{"sample": "A", "fastq_1": f"flow://datafile/{arranged['reads']}"},
            {"sample": "B", "fastq_1": f"flow://datafile/{arranged['secret']}"},
            {"sample": "C", "fastq_1": f"../{arranged['bobs_run'].name}/results/variants.vcf"},
            {"sample": "D", "fastq_1": "/etc/passwd"}]
    sheet = await alice.post("pipelines/paths/versions/v1.0/samplesheet", {
        "rows": rows[:1], "save": {"project": arranged["project"], "filename": "sheet.csv"}})
    assert sheet.code == 200, sheet.json

    checked = await alice.post("pipelines/paths/versions/v1.0/samplesheet", {"rows": rows})
    assert checked.code == 400
    assert [(e["row"], e["column"]) for e in checked.error["errors"]] == [(2, "fastq_1"), (3, "fastq_1"),
                                                                          (4, "fastq_1")]
    good = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": {
        "input": {"datafile": sheet.json["datafile"]["id"]}, "outdir": "results"}})
    assert good.code == 200, good.json


async def test_unknown_parameters_are_warnings_and_the_pipelines_own_config_is_not_unknown(
        multi_user, api, jp_serverapp, tmp_path) -> None:
    arranged = await _arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    base = {"input": {"datafile": arranged["reads"]}, "outdir": "results"}

    reply = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": {
        **base, "genomes": {}, "igenomes_base": "s3://x", "colour": "red"}})

    assert reply.code == 200, reply.json
    assert [(w["field"], w["reason"]) for w in reply.json["warnings"]] == [("/colour", "unknown_parameter")]
    # Unknown values are still confined: a warning is no way around the path rule.
    sneaky = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": {
        **base, "colour": f"../{arranged['bobs_run'].name}/results"}})
    assert _fields(sneaky) == {"/colour": "path_not_allowed"}


async def test_with_host_paths_on_only_allowed_roots_are_reachable_and_never_the_store(
        api, jp_serverapp, tmp_path) -> None:
    arranged = await _arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    fasta = tmp_path / "genome.fa"
    fasta.write_text(">chr1\nACGT\n")
    sneaky_link = tmp_path / "looks-harmless.fa"
    sneaky_link.symlink_to(arranged["bobs_run"] / "results" / "variants.vcf")
    base = {"input": {"datafile": arranged["reads"]}, "outdir": "results"}

    allowed = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": {**base, "fasta": str(fasta)}})
    missing = await alice.post("pipelines/paths/versions/v1.0/validate",
                               {"params": {**base, "fasta": str(tmp_path / "nope.fa")}})
    outside = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": {**base, "fasta": "/etc/hostname"}})
    into_store = await alice.post("pipelines/paths/versions/v1.0/validate",
                                  {"params": {**base, "fasta": str(arranged["root"] / "flow.sqlite")}})
    through_link = await alice.post("pipelines/paths/versions/v1.0/validate",
                                    {"params": {**base, "fasta": str(sneaky_link)}})

    assert allowed.code == 200, allowed.json
    assert _fields(missing) == {"/fasta": "does_not_exist"}
    assert _fields(outside) == {"/fasta": "path_not_allowed"}
    assert _fields(into_store) == {"/fasta": "path_not_allowed"}
    assert _fields(through_link) == {"/fasta": "path_not_allowed"}

    # In a sample sheet the same rules hold, ``exists: true`` included.
    sheet = await alice.post("pipelines/paths/versions/v1.0/samplesheet", {"rows": [
        {"sample": "A", "fastq_1": str(fasta)}, {"sample": "B", "fastq_1": str(tmp_path / "gone.fq")},
        {"sample": "C", "fastq_1": str(sneaky_link)}]})
    assert sheet.code == 400
    assert [(e["row"], e["reason"]) for e in sheet.error["errors"]] == [(2, "does_not_exist"), (3, "no_such_datafile")]


def _policy(tmp_path: Path, host: bool, run_dir: Path | None = None) -> PathPolicy:
    settings = FlowSettings(root_dir=str(tmp_path / "root"), allow_host_paths=host,
                            host_path_roots=[str(tmp_path / "data")])
    return PathPolicy.from_settings(settings, run_dir)


@pytest.mark.parametrize("value", ["../x", "a/../../b", "/etc/passwd", "~", "~/x", "file:///etc/passwd",
                                   "FILE:/etc/passwd", "x\x00y"])
def test_with_host_paths_off_no_string_names_a_host_path(tmp_path, value) -> None:
    assert check_path(value, _policy(tmp_path, host=False), path_typed=False) is not None


@pytest.mark.parametrize("value", ["results", "a/b.txt", "", "genome.fa", "a..b", "~30x coverage", "x/.../y",
                                   "..\\..\\x", "\\\"'"])  # a backslash is an ordinary character on POSIX
def test_relative_paths_and_plain_text_pass(tmp_path, value) -> None:
    assert check_path(value, _policy(tmp_path, host=False), path_typed=True) is None


def test_a_link_planted_in_the_run_directory_does_not_lead_out(tmp_path) -> None:
    run_dir = tmp_path / "root" / "executions" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "results").symlink_to(tmp_path / "root" / "uploads", target_is_directory=True)
    policy = _policy(tmp_path, host=False, run_dir=run_dir)
    assert check_path("results/x", policy, path_typed=True, output=True).reason == "path_not_allowed"
    assert check_path("fresh/x", policy, path_typed=True, output=True) is None
