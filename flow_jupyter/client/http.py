"""The HTTP layer of the client: one requests Session, the token, URLs under the server's base path, retries.

Retries follow one rule: repeat what cannot do harm twice. Reads (GET/HEAD/OPTIONS) and PUT/DELETE are retried
after any connection error or a 502/503/504; POST and PATCH only when the request provably never reached the
server (the connection could not be opened) or a proxy said the server is not there (502/503) — never after a
504, when the server may have acted. Pauses double from ``backoff`` up to ``max_backoff``, and a ``Retry-After``
header wins. Error answers become :class:`FlowError` with the server's reason, message, field and errors.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from http import cookiejar
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3

from .._version import __version__
from .discovery import Endpoint
from .errors import FlowError
from .settings import FlowClientSettings

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
UNPROCESSED_STATUSES = frozenset({502, 503})  # a proxy could not reach the server: safe to repeat even a POST


class _NoCookies(cookiejar.DefaultCookiePolicy):
    """Every request carries the token; keeping the server's cookies would only bring XSRF checks into play."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


class Transport:
    def __init__(self, endpoint: Endpoint, settings: FlowClientSettings, *, headers: dict[str, str] | None = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep):
        self.endpoint = endpoint
        self.settings = settings
        self.sleep = sleep
        self.session = session if session is not None else requests.Session()
        if hasattr(self.session, "cookies"):
            self.session.cookies.set_policy(_NoCookies())
        self.headers: dict[str, str] = {"User-Agent": f"flow-jupyter-client/{__version__}"}
        if endpoint.token:
            self.headers["Authorization"] = f"token {endpoint.token}"
        self.headers.update(headers or {})

    # --- URLs -------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """``projects/3`` → under the API; ``/base/flow/api/uploads/x`` (a Location) → on the server's origin.

        URLs in the API's answers (a report's ``url``) are relative to the API root, so they go here unchanged."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return urljoin(self.endpoint.origin + "/", path)
        return self.endpoint.api_url + path.lstrip("/")

    def link(self, path: str) -> str:
        """The absolute URL path on the server's origin (``/base/flow/api/executions/…``) of an API path or of a URL
        an answer holds (relative to the API root): what a browser on the notebook's origin opens (a link, an
        ``<iframe>``), right behind any base URL (``/user/<name>/``, ``/services/flow/``)."""
        if path.startswith(("http://", "https://", "/")):
            return path
        return self.endpoint.api_path + path.lstrip("/")

    # --- requests ---------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
                data: Any = None, headers: dict[str, str] | None = None, stream: bool = False,
                ok: tuple[int, ...] = (), retry: bool = True, timeout: float | tuple[float, float] | None = None,
                ) -> requests.Response:
        """Send one request (retrying as the module docstring says) and return its response; an error status not
        in ``ok`` raises FlowError. ``retry=False`` for bodies that cannot be sent twice (a stream)."""
        method = method.upper()
        url = self.url(path)
        query = {key: value for key, value in (params or {}).items() if value is not None}
        all_headers = {**self.headers, **(headers or {})}
        attempts = self.settings.retries + 1 if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.session.request(method, url, params=query or None, json=json, data=data,
                                                headers=all_headers, stream=stream,
                                                timeout=timeout if timeout is not None else self.settings.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last or not (method in IDEMPOTENT or never_sent(exc)):
                    raise unreachable(url, exc, attempt + 1) from exc
                self.sleep(self.delay(attempt))
                continue
            status = response.status_code
            if (status in RETRY_STATUSES and status not in ok and not last
                    and (method in IDEMPOTENT or (status in UNPROCESSED_STATUSES and not answered_by_flow(response)))):
                pause = self.delay(attempt, response.headers.get("Retry-After"))
                response.close()
                self.sleep(pause)
                continue
            if status >= 400 and status not in ok:
                error = FlowError.from_response(response)
                response.close()
                raise error
            return response
        raise AssertionError("unreachable")  # the loop always returns or raises

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body (None for 204)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise FlowError(f"The server answered {method} {path} with something that is not JSON.",
                            status=response.status_code, reason="bad_response") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.json("GET", path, params=params)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.json("POST", path, json=body if body is not None else {}, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.json("PATCH", path, json=body, **kwargs)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def items(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following ``next`` cursors."""
        params = {key: value for key, value in params.items() if value is not None}
        while True:
            page = self.get(path, **params)
            yield from page.get("items") or []
            if not page.get("next"):
                return
            params["after"] = page["next"]

    # --- back-off ---------------------------------------------------------------------------------------------

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``: the server's Retry-After, else exponential."""
        limit = self.settings.max_backoff
        wanted = parse_retry_after(retry_after)
        if wanted is not None:
            return min(limit, wanted)
        return min(limit, self.settings.backoff * (2 ** attempt))

    def close(self) -> None:
        self.session.close()


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def answered_by_flow(response: requests.Response) -> bool:
    """A Flow error body (``{"error": {"reason": …}}``): Flow itself processed the request — a 503 such as
    ``scheduler_unavailable`` after a launch was stored — so repeating a POST would do it twice."""
    if "json" not in response.headers.get("Content-Type", ""):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "reason" in body["error"]


def never_sent(exc: BaseException) -> bool:
    """True when the connection could not even be opened, so the server cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the real cause
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def unreachable(url: str, exc: BaseException, attempts: int) -> FlowError:
    return FlowError(f"Could not reach {url} after {attempts} attempt(s): {type(exc).__name__}.",
                     reason="unreachable")
