"""A hostile report in a real browser (issue 14 E): a run publishes a `multiqc_report.html` whose scripts try every
way to the researcher's Jupyter session — the cookie, the origin's localStorage, the API with the cookie, the page
that embeds it, and a popup window — and get none of them.

Debian's Chromium through Playwright, started exactly as tests/test_lab_browser.py does, against a real `jupyter
server` with Flow. The run is planted as database rows plus a published file (the report code path is the same as
for a Nextflow run: a published data file of the execution matching the pipeline's tower.yml), so no JVM is needed.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page
from serverproc import TOKEN, Server, running
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_lab_browser import _chromium

from flow_jupyter.db.models import DataFile, Execution, Origin, Pipeline, PipelineVersion, User

CANARY = f"canary-{uuid.uuid4().hex}"
REPORT_PATH = "results/multiqc/multiqc_report.html"
PROBE_TIMEOUT_MS = 20_000

# The report's own scripts: each probe records what it got; a cookie or canary anywhere in the results is a leak.
HOSTILE_REPORT = """<!doctype html>
<html><head><meta charset="utf-8"><title>MultiQC</title></head>
<body>
<h1>MultiQC report</h1>
<button id="popup" onclick="window.open('/flow-sandbox-popup-target', '_blank')">open</button>
<pre id="results"></pre>
<script>
(async function () {
  const r = {origin: window.origin, framed: window.top !== window};
  const attempt = (name, fn) => { try { r[name] = String(fn()); } catch (e) { r[name] = 'refused:' + e.name; } };
  attempt('cookie', () => document.cookie);
  attempt('localStorage', () => window.localStorage.getItem('flow_canary'));
  attempt('sessionStorage', () => window.sessionStorage.getItem('flow_canary'));
  attempt('topCookie', () => window.top.document.cookie);
  attempt('topStorage', () => window.top.localStorage.getItem('flow_canary'));
  attempt('topLocation', () => window.top.location.href);
  attempt('parentBody', () => window.parent.document.body.innerHTML.length);
  const call = async (name, url, init) => {
    try {
      const reply = await fetch(url, Object.assign({credentials: 'include'}, init || {}));
      r[name] = 'answered:' + reply.status + ':' + (await reply.text()).slice(0, 200);
    } catch (e) { r[name] = 'refused:' + e.name; }
  };
  await call('fetchContents', '/api/contents');
  await call('fetchMarked', '/flow-sandbox-fetch');
  await call('fetchProjects', '/flow/api/projects');
  await call('fetchCreate', '/flow/api/projects', {method: 'POST', body: JSON.stringify({name: 'pwned-by-report'}),
                                                  headers: {'Content-Type': 'application/json'}});
  attempt('xhr', () => { const x = new XMLHttpRequest(); x.open('GET', '/api/contents', false); x.send();
                         return x.status + ':' + x.responseText.slice(0, 200); });
  attempt('beacon', () => navigator.sendBeacon('/flow-sandbox-beacon', 'x'));  // queued, then refused: see the log
  document.getElementById('results').textContent = JSON.stringify(r);
})();
</script>
</body></html>
"""


# --- arranging the run -------------------------------------------------------------------------------------------


def plant_run_with_report(server: Server, root: Path) -> str:
    """Alice's finished run of the demo pipeline that published the hostile report; returns the execution's uuid."""
    created = requests.post(f"{server.base}/flow/api/projects", json={"name": "liver"},
                            headers=server.headers("alice"), timeout=30)
    assert created.status_code == 201, created.text
    execution_uuid = str(uuid.uuid4())
    run_dir = f"executions/{execution_uuid}"
    report = root / run_dir / REPORT_PATH
    report.parent.mkdir(parents=True)
    report.write_text(HOSTILE_REPORT)
    engine = create_engine(server.database_url)
    try:
        with Session(engine) as session, session.begin():
            alice = session.scalar(select(User).where(User.name == "alice"))
            version = session.scalar(select(PipelineVersion).join(Pipeline).where(Pipeline.name == "demo"))
            execution = Execution(uuid=execution_uuid, owner_id=alice.id, project_id=created.json()["id"],
                                  pipeline_version_id=version.id, status="succeeded", backend="local",
                                  run_dir=run_dir)
            session.add(execution)
            session.flush()
            data = report.read_bytes()
            session.add(DataFile(owner_id=alice.id, project_id=execution.project_id, filename=report.name,
                                 size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                 storage_path=f"{run_dir}/{REPORT_PATH}", origin=Origin.output,
                                 execution_id=execution.id))
    finally:
        engine.dispose()
    return execution_uuid


def report_url(server: Server, execution_uuid: str) -> str:
    listed = requests.get(f"{server.base}/flow/api/executions/{execution_uuid}/reports",
                          headers=server.headers("alice"), timeout=30).json()["items"]
    assert [item["path"] for item in listed] == [REPORT_PATH]
    return f"{server.base}/flow/api/{listed[0]['url']}"  # answered relative to the API root


# --- what the browser sees ---------------------------------------------------------------------------------------


def log_in_with_a_readable_canary(page: Page, server: Server) -> None:
    """The researcher's session: logged in with the token, plus a script-readable cookie and a localStorage entry
    on the Jupyter origin, so "the report did not read them" means something (a page of the origin does)."""
    page.goto(f"{server.base}/api/status?token={TOKEN}")
    page.context.add_cookies([{"name": "flow_canary", "value": CANARY, "url": server.base}])
    page.goto(f"{server.base}/flow-sandbox-jupyter-page")  # any HTML page of the Jupyter origin (its 404 page)
    page.evaluate("canary => localStorage.setItem('flow_canary', canary)", CANARY)
    assert CANARY in page.evaluate("() => document.cookie"), "control: the origin's own pages can read the canary"
    assert any(c["name"].startswith("username-") for c in page.context.cookies()), "logged in by cookie"


def probe_results(frame) -> dict:
    """What the report's scripts recorded (they ran: the results are written by them)."""
    results = frame.locator("#results")
    results.filter(has_text="origin").wait_for(timeout=PROBE_TIMEOUT_MS)
    return json.loads(results.text_content())


