"""GET /flow/api/openapi.json: an OpenAPI 3.1 document of the whole API, generated, never written by hand.

It is built from what already decides each request: the route table (paths, with the tornado groups named after
the handler's arguments), the handlers themselves (the request schema each verb passes to ``json_body`` and the
query arguments it reads, found in its source) and the response table of api/responses.py. A handler that changes
changes the document; a verb without a response entry fails the build (and the contract tests).
"""
from __future__ import annotations

import ast
import copy
import inspect
import textwrap
from http import HTTPStatus
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from .._version import __version__
from . import responses
from .base import FlowHandler
from .notfound import CATCH_ALL
from .routes import API_ROOT, implemented_verbs, is_integer_group, path_template

OPENAPI_VERSION = "3.1.0"
DESCRIPTION = f"""Flow's REST API, mounted at {API_ROOT}/ (behind JupyterHub: /services/flow{API_ROOT}/).

Every endpoint needs authentication (except `OPTIONS` on uploads, the tus capability headers a CORS preflight asks
for): the Jupyter server's (or the hub's) API token as `Authorization: token …`, or the login cookie with its XSRF
token. An object you may not see answers 404 exactly like one that does not exist.
Any path below {API_ROOT}/ that is not listed here answers a JSON 404 (`not_found`), and a listed path asked with a
verb it does not have a JSON 405 (`method_not_allowed`, with `Allow`). Every error, whatever its status, has the
`Error` shape. Lists are pages of `{{"items", "next"}}`: pass `next` as `?after=` for the following page."""
LIMIT = {"type": "integer", "minimum": 1}
#: Query arguments read by shared helpers rather than by name in the handler.
HELPER_QUERIES: dict[str, dict[str, dict[str, Any]]] = {
    "page_limit": {"limit": LIMIT},
    "page_args": {"after": {"type": "string"}, "limit": LIMIT},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def with_refs(schema: Any, own: str | None = None) -> Any:
    """A copy of ``schema`` where every named component (other than ``own``, the one being written out) is a $ref."""
    names = {id(component): name for name, component in responses.COMPONENTS.items()}

    def walk(node: Any, top: bool) -> Any:
        if isinstance(node, dict):
            name = names.get(id(node))
            if name is not None and not (top and name == own):
                return _ref(name)
            return {key: walk(value, False) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item, False) for item in node]
        return node

    return walk(schema, True)


# --- what the handlers' code says ----------------------------------------------------------------------------------
def _verb_tree(handler: type, verb: str) -> tuple[ast.AST, dict[str, Any]]:
    function = inspect.unwrap(getattr(handler, verb))
    return ast.parse(textwrap.dedent(inspect.getsource(function))), function.__globals__


def _resolve(node: ast.AST, namespace: dict[str, Any]) -> Any:
    """The value of a plain name or dotted name (``schemas.PROJECT_CREATE``) in the handler's module."""
    if isinstance(node, ast.Name):
        return namespace[node.id]
    if isinstance(node, ast.Attribute):
        return getattr(_resolve(node.value, namespace), node.attr)
    raise ValueError(f"cannot resolve {ast.unparse(node)!r}: name the schema by a module-level constant")


def _is_json_body(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "json_body"
            and bool(node.args))


def request_schema(handler: type, verb: str) -> tuple[dict[str, Any], bool] | None:
    """The schema the verb passes to ``self.json_body(...)`` and whether the body is required (not when the call is
    guarded, as in ``self.json_body(S) if self.request.body else {}``); None if it reads no JSON body."""
    tree, namespace = _verb_tree(handler, verb)
    guarded = {id(node.body) for node in ast.walk(tree) if isinstance(node, ast.IfExp)}
    for node in ast.walk(tree):
        if _is_json_body(node):
            return _resolve(node.args[0], namespace), id(node) not in guarded  # type: ignore[attr-defined]
    return None


