"""The client stands on its own: in a Python where ipywidgets (and with it flow_jupyter.widgets) cannot be imported,
``flow_jupyter.client`` imports, a run and a sweep display as their plain summaries, and ``%load_ext flow_jupyter``
still gives working ``%flow`` magics. Views come from a registry the widgets (or any installed package, through
the ``flow_jupyter.displays`` entry point) fill, never from an import in the client.

Each story runs in a fresh interpreter (``python -c``), since this test process has imported the widgets already.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent

BLOCK_WIDGETS = """
import sys
from importlib.abc import MetaPathFinder

class NotInstalled(MetaPathFinder):
    '''As if ipywidgets were not installed: it, and Flow's widgets built on it, cannot be imported.'''

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "ipywidgets" or name.startswith("flow_jupyter.widgets"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
"""

SHELL_WITH_A_RUN = """
from types import SimpleNamespace

from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output

from flow_jupyter.client import Execution, Sweep

shell = InteractiveShell.instance()
registry = SimpleNamespace(version_info=lambda version: {"pipeline": "tiny", "ref": "v1.0"})
run = Execution.from_json(registry, {"id": "0f3c", "status": "failed", "pipeline_version": 1,
                                     "params": {"greeting": "Hi"}, "error": "GREET exited with 1",
                                     "progress": {"succeeded": 2, "failed": 1}})


def shown(obj):
    '''The mime bundles IPython displays for ``obj`` (what a notebook cell's output would hold).'''
    with capture_output() as captured:
        display(obj)
    return [output.data for output in captured.outputs]
"""


def run_python(*parts: str, **env: str) -> dict:
    """Run the joined ``parts`` in a fresh interpreter; the script prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", "\n".join(textwrap.dedent(part) for part in parts)],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env={**_env(), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def test_without_ipywidgets_the_client_imports_and_shows_plain_views() -> None:
    result = run_python(BLOCK_WIDGETS, SHELL_WITH_A_RUN, """
        import json, sys

        [run_view] = shown(run)
        [sweep_view] = shown(Sweep([run], {"greeting": ["Hi"]}))
        shell.run_line_magic("load_ext", "flow_jupyter")
        magic = shell.run_cell("%flow frobnicate")
        print(json.dumps({
            "run": run_view, "sweep": sweep_view, "repr": run._repr_mimebundle_(),
            "magic_failed": magic.success is False, "magic_error": type(magic.error_in_exec).__name__,
            "ui_modules": sorted(m for m in sys.modules if m.startswith(("ipywidgets", "flow_jupyter.widgets"))),
        }))
    """)

    assert "0f3c (tiny v1.0): failed" in result["run"]["text/plain"]
    assert "2 succeeded, 1 failed" in result["run"]["text/plain"] and "GREET exited" in result["run"]["text/plain"]
    assert result["run"]["text/html"].startswith("<table>") and "GREET exited with 1" in result["run"]["text/html"]
    assert "application/vnd.jupyter.widget-view+json" not in result["run"]
    assert result["repr"] == result["run"]
    assert "<table" in result["sweep"]["text/html"] and "0f3c" in result["sweep"]["text/plain"]
    assert result["magic_failed"] and result["magic_error"] == "UsageError"
    assert result["ui_modules"] == []


def test_a_view_installed_by_another_package_is_found_through_its_entry_point(tmp_path: Path) -> None:
    (tmp_path / "fakeview.py").write_text(textwrap.dedent("""
        from flow_jupyter.client import Execution, register_display


        class Badge:
            def __init__(self, run):
                self.run = run

            def _repr_html_(self):
                return f"<b>badge of {self.run.id}</b>"


        def register():
            register_display(Execution, Badge)
    """))
    dist = tmp_path / "fakeview-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeview\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[flow_jupyter.displays]\nbadge = fakeview:register\n")

    result = run_python(BLOCK_WIDGETS, SHELL_WITH_A_RUN, """
        import json

        before = "fakeview" in sys.modules
        [view] = shown(run)
        print(json.dumps({"before": before, "view": view}))
    """, PYTHONPATH=str(tmp_path))

    assert result["before"] is False  # loaded on the first display, not when the client was imported
    assert result["view"]["text/html"] == "<b>badge of 0f3c</b>"


def test_flow_declares_its_widgets_as_the_display_of_runs_and_sweeps() -> None:
    from flow_jupyter.client import Execution, Sweep
    from flow_jupyter.client.display import ENTRY_POINT_GROUP, display_factory
    from flow_jupyter.widgets import ExecutionMonitor, SweepMonitor

    [point] = [p for p in entry_points(group=ENTRY_POINT_GROUP) if p.dist and p.dist.name == "flow-jupyter"]
    assert point.value == "flow_jupyter.widgets:register_displays"

    run = Execution.from_json(SimpleNamespace(), {"id": "0f3c", "status": "running"})
    assert display_factory(run) is ExecutionMonitor
    assert display_factory(Sweep([run], {})) is SweepMonitor
