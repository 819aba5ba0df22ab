"""/flow/api/shares: grant, list, change and revoke shares on projects and data files."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..data import shares
from ..errors import bad_request
from . import schemas
from .base import FlowHandler


class SharesHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        object_type = self.get_query_argument("object_type", "")
        if object_type not in shares.KINDS:
            raise bad_request("'object_type' must be 'project' or 'datafile'.", field="object_type")
        object_id = self.int_argument("object_id", minimum=1)
        if object_id is None:
            raise bad_request("'object_id' is required.", field="object_id", reason="missing_field")
        self.write_json(await self.call(shares.list_shares, object_type, object_id, *self.page_args()))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        share, created = await self.call(shares.grant, self.json_body(schemas.SHARE_CREATE))
        self.write_json(share, 201 if created else 200)


class ShareHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def patch(self, share_id: str) -> None:
        body = self.json_body(schemas.SHARE_UPDATE)
        self.write_json(await self.call(shares.update_share, share_id, body))

    @web.authenticated
    @authorized
    async def delete(self, share_id: str) -> None:
        await self.call(shares.revoke, share_id)
        self.no_content()


default_handlers = [
    (r"/flow/api/shares", SharesHandler),
    (r"/flow/api/shares/(\d+)", ShareHandler),
]
