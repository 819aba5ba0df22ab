"""GET /flow/api/metrics: Flow's Prometheus metrics (text exposition format)."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from ..metrics import REGISTRY
from .base import FlowHandler


class MetricsHandler(FlowHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(generate_latest(REGISTRY), set_content_type=CONTENT_TYPE_LATEST)


default_handlers = [(r"/flow/api/metrics", MetricsHandler)]
