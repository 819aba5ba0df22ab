"""Base handler: authentication, identity, JSON bodies and errors, paging — what every resource handler shares."""
from __future__ import annotations

import getpass
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import jsonschema
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..errors import FlowError, bad_request, status_reason
from ..identity import Identity
from ..metrics import observe_request
from ..seams import Host
from .responses import check_reply
from .routes import allowed_methods

T = TypeVar("T")


class FlowHandler(APIHandler):
    """Every Flow handler derives from this; each verb also carries ``@web.authenticated`` + ``@authorized``."""

    auth_resource = "flow"

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        self._flow_started = time.perf_counter()
        super().initialize(*args, **kwargs)

    def on_finish(self) -> None:
        # Labelled by handler class (one per route), not by path: object ids must not explode the series count.
        observe_request(self.request.method or "", type(self).__name__, self.get_status(), self._flow_started)
        super().on_finish()

    @property
    def flow(self) -> Host:
        """The host's services (settings, db, storage, health), set up once by the extension or the hub service."""
        return self.settings["flow"]

    @property
    def identity(self) -> Identity:
        """The caller. Single-user: the Jupyter server's user, admin of their own store."""
        header = self.flow.settings.test_identity_header
        if header:
            name = self.request.headers.get(header)
            if name:
                return Identity(name=name)
        # The single-user store belongs to the account running Jupyter. (Token-only requests get a fresh
        # anonymous Jupyter user each time, so that name cannot identify anyone.)
        return Identity(name=getpass.getuser(), is_admin=True)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the service ``fn(session, actor, *args)`` for the caller on a worker thread."""
        return await self.flow.call(self.identity, fn, *args, **kwargs)

    def json_body(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The request body as JSON, validated against ``schema``; 400 naming the first bad field otherwise.

        Everything that would later break a viewer, the database or the stack is refused here, before any service
        runs: nesting deeper than ``max_json_depth`` (checked by a flat scan, so parsing can never recurse far), NaN
        and Infinity (also as an overflowing number like ``1e999``), lone surrogates and NUL in keys or values, and
        strings longer than ``max_text_length`` where the schema sets no explicit ``maxLength`` of its own.
        """
        settings = self.flow.settings
        body = parse_json_body(self.request.body or b"null", settings.max_json_depth)
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=lambda e: list(e.path))
        if errors:
            raise _schema_error(errors[0])
        problem = find_bad_string(body, schema, settings.max_text_length)
        if problem is not None:
            raise problem
        return body

    def int_argument(self, name: str, default: int | None = None, minimum: int = 0,
                     maximum: int | None = None) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad_request(f"'{name}' must be an integer.", field=name) from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f" and {maximum}" if maximum is not None else ""
            raise bad_request(f"'{name}' must be between {minimum}{bound}.", field=name)
        return value

    def page_limit(self) -> int:
        settings = self.flow.settings
        return self.int_argument("limit", settings.page_size_default, 1, settings.page_size_max)  # type: ignore

    def page_args(self) -> tuple[str | None, int]:
        """``?after=`` and ``?limit=`` of a list request: every list answers ``{"items", "next"}`` one page at a
        time, ``next`` being the ``after`` of the following page."""
        return self.get_query_argument("after", None), self.page_limit()

    def choice_argument(self, name: str, choices: tuple[str, ...] | frozenset[str]) -> str | None:
        """A query argument that must be one word of a vocabulary (e.g. a status); 400 naming the words otherwise."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return None
        if raw not in choices:
            raise bad_request(f"'{name}' must be one of {', '.join(choices)}.", field=name, reason="invalid_field")
        return raw

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    def write_json(self, body: Any, status: int = 200) -> None:
        """Strict JSON only: NaN/Infinity are not JSON and break every viewer, so a non-finite float that reached a
        reply anyway (e.g. a pandas gap in a sample sheet) is sent as null, never as a bare ``NaN`` token.
        With ``validate_responses`` on, the text is first checked against the route's response schema."""
        text = dumps_strict(body)
        if self.flow.settings.validate_responses:
            check_reply(type(self), (self.request.method or "").lower(), status, text)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(text)

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, FlowError):  # a client's mistake, not a server fault: one short line
            self.log.info("%s %s -> %s %s", self.request.method, self.request.path, value.status, value.reason)
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        if isinstance(exc, FlowError):
            self.finish(dumps_strict(exc.as_json()))
            return
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code == 405:  # a known path, a verb it does not have: say which it has
            allowed = allowed_methods(type(self))
            self.set_header("Allow", ", ".join(allowed))
            message = f"{self.request.method} is not allowed here; allowed: {', '.join(allowed)}."
        else:
            message = self._reason
        error = {"reason": status_reason(status_code), "message": message}
        self.finish(json.dumps({"error": error}))


