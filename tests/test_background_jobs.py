"""Deferred zips are durable background jobs: a host claims one (a lease) before building it, a crash or a restart
leaves it to be claimed and rebuilt from scratch, a live replica's claim is respected until its lease expires, two
hosts never build one job, a closing host gives its jobs back and shuts its pools down, and two replicas cleaning up
at once is harmless.

Crashed and concurrent hosts are real: a claimant is a process that ran and exited, a replica is a second FlowHost on
the same database and storage (SQLite and PostgreSQL).
"""
from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from waiting import wait_for_async
from test_downloads import host, make_project, store, unzip, wait_for_job  # noqa: F401 (host is a fixture)
from flow_jupyter.data import zipjobs
from flow_jupyter.data.zipjobs import ZIP_TASK, create_zip_job, expire_zips, zip_job_runner
from flow_jupyter.db.models import BackgroundJob, JobStatus, utcnow
from flow_jupyter.host import FlowHost
from flow_jupyter.identity import Identity
from flow_jupyter.jobs import PeriodicTasks

#: A claimant on another machine: never provably dead, so only its lease's age frees its jobs.
LIVE_REPLICA = "replica-b.cluster.example|0b00t1d0|4242|1234|replica-b"


def crashed_claimant() -> str:
    """The claim-lease identity of a Flow process that ran on this machine and is gone (as after kill -9)."""
    done = subprocess.run([sys.executable, "-c", "from flow_jupyter.db.leases import host_identity; "
                           "print(host_identity('crashed'))"], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def queue_claimed_zip(host, owner: str, file_ids: list[int], claimed_by: str, status: JobStatus,
                      claimed_ago: timedelta = timedelta(0)) -> int:
    """A zip job as another host left it: queued and claimed in one transaction, so no runner sees it unclaimed."""
    def queue(session, actor):
        job_id = create_zip_job(session, actor, host.storage, file_ids)
        session.execute(update(BackgroundJob).where(BackgroundJob.id == job_id).values(
            status=status, claimed_by=claimed_by, claimed_at=utcnow() - claimed_ago,
            started_at=utcnow() if status == JobStatus.running else None))
        return job_id

    return host.run_as(Identity(owner), queue)


def job_row(host, job_id: int) -> BackgroundJob:
    with host.db.session() as session:
        job = session.get_one(BackgroundJob, job_id)
        session.expunge(job)
        return job


def zips_dir(host):
    return host.storage.root / "zips"


@pytest.fixture
def replica(host):
    """A second host on the same database and storage, as another replica of the service would be."""
    other = FlowHost(host.settings)
    yield other
    other.close()


# --- crashes and restarts --------------------------------------------------------------------------------------


async def test_a_zip_left_half_built_by_a_crashed_host_is_rebuilt_from_scratch_and_served(api, host) -> None:
    project = make_project(host, "alice", "reads")
    ids = [store(host, "alice", project, "a.fq.gz", b"aaa"), store(host, "alice", project, "b.fq.gz", b"bbbb")]
    job_id = queue_claimed_zip(host, "alice", ids, crashed_claimant(), JobStatus.running)
    stale = [zips_dir(host) / f".{job_id}.zip.partial", zips_dir(host) / f".{job_id}.zip.0badc0de.partial"]
    for partial in stale:
        partial.write_bytes(b"PK half a zip, cut off by kill -9")
    alice = api.as_user("alice")
    assert (await alice.get(f"jobs/{job_id}")).json["status"] == "running"

    await host.periodic.run_now(ZIP_TASK)  # what every host does every few seconds, and at once when it starts

    job = await wait_for_job(alice, job_id)
    assert job["status"] == "succeeded", job
    content = await alice.get(f"jobs/{job_id}/content")
    assert content.code == 200
    assert unzip(content.body) == {"a.fq.gz": b"aaa", "b.fq.gz": b"bbbb"}
    assert content.headers["ETag"] == f'"{hashlib.sha256(content.body).hexdigest()}"' == f'"{job["result"]["sha256"]}"'
    assert sorted(p.name for p in zips_dir(host).iterdir()) == [f"{job_id}.zip"]  # the stale partials are gone
    row = job_row(host, job_id)
    assert (row.claimed_by, row.claimed_at) == (None, None) and row.args["attempts"] == 1


async def test_a_zip_whose_host_dies_every_time_fails_after_its_attempts(api, host) -> None:
    file_id = store(host, "alice", make_project(host, "alice", "reads"), "a.fq.gz", b"aaa")
    job_id = queue_claimed_zip(host, "alice", [file_id], crashed_claimant(), JobStatus.running)
    with host.db.session() as session:  # started zip_attempts times already, each time by a host that then died
        job = session.get_one(BackgroundJob, job_id)
        job.args = {**job.args, "attempts": host.settings.zip_attempts}

    await host.periodic.run_now(ZIP_TASK)

    job = await wait_for_job(api.as_user("alice"), job_id)
    assert job["status"] == "failed" and "interrupted 3 times" in job["error"]
    content = await api.as_user("alice").get(f"jobs/{job_id}/content")
    assert content.code == 409 and content.error["reason"] == "job_failed"


# --- replicas --------------------------------------------------------------------------------------------------


async def test_a_zip_claimed_by_a_live_replica_is_left_alone_until_its_lease_expires(api, host) -> None:
    file_id = store(host, "alice", make_project(host, "alice", "reads"), "a.fq.gz", b"aaa")
    job_id = queue_claimed_zip(host, "alice", [file_id], LIVE_REPLICA, JobStatus.running)
    theirs = zips_dir(host) / f".{job_id}.zip.5eb1ca.partial"
    theirs.write_bytes(b"PK being written by replica b")
    alice = api.as_user("alice")

    assert await host.periodic.run_now(ZIP_TASK) == 0

    row = job_row(host, job_id)
    assert (row.status, row.claimed_by) == (JobStatus.running, LIVE_REPLICA)
    assert theirs.exists()  # its file is its own while it holds the job

    with host.db.session() as session:  # replica b stops renewing: its lease runs out
        session.execute(update(BackgroundJob).where(BackgroundJob.id == job_id).values(
            claimed_at=utcnow() - timedelta(seconds=host.settings.claim_lease_seconds + 1)))
    assert await host.periodic.run_now(ZIP_TASK) == 1

    job = await wait_for_job(alice, job_id)
    assert job["status"] == "succeeded", job
    assert unzip((await alice.get(f"jobs/{job_id}/content")).body) == {"a.fq.gz": b"aaa"}
    assert not theirs.exists()


async def test_two_hosts_racing_for_the_same_jobs_build_each_exactly_once(api, host, replica, monkeypatch) -> None:
    project = make_project(host, "alice", "reads")
    file_id = store(host, "alice", project, "a.fq.gz", b"aaa")
    built: list[int] = []
    real_write_zip = zipjobs.write_zip

    def counting_write_zip(out, entries):
        built.append(threading.get_ident())
        real_write_zip(out, entries)

    monkeypatch.setattr(zipjobs, "write_zip", counting_write_zip)

    def queue_many(session, actor):  # one transaction: every runner sees all of them at once
        return [create_zip_job(session, actor, host.storage, [file_id]) for _ in range(8)]

    job_ids = host.run_as(Identity("alice"), queue_many)
    theirs = zip_job_runner(replica.settings)  # the replica's one runner (a host has one per kind)
    await asyncio.gather(*(asyncio.to_thread(theirs.tick, replica) for _ in range(3)),
                         *(host.periodic.run_now(ZIP_TASK) for _ in range(3)))

    alice = api.as_user("alice")
    for job_id in job_ids:  # each thread that finishes a build claims the next waiting job
        assert (await wait_for_job(alice, job_id))["status"] == "succeeded"
    assert len(built) == len(job_ids)
    assert all(job_row(host, job_id).args["attempts"] == 1 for job_id in job_ids)


async def test_a_closing_host_stops_its_build_gives_the_job_back_and_shuts_its_pools(api, host, replica,
                                                                                      monkeypatch) -> None:
    file_id = store(host, "alice", make_project(host, "alice", "reads"), "a.fq.gz", b"aaa")
    job_id = queue_claimed_zip(host, "alice", [file_id], replica.host_id, JobStatus.pending)
    runner = zip_job_runner(replica.settings)
    replica.periodic = PeriodicTasks(replica, [runner.task(replica.settings.claim_lease_seconds)])
    building = threading.Event()
    real_write_zip = zipjobs.write_zip

    def write_until_told_to_stop(out, entries):
        if threading.current_thread().name.startswith("flow-zip") and not building.is_set() and \
                job_id in runner.building():
            building.set()
            out.stop.wait(60)  # the replica's build, mid-way, until its host closes
            out.write(b"")  # raises Abandoned
        real_write_zip(out, entries)

    monkeypatch.setattr(zipjobs, "write_zip", write_until_told_to_stop)
    assert await replica.periodic.run_now(ZIP_TASK) == 1
    assert await asyncio.to_thread(building.wait, 60)
    pool = replica.pool("zip", 1)
    assert job_row(host, job_id).claimed_by == replica.host_id

    replica.close()

    with pytest.raises(RuntimeError):  # its pools are shut down
        pool.submit(print)
    await wait_for_async(lambda: job_row(host, job_id), until=lambda row: row.claimed_by != replica.host_id,
                         what="the closing replica to give its job back")
    await host.periodic.run_now(ZIP_TASK)
    job = await wait_for_job(api.as_user("alice"), job_id)  # built by the host still up, from scratch
    assert job["status"] == "succeeded", job
    assert job_row(host, job_id).args["attempts"] == 1  # the interrupted start was given back, not counted
    assert [p.name for p in zips_dir(host).iterdir()] == [f"{job_id}.zip"]


# --- clean-ups -------------------------------------------------------------------------------------------------


async def test_two_replicas_expiring_zips_at_once_remove_each_file_once(api, host, replica) -> None:
    file_id = store(host, "alice", make_project(host, "alice", "reads"), "a.fq.gz", b"aaa")
    alice = api.as_user("alice")
    job_ids = [(await alice.post("downloads", {"files": [file_id], "deferred": True})).json["job"] for _ in range(6)]
    for job_id in job_ids:
        assert (await wait_for_job(alice, job_id))["status"] == "succeeded"
    (zips_dir(host) / ".999999.zip.partial").write_bytes(b"left over by a crash")

    removed = await asyncio.gather(asyncio.to_thread(expire_zips, host, 0), asyncio.to_thread(expire_zips, replica, 0))

    assert sum(removed) == len(job_ids) + 1
    assert list(zips_dir(host).iterdir()) == []
    for job_id in job_ids:
        gone = await alice.get(f"jobs/{job_id}/content")
        assert gone.code == 410 and gone.error["reason"] == "zip_expired"
