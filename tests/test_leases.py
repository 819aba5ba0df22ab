"""Claim leases (flow_jupyter/db/leases.py) on both databases, on the real schema (background_jobs rows): a host
claims free rows, renews and releases its own, takes over a lease that expired or a claim whose local process is
gone, waits for a remote host's live lease, and of two hosts racing for one row exactly one wins."""
from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text, update

from waiting import wait_for

from flow_jupyter.db import Database, leases
from flow_jupyter.db.models import BackgroundJob

LEASE = 30.0
KIND = "lease-test"
AMONG = BackgroundJob.kind == KIND


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _rows(db: Database, count: int) -> list[int]:
    with db.session() as session:
        jobs = [BackgroundJob(kind=KIND, args={"n": n}) for n in range(count)]
        session.add_all(jobs)
        session.flush()
        return [job.id for job in jobs]


def _claim(db: Database, host: str, limit: int = 10) -> list[int]:
    with db.session() as session:
        return leases.claim(session, BackgroundJob, host, LEASE, AMONG, limit)


def _holders(db: Database) -> dict[int, str | None]:
    with db.session() as session:
        return {row.id: row.claimed_by for row in session.execute(select(BackgroundJob.id, BackgroundJob.claimed_by)
                                                                    .where(AMONG))}


def _age(db: Database, ids: list[int], seconds: float) -> None:
    """Backdate the claims on ``ids``: a host that stopped renewing ``seconds`` ago."""
    with db.session() as session:
        session.execute(update(BackgroundJob).where(BackgroundJob.id.in_(ids))
                        .values(claimed_at=datetime.now(timezone.utc) - timedelta(seconds=seconds)))


def _remote(name: str) -> str:
    """The identity of a host on another machine: its process cannot be checked from here."""
    return leases._SEPARATOR.join(["elsewhere.example.org", "b00t1d00", "4242", "123456", name])


def test_a_host_claims_free_rows_oldest_first_up_to_its_limit_and_keeps_them(db: Database) -> None:
    ids = _rows(db, 5)
    host = _remote("a")
    assert _claim(db, host, limit=3) == ids[:3]
    with db.session() as session:
        claimed = session.execute(select(BackgroundJob.claimed_by, BackgroundJob.claimed_at)
                                  .where(BackgroundJob.id.in_(ids[:3]))).all()
    assert {row.claimed_by for row in claimed} == {host}
    assert all(row.claimed_at is not None and row.claimed_at.tzinfo is not None for row in claimed)
    assert _holders(db)[ids[3]] is None
    # Asking again gets only the free ones: the rows it holds are kept by renew, not by claim.
    assert _claim(db, host, limit=5) == ids[3:]


def test_a_live_lease_is_not_taken_and_an_expired_one_is(db: Database) -> None:
    ids = _rows(db, 2)
    first, second = _remote("first"), _remote("second")
    assert _claim(db, first) == ids
    assert _claim(db, second) == []
    _age(db, ids[:1], LEASE / 2)
    assert _claim(db, second) == []  # half a lease without renewal: still first's
    _age(db, ids[:1], LEASE + 1)
    assert _claim(db, second) == ids[:1]
    assert _holders(db) == {ids[0]: second, ids[1]: first}


def test_renewing_keeps_a_lease_alive_and_tells_which_rows_were_taken_over(db: Database) -> None:
    ids = _rows(db, 3)
    first, second = _remote("first"), _remote("second")
    _claim(db, first)
    _age(db, ids, LEASE - 1)
    with db.session() as session:
        assert leases.renew(session, BackgroundJob, first, AMONG) == set(ids)
    assert _claim(db, second) == []  # renewed just now: a fresh lease again

    _age(db, ids[:1], LEASE + 1)  # first stalled past its lease; second takes that row over
    assert _claim(db, second) == ids[:1]
    with db.session() as session:
        assert leases.renew(session, BackgroundJob, first, AMONG) == set(ids[1:])
        assert leases.renew(session, BackgroundJob, second, AMONG) == set(ids[:1])


def test_release_frees_only_the_releasing_hosts_own_claims(db: Database) -> None:
    ids = _rows(db, 2)
    first, second = _remote("first"), _remote("second")
    _claim(db, first, limit=1)
    _claim(db, second, limit=1)
    with db.session() as session:
        leases.release(session, BackgroundJob, first, ids)  # ids[1] is second's: untouched
        leases.release(session, BackgroundJob, first, [])
    assert _holders(db) == {ids[0]: None, ids[1]: second}
    with db.session() as session:
        assert session.get_one(BackgroundJob, ids[0]).claimed_at is None
    assert _claim(db, _remote("third")) == ids[:1]


