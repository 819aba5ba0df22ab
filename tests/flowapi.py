"""A small test client for Flow's REST API on the pytest-jupyter server, acting as any user.

Every request carries the server's token (real Jupyter authentication) plus the test-only user header, and returns
a `Reply` instead of raising, so tests read like `reply = await alice.get("projects"); assert reply.code == 200`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from conftest import TEST_USER_HEADER


@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def error(self) -> dict:
        return self.json["error"]


class UserAPI:
    def __init__(self, fetch, user: str | None):
        self._fetch = fetch
        self.user = user

    async def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                      headers: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> Reply:
        all_headers = dict(headers or {})
        if self.user:
            all_headers[TEST_USER_HEADER] = self.user
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if payload is None and method in {"POST", "PUT", "PATCH"}:
            payload = b""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self._fetch(
            "flow", "api", *path.strip("/").split("/"), method=method, body=payload, headers=all_headers,
            params=query or None, raise_error=False, allow_nonstandard_methods=True,
        )
        return Reply(response.code, response.headers, response.body)

    async def get(self, path: str, **params: Any) -> Reply:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("PATCH", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)


class FlowAPI:
    def __init__(self, fetch):
        self._fetch = fetch

    def as_user(self, name: str) -> UserAPI:
        return UserAPI(self._fetch, name)

    @property
    def owner(self) -> UserAPI:
        """The Jupyter server's own user (no test header): admin of the store."""
        return UserAPI(self._fetch, None)


__all__ = ["FlowAPI", "Reply", "UserAPI", "urlencode"]
