"""Thin REST handlers under /flow/api/, one module per resource; `default_handlers` collects them."""
from __future__ import annotations

from . import datafiles, downloads, executions, groups, health, metrics, pipelines, projects, samples, shares, uploads

default_handlers: list[tuple] = [
    *health.default_handlers,
    *metrics.default_handlers,
    *groups.default_handlers,
    *projects.default_handlers,
    *samples.default_handlers,
    *datafiles.default_handlers,
    *shares.default_handlers,
    *uploads.default_handlers,
    *downloads.default_handlers,
    *pipelines.default_handlers,
    *executions.default_handlers,
]
