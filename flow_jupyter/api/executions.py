"""/flow/api/executions: launch a pipeline, follow it (detail, tasks, log), cancel it, resume it, and read what
it left: reports (served sandboxed), MultiQC's data, logs.

Handlers only store and read rows; the host's execution manager submits and follows the runs.
"""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..data.streaming import Servable, datafile_target, open_servable
from ..data.storage import Storage
from ..errors import FlowError
from ..execution import outputs, service
from ..execution.backends import backend_named
from ..execution.manager import RETRY_SECONDS
from ..execution.status import EXECUTION_STATUSES, TASK_STATUSES
from ..reports import MAX_MULTIQC_JSON_BYTES, REPORT_CSP, report_headers, sandbox_html
from .base import FlowHandler
from .downloads import DownloadHandler
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


class ExecutionHandlerBase(FlowHandler):
    def wake_manager(self) -> None:
        self.flow.wake_manager()


class ExecutionsHandler(ExecutionHandlerBase):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        filters = {"status": self.choice_argument("status", EXECUTION_STATUSES),
                   "project": self.int_argument("project", minimum=1),
                   "pipeline": self.get_query_argument("pipeline", None)}
        self.write_json(await self.call(service.list_executions, *self.page_args(), filters))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        launch = self.json_body(EXECUTION_CREATE)
        settings = self.flow.settings
        created = await self.call(service.create, self.flow.storage, settings, launch,
                                  lambda name, resources: backend_named(name, settings).check_launch(resources))
        self.wake_manager()
        if created.get("backend_error"):
            # Stored and retried by the manager, but the caller should know the scheduler is down right now.
            self.set_header("Retry-After", str(int(RETRY_SECONDS)))
            error = FlowError(503, "scheduler_unavailable", f"{created['backend_error']} The execution is kept and "
                              "starts when the scheduler is back.")
            self.write_json({**error.as_json(), "execution": created}, 503)
            return
        self.write_json(created, 201)


class ExecutionHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        self.write_json(await self.call(service.get, execution))


class TasksHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        filters = {"status": self.choice_argument("status", TASK_STATUSES),
                   "process": self.get_query_argument("process", None)}
        self.write_json(await self.call(service.tasks, execution, *self.page_args(), filters))


class LogHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        offset = self.int_argument("offset", 0, 0, 2**62)
        self.write_json(await self.call(service.log_tail, self.flow.storage, execution, offset))


class CancelHandler(ExecutionHandlerBase):
    @web.authenticated
    @authorized
    async def post(self, execution: str) -> None:
        cancelled = await self.call(service.cancel, execution)
        self.wake_manager()
        self.write_json(cancelled)


class ResumeHandler(ExecutionHandlerBase):
    @web.authenticated
    @authorized
    async def post(self, execution: str) -> None:
        changes = self.json_body(EXECUTION_RESUME) if self.request.body else {}
        resumed = await self.call(service.resume, self.flow.storage, self.flow.settings, execution, changes)
        self.wake_manager()
        self.write_json(resumed, 201)


def _servable(served: outputs.ServedFile, storage: Storage) -> Servable:
    """A run file as a download target: a registered output's stored bytes (checked like any data file), or a log
    opened beneath the run directory; a log's ETag follows size and mtime, since it grows while a run goes on."""
    if served.datafile is not None:
        return datafile_target(storage, served.datafile, served.filename)
    handle, info = open_servable(Servable(served.path, served.filename, "", root=served.root,
                                          relative=served.path.name))
    handle.close()
    return Servable(path=served.path, filename=served.filename, etag=f'"{info.st_size:x}-{info.st_mtime_ns:x}"',
                    root=served.root, relative=served.path.name)


class ReportsHandler(FlowHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        self.write_json(await self.call(outputs.list_reports, self.flow.storage, execution, *self.page_args()))


def _read_html(target: Servable) -> bytes:
    handle, info = open_servable(target)
    with handle:
        if info.st_size > MAX_MULTIQC_JSON_BYTES:
            raise FlowError(413, "report_too_large", "This report is too large to show; download it instead.")
        return sandbox_html(handle.read())


class ReportHandler(DownloadHandler):
    """A report shown inline, in an opaque-origin sandbox (see reports/serving.py): never with Jupyter's origin."""

    _served: outputs.ServedFile | None = None

    @property
    def content_security_policy(self) -> str:
        return REPORT_CSP

    def _attachment_headers(self, filename: str, media_type: str) -> None:
        for name, value in report_headers(filename, self._served.mimetype if self._served else None).items():
            self.set_header(name, value)

    @web.authenticated
    @authorized
    async def get(self, execution: str, path: str) -> None:
        self._served = await self.call(outputs.report_file, self.flow.storage, execution, path)
        headers = report_headers(self._served.filename, self._served.mimetype)
        if headers["Content-Type"].startswith("text/html"):
            body = await asyncio.to_thread(_read_html, _servable(self._served, self.flow.storage))
            for name, value in headers.items():
                self.set_header(name, value)
            self.finish(body, set_content_type=headers["Content-Type"])
            return
        await self.serve_file(await asyncio.to_thread(_servable, self._served, self.flow.storage),
                              include_body=True)


class MultiQCDataHandler(DownloadHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str) -> None:
        served = await self.call(outputs.multiqc_data, self.flow.storage, execution)
        await self.serve_file(await asyncio.to_thread(_servable, served, self.flow.storage), include_body=True)


class LogFileHandler(DownloadHandler):
    @web.authenticated
    @authorized
    async def get(self, execution: str, which: str) -> None:
        served = await self.call(outputs.log_file, self.flow.storage, execution, which)
        await self.serve_file(await asyncio.to_thread(_servable, served, self.flow.storage), include_body=True)


default_handlers = [
    (r"/flow/api/executions", ExecutionsHandler),
    (EXECUTION, ExecutionHandler),
    (EXECUTION + r"/tasks", TasksHandler),
    (EXECUTION + r"/log", LogHandler),
    (EXECUTION + r"/cancel", CancelHandler),
    (EXECUTION + r"/resume", ResumeHandler),
    (EXECUTION + r"/reports", ReportsHandler),
    (EXECUTION + r"/reports/(.+)", ReportHandler),
    (EXECUTION + r"/multiqc_data\.json", MultiQCDataHandler),
    (EXECUTION + r"/logs/([a-z]+)", LogFileHandler),
]
