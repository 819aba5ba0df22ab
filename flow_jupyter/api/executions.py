"""/flow/api/executions: launch a pipeline, follow it (detail, tasks, log), cancel it, resume it.

Handlers only store and read rows; the host's execution manager submits and follows the runs.
"""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..execution import service
from .base import FlowHandler
from .schemas import ID, body

EXECUTION = r"/flow/api/executions/([0-9a-fA-F-]{1,36})"
PARAMS = {"type": "object"}
PROVENANCE = {"type": "object", "properties": {"notebook": {"type": "string", "maxLength": 4096},
                                               "cell": {"type": "string", "maxLength": 255}},
              "additionalProperties": False}
EXECUTION_CREATE = body({
    "pipeline": {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 255}, ID]},
    "version": {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 255}, ID, {"type": "null"}]},
    "params": PARAMS,
    "project": ID,
    "backend": {"enum": ["local", "slurm"]},
    "resources": {"anyOf": [{"type": "object"}, {"type": "null"}]},
    "provenance": PROVENANCE,
}, ["pipeline", "project"])
EXECUTION_RESUME = body({"params": PARAMS, "provenance": PROVENANCE})


class ExecutionsHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        filters = {"status": self.get_query_argument("status", None),
                   "project": self.int_argument("project", minimum=1),
                   "pipeline": self.get_query_argument("pipeline", None)}
        self.write_json(await self.call(service.list_executions, self.get_query_argument("after", None),
                                        self.page_limit(), filters))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        launch = self.json_body(EXECUTION_CREATE)
        self.write_json(await self.call(service.create, self.flow.storage, self.flow.settings, launch), 201)


class ExecutionHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        self.write_json(await self.call(service.get, execution))


class TasksHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        filters = {"status": self.get_query_argument("status", None),
                   "process": self.get_query_argument("process", None)}
        self.write_json(await self.call(service.tasks, execution, self.get_query_argument("after", None),
                                        self.page_limit(), filters))


class LogHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        offset = self.int_argument("offset", 0, 0, 2**62)
        self.write_json(await self.call(service.log_tail, self.flow.storage, execution, offset))


class CancelHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def post(self, execution: str) -> None:
        self.write_json(await self.call(service.cancel, execution))


class ResumeHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def post(self, execution: str) -> None:
        changes = self.json_body(EXECUTION_RESUME) if self.request.body else {}
        self.write_json(await self.call(service.resume, self.flow.storage, self.flow.settings, execution, changes),
                        201)


default_handlers = [
    (r"/flow/api/executions", ExecutionsHandler),
    (EXECUTION, ExecutionHandler),
    (EXECUTION + r"/tasks", TasksHandler),
    (EXECUTION + r"/log", LogHandler),
    (EXECUTION + r"/cancel", CancelHandler),
    (EXECUTION + r"/resume", ResumeHandler),
]
