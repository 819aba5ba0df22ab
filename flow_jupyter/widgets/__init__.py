"""Notebook widgets for Flow: thin views over :mod:`flow_jupyter.client`, so every check stays on the server.

Each widget takes an optional ``client`` (default: :func:`flow_jupyter.client.connect`, the server hosting this
kernel) and shows server errors where they belong instead of raising them into the notebook.

Importing this package registers the widgets as the notebook display of client objects (an Execution shows as
its ExecutionMonitor, a Sweep as a SweepMonitor); the client itself never imports it.
"""
from __future__ import annotations

from ..client import Execution, Sweep
from ..client.display import register_display
from .browser import DataBrowser
from .dashboard import dashboard
from .launcher import PipelineLauncher
from .monitor import ExecutionMonitor
from .report import ReportViewer
from .sweep import SweepMonitor
from .uploader import Uploader

__all__ = ["DataBrowser", "Uploader", "PipelineLauncher", "ExecutionMonitor", "ReportViewer", "dashboard",
           "SweepMonitor", "register_displays"]


def register_displays() -> None:
    """Show client objects as these widgets in a notebook (also the ``flow_jupyter.displays`` entry point)."""
    register_display(Execution, ExecutionMonitor)
    register_display(Sweep, SweepMonitor)


register_displays()
