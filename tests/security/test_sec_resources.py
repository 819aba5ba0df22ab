"""Issue 14 (C): resource options a user may set (partition, cores, memory, time, extra #SBATCH directives) are
checked at launch against the real Slurm, as a 400 naming the field, and nothing is stored — instead of being
accepted, stored and failing later at submission."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_executions_api import arrange

from flow_jupyter.config import FlowSettings
from flow_jupyter.execution.backends.base import Resources
from flow_jupyter.execution.backends.slurm import SlurmBackend

#: (resources, field the 400 names, reason or None). The dev cluster: one node, 8 CPUs, ~16 GB, partition 'debug'.
REFUSED = [
    ({"queue": "gpu-nowhere"}, "/resources/queue", None),
    ({"cores": 64}, "/resources/cores", "resources_refused"),
    ({"memory": "900GB"}, "/resources/memory", "resources_refused"),
    ({"cores": 2, "memory": "900GB"}, "/resources/memory", "resources_refused"),
    ({"memory": "lots"}, "/resources/memory", None),
    ({"memory": "0"}, "/resources/memory", None),
    ({"walltime": "soon"}, "/resources/walltime", None),
    ({"extra_directives": ["--comment=ok", "--frobnicate=1"]}, "/resources/extra_directives/1", "resources_refused"),
    ({"extra_directives": ["--gres=gpu:1"]}, "/resources/extra_directives/0", "resources_refused"),
    ({"extra_directives": ["--array=1-100"]}, "/resources/extra_directives/0", None),
    ({"extra_directives": ["--wait"]}, "/resources/extra_directives/0", None),
    ({"extra_directives": ["--umask=0000"]}, "/resources/extra_directives/0", None),
    ({"extra_directives": ["--test-only"]}, "/resources/extra_directives/0", None),
    ({"extra_directives": ["--uid=0"]}, "/resources/extra_directives/0", None),
    ({"extra_directives": ["--comment=x"] * 33}, "/resources/extra_directives", None),
    ({"queue": "q" * 300}, "/resources/queue", None),
    ({"account": "lab\n#SBATCH --uid=0"}, "/resources/account", None),
    ({"gpus": 1}, "/resources/gpus", None),
    ({"cores": True}, "/resources/cores", None),
    ([], "/resources", None),
]


def run_dirs(host) -> list[str]:
    executions = host.storage.root / "executions"
    return sorted(p.name for p in executions.iterdir()) if executions.exists() else []


@pytest.mark.slurm
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bad_slurm_options_at_launch_are_a_400_naming_the_field_and_store_nothing(
        api, jp_serverapp, tmp_path: Path, slurm_cluster) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    params = {"names": {"datafile": launchable["names"]}}

    for resources, field, reason in REFUSED:
        reply = await alice.post("executions", {"pipeline": "tiny", "project": launchable["project"],
                                                "backend": "slurm", "resources": resources, "params": params})
        assert reply.code == 400, (resources, reply.code, reply.body[:300])
        assert reply.error["field"] == field, (resources, reply.error)
        if reason is not None:
            assert reply.error["reason"] == reason, (resources, reply.error)
        assert len(reply.error["message"]) < 500
    # Slurm's own words reach the user, so the refusal can be acted on.
    cores = await alice.post("executions", {"pipeline": "tiny", "project": launchable["project"], "backend": "slurm",
                                            "resources": {"cores": 64}, "params": params})
    assert "node configuration is not available" in cores.error["message"]

    assert (await alice.get("executions")).json["items"] == []
    assert run_dirs(launchable["host"]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_resources_a_user_may_not_set_are_refused_whatever_the_backend(api, jp_serverapp, tmp_path) -> None:
    launchable = await arrange(api, jp_serverapp, tmp_path)
    alice = api.as_user("alice")
    for resources, field in [({"extra_directives": ["--uid=0"]}, "/resources/extra_directives/0"),
                             ({"memory": "lots"}, "/resources/memory"), ({"queue": "a b"}, "/resources/queue")]:
        reply = await alice.post("executions", {"pipeline": "tiny", "project": launchable["project"],
                                                "backend": "local", "resources": resources, "params": {}})
        assert reply.code == 400 and reply.error["field"] == field, (resources, reply.json)
    assert (await alice.get("executions")).json["items"] == []
    assert run_dirs(launchable["host"]) == []


@pytest.mark.slurm
def test_resources_slurm_can_honour_pass_the_launch_check(tmp_path: Path, slurm_cluster) -> None:
    backend = SlurmBackend(FlowSettings(root_dir=str(tmp_path)))
    for good in ({"cores": 2, "memory": "1GB", "walltime": "00:10:00"}, {"queue": "debug"},
                 {"extra_directives": ["--comment=flow", "--nice=10"]}, {}):
        backend.check_launch(Resources.from_json(good))
