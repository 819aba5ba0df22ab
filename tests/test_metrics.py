"""GET /flow/api/metrics: Prometheus text with request counts and latency per route, upload/download counters,
the database pool and the commands Flow runs against the batch scheduler."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flow_jupyter import proc
from flow_jupyter.config import FlowSettings
from flow_jupyter.errors import FlowError
from flow_jupyter.execution.backends import BackendJob, SlurmBackend


async def test_metrics_count_requests_per_route_in_prometheus_format(api) -> None:
    alice = api.as_user("alice")
    await alice.get("projects")
    await alice.get("projects/12345")

    reply = await alice.get("metrics")

    assert reply.code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    requests = {(s.labels["route"], s.labels["status"]) for s in families["flow_http_requests"].samples
                if s.name.endswith("_total") and s.labels["method"] == "GET"}
    assert ("ProjectsHandler", "200") in requests and ("ProjectHandler", "404") in requests
    assert "flow_http_request_duration_seconds" in families
    for name in ("flow_upload_bytes", "flow_uploads_active", "flow_download_bytes", "flow_db_pool_checked_out"):
        assert name in families, name


async def test_metrics_need_authentication(api, jp_fetch) -> None:
    reply = await jp_fetch("flow", "api", "metrics", headers={"Authorization": ""}, raise_error=False)
    assert reply.code == 403


async def test_every_scheduler_command_is_counted_by_command_and_outcome(api, tmp_path) -> None:
    """What an HPC admin watches: the commands Flow runs against the controller, answered or not."""
    job = BackendJob("slurm", "77", "e1", str(tmp_path), "2026-12-04T00:00:00+00:00")

    def answered(argv, *, timeout, env, check, input=None) -> proc.Result:
        return proc.Result(list(argv), 0, "77|RUNNING|None|N/A|node1\n", "")

    def unreachable(argv, *, timeout, env, check, input=None) -> proc.Result:
        return proc.Result(list(argv), 1, "", "squeue: error: Unable to contact slurm controller (connect failure)\n")

    SlurmBackend(FlowSettings(), runner=answered).statuses([job])
    with pytest.raises(FlowError):
        SlurmBackend(FlowSettings(), runner=unreachable).statuses([job])

    families = {f.name: f for f in text_string_to_metric_families((await api.as_user("alice").get("metrics"))
                                                                    .body.decode())}
    counted = {(s.labels["command"], s.labels["outcome"]): s.value
               for s in families["flow_scheduler_commands"].samples if s.name.endswith("_total")}
    assert counted[("squeue", "ok")] >= 1 and counted[("squeue", "unavailable")] >= 1