def assert_nothing_reached(results: dict, session_cookies: list[dict]) -> None:
    secrets = [CANARY, *(c["value"] for c in session_cookies if len(c["value"]) >= 8)]
    leaked = [(probe, value) for probe, value in results.items() for secret in secrets if secret in str(value)]
    assert leaked == [], leaked
    assert results["origin"] == "null", "the report runs in an opaque origin"
    assert results["cookie"] in ("", "refused:SecurityError")
    assert results["localStorage"] == "null", "the shim's empty in-memory storage, never the origin's"
    for probe in ("fetchContents", "fetchMarked", "fetchProjects", "fetchCreate", "xhr"):
        assert results[probe].startswith("refused:"), (probe, results[probe])


def assert_sandbox_headers(headers: dict[str, str]) -> None:
    csp = headers["content-security-policy"]
    sandbox = csp.split(";", 1)[0].split()
    assert sandbox[:2] == ["sandbox", "allow-scripts"], csp
    assert "allow-same-origin" not in csp and "allow-popups-to-escape-sandbox" not in csp, csp
    assert "allow-top-navigation" not in csp and "allow-modals" not in sandbox, csp
    assert headers["x-content-type-options"] == "nosniff"


# --- the story -----------------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_hostile_report_reaches_neither_the_cookie_nor_the_api_nor_an_unsandboxed_window(tmp_path: Path) -> None:
    workdir, root = tmp_path / "notebooks", tmp_path / "flow-root"
    workdir.mkdir()
    root.mkdir()
    server = Server(workdir, root, f"sqlite:///{root / 'flow.sqlite'}", "--FlowSettings.executor=local")

    with running(server), _chromium() as browser:
        execution = plant_run_with_report(server, root)
        url = report_url(server, execution)
        page = browser.new_page()
        page.set_default_timeout(30_000)
        log_in_with_a_readable_canary(page, server)
        session_cookies = page.context.cookies()

        # Opened on its own, as the "open in a new tab" link does.
        response = page.goto(url)
        assert response is not None and response.status == 200
        assert_sandbox_headers(response.headers)
        assert_nothing_reached(probe_results(page.main_frame), session_cookies)
        assert page.evaluate("() => window.origin") == "null"

        # A popup the report opens onto a page of the Jupyter origin stays sandboxed: opaque, no cookie.
        with page.context.expect_page() as opened:
            page.click("#popup")
        popup = opened.value
        popup.wait_for_load_state()
        assert popup.url.endswith("/flow-sandbox-popup-target")
        assert popup.evaluate("() => window.origin") == "null", "the popup escaped the report's sandbox"
        reached = popup.evaluate("() => { try { return document.cookie } catch (e) { return 'refused:' + e.name } }")
        assert reached == "refused:SecurityError" and CANARY not in reached
        assert popup.evaluate("() => { try { return String(localStorage.length) } "
                              "catch (e) { return 'refused:' + e.name } }") == "refused:SecurityError"
        popup.close()

        # Embedded in a page of the Jupyter origin by a frame with no sandbox attribute of its own: the response
        # header alone keeps it out of the embedding page.
        page.goto(f"{server.base}/flow-sandbox-jupyter-page")
        page.evaluate("url => { const f = document.createElement('iframe'); f.src = url; f.id = 'report';"
                      " document.body.appendChild(f); }", url)
        frame = page.frame_locator("#report")
        results = probe_results(frame)
        assert results["framed"] is True
        assert_nothing_reached(results, session_cookies)
        for probe in ("topCookie", "topStorage", "topLocation", "parentBody"):
            assert results[probe] == "refused:SecurityError", (probe, results[probe])

        # The POST the report tried created nothing, for the server's own user (an admin, who sees every project).
        everything = requests.get(f"{server.base}/flow/api/projects", headers=server.headers(None), timeout=30)
        assert [p["name"] for p in everything.json()["items"]] == ["liver"]
        # Requests of unknown paths are logged (the popup's is, as a control); the report's never got there.
        log = server.log.read_text()
        assert "/flow-sandbox-popup-target" in log
        assert "/flow-sandbox-fetch" not in log and "/flow-sandbox-beacon" not in log
