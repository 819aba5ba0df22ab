"""flow_jupyter: Nextflow pipelines on Slurm, launched, watched and analysed from Jupyter."""
from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict]:
    from .app import FlowApp

    return [{"module": "flow_jupyter.app", "app": FlowApp}]


def load_ipython_extension(ipython) -> None:
    """``%load_ext flow_jupyter``: the ``%flow`` / ``%%flow`` magics."""
    from .magics import load_ipython_extension as load

    load(ipython)
