"""A real `jupyter server` with real Nextflow on the real dev Slurm while its controller goes away: stopped for a
minute in the middle of a run, hung (SIGSTOP) while a head job is being submitted, hung when the host is killed and
still down when it comes back; and the scheduler calls of a host following fifty runs, counted.

The controller is stopped, stalled and restored only through scripts/slurm.sh, by the pid file of the daemon it
started (never by name); every test puts it back in a `finally`. In site mode (FLOW_TEST_SLURM=site) those tests are
skipped (conftest, marker `stops_controller`); the count of scheduler calls runs there too. Scheduler commands are
counted and stalled through the backend's command traits (argv prefixes): a wrapper script logs each call and then
runs the real command.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from serverproc import Server, running
from sqlalchemy import create_engine, select
from waiting import wait_for

from conftest import SCRIPTS
from gitrepo import git

from flow_jupyter.db.models import Execution

pytestmark = [pytest.mark.nextflow, pytest.mark.slurm]

TERMINAL = {"succeeded", "failed", "cancelled", "lost"}
STEPS = 5
#: Five processes one after the other, each a Slurm job of its own. The second naps long enough for the controller
#: to be stopped while it runs: it ends during the outage, so Nextflow must `sbatch` the third one with no controller.
CHAIN_MAIN = "nextflow.enable.dsl = 2\nparams.outdir = 'results'\n" + "".join(f"""
process STEP{n} {{
    publishDir "${{params.outdir}}", mode: 'copy'
    input:
    val previous
    output:
    path "step{n}.txt"
    script:
    "sleep {20 if n == 2 else 2}; echo 'step {n} after ${{previous}}' > step{n}.txt"
}}
""" for n in range(1, STEPS + 1)) + "workflow { " + "(".join(f"STEP{n}" for n in range(STEPS, 0, -1)) + \
    "('start')" + ")" * (STEPS - 1) + " }\n"
QUICK_MAIN = """nextflow.enable.dsl = 2
params.outdir = 'results'
process QUICK {
    publishDir "${params.outdir}", mode: 'copy'
    output:
    path 'quick.txt'
    script:
    "echo quick > quick.txt"
}
workflow { QUICK() }
"""


# --- the controller ------------------------------------------------------------------------------------------------

def controller(verb: str) -> None:
    """scripts/slurm.sh start | stop-controller | stall-controller | resume-controller (by its pid file only)."""
    subprocess.run([str(SCRIPTS / "slurm.sh"), verb], check=True, capture_output=True, timeout=180)


@pytest.fixture
def controller_restored(slurm_cluster) -> Iterator[None]:
    """The controller answers when the test starts (another test may have it down: wait), and is started or woken
    again however the test ends."""
    wait_for(lambda: subprocess.run([str(SCRIPTS / "slurm.sh"), "status"], capture_output=True,
                                    timeout=60).returncode == 0,
             what="the Slurm controller to answer (stopped by another test?)", timeout=600, interval=2)
    try:
        yield
    finally:
        controller("start")  # wakes a stalled controller, starts a stopped one


def wrapper(path: Path, command: str, log: Path, stall_on_submit: bool = False) -> Path:
    """A script that logs one line per call (time, command, arguments) to ``log`` and then runs ``command``.

    ``stall_on_submit``: the first real submission (``--parsable``) stalls the controller just before sbatch sends
    it, so that sbatch hangs exactly while a launch is being submitted. The outage is held in this test process's
    name (slurm.sh's FLOW_SLURM_HOLDER), so the test's own `resume-controller`/`start` end it and nobody else's."""
    stall = ""
    if stall_on_submit:
        stall = (f'if [[ " $* " == *" --parsable "* ]] && mkdir {path}.stalled 2>/dev/null; then\n'
                 f'  FLOW_SLURM_HOLDER={os.getpid()} {SCRIPTS / "slurm.sh"} stall-controller 2>>{log}\n'
                 f'  echo "$(date +%s.%N) STALLED" >> {log}\nfi\n')
    path.write_text(f'#!/usr/bin/env bash\necho "$(date +%s.%N) {command} $*" >> {log}\n{stall}'
                    f'exec {command} "$@"\n')
    path.chmod(0o755)
    return path


def logged(log: Path) -> list[tuple[float, str]]:
    """(time, line) of each call a wrapper logged."""
    if not log.exists():
        return []
    calls = []
    for line in log.read_text().splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            calls.append((float(stamp), rest))
        except ValueError:
            continue  # slurm.sh's own messages
    return calls


def head_jobs(*executions: str) -> list[str]:
    """Every job named flow-<uuid> (of these executions) the controller knows, running or ended: it keeps ended
    ones for MinJobAge (300 s on the dev cluster), so a duplicate that came and went is still counted."""
    shown = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, timeout=60)
    names = "|".join(re.escape(execution) for execution in executions)
    return re.findall(rf"^JobId=(\d+) JobName=flow-(?:{names})\s", shown.stdout, re.MULTILINE)


