"""/flow/api/groups: groups and their members."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..data import groups
from . import schemas
from .base import FlowHandler


class GroupsHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.call(groups.list_groups, *self.page_args()))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.write_json(await self.call(groups.create_group, self.json_body(schemas.GROUP_CREATE)), 201)


class GroupHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, group_id: str) -> None:
        self.write_json(await self.call(groups.get_group, group_id))

    @web.authenticated
    @authorized
    async def delete(self, group_id: str) -> None:
        await self.call(groups.delete_group, group_id)
        self.no_content()


class MembersHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, group_id: str) -> None:
        self.write_json(await self.call(groups.list_members, group_id, *self.page_args()))

    @web.authenticated
    @authorized
    async def post(self, group_id: str) -> None:
        group, created = await self.call(groups.set_member, group_id, self.json_body(schemas.MEMBER_SET))
        self.write_json(group, 201 if created else 200)


class MemberHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def delete(self, group_id: str, user_name: str) -> None:
        await self.call(groups.remove_member, group_id, user_name)
        self.no_content()


default_handlers = [
    (r"/flow/api/groups", GroupsHandler),
    (r"/flow/api/groups/(\d+)", GroupHandler),
    (r"/flow/api/groups/(\d+)/members", MembersHandler),
    (r"/flow/api/groups/(\d+)/members/([^/]+)", MemberHandler),
]
