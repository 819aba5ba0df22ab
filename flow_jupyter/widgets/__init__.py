"""Notebook widgets for Flow: thin views over :mod:`flow_jupyter.client`, so every check stays on the server.

Each widget takes an optional ``client`` (default: :func:`flow_jupyter.client.connect`, the server hosting this
kernel) and shows server errors where they belong instead of raising them into the notebook.
"""
from __future__ import annotations

from .browser import DataBrowser
from .dashboard import dashboard
from .launcher import PipelineLauncher
from .monitor import ExecutionMonitor
from .report import ReportViewer
from .sweep import SweepMonitor
from .uploader import Uploader

__all__ = ["DataBrowser", "Uploader", "PipelineLauncher", "ExecutionMonitor", "ReportViewer", "dashboard",
           "SweepMonitor"]
