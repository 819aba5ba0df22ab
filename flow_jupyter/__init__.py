"""flow_jupyter: Nextflow pipelines on Slurm, launched, watched and analysed from Jupyter."""
from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "load_ipython_extension"]


def _jupyter_server_extension_points() -> list[dict]:
    from .app import FlowApp

    return [{"module": "flow_jupyter.app", "app": FlowApp}]


def load_ipython_extension(ipython) -> None:
    """``%load_ext flow_jupyter``: the ``%flow`` / ``%%flow`` magics, and the widgets as the display of client
    objects when ipywidgets is installed."""
    from .magics import load_ipython_extension as load

    load(ipython)