def _child_identity() -> tuple[subprocess.Popen, str]:
    """A live process on this machine and its host identity (it waits for its stdin to close)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; from flow_jupyter.db import leases; "
                              "print(leases.host_identity('child'), flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def test_a_claim_of_a_local_process_that_is_gone_is_free_at_once_and_a_live_ones_is_not(db: Database) -> None:
    ids = _rows(db, 1)
    child, identity = _child_identity()
    try:
        assert _claim(db, identity) == ids
        assert not leases.claimant_is_dead(identity)
        assert _claim(db, leases.host_identity("survivor")) == []  # alive: its lease holds
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert leases.claimant_is_dead(identity)
    survivor = leases.host_identity("survivor")
    assert _claim(db, survivor) == ids  # long before the lease ends
    assert _holders(db) == {ids[0]: survivor}


def test_which_claimants_count_as_dead() -> None:
    machine, boot, pid, ticks, _ = leases.host_identity("me").split(leases._SEPARATOR)
    me = leases._SEPARATOR.join([machine, boot, pid, ticks, "me"])
    assert not leases.claimant_is_dead(me)
    # The same pid started at another moment is another process (the pid was reused): the claimant is gone.
    assert leases.claimant_is_dead(leases._SEPARATOR.join([machine, boot, pid, str(int(ticks) + 1), "me"]))
    # The machine rebooted since the claim: every process of that boot is gone.
    assert leases.claimant_is_dead(leases._SEPARATOR.join([machine, "0ther0ne", pid, ticks, "me"]))
    # Another machine's process cannot be checked from here, and an identity of another shape is never judged.
    assert not leases.claimant_is_dead(_remote("far"))
    assert not leases.claimant_is_dead("a host id set by hand")
    assert not leases.claimant_is_dead(leases._SEPARATOR.join([machine, boot, "notapid", ticks, "me"]))


def test_hosts_racing_for_the_same_rows_each_win_a_row_no_other_won(db: Database) -> None:
    ids = _rows(db, 20)
    hosts = [_remote(f"racer{n}") for n in range(8)]
    start = threading.Barrier(len(hosts))
    won: dict[str, list[int]] = {}
    failures: list[BaseException] = []

    def race(host: str) -> None:
        try:
            start.wait(timeout=30)
            won[host] = _claim(db, host, limit=len(ids))
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            failures.append(exc)

    threads = [threading.Thread(target=race, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    claimed = [row for rows in won.values() for row in rows]
    assert sorted(claimed) == ids  # every row won once: no row twice, none lost
    holders = _holders(db)
    assert all(holders[row] == host for host, rows in won.items() for row in rows)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_claim_racing_an_uncommitted_one_waits_for_it_and_then_wins_nothing(
        db: Database) -> None:
    """The interleaving that matters: the second claimer reads the row as free, then blocks on the first's row lock;
    PostgreSQL re-checks the guard on the committed row, and the second gets nothing."""
    ids = _rows(db, 1)
    first, second = _remote("first"), _remote("second")
    result: list[list[int]] = []
    with db.session() as session:
        assert leases.claim(session, BackgroundJob, first, LEASE, AMONG, 1) == ids  # row locked, not committed
        waiter = threading.Thread(target=lambda: result.append(_claim(db, second)))
        waiter.start()
        def lock_waiters() -> int:
            # A new transaction per look: PostgreSQL keeps one snapshot of pg_stat_activity per transaction.
            with db.engine.connect() as probe:
                return probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND datname = current_database()")).scalar_one()
        wait_for(lock_waiters, what="the second claim to wait for the first's row lock", timeout=30)
    waiter.join(timeout=60)
    assert result == [[]]
    assert _holders(db) == {ids[0]: first}


def test_claiming_in_batches_reaches_every_free_row_not_only_the_ones_already_held(db: Database) -> None:
    """A host claims a batch per round; rows it holds already must not fill the batch, or a host with more active
    rows than one batch would never hold (and follow) the rest."""
    ids = _rows(db, 5)
    host = _remote("batches")
    held: set[int] = set()
    for _ in range(3):
        held.update(_claim(db, host, limit=2))
    assert held == set(ids)
    assert set(_holders(db).values()) == {host}
