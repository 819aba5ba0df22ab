"""GET /flow/api/metrics: Prometheus text with request counts and latency per route, upload/download counters
and the database pool."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


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
