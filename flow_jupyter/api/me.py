"""GET /flow/api/me: the caller, their groups, Flow's version and the server's capabilities (see flow_jupyter/me.py)."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .. import me
from .base import FlowHandler


class MeHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.call(me.me, self.flow.settings))


default_handlers = [(r"/flow/api/me", MeHandler)]