def query_parameters(handler: type, verb: str) -> dict[str, dict[str, Any]]:
    """The query arguments the verb reads, with their type: ``int_argument`` integers, ``choice_argument`` one word
    of its vocabulary, other arguments strings; ``page_args``/``page_limit`` stand for ``after`` and ``limit``."""
    tree, namespace = _verb_tree(handler, verb)
    found: dict[str, dict[str, Any]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if name in HELPER_QUERIES:
            found.update(HELPER_QUERIES[name])
            continue
        first = node.args[0] if node.args else None
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        if name == "get_query_argument":
            found[first.value] = {"type": "string"}
        elif name == "int_argument":
            found[first.value] = {"type": "integer"}
        elif name == "choice_argument" and len(node.args) > 1:
            found[first.value] = {"enum": list(_resolve(node.args[1], namespace))}
    return dict(sorted(found.items()))


# --- the document ------------------------------------------------------------------------------------------------
def _content(schema: dict[str, Any] | responses.Binary) -> dict[str, Any]:
    if isinstance(schema, responses.Binary):
        return {schema.media_type: {}}
    return {"application/json": {"schema": with_refs(schema)}}


def _response(status: int, schema: Any, operation: responses.Operation) -> dict[str, Any]:
    description = schema.description if isinstance(schema, responses.Binary) and schema.description else \
        HTTPStatus(status).phrase
    reply: dict[str, Any] = {"description": description}
    if schema is not None:
        reply["content"] = _content(schema)
    if status in operation.headers:
        reply["headers"] = {name: {"schema": {"type": "string"}} for name in operation.headers[status]}
    return reply


def _operation(handler: type, verb: str, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    operation = responses.operation_for(handler, verb)
    if operation is None:
        raise LookupError(f"{handler.__name__}.{verb} has no entry in api/responses.py ROUTES")
    spec: dict[str, Any] = {
        "operationId": verb + handler.__name__.removesuffix("Handler"),
        "tags": [handler.__module__.rsplit(".", 1)[-1]],
        "summary": operation.summary,
    }
    queries = [{"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in query_parameters(handler, verb).items()]
    if path_params or queries:
        spec["parameters"] = [*path_params, *queries]
    body = request_schema(handler, verb)
    if body is not None:
        schema, required = body
        spec["requestBody"] = {"required": required,
                               "content": {"application/json": {"schema": copy.deepcopy(schema)}}}
    elif operation.request is not None:
        spec["requestBody"] = {"required": False, "content": _content(operation.request)}
    spec["responses"] = {str(status): _response(status, schema, operation)
                         for status, schema in sorted(operation.replies.items())}
    spec["responses"]["default"] = {"description": "Any other status: an error",
                                    "content": _content(responses.ERROR)}
    return spec


def build_document(handlers: list[tuple]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``handlers`` (the host's route table), without ``servers`` (per request)."""
    paths: dict[str, Any] = {}
    for route in handlers:
        pattern, handler = route[0], route[1]
        if pattern == CATCH_ALL or getattr(handler, "openapi_alias_of", None) is not None:
            continue
        template, groups = path_template(pattern, handler)
        path_params = [{"name": name, "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0} if is_integer_group(regex)
                        else {"type": "string", "pattern": f"^{regex}$"}} for name, regex in groups]
        if template in paths:
            raise ValueError(f"two routes share the path {template}")
        paths[template] = {verb: _operation(handler, verb, path_params) for verb in implemented_verbs(handler)}
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": responses.DIALECT,
        "info": {"title": "Flow API", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": {name: with_refs(schema, own=name) for name, schema in responses.COMPONENTS.items()},
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "`token <Jupyter server or JupyterHub API token>`"}},
        },
        "security": [{"token": []}],
    }


_documents: dict[int, dict[str, Any]] = {}


def document(table: list[tuple]) -> dict[str, Any]:
    """The document of ``table``, built once, on first use (by then the host has filled the table)."""
    if id(table) not in _documents:
        _documents[id(table)] = build_document(table)
    return _documents[id(table)]


class OpenAPIHandler(FlowHandler):
    def initialize(self, table: list[tuple]) -> None:
        super().initialize()
        self.table = table

    @web.authenticated
    @authorized
    async def get(self) -> None:
        served = {**document(self.table), "servers": [{"url": url_path_join(self.base_url, API_ROOT.lstrip("/"))}]}
        self.write_json(served)


def routes(table: list[tuple]) -> list[tuple]:
    """The route of the document of ``table``: the list the host mounts, which this route is part of (handed in,
    not imported, so this module never depends on the package that collects the handlers)."""
    return [(API_ROOT + r"/openapi\.json", OpenAPIHandler, {"table": table})]
