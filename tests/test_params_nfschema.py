"""Unknown parameters as nf-schema treats them: a warning by default, an error where the server or the pipeline
asks for strictness, and never for names the pipeline's own nextflow.config defines or tells nf-schema to ignore.
The config is read statically (no JVM), so its parser is tested on the shapes nf-core configs have."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flow_jupyter.pipelines.nfconfig import parse_config
from gitrepo import git
from security.test_sec_launch_paths import _arrange, SCHEMA, SHEET_SCHEMA

NF_CORE_CONFIG = """
// Global default params, used in configs
params {
    // Input options
    input                      = null
    outdir                     = null
    igenomes_base              = 's3://ngi-igenomes/igenomes/'   // a URL, not a comment
    genomes                    = [:]
    custom_config_base         = "https://raw.githubusercontent.com/nf-core/configs/master"
    max_cpus = 16
}
/* a block comment with a fake
params.never_here = 1 */
params.trim_fastq = true
validation {
    defaultIgnoreParams = ["genomes"]
    ignoreParams        = ['custom_config_base', "config_profile_name"]
    failUnrecognisedParams = true
    help {
        enabled = true
        fullParameter = 'help_full'
    }
}
includeConfig 'conf/base.config'
"""


def test_an_nf_core_config_is_read_for_defined_and_ignored_params_and_strictness() -> None:
    config = parse_config(NF_CORE_CONFIG)
    assert {"input", "outdir", "igenomes_base", "genomes", "custom_config_base", "max_cpus", "trim_fastq"} <= \
        set(config.defined)
    assert "never_here" not in config.defined and "enabled" not in config.defined
    assert config.ignored == ("custom_config_base", "config_profile_name", "genomes")
    assert config.fail_unrecognised is True
    assert config.knows("genomes.GRCh38") and config.knows("config_profile_name") and not config.knows("colour")


def test_nf_validation_1_settings_live_in_params() -> None:
    config = parse_config("params.validationSchemaIgnoreParams = 'genomes,igenomes_base'\n"
                          "params.validationFailUnrecognisedParams = false\n")
    assert config.ignored == ("genomes", "igenomes_base") and config.fail_unrecognised is False


def _strict_repo(path: Path) -> Path:
    (path / "assets").mkdir(parents=True)
    (path / "main.nf").write_text("workflow { println params.input }\n")
    (path / "nextflow.config").write_text("validation.failUnrecognisedParams = true\n")
    (path / "nextflow_schema.json").write_text(json.dumps(SCHEMA))
    (path / "assets" / "schema_input.json").write_text(json.dumps(SHEET_SCHEMA))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "v1")
    return path


async def test_a_pipeline_that_fails_unrecognised_params_refuses_them(api, jp_serverapp, tmp_path) -> None:
    arranged = await _arrange(api, jp_serverapp, tmp_path)
    added = await api.owner.post("pipelines", {"source": str(_strict_repo(tmp_path / "strict")), "name": "strict"})
    assert added.code == 201, added.json
    alice = api.as_user("alice")
    params = {"input": {"datafile": arranged["reads"]}, "outdir": "results", "colour": "red"}

    lenient = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": params})
    strict = await alice.post("pipelines/strict/versions/latest/validate", {"params": params})

    assert lenient.code == 200 and [w["field"] for w in lenient.json["warnings"]] == ["/colour"]
    assert strict.code == 400 and [(e["field"], e["reason"]) for e in strict.error["errors"]] == [
        ("/colour", "unknown_parameter")]


@pytest.fixture
def strict_server(flow_config: dict) -> dict:
    flow_config["strict_params"] = True
    return flow_config


async def test_a_strict_server_refuses_unknown_params_for_every_pipeline(strict_server, api, jp_serverapp,
                                                                          tmp_path) -> None:
    arranged = await _arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    reply = await alice.post("pipelines/paths/versions/v1.0/validate", {"params": {
        "input": {"datafile": arranged["reads"]}, "outdir": "results", "colour": "red", "genomes": {}}})
    assert reply.code == 400 and [e["field"] for e in reply.error["errors"]] == ["/colour"]
