"""Backends that run a Nextflow head process: on this host (`LocalBackend`) or as a Slurm job (`SlurmBackend`).

They share one interface (`Backend`: submit, status, statuses, cancel, find, eta), so the execution manager never
needs to know where a run lives; `backend_for` picks the one FlowSettings.executor names.
"""
from __future__ import annotations

from flow_jupyter.config import FlowSettings
from flow_jupyter.execution.backends.base import (
    Backend,
    BackendJob,
    BackendState,
    JobInfo,
    Launch,
    Resources,
)
from flow_jupyter.execution.backends.local import LocalBackend
from flow_jupyter.execution.backends.slurm import SlurmBackend

__all__ = ["Backend", "BackendJob", "BackendState", "JobInfo", "Launch", "LocalBackend", "Resources", "SlurmBackend",
           "backend_for", "backend_named"]


def backend_for(settings: FlowSettings) -> Backend:
    """The backend new executions go to."""
    return backend_named(settings.executor, settings)


def backend_named(name: str, settings: FlowSettings) -> Backend:
    """The backend a stored `BackendJob` names (an execution keeps its backend even if the setting changes)."""
    if name == "local":
        return LocalBackend()
    if name == "slurm":
        return SlurmBackend(settings)
    raise ValueError(f"unknown backend {name!r}")