def nextflow_runs(run_dir: Path) -> list[str]:
    """The runs Nextflow started in this launch directory (its own history, one line per run)."""
    history = run_dir / ".nextflow" / "history"
    return history.read_text().splitlines() if history.exists() else []


# --- the server ----------------------------------------------------------------------------------------------------

def api(server: Server, method: str, path: str, user: str | None = "alice", **kw: Any) -> requests.Response:
    """One API call; the timeout is the 'the API answers' part of the tests: no call may hang on the scheduler."""
    return requests.request(method, f"{server.base}/flow/api/{path}", headers=server.headers(user), timeout=20, **kw)


def detail(server: Server, execution: str) -> dict:
    reply = api(server, "GET", f"executions/{execution}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def until_ended(server: Server, execution: str, timeout: float = 420,
                each: Callable[[dict], None] | None = None) -> dict:
    """The execution's detail once it ended; ``each`` sees every detail on the way (to assert what it passes by)."""
    def probe() -> dict:
        seen = detail(server, execution)
        if each is not None:
            each(seen)
        return seen
    return wait_for(probe, until=lambda d: d["status"] in TERMINAL, what=f"execution {execution} to end",
                    timeout=timeout, interval=0.5)


def add_pipeline(server: Server, workdir: Path, name: str, main: str) -> None:
    repo = workdir / name
    repo.mkdir()
    (repo / "main.nf").write_text(main)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "v1"], ["tag", "v1.0"]):
        git(repo, *args)
    added = api(server, "POST", "pipelines", user=None, json={"source": str(repo), "ref": "v1.0"})
    assert added.status_code == 201, added.text


def new_project(server: Server, name: str) -> int:
    created = api(server, "POST", "projects", json={"name": name})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def launch(server: Server, pipeline: str, project: int, **extra: Any) -> requests.Response:
    return api(server, "POST", "executions", json={"pipeline": pipeline, "project": project, "backend": "slurm",
                                                   "params": {}, **extra})


