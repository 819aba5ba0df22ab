"""/flow/api/projects: create, list, read, change and delete projects."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..data import projects
from . import schemas
from .base import FlowHandler


class ProjectsHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.call(projects.list_projects, *self.page_args(),
                                        self.get_query_argument("name", None)))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.write_json(await self.call(projects.create_project, self.json_body(schemas.PROJECT_CREATE)), 201)


class ProjectHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, project_id: str) -> None:
        self.write_json(await self.call(projects.get_project, project_id))

    @web.authenticated
    @authorized
    async def patch(self, project_id: str) -> None:
        body = self.json_body(schemas.PROJECT_UPDATE)
        self.write_json(await self.call(projects.update_project, project_id, body))

    @web.authenticated
    @authorized
    async def delete(self, project_id: str) -> None:
        await self.call(projects.delete_project, project_id, self.flow.storage)
        self.no_content()


default_handlers = [
    (r"/flow/api/projects", ProjectsHandler),
    (r"/flow/api/projects/(\d+)", ProjectHandler),
]
