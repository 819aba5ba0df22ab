"""flow_jupyter type-checks cleanly with mypy, configured in pyproject.toml ([tool.mypy]).

The host seam (``flow_jupyter.seams.Host``: what handlers, background jobs and the execution manager may ask of the
server) and the services' signatures are a contract between modules that are written and refactored separately,
and a second host only has to provide what the Protocol names. Tests reach only the paths they drive; mypy reads
every call against its signature, so a caller asking the host for more than the seam offers, a value that may be
None, or a ``str`` where a ``Path`` is expected is caught here, before a user meets it.

Third-party packages without type information (ipywidgets, pandas, pyarrow) are listed in the config's overrides;
a ``# type: ignore`` names its error code and says why, and an unused one fails the check too.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_type_errors() -> None:
    checked = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert checked.returncode == 0, f"mypy found type errors:\n{checked.stdout}{checked.stderr}"
