"""GET /flow/api/health: component checks as JSON; 200 when healthy, 503 naming what fails."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import FlowHandler


class HealthHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        report = await asyncio.to_thread(self.flow.health.get)
        self.write_json(report.as_json(), 200 if report.healthy else 503)


default_handlers = [(r"/flow/api/health", HealthHandler)]
