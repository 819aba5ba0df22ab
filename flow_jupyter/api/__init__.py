"""Thin REST handlers under /flow/api/, one module per resource; `default_handlers` collects them.

The contract of every route (its reply schemas) is in `responses`; `openapi` serves it as an OpenAPI document. The
catch-all of `notfound` comes last, so any other path below /flow/api/ is a JSON 404 instead of Jupyter's HTML page.
"""
from __future__ import annotations

from . import (
    datafiles, downloads, executions, groups, health, me, metrics, notfound, openapi, pipelines, projects, samples,
    shares, uploads,
)

#: Filled in place, so that the OpenAPI route can be handed the very table it documents.
default_handlers: list[tuple] = []
default_handlers += [
    *health.default_handlers,
    *metrics.default_handlers,
    *me.default_handlers,
    *openapi.routes(default_handlers),
    *groups.default_handlers,
    *projects.default_handlers,
    *samples.default_handlers,
    *datafiles.default_handlers,
    *shares.default_handlers,
    *uploads.default_handlers,
    *downloads.default_handlers,
    *pipelines.default_handlers,
    *executions.default_handlers,
    *notfound.default_handlers,  # last: whatever no route above matches
]
