"""/flow/api/projects/<id>/samples and /flow/api/samples/<id>."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..data import samples
from . import schemas
from .base import FlowHandler


class ProjectSamplesHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, project_id: str) -> None:
        self.write_json(await self.call(samples.list_samples, project_id, *self.page_args()))

    @web.authenticated
    @authorized
    async def post(self, project_id: str) -> None:
        body = self.json_body(schemas.SAMPLE_CREATE)
        self.write_json(await self.call(samples.create_sample, project_id, body), 201)


class SampleHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, sample_id: str) -> None:
        self.write_json(await self.call(samples.get_sample, sample_id))

    @web.authenticated
    @authorized
    async def patch(self, sample_id: str) -> None:
        body = self.json_body(schemas.SAMPLE_UPDATE)
        self.write_json(await self.call(samples.update_sample, sample_id, body))

    @web.authenticated
    @authorized
    async def delete(self, sample_id: str) -> None:
        await self.call(samples.delete_sample, sample_id)
        self.no_content()


default_handlers = [
    (r"/flow/api/projects/(\d+)/samples", ProjectSamplesHandler),
    (r"/flow/api/samples/(\d+)", SampleHandler),
]
