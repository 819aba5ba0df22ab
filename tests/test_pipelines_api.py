"""The pipeline registry through the HTTP API: a local git repository with two tags, its versions, the form built
from each version's schema, validation without launching, and sample sheets. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitrepo import git
from flow_jupyter.data.files import store_bytes
from flow_jupyter.db.models import Project
from flow_jupyter.identity import Identity

SCHEMA_V1 = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "title": "greeter pipeline parameters",
    "type": "object",
    "definitions": {
        "input_output_options": {
            "title": "Input/output options",
            "type": "object",
            "fa_icon": "fas fa-terminal",
            "required": ["greeting"],
            "properties": {
                "greeting": {"type": "string", "enum": ["Hello", "Hi"], "description": "How to greet."},
                "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "outdir": {"type": "string", "format": "directory-path", "default": "results"},
            },
        }
    },
    "allOf": [{"$ref": "#/definitions/input_output_options"}],
}
SAMPLESHEET_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "sample": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$", "errorMessage": "Sample names: letters, digits, _ . -"},
            "fastq_1": {"type": "string", "format": "file-path", "pattern": "^\\S+\\.f(ast)?q(\\.gz)?$"},
        },
        "required": ["sample", "fastq_1"],
    },
}


@pytest.fixture
def greeter_repo(tmp_path: Path) -> Path:
    """A pipeline repository: v1.0 has a schema; v2.0 adds an input sample sheet with its own schema."""
    repo = tmp_path / "greeter"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "main.nf").write_text("params.greeting = 'Hello'\nworkflow { println params.greeting }\n")
    (repo / "nextflow_schema.json").write_text(json.dumps(SCHEMA_V1))
    (repo / "tower.yml").write_text("reports:\n  multiqc_report.html:\n    display: MultiQC HTML report\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1.0")
    schema = json.loads(json.dumps(SCHEMA_V1))
    schema["definitions"]["input_output_options"]["properties"]["input"] = {
        "type": "string", "format": "file-path", "mimetype": "text/csv", "schema": "assets/schema_input.json"}
    (repo / "nextflow_schema.json").write_text(json.dumps(schema))
    (repo / "assets").mkdir()
    (repo / "assets" / "schema_input.json").write_text(json.dumps(SAMPLESHEET_SCHEMA))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "tag", "-a", "v2.0", "-m", "release 2.0")
    return repo


@pytest.fixture
def admin(api):
    return api.owner  # the Jupyter server's own user administers the single-user store


async def test_an_admin_registers_a_git_pipeline_and_its_second_version(admin, api, greeter_repo) -> None:
    added = await admin.post("pipelines", {"source": str(greeter_repo), "ref": "v1.0"})

    assert added.code == 201, added.json
    pipeline = added.json
    assert (pipeline["name"], [v["ref"] for v in pipeline["versions"]]) == ("greeter", ["v1.0"])
    assert pipeline["versions"][0]["reports"] == ["multiqc_report.html"]
    refs = (await admin.get("pipelines/greeter/refs")).json["items"]
    assert [(r["name"], r["kind"]) for r in refs] == [("v1.0", "tag"), ("v2.0", "tag"), ("main", "branch")]

    second = await admin.post("pipelines/greeter/versions", {"ref": "v2.0"})
    assert second.code == 201 and second.json["has_samplesheet_schema"] is True
    listing = (await api.as_user("alice").get("pipelines")).json["items"]
    assert {p["name"] for p in listing} == {"demo", "greeter"}
    assert next(p for p in listing if p["name"] == "demo")["curated"] is True


async def test_the_registry_its_versions_and_refs_are_lists_a_page_at_a_time(admin, api, greeter_repo) -> None:
    await admin.post("pipelines", {"source": str(greeter_repo), "ref": "v1.0"})
    await admin.post("pipelines/greeter/versions", {"ref": "v2.0"})
    alice = api.as_user("alice")

    async def every(path: str) -> list[dict]:
        """Follows ``next`` one item at a time: each list honours ``limit`` and pages to its end."""
        items, after = [], None
        while True:
            page = (await alice.get(path, limit=1, after=after)).json
            assert set(page) == {"items", "next"} and len(page["items"]) <= 1
            items += page["items"]
            if page["next"] is None:
                return items
            after = page["next"]

    assert [p["name"] for p in await every("pipelines")] == ["demo", "greeter"]  # by name
    assert [v["ref"] for v in await every("pipelines/greeter/versions")] == ["v1.0", "v2.0"]  # oldest first
    refs = await every("pipelines/greeter/refs")
    assert [(r["name"], r["kind"]) for r in refs] == [("v1.0", "tag"), ("v2.0", "tag"), ("main", "branch")]
    assert [r["kind"] for r in await every("pipelines/demo/refs")] == ["release"]
    too_many = await alice.get("pipelines", limit=100_000)
    assert (too_many.code, too_many.error["reason"], too_many.error["field"]) == (400, "bad_request", "limit")


async def test_each_version_has_the_form_of_its_own_schema(admin, greeter_repo) -> None:
    await admin.post("pipelines", {"source": str(greeter_repo), "ref": "v1.0"})
    await admin.post("pipelines/greeter/versions", {"ref": "v2.0"})

    v1 = (await admin.get("pipelines/greeter/versions/v1.0/form")).json["form"]
    v2 = (await admin.get("pipelines/greeter/versions/latest/form")).json["form"]

    fields = lambda form: {f["name"]: f for g in form["groups"] for f in g["fields"]}  # noqa: E731
    assert set(fields(v1)) == {"greeting", "count", "outdir"}
    assert fields(v1)["greeting"]["widget"] == "select" and fields(v1)["greeting"]["required"] is True
    assert fields(v2)["input"]["widget"] == "file"
    assert fields(v2)["input"]["samplesheet_schema"] == "assets/schema_input.json"


async def test_validation_lists_every_bad_field_and_keeps_hostile_strings_as_data(admin, greeter_repo) -> None:
    await admin.post("pipelines", {"source": str(greeter_repo), "ref": "v1.0"})
    hostile = "'; rm -rf / #\n$(touch canary) `id` ${params.x} \"" + "x" * 10_000

    bad = await admin.post("pipelines/greeter/versions/v1.0/validate",
                           {"params": {"greeting": "Howdy", "count": 99, "colour": "red"}})
    good = await admin.post("pipelines/greeter/versions/v1.0/validate",
                            {"params": {"greeting": "Hi", "outdir": hostile}})

    assert bad.code == 400 and bad.error["reason"] == "invalid_params"
    assert sorted(e["field"] for e in bad.error["errors"]) == ["/count", "/greeting"]
    assert good.code == 200 and good.json["params"]["outdir"] == hostile

    # An undeclared parameter is a warning, as in nf-schema: it is passed on as given.
    unknown = await admin.post("pipelines/greeter/versions/v1.0/validate",
                               {"params": {"greeting": "Hi", "colour": "red"}})
    assert unknown.code == 200 and [(w["field"], w["reason"]) for w in unknown.json["warnings"]] == [
        ("/colour", "unknown_parameter")]


async def test_bad_sources_refs_and_schemas_are_400_and_store_nothing(admin, api, greeter_repo, tmp_path) -> None:
    not_git = tmp_path / "plain"
    not_git.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    git(broken, "init", "-q", "-b", "main")
    (broken / "main.nf").write_text("workflow {}\n")
    (broken / "nextflow_schema.json").write_text("{ not json")
    git(broken, "add", ".")
    git(broken, "commit", "-q", "-m", "broken")
    huge = tmp_path / "huge"
    huge.mkdir()
    git(huge, "init", "-q", "-b", "main")
    (huge / "main.nf").write_text("workflow {}\n")
    (huge / "nextflow_schema.json").write_text(json.dumps({"description": "x" * (10 * 1024 * 1024)}))
    git(huge, "add", ".")
    git(huge, "commit", "-q", "-m", "huge")

    cases = [
        ({"source": str(not_git)}, 400, "not_a_git_repository"),
        ({"source": str(tmp_path / "missing")}, 400, "not_a_git_repository"),
        ({"source": "http://127.0.0.1:9/nothing.git"}, 400, "unreachable"),
        ({"source": "--upload-pack=touch canary"}, 400, "bad_source"),
        ({"source": str(greeter_repo), "ref": "v9.9"}, 400, "unknown_ref"),
        ({"source": str(broken)}, 400, "invalid_schema"),
        ({"source": str(huge)}, 413, "schema_too_large"),
    ]
    for body, status, reason in cases:
        reply = await admin.post("pipelines", body)
        assert (reply.code, reply.error["reason"]) == (status, reason), (body, reply.json)
    assert "nextflow_schema.json" in (await admin.post("pipelines", {"source": str(broken)})).error["message"]

    assert [p["name"] for p in (await admin.get("pipelines")).json["items"]] == ["demo"]
    assert not (tmp_path / "canary").exists()
    assert (await admin.get("pipelines/nope/versions/v1/form")).code == 404
    assert (await admin.get("pipelines/demo/versions/0.0.0-nope/form")).code == 404


async def test_only_admins_change_the_registry(api, admin, greeter_repo) -> None:
    alice = api.as_user("alice")
    refused = await alice.post("pipelines", {"source": str(greeter_repo)})
    assert refused.code == 403
    await admin.post("pipelines", {"source": str(greeter_repo), "ref": "v1.0"})
    assert (await alice.delete("pipelines/greeter")).code == 403
    assert (await admin.delete("pipelines/greeter")).code == 204
    assert (await admin.delete("pipelines/demo")).error["reason"] == "bundled"


async def test_a_sample_sheet_is_checked_row_by_row_and_saved_as_a_data_file(admin, api, jp_serverapp,
                                                                            greeter_repo, tmp_path) -> None:
    await admin.post("pipelines", {"source": str(greeter_repo), "ref": "v2.0"})
    host = jp_serverapp.web_app.settings["flow"]
    alice, bob = api.as_user("alice"), api.as_user("bob")
    project = (await alice.post("projects", {"name": "sheets"})).json["id"]
    await bob.get("projects")

    def bobs_private_file(session, actor):
        bobs = Project(name="bob's", owner_id=actor.user_id)
        session.add(bobs)
        session.flush()
        return store_bytes(session, host.storage, owner_id=actor.user_id, project_id=bobs.id, sample_id=None,
                           filename="secret_R1.fastq.gz", content=b"@r\nA\n+\nI\n").id

    secret = host.run_as(Identity("bob"), bobs_private_file)
    data = tmp_path / "data"
    rows = [{"sample": "S1", "fastq_1": f"{data}/S1_R1.fastq.gz"},
            {"sample": "bad name!", "fastq_1": f"{data}/S2_R1.fastq.gz"},
            {"sample": "S3", "fastq_1": f"flow://datafile/{secret}"},
            {"sample": "S4", "fastq_1": "flow://datafile/999999"}]

    refused = await alice.post("pipelines/greeter/versions/v2.0/samplesheet", {"rows": rows})

    assert refused.code == 400 and refused.error["reason"] == "invalid_samplesheet"
    problems = [(e["row"], e["column"], e["message"]) for e in refused.error["errors"]]
    assert problems[0][:2] == (2, "sample") and "Sample names" in problems[0][2]
    assert problems[1:] == [(3, "fastq_1", "No such data file."), (4, "fastq_1", "No such data file.")]

    csv_text = f"sample,fastq_1\nS1,{data}/S1_R1.fastq.gz\nS2,{data}/S2_R1.fq.gz\n"
    saved = await alice.post("pipelines/greeter/versions/v2.0/samplesheet",
                             {"content": csv_text, "filename": "sheet.csv",
                              "save": {"project": project, "filename": "samplesheet.csv"}})
    assert saved.code == 200, saved.json
    datafile = saved.json["datafile"]
    assert (datafile["filename"], datafile["type"], datafile["project"]) == ("samplesheet.csv", "csv", project)
    assert [f["id"] for f in (await alice.get("files", project=project)).json["items"]] == [datafile["id"]]


async def test_a_pipeline_without_a_schema_gets_a_form_from_its_params(admin, tmp_path) -> None:
    repo = tmp_path / "bare"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "main.nf").write_text("params.reads = 'data/*.fq'\nparams.threads = 4\nparams.skip_qc = false\n"
                                  "workflow { println params.reads }\n")
    (repo / "nextflow.config").write_text("params.genome = 'GRCh38'\nparams.max_memory = '8.GB'\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "no schema")

    added = await admin.post("pipelines", {"source": str(repo), "name": "bare"})
    assert added.code == 201, added.json
    form = (await admin.get("pipelines/bare/versions/latest/form")).json["form"]

    assert form["has_schema"] is False and "schema" in form["note"]
    widgets = {f["name"]: f["widget"] for g in form["groups"] for f in g["fields"]}
    assert widgets == {"reads": "text", "threads": "integer", "skip_qc": "checkbox", "genome": "text",
                       "max_memory": "text"}
    unknown = await admin.post("pipelines/bare/versions/latest/validate", {"params": {"colour": "red"}})
    assert unknown.code == 200 and unknown.json["warnings"][0]["field"] == "/colour"
