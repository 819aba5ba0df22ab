"""The Python client of Flow's REST API, for notebooks, widgets, magics and scripts.

    from flow_jupyter.client import FlowClient
    flow = FlowClient()                     # finds the Jupyter server (or FLOW_API_URL) by itself
    reads = flow.upload("S1_R1.fastq.gz", project="RNA-seq")
    run = flow.launch("demo", {"input": sheet}, project="RNA-seq").wait()

Importing it never imports the server (tornado, the database) nor a UI (ipywidgets): only requests, and pandas
where tables are made. In a notebook an Execution shows as a live widget when :mod:`flow_jupyter.widgets` is
installed (it registers itself through :func:`register_display`), else as a static summary. See docs/client.md.
"""
from __future__ import annotations

from .api import FlowClient, connect
from .discovery import Endpoint, discover
from .display import register_display
from .errors import FlowError
from .models import DataFile, Execution, Page, Pipeline, Project, Sample, to_params
from .samplesheet import SampleSheet
from .settings import FlowClientSettings
from .sweep import Sweep, compare

__all__ = ["DataFile", "Endpoint", "Execution", "FlowClient", "FlowClientSettings", "FlowError", "Page", "Pipeline",
           "Project", "Sample", "SampleSheet", "Sweep", "compare", "connect", "discover", "register_display",
           "to_params"]
