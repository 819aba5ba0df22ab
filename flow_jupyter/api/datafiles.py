"""/flow/api/files: list with filters and keyset paging; read, rename, move and delete one data file.
(Content and bulk downloads live in api/downloads.py; uploads in api/uploads.py.)"""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..data import files
from . import schemas
from .base import FlowHandler


class FilesHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.call(
            files.list_files, *self.page_args(),
            project=self.int_argument("project", minimum=1), sample=self.int_argument("sample", minimum=1),
            name_prefix=self.get_query_argument("name", None), file_type_=self.get_query_argument("type", None),
            execution=self.get_query_argument("execution", None),
        ))


class FileHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, datafile_id: str) -> None:
        self.write_json(await self.call(files.get_file, datafile_id))

    @web.authenticated
    @authorized
    async def patch(self, datafile_id: str) -> None:
        body = self.json_body(schemas.FILE_UPDATE)
        self.write_json(await self.call(files.update_file, datafile_id, body))

    @web.authenticated
    @authorized
    async def delete(self, datafile_id: str) -> None:
        await self.call(files.delete_file, datafile_id, self.flow.storage)
        self.no_content()


default_handlers = [
    (r"/flow/api/files", FilesHandler),
    (r"/flow/api/files/(\d+)", FileHandler),
]
