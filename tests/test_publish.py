"""Published outputs become data files in two halves: hashed with no database (on the manager's hash pool), then
registered in a short transaction that reads no file content.

A run directory is real here (files, directories, links, a file still being written); the database is SQLite and
PostgreSQL. The last test shows why the split matters: while a big output is hashed, SQLite's write lock is free.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from flow_jupyter.config import FlowSettings
from flow_jupyter.db.models import DataFile, Execution, Origin, PipelineVersion, Project
from flow_jupyter.execution import publish
from flow_jupyter.execution.publish import (hash_published, register_hashed, register_published, registered_outputs,
                                            unstable_destinations)
from flow_jupyter.host import FlowHost
from flow_jupyter.identity import Identity

ALICE = Identity("alice")
HOLD_LIMIT = 60.0


@pytest.fixture
def host(flow_root: Path, database_url: str) -> Iterator[FlowHost]:
    flow_host = FlowHost(FlowSettings(root_dir=str(flow_root), database_url=database_url))
    yield flow_host
    flow_host.close()


@pytest.fixture
def run(host: FlowHost) -> tuple[int, Path]:
    """An execution of alice's (id) and its run directory under the store."""
    relative = f"runs/{uuid.uuid4()}"
    run_dir = host.storage.resolve(relative)
    (run_dir / "results").mkdir(parents=True)

    def add(session, actor) -> int:
        project = Project(name="outputs", owner_id=actor.user_id)
        session.add(project)
        session.flush()
        version = session.scalars(select(PipelineVersion)).first()
        execution = Execution(uuid=str(uuid.uuid4()), owner_id=actor.user_id, project_id=project.id,
                              pipeline_version_id=version.id, run_dir=relative)
        session.add(execution)
        session.flush()
        return execution.id

    return host.run_as(ALICE, add), run_dir


def register(host: FlowHost, execution_id: int, hashed: list) -> int:
    return host.run_as(ALICE, lambda s, a: register_hashed(s, host.storage, s.get(Execution, execution_id), hashed))


def outputs(host: FlowHost, execution_id: int) -> list[tuple[str, str, int | None]]:
    """(run path, sha256, replaces) of the execution's output data files, oldest first."""
    return host.run_as(ALICE, lambda s, a: [
        (d.run_path, d.sha256, d.replaces_id) for d in s.scalars(
            select(DataFile).where(DataFile.execution_id == execution_id, DataFile.origin == Origin.output)
            .order_by(DataFile.id))])


def stored_outputs(host: FlowHost) -> list[Path]:
    area = host.storage.root / "outputs"
    return sorted(p for p in area.rglob("*") if p.is_file()) if area.exists() else []


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_published_file_is_hashed_then_registered(host, run) -> None:
    execution_id, run_dir = run
    bam = run_dir / "results" / "sample.bam"
    bam.write_bytes(b"BAM\x01" * 1000)

    hashed = hash_published(host.storage, run_dir, [str(bam)])

    assert [(h.run_path, h.size, h.sha256, h.stable) for h in hashed] == [
        ("results/sample.bam", 4000, sha(b"BAM\x01" * 1000), True)]
    assert hashed[0].destination == str(bam) and hashed[0].mtime_ns == bam.stat().st_mtime_ns
    assert outputs(host, execution_id) == []  # hashing wrote no row
    assert register(host, execution_id, hashed) == 1
    assert outputs(host, execution_id) == [("results/sample.bam", sha(b"BAM\x01" * 1000), None)]
    assert [p.read_bytes() for p in stored_outputs(host)] == [b"BAM\x01" * 1000]
    assert register(host, execution_id, hashed) == 0  # the same result again changes nothing
    assert len(stored_outputs(host)) == 1


def test_a_published_directory_counts_with_each_file_in_it(host, run) -> None:
    execution_id, run_dir = run
    data = run_dir / "results" / "multiqc_data"
    data.mkdir()
    (data / "a.json").write_text("{}")
    (data / "b.txt").write_text("b")

    hashed = hash_published(host.storage, run_dir, [str(data)])

    assert sorted((h.destination, h.run_path) for h in hashed) == [
        (str(data), "results/multiqc_data/a.json"), (str(data), "results/multiqc_data/b.txt")]
    assert register(host, execution_id, hashed) == 2


def test_a_file_written_to_while_it_is_read_waits_for_a_later_round(host, run, monkeypatch) -> None:
    execution_id, run_dir = run
    growing = run_dir / "results" / "growing.log"
    growing.write_text("first line\n")
    real_hash = publish.hash_stream

    def appended_meanwhile(stream, *args, **kwargs):
        with open(growing, "a") as writer:  # the task is still writing while Flow reads
            writer.write("second line\n")
        return real_hash(stream, *args, **kwargs)

    monkeypatch.setattr(publish, "hash_stream", appended_meanwhile)
    first = hash_published(host.storage, run_dir, [str(growing)])

    assert [(h.run_path, h.stable, h.sha256, h.stored) for h in first] == [("results/growing.log", False, None, None)]
    assert unstable_destinations(first) == {str(growing)}
    assert stored_outputs(host) == []  # nothing half-read is kept
    assert register(host, execution_id, first) == 0

    monkeypatch.setattr(publish, "hash_stream", real_hash)
    later = hash_published(host.storage, run_dir, [str(growing)])
    assert unstable_destinations(later) == set()
    assert register(host, execution_id, later) == 1
    assert outputs(host, execution_id) == [("results/growing.log", sha(b"first line\nsecond line\n"), None)]


