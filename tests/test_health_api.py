"""GET /flow/api/health through the real Jupyter server with Flow enabled, against real components."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

COMPONENTS = {"java", "nextflow", "slurm", "database", "disk", "fastqc", "multiqc", "nf-plugin"}


# Each arrange-fixture below edits the server's FlowSettings; a test lists it before `jp_fetch`, which starts the
# server, because pytest sets up same-scope fixtures in the order a test requests them.


@pytest.fixture
def slurm_executor(flow_config, slurm_cluster) -> None:
    flow_config.update(executor="slurm")


@pytest.fixture
def stopped_slurm_conf(tmp_path: Path) -> str:
    """A slurm.conf whose controller is not running: what Flow sees when the cluster is stopped."""
    conf = tmp_path / "stopped-slurm.conf"
    conf.write_text(
        "ClusterName=stopped\nSlurmctldHost=localhost\nSlurmctldPort=9\nMessageTimeout=2\n"
        "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=ALL Default=YES\n"
    )
    return str(conf)


@pytest.fixture
def slurm_executor_with_stopped_cluster(flow_config, stopped_slurm_conf) -> None:
    flow_config.update(executor="slurm", slurm_conf=stopped_slurm_conf, health_check_timeout=30.0)


@pytest.fixture
def local_executor_with_stopped_cluster(flow_config, stopped_slurm_conf) -> None:
    flow_config.update(executor="local", slurm_conf=stopped_slurm_conf)


@pytest.fixture
def unreachable_database(flow_config) -> None:
    flow_config.update(database_url="postgresql+psycopg2://flow:secret@127.0.0.1:9/nowhere")


@pytest.mark.slurm
async def test_health_is_ok_with_every_real_component(slurm_executor, jp_fetch, database_url) -> None:
    response = await jp_fetch("flow", "api", "health")

    body = json.loads(response.body)
    assert response.code == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["components"]) == COMPONENTS
    assert all(c["ok"] for c in body["components"].values()), body
    assert body["components"]["nextflow"]["version"].startswith("24.")
    assert body["components"]["database"]["detail"].startswith(database_url.split(":")[0].split("+")[0] + " at ")
    assert "flowpw" not in response.body.decode()  # the database password is never shown


async def test_health_is_503_naming_slurm_when_the_cluster_is_stopped(slurm_executor_with_stopped_cluster,
                                                                      jp_fetch) -> None:
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch("flow", "api", "health")

    assert failure.value.code == 503
    body = json.loads(failure.value.response.body)
    assert body["status"] == "fail"
    assert body["failing"] == ["slurm"]
    slurm = body["components"]["slurm"]
    assert slurm["ok"] is False and slurm["state"] == "FAIL" and "slurm.sh start" in slurm["hint"]
    assert body["components"]["nextflow"]["ok"] is True


async def test_slurm_is_reported_but_not_required_with_the_local_executor(local_executor_with_stopped_cluster,
                                                                          jp_fetch) -> None:
    response = await jp_fetch("flow", "api", "health")

    body = json.loads(response.body)
    assert response.code == 200
    slurm = body["components"]["slurm"]
    assert (slurm["ok"], slurm["required"], slurm["state"]) == (False, False, "WARN")


async def test_health_needs_authentication(jp_fetch) -> None:
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch("flow", "api", "health", headers={"Authorization": ""})

    assert failure.value.code == 403
    assert json.loads(failure.value.response.body)["error"]["reason"] == "forbidden"


async def test_an_unreachable_database_fails_health(unreachable_database, jp_fetch) -> None:
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch("flow", "api", "health")

    body = json.loads(failure.value.response.body)
    assert failure.value.code == 503 and body["failing"] == ["database"]
    assert "secret" not in failure.value.response.body.decode()
