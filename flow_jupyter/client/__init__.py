"""The Python client of Flow's REST API, for notebooks, widgets, magics and scripts.

    from flow_jupyter.client import FlowClient
    flow = FlowClient()                     # finds the Jupyter server (or FLOW_API_URL) by itself
    reads = flow.upload("S1_R1.fastq.gz", project="RNA-seq")
    run = flow.launch("demo", {"input": sheet}, project="RNA-seq").wait()

Importing it never imports the server (tornado, the database): only requests, and pandas where tables are made.
See docs/client.md.
"""
from __future__ import annotations

from .api import FlowClient, connect, to_params
from .discovery import Endpoint, discover
from .errors import FlowError
from .models import DataFile, Execution, Page, Pipeline, Project, Sample
from .samplesheet import SampleSheet
from .settings import FlowClientSettings
from .sweep import Sweep, compare

__all__ = ["DataFile", "Endpoint", "Execution", "FlowClient", "FlowClientSettings", "FlowError", "Page", "Pipeline",
           "Project", "Sample", "SampleSheet", "Sweep", "compare", "connect", "discover", "to_params"]
