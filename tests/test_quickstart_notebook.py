"""The quickstart notebook, run the way a new user runs it: every cell, in a real kernel, against a real Jupyter
server with Flow, launching the demo pipeline on the real Slurm cluster. The run must succeed, the monitor and the
report must render as widgets and the last cell must draw a plot."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
import requests
from nbclient import NotebookClient
from serverproc import TOKEN, Server, running

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _outputs(notebook, kind: str) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
            if kind in output.get("data", {})]


@pytest.mark.nextflow
@pytest.mark.slurm
def test_the_quickstart_notebook_runs_top_to_bottom_on_slurm(tmp_path: Path, slurm_cluster) -> None:
    notebooks, root = tmp_path / "notebooks", tmp_path / "flow-root"
    notebooks.mkdir()
    shutil.copy(QUICKSTART, notebooks / QUICKSTART.name)
    notebook = nbformat.read(notebooks / QUICKSTART.name, as_version=4)
    server = Server(notebooks, root, f"sqlite:///{root / 'flow.sqlite'}", "--FlowSettings.executor=slurm")
    root.mkdir()
    with running(server):
        kernel_env = {**os.environ, "FLOW_API_URL": f"{server.base}/flow/api/", "FLOW_API_TOKEN": TOKEN,
                      "JPY_SESSION_NAME": str(notebooks / QUICKSTART.name)}
        client = NotebookClient(notebook, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": str(notebooks)}})
        client.execute(env=kernel_env)  # raises CellExecutionError naming the cell if any cell fails

        executions = requests.get(f"{server.base}/flow/api/executions", timeout=30,
                                  headers={"Authorization": f"token {TOKEN}"}).json()["items"]
        assert [e["status"] for e in executions] == ["succeeded"]
        detail = requests.get(f"{server.base}/flow/api/executions/{executions[0]['id']}", timeout=30,
                              headers={"Authorization": f"token {TOKEN}"}).json()
        assert detail["backend"] == "slurm"
        assert detail["provenance"]["notebook"].endswith("quickstart.ipynb")

    assert len(_outputs(notebook, WIDGET_VIEW)) >= 2, "the monitor and the report viewer render as widgets"
    plots = _outputs(notebook, "image/png")
    assert plots, "the last cell draws a plot"