# --- strict JSON in and out (pure functions, so they are tested without a server) ------------------------------
#: One lexical token the depth scan cares about: a whole string (skipped in one C-level match, escapes included),
#: a bracket, or a lone quote (an unterminated string: the body is malformed and the scan can stop).
_JSON_TOKEN = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[\[\]{}"]', re.DOTALL)
#: Characters no stored or echoed string may hold: NUL (PostgreSQL text cannot store it) and lone surrogates (not
#: encodable as UTF-8: the database driver fails, and so does every viewer of a reply that echoes one).
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
#: Longest part of a client's value quoted back in an error message.
_QUOTE_LIMIT = 120


class _NotFinite(ValueError):
    """NaN/Infinity, which Python's json accepts but JSON (RFC 8259) does not."""


def _refuse_constant(token: str) -> Any:
    raise _NotFinite(token)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "1e999" is valid JSON but parses to inf, which no reply may carry
        raise _NotFinite(text)
    return value


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than ``limit`` anywhere outside strings. A flat loop, stopped at the first
    excess, so a body of a million ``[`` costs one short scan and never reaches the (recursive) parser."""
    if text.count("[") + text.count("{") <= limit:  # most bodies: decided at C speed, no scan at all
        return False
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
        elif token == '"':
            return False  # unterminated string: malformed, the parser says so
    return False


def parse_json_body(raw: bytes, max_depth: int) -> Any:
    """Strict UTF-8 JSON with bounded nesting and only finite numbers, else a 400 that says which rule broke."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise bad_request("Request body is not UTF-8 JSON.", reason="malformed_json") from None
    if nesting_exceeds(text, max_depth):
        raise bad_request(f"Request body nests deeper than {max_depth} levels.", reason="too_deep")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotFinite as exc:
        raise bad_request(f"{_quote(str(exc))} is not a JSON number: NaN and Infinity are not allowed.",
                          reason="non_finite_number") from None
    except (ValueError, RecursionError):
        raise bad_request("Request body is not valid JSON.", reason="malformed_json") from None


def find_bad_string(body: Any, schema: dict[str, Any], max_length: int) -> FlowError | None:
    """The first key or string value (walked iteratively) holding NUL or a lone surrogate, or longer than
    ``max_length`` where the schema gives no ``maxLength`` of its own; None when every string is fine."""
    stack: list[tuple[Any, tuple]] = [(body, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                problem = _string_problem(key, path + (key,), None, max_length, "key")
                if problem is not None:
                    return problem
                stack.append((item, path + (key,)))
        elif isinstance(value, list):
            stack.extend((item, path + (index,)) for index, item in enumerate(value))
        elif isinstance(value, str):
            problem = _string_problem(value, path, schema, max_length, "value")
            if problem is not None:
                return problem
    return None


def _string_problem(text: str, path: tuple, schema: dict[str, Any] | None, max_length: int,
                    what: str) -> FlowError | None:
    field = json_pointer(path)
    bad = _BAD_CHARACTER.search(text)
    if bad is not None:
        kind = "NUL" if bad.group() == "\x00" else "a lone UTF-16 surrogate"
        return bad_request(f"{field}: the {what} contains {kind}, which is not valid text.", field=field,
                           reason="invalid_character")
    if len(text) > max_length and (schema is None or not _has_own_max_length(schema, path)):
        return bad_request(f"{field}: the {what} is {len(text)} characters long, over the limit of {max_length}.",
                           field=field, reason="too_long")
    return None


def _has_own_max_length(schema: dict[str, Any], path: tuple) -> bool:
    """Whether the schema at ``path`` bounds the string itself (it then allows more than the general limit, as the
    sample-sheet text does, and jsonschema enforces that bound)."""
    level = [schema]
    for part in path:
        level = [child for node in _branches(level) if (child := _child(node, part)) is not None]
    return any("maxLength" in node for node in _branches(level))


def _branches(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for node in nodes:
        found.append(node)
        found.extend(branch for key in ("anyOf", "oneOf", "allOf") for branch in node.get(key, ()))
    return [node for node in found if isinstance(node, dict)]


def _child(node: dict[str, Any], part: str | int) -> dict[str, Any] | None:
    if isinstance(part, int):
        return node.get("items") if isinstance(node.get("items"), dict) else None
    if part in node.get("properties", {}):
        return node["properties"][part]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def json_pointer(path: tuple | list) -> str:
    """RFC 6901 pointer to a field, printable even when a key holds a character that cannot be sent back."""
    parts = (str(part).replace("~", "~0").replace("/", "~1") for part in path)
    return _BAD_CHARACTER.sub("\ufffd", "/" + "/".join(parts))


def _quote(text: str) -> str:
    text = _BAD_CHARACTER.sub("\ufffd", text)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 1] + "…"


def finite_only(value: Any) -> Any:
    """A copy of a JSON-like value with every NaN/±Infinity replaced by None, built without recursion."""
    def convert(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            copy: Any = {}
        elif isinstance(item, (list, tuple)):
            copy = [None] * len(item)
        else:
            return item
        pending.append((item, copy))
        return copy

    pending: list[tuple[Any, Any]] = []
    root = convert(value)
    while pending:
        source, target = pending.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            target[key] = convert(item)
    return root


def dumps_strict(body: Any) -> str:
    """JSON text that any strict parser accepts: never a NaN/Infinity token (non-finite floats become null)."""
    try:
        return json.dumps(body, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(finite_only(body), default=str, allow_nan=False)


def _schema_error(error: jsonschema.ValidationError) -> FlowError:
    pointer = json_pointer(list(error.absolute_path))
    # an additionalProperties error is always about an object, judged by an object schema (never a bool one)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping) \
            and isinstance(error.schema, Mapping):
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        field = json_pointer([*error.absolute_path, extra[0]]) if extra else pointer
        return bad_request(f"Unknown field '{_quote(extra[0]) if extra else '?'}'.", field=field,
                           reason="unknown_field")
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return bad_request(f"'{missing}' is required.", field=pointer.rstrip("/") + "/" + missing,
                           reason="missing_field")
    return bad_request(f"{pointer}: {_quote(error.message)}", field=pointer, reason="invalid_field")
