"""The host stays small: what a Jupyter server loads for Flow must not pull in pandas (with pyarrow, most of ~85 MiB).
It is imported where it is used — MultiQC tables in a notebook — so a server following a hundred runs stays well
under 200 MB (see docs/benchmarks.md). And loading Flow must not take Ctrl-C away from the server."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "pyarrow")


def test_loading_the_server_extension_imports_no_heavy_library() -> None:
    code = ("import sys, flow_jupyter.app, flow_jupyter.api, flow_jupyter.host, flow_jupyter.execution.manager; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_loading_the_server_extension_leaves_the_sigint_handler_alone() -> None:
    code = ("import signal; before = signal.getsignal(signal.SIGINT); "
            "import flow_jupyter.app, flow_jupyter.execution.backends.slurm; "
            "print(signal.getsignal(signal.SIGINT) is before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"
