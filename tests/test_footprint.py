"""The host stays small: what a Jupyter server loads for Flow must not pull in pandas (and numpy, pyarrow) or dask
(and distributed). They are imported where they are used — MultiQC tables in a notebook, a Slurm job script — so a
server following a hundred runs stays well under 200 MB (see docs/benchmarks.md)."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "numpy", "pyarrow", "dask", "dask_jobqueue", "distributed")


def test_loading_the_server_extension_imports_no_heavy_library() -> None:
    code = ("import sys, flow_jupyter.app, flow_jupyter.api, flow_jupyter.host, flow_jupyter.execution.manager; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