class Rows:
    """Flow's database as the test reads it (beside the server): what the API does not show, e.g. the job."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def of(self, execution: str) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(select(Execution.status, Execution.backend_job, Execution.claimed_by,
                                             Execution.run_dir).where(Execution.uuid == execution)).one()

    def close(self) -> None:
        self.engine.dispose()


def never_submitted_without_a_job(rows: Rows) -> Callable[[dict], None]:
    """A check for each detail seen: 'submitted' (or later) only once the backend accepted a head job, which the
    manager records with the status (read after the API answered, so a status seen implies its job is stored)."""
    def check(seen: dict) -> None:
        if seen["status"] != "pending":
            assert rows.of(seen["id"]).backend_job is not None, f"{seen['status']} without a head job: {seen}"
    return check


def assert_one_clean_run(root: Path, rows: Rows, execution: str) -> None:
    """Exactly one head job ever, one Nextflow run in the run directory, and no trace of a second one."""
    assert len(head_jobs(execution)) == 1, head_jobs(execution)
    run_dir = root / rows.of(execution).run_dir
    assert len(nextflow_runs(run_dir)) == 1, nextflow_runs(run_dir)
    for name in ("head.out", ".nextflow.log"):
        text = (run_dir / name).read_text(errors="replace") if (run_dir / name).exists() else ""
        assert "Trace file already exists" not in text, name


def _setup(tmp_path: Path, *options: str, config: dict[str, Any] | None = None) -> tuple[Path, str, Server]:
    root = tmp_path / "flow-root"
    root.mkdir()
    url = f"sqlite:///{root / 'flow.sqlite'}"
    return root, url, Server(tmp_path, root, url, *options, config=config)


# --- a) stopped for a minute mid-run -------------------------------------------------------------------------------

OUTAGE_SECONDS = 60


@pytest.mark.stops_controller
def test_a_run_outlives_a_minute_without_the_controller_and_a_launch_meanwhile_waits_as_pending(
        tmp_path: Path, controller_restored) -> None:
    root, url, server = _setup(tmp_path)
    rows = Rows(url)
    with running(server):
        add_pipeline(server, tmp_path, "chain", CHAIN_MAIN)
        add_pipeline(server, tmp_path, "quick", QUICK_MAIN)
        project = new_project(server, "outage")
        launched = launch(server, "chain", project)
        assert launched.status_code == 201, launched.text
        run = launched.json()["id"]
        midway = wait_for(lambda: detail(server, run), until=lambda d: d["progress"].get("running", 0) >= 1
                          and d["progress"].get("succeeded", 0) >= 1 or d["status"] in TERMINAL,
                          what="the first step to succeed and the second to run", timeout=300, interval=0.5)
        assert midway["status"] == "running" and midway["progress"]["succeeded"] == 1, midway

        controller("stop-controller")
        try:
            outage_ends = time.monotonic() + OUTAGE_SECONDS
            refused = launch(server, "quick", project)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["reason"] == "scheduler_unavailable"
            assert int(refused.headers["Retry-After"]) > 0
            kept = refused.json()["execution"]["id"]
            noted = False
            while time.monotonic() < outage_ends:  # the outage lasts its minute; the test watches it throughout
                waiting = detail(server, kept)
                assert waiting["status"] == "pending", waiting
                followed = detail(server, run)
                assert followed["status"] == "running", followed
                noted = noted or bool(followed["backend_error"])
                time.sleep(1)
            assert noted, "the running execution never showed the scheduler's error during the outage"
            assert detail(server, kept)["backend_error"], detail(server, kept)
        finally:
            controller("start")

        ended = until_ended(server, run)
        assert ended["status"] == "succeeded", ended
        assert ended["progress"]["succeeded"] == STEPS and ended["task_count"] == STEPS, ended
        assert ended["backend_error"] is None
        tasks = api(server, "GET", f"executions/{run}/tasks").json()["items"]
        assert len(tasks) == STEPS and {t["status"] for t in tasks} == {"succeeded"}, tasks
        outputs = api(server, "GET", "files", params={"execution": run}).json()["items"]
        assert sorted(f["filename"] for f in outputs) == [f"step{n}.txt" for n in range(1, STEPS + 1)]

        late = until_ended(server, kept, each=never_submitted_without_a_job(rows))
        assert late["status"] == "succeeded" and late["backend_error"] is None, late
        assert [f["filename"] for f in api(server, "GET", "files", params={"execution": kept}).json()["items"]] \
            == ["quick.txt"]
        assert_one_clean_run(root, rows, kept)
    rows.close()


# --- b) hung while a head job is being submitted -------------------------------------------------------------------

@pytest.mark.stops_controller
def test_a_submission_the_hung_controller_takes_late_is_adopted_not_repeated(tmp_path: Path,
                                                                           controller_restored) -> None:
    calls = tmp_path / "calls.log"
    config = {"slurm_submit_command": [str(wrapper(tmp_path / "sbatch", "sbatch", calls, stall_on_submit=True))],
              "slurm_status_command": [str(wrapper(tmp_path / "squeue", "squeue", calls))],
              "slurm_command_timeout": 4.0}
    root, url, server = _setup(tmp_path, config=config)
    rows = Rows(url)
    with running(server):
        add_pipeline(server, tmp_path, "quick", QUICK_MAIN)
        try:
            launched = launch(server, "quick", new_project(server, "hung"))
            assert launched.status_code == 201, launched.text
            execution = launched.json()["id"]
            stalled_at = wait_for(lambda: [t for t, line in logged(calls) if line == "STALLED"], what="the "
                                  "submission to stall the controller", timeout=120, interval=0.2)[0]

            def retried() -> list[tuple[float, str]]:  # the manager tries again while the controller still hangs
                assert detail(server, execution)["status"] == "pending"
                return [(t, line) for t, line in logged(calls) if t > stalled_at + 1 and line != "STALLED"]
            wait_for(retried, what="a second attempt while the controller hangs", timeout=180, interval=0.5)
        finally:
            controller("resume-controller")

        ended = until_ended(server, execution, each=never_submitted_without_a_job(rows))
        assert ended["status"] == "succeeded", (ended["error"], head_jobs(execution), logged(calls))
        assert_one_clean_run(root, rows, execution)
        submissions = [line for _, line in logged(calls) if line.startswith("sbatch") and "--parsable" in line]
        print(f"sbatch submissions: {len(submissions)}; scheduler calls: {len(logged(calls))}")
    rows.close()


# --- c) killed while sbatch hangs; back up with the controller still down ---------------------------------------------

@pytest.mark.stops_controller
def test_a_host_killed_mid_submission_and_restarted_without_a_controller_submits_once_it_is_back(
        tmp_path: Path, controller_restored) -> None:
    calls = tmp_path / "calls.log"
    stalling = {"slurm_submit_command": [str(wrapper(tmp_path / "sbatch", "sbatch", calls, stall_on_submit=True))],
                "slurm_command_timeout": 60.0}
    root, url, first = _setup(tmp_path, config=stalling)
    rows = Rows(url)
    try:
        with running(first):
            add_pipeline(first, tmp_path, "quick", QUICK_MAIN)
            launched = launch(first, "quick", new_project(first, "killed"))
            assert launched.status_code == 201, launched.text
            execution = launched.json()["id"]
            wait_for(lambda: [line for _, line in logged(calls) if line == "STALLED"],
                     what="the submission to stall the controller", timeout=120, interval=0.2)
            assert rows.of(execution).claimed_by is not None and rows.of(execution).status == "pending"
            first.kill_9(with_children=True)  # the host and the sbatch it was waiting for
        controller("stop-controller")

        second_dir = tmp_path / "second"
        second_dir.mkdir()
        logging_only = {"slurm_submit_command": [str(wrapper(tmp_path / "sbatch2", "sbatch", calls))],
                        "slurm_status_command": [str(wrapper(tmp_path / "squeue2", "squeue", calls))],
                        "slurm_command_timeout": 10.0}
        second = Server(second_dir, root, url, config=logging_only)
        with running(second):
            restarted = time.monotonic()
            restarted_at = time.time()

            def attempts() -> list[str]:  # the reconcile meets the stopped controller, and is tried again
                assert detail(second, execution)["status"] == "pending"
                return [line for t, line in logged(calls) if t > restarted_at]
            wait_for(attempts, until=lambda seen: len(seen) >= 3, what="three scheduler attempts by the restarted "
                     "host while the controller is down", timeout=240, interval=0.5)
            print(f"three attempts in {time.monotonic() - restarted:.0f} s")
            controller("start")
            ended = until_ended(second, execution, each=never_submitted_without_a_job(rows))
            assert ended["status"] == "succeeded", ended
            assert_one_clean_run(root, rows, execution)
    finally:
        controller("start")
        rows.close()


# --- d) fifty runs, one status query per round --------------------------------------------------------------------

RUNS = 50
POLL_SECONDS = 2.0
WINDOW_CALLS = 10


def test_fifty_active_runs_cost_one_status_query_per_round(tmp_path: Path, controller_restored) -> None:
    calls = tmp_path / "calls.log"
    config = {"slurm_status_command": [str(wrapper(tmp_path / "squeue", "squeue", calls))],
              "slurm_show_command": [str(wrapper(tmp_path / "scontrol", "scontrol", calls))],
              "backend_poll_seconds": POLL_SECONDS, "scheduler_start_jitter_seconds": 0.5}
    root, url, server = _setup(tmp_path, config=config)
    executions: list[str] = []
    try:
        with running(server):
            add_pipeline(server, tmp_path, "quick", QUICK_MAIN)
            project = new_project(server, "fifty")
            for _ in range(RUNS):  # held head jobs: active for Slurm and Flow, and they never run
                launched = launch(server, "quick", project, resources={"extra_directives": ["--hold"]})
                assert launched.status_code == 201, launched.text
                executions.append(launched.json()["id"])

            def submitted() -> int:
                listed = api(server, "GET", "executions", params={"status": "submitted", "limit": 100}).json()
                return len(listed["items"])
            wait_for(submitted, until=lambda n: n == RUNS, what=f"all {RUNS} held runs to be submitted",
                     timeout=300, interval=1)

            start = time.time()
            window = wait_for(lambda: [t for t, _ in logged(calls) if t > start], until=lambda seen: len(seen)
                              >= WINDOW_CALLS, what=f"{WINDOW_CALLS} status queries", timeout=300, interval=0.5)
            window = window[:WINDOW_CALLS]
            rounds = (window[-1] - start) / POLL_SECONDS
            print(f"{len(window)} status-class commands in {window[-1] - start:.1f} s = {rounds:.1f} rounds "
                  f"for {RUNS} runs")
            # One per round (+2 for the rounds at both edges of the window); one per run would be 50 a round.
            assert len(window) <= rounds + 2, logged(calls)[-WINDOW_CALLS:]
            assert all("-j" in line or "--name" in line for t, line in logged(calls) if t > start
                       and line.startswith("squeue")), "a status query listed every job in the cluster"

            before_cancel = time.time()
            for execution in executions:
                assert api(server, "POST", f"executions/{execution}/cancel").status_code == 200
            wait_for(lambda: {detail(server, e)["status"] for e in executions}, until=lambda seen: seen
                     == {"cancelled"}, what="the fifty runs to be cancelled", timeout=300, interval=2)
            listing_all = [line for t, line in logged(calls) if t > before_cancel and line.startswith("squeue")
                           and "-j" not in line and "--name" not in line]
            assert listing_all == [], "cancelling asked about every job in the cluster"
    finally:
        left = head_jobs(*executions) if executions else []
        if left:
            subprocess.run(["scancel", *left], capture_output=True, timeout=60)
