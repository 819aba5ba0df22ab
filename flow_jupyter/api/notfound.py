"""The last route under /flow/api/: any path no other route matches is a JSON 404, for every verb.

Without it Jupyter would answer with its HTML error page. It is authenticated like every other handler, so a caller
without credentials gets the same 403 for every path, and learns nothing about which paths exist.
"""
from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import FlowError
from .base import FlowHandler

#: Matches /flow/api and everything below it; registered after every other route.
CATCH_ALL = r"/flow/api(/.*)?"


class NotFoundHandler(FlowHandler):
    def _not_found(self) -> None:
        raise FlowError(404, "not_found", "No such API endpoint; GET openapi.json lists them all.")

    @web.authenticated
    @authorized
    async def get(self, *_args: Any) -> None:
        self._not_found()

    @web.authenticated
    @authorized
    async def head(self, *_args: Any) -> None:
        self._not_found()

    @web.authenticated
    @authorized
    async def post(self, *_args: Any) -> None:
        self._not_found()

    @web.authenticated
    @authorized
    async def put(self, *_args: Any) -> None:
        self._not_found()

    @web.authenticated
    @authorized
    async def patch(self, *_args: Any) -> None:
        self._not_found()

    @web.authenticated
    @authorized
    async def delete(self, *_args: Any) -> None:
        self._not_found()

    @web.authenticated
    @authorized
    async def options(self, *_args: Any) -> None:  # type: ignore[override]
        self._not_found()


default_handlers = [(CATCH_ALL, NotFoundHandler)]
