"""Two replicas of Flow — two real `jupyter server` processes on one Flow root and one PostgreSQL database — and a
launch whose host dies while submitting it: the other replica, running all along, leaves the claim alone while its
holder lives, takes it over once the holder is gone, and the run ends succeeded with one head job and one Nextflow
run.

Host A's submission blocks in its sbatch (a wrapper that waits for ever, through the submit-command trait); A is then
SIGKILLed with the commands it runs, as when its machine dies.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from serverproc import Server, running
from test_slurm_outages import (
    QUICK_MAIN,
    Rows,
    add_pipeline,
    assert_one_clean_run,
    detail,
    head_jobs,
    launch,
    logged,
    never_submitted_without_a_job,
    new_project,
    until_ended,
)
from waiting import wait_for

LEASE_SECONDS = 6.0


def blocking_sbatch(path: Path, log: Path) -> Path:
    """An sbatch that logs its call and then never returns (the host's submission hangs until the host dies)."""
    path.write_text(f'#!/usr/bin/env bash\necho "$(date +%s.%N) sbatch $*" >> {log}\n'
                    f'while :; do sleep 1; done\n')
    path.chmod(0o755)
    return path


def _label(claimed_by: str | None) -> str | None:
    """The host_id part of a claim (db/leases.py: machine|boot|pid|start|name)."""
    return claimed_by.rsplit("|", 1)[-1] if claimed_by else None


@pytest.mark.nextflow
@pytest.mark.slurm
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_replica_takes_over_the_launch_of_a_replica_killed_mid_claim_and_runs_it_once(
        tmp_path: Path, flow_root: Path, database_url: str, slurm_cluster) -> None:
    calls = tmp_path / "calls.log"
    lease = (f"--FlowSettings.claim_lease_seconds={LEASE_SECONDS}",)
    host_a = Server(tmp_path / "a", flow_root, database_url, *lease, "--FlowSettings.host_id=host-a",
                    config={"slurm_submit_command": [str(blocking_sbatch(tmp_path / "sbatch", calls))],
                            "slurm_command_timeout": 600.0})
    host_b = Server(tmp_path / "b", flow_root, database_url, *lease, "--FlowSettings.host_id=host-b")
    for server in (host_a, host_b):
        server.workdir.mkdir()
    rows = Rows(database_url)
    try:
        with running(host_a):
            add_pipeline(host_a, tmp_path, "quick", QUICK_MAIN)
            launched = launch(host_a, "quick", new_project(host_a, "replicas"))
            assert launched.status_code == 201, launched.text
            execution = launched.json()["id"]
            wait_for(lambda: logged(calls), what="host A to start submitting", timeout=120, interval=0.2)
            assert _label(rows.of(execution).claimed_by) == "host-a"

            with running(host_b):
                # While A lives (stuck in sbatch, renewing its lease), B leaves A's launch alone for three leases.
                watched_until = time.monotonic() + 3 * LEASE_SECONDS
                while time.monotonic() < watched_until:
                    row = rows.of(execution)
                    assert _label(row.claimed_by) == "host-a" and row.status == "pending", row
                    assert row.backend_job is None and head_jobs(execution) == [], row
                    assert detail(host_b, execution)["status"] == "pending"
                    time.sleep(0.5)

                host_a.kill_9(with_children=True)
                killed = time.monotonic()
                wait_for(lambda: _label(rows.of(execution).claimed_by), until=lambda label: label == "host-b",
                         what="host B to take the launch over", timeout=4 * LEASE_SECONDS + 60, interval=0.2)
                print(f"taken over {time.monotonic() - killed:.1f} s after host A died")
                ended = until_ended(host_b, execution, each=never_submitted_without_a_job(rows))
                assert ended["status"] == "succeeded", ended
                assert_one_clean_run(flow_root, rows, execution)
                assert len([line for _, line in logged(calls)]) == 1  # A's one sbatch never got to the controller
                assert rows.of(execution).claimed_by is None  # released when the run ended
    finally:
        rows.close()