def test_a_file_unchanged_since_an_earlier_round_is_not_read_again(host, run, monkeypatch) -> None:
    execution_id, run_dir = run
    bam = run_dir / "results" / "big.bam"
    bam.write_bytes(b"x" * 10_000)
    first = hash_published(host.storage, run_dir, [str(bam)])
    register(host, execution_id, first)

    def no_reading(*_args, **_kwargs):
        raise AssertionError("an unchanged file was read again")

    monkeypatch.setattr(publish, "hash_stream", no_reading)
    from_last_round = {h.run_path: h for h in first}
    from_database = host.run_as(ALICE, lambda s, a: registered_outputs(s, s.get(Execution, execution_id)))

    assert hash_published(host.storage, run_dir, [str(bam)], known=from_last_round) == []
    assert hash_published(host.storage, run_dir, [str(bam)], known=from_database) == []  # a hard-linked output

    monkeypatch.undo()
    bam.unlink()
    bam.write_bytes(b"y" * 10_000)  # a resume republishes it changed (a new file, as Nextflow does)
    changed = hash_published(host.storage, run_dir, [str(bam)], known=from_database)
    assert [h.sha256 for h in changed] == [sha(b"y" * 10_000)]
    register(host, execution_id, changed)
    first_id = host.run_as(ALICE, lambda s, a: s.scalar(
        select(DataFile.id).where(DataFile.sha256 == sha(b"x" * 10_000))))
    assert outputs(host, execution_id) == [("results/big.bam", sha(b"x" * 10_000), None),
                                           ("results/big.bam", sha(b"y" * 10_000), first_id)]


def test_what_is_outside_the_run_directory_is_still_refused(host, run, tmp_path) -> None:
    execution_id, run_dir = run
    secret = tmp_path / "secret.txt"
    secret.write_text("another user's file")
    inside = run_dir / "results" / "kept.txt"
    inside.write_text("kept")
    (run_dir / "results" / "escape.txt").symlink_to(secret)
    (run_dir / "results" / "alias.txt").symlink_to(inside)
    os.mkfifo(run_dir / "results" / "pipe")

    hashed = hash_published(host.storage, run_dir, [
        str(secret), str(run_dir / "results" / "escape.txt"), str(run_dir / "results" / "alias.txt"),
        str(run_dir / "results" / "pipe"), f"{run_dir}/../../etc/passwd", ""])

    assert [(h.run_path, h.real_path) for h in hashed] == [("results/alias.txt", "results/kept.txt")]
    assert register(host, execution_id, hashed) == 1


def test_registering_reads_no_file_content(host, run, monkeypatch) -> None:
    execution_id, run_dir = run
    report = run_dir / "results" / "report.html"
    report.write_text("<html></html>")
    hashed = hash_published(host.storage, run_dir, [str(report)])

    def no_reading(*_args, **_kwargs):
        raise AssertionError("registration read a file")

    monkeypatch.setattr(publish, "hash_stream", no_reading)
    monkeypatch.setattr(publish, "open_beneath", no_reading)

    assert register(host, execution_id, hashed) == 1


def test_bytes_rewritten_in_place_after_hashing_are_not_registered(host, run) -> None:
    """The store hard-links the published file: a task rewriting it in place afterwards changes the stored
    inode, and the checksum would describe bytes that are gone."""
    execution_id, run_dir = run
    table = run_dir / "results" / "counts.tsv"
    table.write_text("gene\tcount\n")
    hashed = hash_published(host.storage, run_dir, [str(table)])
    with open(table, "a") as writer:
        writer.write("BRCA1\t7\n")

    assert register(host, execution_id, hashed) == 0
    assert stored_outputs(host) == [] and outputs(host, execution_id) == []
    assert table.read_text() == "gene\tcount\nBRCA1\t7\n"  # the run's own file is left alone


def test_register_published_still_does_both_halves(host, run) -> None:
    execution_id, run_dir = run
    vcf = run_dir / "results" / "calls.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n")

    def both(session, actor):
        return [d.run_path for d in register_published(session, host.storage, session.get(Execution, execution_id),
                                                       [str(vcf)])]

    assert host.run_as(ALICE, both) == ["results/calls.vcf"]
    assert host.run_as(ALICE, both) == []  # published again unchanged: nothing new
    assert len(stored_outputs(host)) == 1


def test_the_database_stays_writable_while_a_big_output_is_hashed(tmp_path, monkeypatch) -> None:
    database = tmp_path / "flow.sqlite"
    flow_host = FlowHost(FlowSettings(root_dir=str(tmp_path / "root"), database_url=f"sqlite:///{database}"))
    run_dir = tmp_path / "root" / "runs" / "big"
    run_dir.mkdir(parents=True)
    big = run_dir / "aligned.bam"
    with open(big, "wb") as handle:
        handle.truncate(64 << 20)  # sparse: large to read, cheap to make
    reading, finish = threading.Event(), threading.Event()
    real_hash = publish.hash_stream

    def slow_hash(stream, *args, **kwargs):
        reading.set()
        assert finish.wait(HOLD_LIMIT)
        return real_hash(stream, *args, **kwargs)

    monkeypatch.setattr(publish, "hash_stream", slow_hash)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        work = pool.submit(hash_published, flow_host.storage, run_dir, [str(big)])
        assert reading.wait(HOLD_LIMIT)
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # would fail at once if hashing held the write lock
            other.execute("ROLLBACK")
        finally:
            other.close()
        finish.set()
        assert [h.size for h in work.result(timeout=HOLD_LIMIT)] == [64 << 20]
    finally:
        finish.set()
        pool.shutdown(wait=True)
        flow_host.close()
