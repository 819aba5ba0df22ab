"""JupyterLab in a real browser: Debian's Chromium, driven by Playwright, opens a notebook on a real Jupyter server
with Flow, runs all its cells, and sees what a researcher sees — the launch form of the demo pipeline, a live
monitor that reaches `succeeded`, and the MultiQC report rendered inside its sandboxed frame.

Screenshots of the three widgets are written to the test's tmp_path; with ``FLOW_SCREENSHOTS_DIR`` set (e.g.
``FLOW_SCREENSHOTS_DIR=docs/images``) they are also written there, which is how the README's pictures are made.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from serverproc import TOKEN, Server, running

NOTEBOOK = "flow-in-the-browser.ipynb"
VIEWPORT = {"width": 1400, "height": 1000}
LAB_LOAD_TIMEOUT_MS = 60_000
KERNEL_TIMEOUT_MS = 60_000
SETUP_TIMEOUT_MS = 60_000  # demo data, uploads and the sample sheet (first cell)
RUN_TIMEOUT_MS = 180_000  # the demo pipeline on the local backend: a JVM and five small tools
REPORT_TIMEOUT_MS = 30_000
KERNEL_IDLE = re.compile(r"\| Idle$")  # the status bar's "Python 3 (ipykernel) | Idle"
SCREENSHOT_NAMES = ("launcher", "monitor", "report")
LAB_CHROME_HEIGHT = 300  # menu bar, tab bar, notebook toolbar and status bar, with room to spare

# JupyterLab settings for a quiet, predictable page: no news or update toasts over the notebook, and every cell
# attached to the DOM (the default windowing keeps off-screen cells out of layout, which element screenshots mind).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

CELLS = [
    # 0: a project with demo reads and reference uploaded into it, and the sample sheet built from them
    """\
from pathlib import Path

from flow_jupyter.client import FlowClient
from flow_jupyter.pipelines.demo_data import write_demo_data
from flow_jupyter.widgets import PipelineLauncher, ReportViewer

flow = FlowClient()
project = flow.create_project("Liver RNA-seq", description="Two demo samples")
demo = write_demo_data(Path("demo-data"), reads_per_sample=500)
reads = [flow.upload(demo[key], project, progress=False)
         for key in ("sample1_1", "sample1_2", "sample2_1", "sample2_2")]
reference = flow.upload(demo["fasta"], project, progress=False)
sheet_file = flow.samplesheet("demo", data=reads).save(project, filename="samplesheet.csv")""",
    # 1: the launch form, filled in with the uploaded files
    """\
PipelineLauncher("demo", project=project, params={"input": f"flow://datafile/{sheet_file.id}",
                                                   "fasta": f"flow://datafile/{reference.id}",
                                                   "multiqc_title": "Liver RNA-seq"})""",
    # 2: a run launched from code displays as its live monitor
    """\
run = flow.launch("demo", {"input": sheet_file, "fasta": reference, "multiqc_title": "Liver RNA-seq"},
                  project=project)
run""",
    # 3: the kernel waits for the end of the run (the monitor catches up once the cell returns)
    """\
run.wait(timeout=170, progress=False)
assert run.succeeded, (run.status, run.detail.get("error"))
run.status""",
    # 4: the MultiQC report in its sandboxed frame
    'ReportViewer(run, height="600px")',
]
LAUNCHER, MONITOR, REPORT = 1, 2, 4  # the cells whose outputs the test looks at


def _write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def _configure_lab(server: Server) -> None:
    for plugin, values in LAB_SETTINGS.items():
        answer = requests.put(f"{server.base}/lab/api/settings/{plugin}", json={"raw": json.dumps(values)},
                              headers={"Authorization": f"token {TOKEN}"}, timeout=30)
        assert answer.status_code == 204, (plugin, answer.status_code, answer.text)


@contextmanager
def _chromium() -> Iterator[Browser]:
    """Debian's Chromium (the `chromium` package), so Playwright needs no browser download of its own;
    --no-sandbox because Chromium refuses its own sandbox when run as root, as tests are."""
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed (scripts/install-system.sh installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def _cell_errors(page: Page) -> list[str]:
    """Tracebacks shown in the notebook (an error output renders with the stderr mime type)."""
    outputs = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return [text for text in outputs.all_inner_texts() if "Error" in text or "Traceback" in text]


def _wait(page: Page, locator: Locator, what: str, timeout_ms: int, server: Server, shots: Path) -> None:
    """Wait for ``locator`` to be visible; on timeout fail with the notebook's errors, a page screenshot and the
    end of the server's log, so a failure says why."""
    try:
        locator.wait_for(state="visible", timeout=timeout_ms)
    except PlaywrightTimeout:
        page.screenshot(path=str(shots / "failure.png"), full_page=True)
        errors = "\n".join(_cell_errors(page)) or "(no error in the notebook)"
        pytest.fail(f"{what} did not appear within {timeout_ms / 1000:.0f} s. Notebook errors:\n{errors}\n"
                    f"Page: {shots / 'failure.png'}\nServer log (end):\n{server.log.read_text()[-4000:]}")


def _screenshot(page: Page, locator: Locator, name: str, shots: Path) -> Path:
    """An element screenshot of a whole output. The notebook scrolls inside the page, between the toolbar and the
    status bar, so the page is first made tall enough for the output to fit in that panel."""
    height = locator.bounding_box()["height"]
    page.set_viewport_size({"width": VIEWPORT["width"],
                            "height": max(VIEWPORT["height"], int(height) + LAB_CHROME_HEIGHT)})
    locator.evaluate("output => output.scrollIntoView({block: 'center'})")
    path = shots / f"{name}.png"
    locator.screenshot(path=str(path), animations="disabled", timeout=30_000)
    published = os.environ.get("FLOW_SCREENSHOTS_DIR")
    if published:
        Path(published).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(published) / path.name)
    return path


