"""/flow/api/pipelines: the registry, forms built from each version's schema, and validation without launching."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..pipelines import forms, registry
from . import schemas
from .base import FlowHandler

PIPELINE = r"/flow/api/pipelines/([^/]+)"
VERSION = PIPELINE + r"/versions/([^/]+)"


class PipelinesHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.call(registry.list_pipelines, *self.page_args()))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body(schemas.PIPELINE_CREATE)
        # Not `call`: registering runs git (and maybe a JVM) with no transaction open, in sessions of its own.
        self.write_json(await asyncio.to_thread(registry.register_pipeline, self.flow, self.identity, body), 201)


class PipelineHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, pipeline: str) -> None:
        self.write_json(await self.call(registry.get_pipeline, pipeline))

    @web.authenticated
    @authorized
    async def delete(self, pipeline: str) -> None:
        await self.call(registry.remove_pipeline, self.flow.storage, pipeline)
        self.no_content()


class RefsHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, pipeline: str) -> None:
        self.write_json(await self.call(registry.available_refs, pipeline, *self.page_args()))


class VersionsHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, pipeline: str) -> None:
        self.write_json(await self.call(registry.list_versions, pipeline, *self.page_args()))

    @web.authenticated
    @authorized
    async def post(self, pipeline: str) -> None:
        body = self.json_body(schemas.VERSION_CREATE)
        self.write_json(await asyncio.to_thread(registry.register_version, self.flow, self.identity, pipeline, body),
                        201)


class FormHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, pipeline: str, version: str) -> None:
        self.write_json(await self.call(forms.form, pipeline, version))


class SchemaHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, pipeline: str, version: str) -> None:
        self.write_json(await self.call(forms.schema_files, pipeline, version))


class ValidateHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def post(self, pipeline: str, version: str) -> None:
        params = self.json_body(schemas.PARAMS_VALIDATE)["params"]
        self.write_json(await self.call(forms.validate, self.flow.storage, self.flow.settings, pipeline, version,
                                        params))


class SamplesheetHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def post(self, pipeline: str, version: str) -> None:
        body = self.json_body(schemas.SAMPLESHEET_VALIDATE)
        self.write_json(await self.call(forms.validate_samplesheet, self.flow.storage, self.flow.settings, pipeline,
                                        version, body))


default_handlers = [
    (r"/flow/api/pipelines", PipelinesHandler),
    (PIPELINE, PipelineHandler),
    (PIPELINE + r"/refs", RefsHandler),
    (PIPELINE + r"/versions", VersionsHandler),
    (VERSION + r"/form", FormHandler),
    (VERSION + r"/schema", SchemaHandler),
    (VERSION + r"/validate", ValidateHandler),
    (VERSION + r"/samplesheet", SamplesheetHandler),
]