def _the_only_execution(server: Server) -> dict:
    """The server's detail of the one run it has, which must have succeeded."""
    headers = {"Authorization": f"token {TOKEN}"}
    executions = requests.get(f"{server.base}/flow/api/executions", headers=headers, timeout=30).json()["items"]
    assert [e["status"] for e in executions] == ["succeeded"]
    return requests.get(f"{server.base}/flow/api/executions/{executions[0]['id']}", headers=headers,
                        timeout=30).json()


@pytest.mark.nextflow
@pytest.mark.timeout(300)
def test_jupyterlab_shows_the_launcher_a_live_monitor_and_the_sandboxed_multiqc_report(tmp_path: Path) -> None:
    notebooks, root, shots = tmp_path / "notebooks", tmp_path / "flow-root", tmp_path / "screenshots"
    for directory in (notebooks, root, shots):
        directory.mkdir()
    _write_notebook(notebooks / NOTEBOOK)
    server = Server(notebooks, root, f"sqlite:///{root / 'flow.sqlite'}", "--FlowSettings.executor=local")

    with running(server), _chromium() as browser:
        _configure_lab(server)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(30_000)
        page.goto(f"{server.base}/lab/tree/{NOTEBOOK}?token={TOKEN}", timeout=LAB_LOAD_TIMEOUT_MS)

        # The notebook is open and its kernel (started by this server, so FlowClient() finds it) is idle.
        cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell")
        _wait(page, cells.nth(len(CELLS) - 1), "the notebook", LAB_LOAD_TIMEOUT_MS, server, shots)
        # The status bar's kernel status, not the toolbar's indicator: that one reads "idle" before the session has
        # a kernel, and Run All then clears the cells instead of running them.
        _wait(page, page.locator("#jp-main-statusbar").get_by_text(KERNEL_IDLE), "an idle kernel", KERNEL_TIMEOUT_MS,
              server, shots)

        page.keyboard.press("Control+b")  # fold the file browser away: the outputs get the page's width
        # Run → Run All Cells, as a user would.
        page.locator("#jp-MainMenu .lm-MenuBar-item", has_text="Run").first.click()
        page.locator("#jp-mainmenu-run").get_by_text("Run All Cells", exact=True).click()

        # The launcher: the demo pipeline's form with its required fields, and a Launch button.
        launcher = cells.nth(LAUNCHER).locator(".jp-OutputArea")
        _wait(page, launcher.get_by_role("button", name="Launch"), "the launcher", SETUP_TIMEOUT_MS, server, shots)
        form_text = launcher.inner_text()
        for field in ("input", "fasta"):
            assert field in form_text.split(), f"the form has no {field!r} field:\n{form_text}"

        # The monitor, once the run has ended: status succeeded, then — as the server tells it — a bar per process
        # and a row per task (the last refresh's widgets may still be arriving when the status turns).
        monitor = cells.nth(MONITOR).locator(".jp-OutputArea")
        # The run's badge (a span), not a task row: tasks say "succeeded" too, while the run may still be going.
        _wait(page, monitor.locator("span").get_by_text("succeeded", exact=True), "the monitor's 'succeeded'",
              RUN_TIMEOUT_MS, server, shots)
        run = _the_only_execution(server)
        assert run["backend"] == "local"
        assert run["provenance"]["notebook"].endswith(NOTEBOOK), "launched from this notebook, and recorded so"
        for process in run["processes"]:
            expect(monitor.locator(f"code:text-is('{process}')")).to_be_visible(timeout=10_000)
        expect(monitor.locator(".widget-hprogress")).to_have_count(1 + len(run["processes"]), timeout=10_000)
        monitor.get_by_text("Tasks", exact=True).click()  # unfold the task table
        expect(monitor.locator("table.flow-tasks tr")).to_have_count(1 + run["task_count"], timeout=10_000)

        # The report: a sandboxed frame without same-origin rights, inside which MultiQC's scripts ran.
        report = cells.nth(REPORT).locator(".jp-OutputArea")
        frame = report.locator("iframe")
        _wait(page, frame, "the report frame", REPORT_TIMEOUT_MS, server, shots)
        sandbox = frame.get_attribute("sandbox")
        assert sandbox is not None and "allow-scripts" in sandbox.split()
        assert "allow-same-origin" not in sandbox.split()
        frame.scroll_into_view_if_needed()  # the frame loads lazily, once near the viewport
        rendered = frame.content_frame.locator("#general_stats_table_table")  # MultiQC's General Statistics
        _wait(page, rendered, "MultiQC's general statistics table", REPORT_TIMEOUT_MS, server, shots)
        plot = frame.content_frame.locator(".js-plotly-plot .main-svg").first  # drawn by MultiQC's own scripts
        _wait(page, plot, "a MultiQC plot", REPORT_TIMEOUT_MS, server, shots)
        assert frame.content_frame.locator("body").evaluate("() => window.origin") == "null", "an opaque origin"
        assert _cell_errors(page) == []
        # Show the numbers rather than MultiQC's banner: the report scrolled to its General Statistics.
        frame.content_frame.locator("#general_stats").evaluate("section => section.scrollIntoView()")

        for name, locator in zip(SCREENSHOT_NAMES, (launcher, monitor, report)):
            assert _screenshot(page, locator, name, shots).stat().st_size > 10_000
