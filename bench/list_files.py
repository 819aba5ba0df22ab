"""Benchmark: list/filter data files at 1,000,000 rows, p99 < 50 ms on SQLite and PostgreSQL (docs/benchmarks.md).

Builds a fresh, migrated database per backend (SQLite in a temp dir; PostgreSQL: a new database on the throwaway
server of scripts/postgres.sh, dropped at the end), bulk-loads realistic data, then times the real service function
``flow_jupyter.data.files.list_files`` the way ``FlowHost.run_as`` runs it (one session + ``identity.resolve`` per
call) for an admin and for a non-admin who sees only part of the data. The peer, measured in the same run, is naive
OFFSET paging (``ORDER BY id LIMIT 50 OFFSET n``, same visibility filter) at the last page.

    .venv/bin/python bench/list_files.py [--rows 1000000] [--backend sqlite|postgresql|both]
"""
from __future__ import annotations

import argparse
import gc
import io
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import Engine, create_engine, event, func, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from flow_jupyter import permissions  # noqa: E402
from flow_jupyter.data.files import datafiles_json, file_type, list_files  # noqa: E402
from flow_jupyter.data.paging import encode_cursor  # noqa: E402
from flow_jupyter.db import Database  # noqa: E402
from flow_jupyter.db.models import (  # noqa: E402
    DataFile, Group, Membership, Origin, Project, Role, Sample, Share, User, Visibility,
)
from flow_jupyter.identity import Identity, resolve  # noqa: E402

PAGE = 50
TARGET_MS = 50.0
N_PROJECTS = 200
SAMPLES_PER_PROJECT = 25
LANES = 8
BASE_TIME = datetime(2023, 1, 2, tzinfo=timezone.utc)
ADMIN = Identity("bench-admin", is_admin=True)
MEMBER = Identity("alice")  # non-admin: own projects, lab-a group projects, public ones, shares
USERS = ["bench-admin", "alice", "bob"]
GROUPS = {"lab-a": {"alice": Role.member, "bob": Role.admin}, "lab-b": {"bob": Role.member, "bench-admin": Role.member}}

# ---------------------------------------------------------------- data set


@dataclass
class ProjectSpec:
    id: int
    owner: int
    visibility: Visibility
    group: int | None
    samples: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Dataset:
    """Everything the timed cases need to pick realistic parameters (ids, names) without asking the database."""

    rows: int
    user_ids: dict[str, int]
    group_ids: dict[str, int]
    projects: list[ProjectSpec]
    file_types: list[str] = field(default_factory=list)


def plan_dataset(rows: int, rng: random.Random) -> Dataset:
    """3 users, 2 groups, 200 projects of mixed owners/visibility, 25 samples each (names S0001…S5000)."""
    user_ids = {name: i + 1 for i, name in enumerate(USERS)}
    group_ids = {name: i + 1 for i, name in enumerate(GROUPS)}
    groups_of = {u: [group_ids[g] for g, members in GROUPS.items() if u in members] for u in USERS}
    projects: list[ProjectSpec] = []
    sample_id = 0
    for pid in range(1, N_PROJECTS + 1):
        owner = rng.choices(USERS, weights=[35, 20, 45])[0]
        visibility = rng.choices(list(Visibility), weights=[55, 30, 15])[0]
        group = rng.choice(groups_of[owner]) if visibility == Visibility.group else None
        spec = ProjectSpec(pid, user_ids[owner], visibility, group)
        for _ in range(SAMPLES_PER_PROJECT):
            sample_id += 1
            spec.samples.append((sample_id, f"S{sample_id:04d}"))
        projects.append(spec)
    return Dataset(rows, user_ids, group_ids, projects)


def _block_files(kind: str, sample: str | None, run: int) -> list[str]:
    """File names one pipeline step writes at once (a sequencing run, an analysis, a project report)."""
    if kind == "run":
        out = []
        for lane in range(1, LANES + 1):
            for read in (1, 2):
                stem = f"{sample}_L{lane:03d}_R{read}_{run:03d}"
                out += [f"{stem}.fastq.gz", f"{stem}_fastqc.html", f"{stem}_fastqc.zip"]
        return out
    if kind == "analysis":
        return [f"{sample}.sorted.bam", f"{sample}.sorted.bam.bai", f"{sample}.cram", f"{sample}.vcf.gz",
                f"{sample}.g.vcf.gz", f"{sample}.counts.tsv", f"{sample}.flagstat.txt"]
    return [f"multiqc_report_{run:03d}.html", f"samplesheet_{run:03d}.csv", f"pipeline_info_{run:03d}.json",
            f"genes_{run:03d}.gtf", f"genome_{run:03d}.fa", f"run_{run:03d}.yaml", f"results_{run:03d}.tar.gz"]


def datafile_rows(ds: Dataset, rng: random.Random) -> Iterator[dict[str, Any]]:
    """``ds.rows`` DataFile rows as dicts; blocks of one step are contiguous in id order, projects interleave."""
    quota = ds.rows / N_PROJECTS
    per_run = LANES * 2 * 3
    runs = max(1, math.ceil((quota - SAMPLES_PER_PROJECT * 7) / (SAMPLES_PER_PROJECT * per_run)))
    blocks: list[tuple[int, int, str, int]] = []
    for p_index, spec in enumerate(ds.projects):
        for s_index in range(SAMPLES_PER_PROJECT):
            blocks += [(p_index, s_index, "run", run) for run in range(1, runs + 1)]
            blocks.append((p_index, s_index, "analysis", 1))
        blocks += [(p_index, -1, "report", run) for run in range(1, runs + 1)]
    rng.shuffle(blocks)
    members_of = {ds.group_ids[g]: [ds.user_ids[u] for u in m] for g, m in GROUPS.items()}
    file_id = 0
    types: set[str] = set()
    for p_index, s_index, kind, run in blocks:
        spec = ds.projects[p_index]
        sample_id, sample = spec.samples[s_index] if s_index >= 0 else (None, None)
        owner = spec.owner
        if spec.group is not None and rng.random() < 0.25:
            owner = rng.choice(members_of[spec.group])
        execution = None if kind == "run" else rng.randint(1, 50_000)
        for name in _block_files(kind, sample, run):
            file_id += 1
            if file_id > ds.rows:
                ds.file_types = sorted(types)
                return
            kind_of_file = file_type(name)
            types.add(kind_of_file)
            yield {
                "id": file_id, "owner_id": owner, "project_id": spec.id, "sample_id": sample_id, "filename": name,
                "file_type": kind_of_file, "size": rng.randint(10_000, 8_000_000_000),
                "sha256": f"{rng.getrandbits(256):064x}",
                "storage_path": f"files/{spec.id}/{file_id:08d}/{name}",
                "origin": Origin.upload if execution is None else Origin.output, "execution_id": execution,
                "created_at": BASE_TIME + timedelta(seconds=30 * file_id),
            }
    ds.file_types = sorted(types)


def load(db: Database, ds: Dataset, rng: random.Random, backend: str) -> None:
    """Insert users, groups, projects, samples, shares with SQLAlchemy core; data files batched (COPY on PostgreSQL)."""
    now = BASE_TIME
    with db.engine.begin() as conn:
        conn.execute(insert(User.__table__), [
            {"id": uid, "name": name, "is_admin": name == ADMIN.name, "quota_bytes": None, "created_at": now}
            for name, uid in ds.user_ids.items()])
        conn.execute(insert(Group.__table__), [
            {"id": gid, "name": name, "created_at": now} for name, gid in ds.group_ids.items()])
        conn.execute(insert(Membership.__table__), [
            {"user_id": ds.user_ids[u], "group_id": ds.group_ids[g], "role": role}
            for g, members in GROUPS.items() for u, role in members.items()])
        conn.execute(insert(Project.__table__), [
            {"id": p.id, "name": f"project-{p.id:03d}", "description": "", "owner_id": p.owner, "group_id": p.group,
             "visibility": p.visibility, "created_at": now, "updated_at": now} for p in ds.projects])
        conn.execute(insert(Sample.__table__), [
            {"id": sid, "project_id": p.id, "name": name, "meta": {}, "created_at": now}
            for p in ds.projects for sid, name in p.samples])
    batch_size = 20_000
    rows = datafile_rows(ds, rng)
    if backend == "postgresql":
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            columns = ["id", "owner_id", "project_id", "sample_id", "filename", "file_type", "size", "sha256",
                       "storage_path", "origin", "execution_id", "created_at"]
            while True:
                buffer = io.StringIO()
                count = 0
                for row in rows:
                    values = [row[c] for c in columns]
                    values[9] = row["origin"].value
                    values[11] = row["created_at"].isoformat()
                    buffer.write("\t".join(r"\N" if v is None else str(v) for v in values) + "\n")
                    count += 1
                    if count == batch_size * 5:
                        break
                if not count:
                    break
                buffer.seek(0)
                cursor.copy_expert(f"COPY datafiles ({', '.join(columns)}) FROM STDIN", buffer)
            raw.commit()
        finally:
            raw.close()
    else:
        with db.engine.begin() as conn:
            while batch := [row for _, row in zip(range(batch_size), rows)]:
                conn.execute(insert(DataFile.__table__), batch)
    max_file = ds.rows
    share_files = rng.sample(range(1, max_file + 1), min(2000, max_file))
    alice, bob, admin = ds.user_ids["alice"], ds.user_ids["bob"], ds.user_ids[ADMIN.name]
    hidden = [p for p in ds.projects if p.owner != alice and p.visibility == Visibility.private]
    shares = [{"object_type": "project", "object_id": p.id, "user_id": alice, "group_id": None, "level": "view",
               "created_by_id": p.owner, "created_at": now} for p in hidden[:8]]
    shares += [{"object_type": "project", "object_id": p.id, "user_id": None, "group_id": ds.group_ids["lab-a"],
                "level": "edit", "created_by_id": p.owner, "created_at": now} for p in hidden[8:11]]
    shares += [{"object_type": "datafile", "object_id": f, "user_id": alice, "group_id": None, "level": "view",
                "created_by_id": rng.choice([bob, admin]), "created_at": now} for f in share_files]
    with db.engine.begin() as conn:
        conn.execute(insert(Share.__table__), shares)
    if backend == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("users", "groups", "projects", "samples", "datafiles", "shares"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT coalesce(max(id), 1) FROM {table}))"))
            conn.execute(text("VACUUM ANALYZE"))


# ---------------------------------------------------------------- timing


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


@dataclass
class Result:
    backend: str
    actor: str
    case: str
    ms: list[float]
    rows: float

    def p(self, q: float) -> float:
        return percentile(sorted(self.ms), q)


def request(db: Database, identity: Identity, fn: Callable[..., dict[str, Any]], **kwargs: Any) -> tuple[float, int]:
    """One call as FlowHost.run_as makes it (session, resolve, service function, commit): (ms, items)."""
    start = time.perf_counter()
    with db.session() as session:
        out = fn(session, resolve(session, identity), **kwargs)
    return (time.perf_counter() - start) * 1000, len(out["items"])


def offset_page(session: Session, actor: Any, offset: int, limit: int = PAGE) -> dict[str, Any]:
    """PEER: naive OFFSET paging with the same visibility filter and rendering as list_files."""
    rows = session.scalars(select(DataFile).where(permissions.visible_datafiles(actor)).order_by(DataFile.id)
                           .limit(limit).offset(offset)).all()
    return {"items": datafiles_json(session, rows)}


def case_params(ds: Dataset, db: Database, identity: Identity, rng: random.Random, reps: int
                ) -> dict[str, list[dict[str, Any]]]:
    """Per case, ``reps`` random argument sets for list_files (projects/samples the actor can see)."""
    with db.session() as session:
        actor = resolve(session, identity)
        visible = set(session.scalars(select(Project.id).where(permissions.visible_projects(actor))))
    projects = [p for p in ds.projects if p.id in visible]
    near_end = max(1, int(ds.rows * 0.99))

    def prefix() -> str:
        p = rng.choice(projects)
        sample = rng.choice(p.samples)[1]
        roll = rng.random()
        if roll < 0.4:
            return f"{sample}_"
        if roll < 0.7:
            return f"{sample}_L{rng.randint(1, LANES):03d}_R{rng.randint(1, 2)}"
        if roll < 0.9:
            return sample[:3]
        return rng.choice(["multiqc", "samplesheet", "genome_", "pipeline_info"])

    def project_sample() -> dict[str, Any]:
        p = rng.choice(projects)
        return {"project": p.id, "sample": rng.choice(p.samples)[0]}

    base = {"after": None, "limit": PAGE}
    return {
        "a first page": [dict(base) for _ in range(reps)],
        "b deep page (keyset)": [dict(base, after=encode_cursor([rng.randint(near_end, ds.rows)]))
                                 for _ in range(reps)],
        "c project": [dict(base, project=rng.choice(projects).id) for _ in range(reps)],
        "d name prefix": [dict(base, name_prefix=prefix()) for _ in range(reps)],
        # a later page of a name search: the cursor is (filename, id) of a row in the middle of the matches
        "d2 name prefix, page 2+": [dict(base, name_prefix=p, after=encode_cursor([p + "L", 0]))
                                    for p in (prefix() for _ in range(reps))],
        "e type": [dict(base, file_type_=rng.choice(ds.file_types)) for _ in range(reps)],
        "f project+sample": [dict(base, **project_sample()) for _ in range(reps)],
    }


class StatementTap:
    """Remembers the last SQL statement and parameters sent, to EXPLAIN it (--explain)."""

    def __init__(self, engine: Engine):
        self.last: tuple[str, Any] | None = None
        event.listen(engine, "before_cursor_execute", self._tap)

    def _tap(self, _conn, _cursor, statement, parameters, _context, _executemany) -> None:
        if "FROM datafiles" in statement:
            self.last = (statement, parameters)


def explain(db: Database, backend: str, tap: StatementTap) -> str:
    """The plan of the last data-file query (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite)."""
    if tap.last is None:
        return ""
    statement, params = tap.last
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if backend == "postgresql" else "EXPLAIN QUERY PLAN "
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(prefix + statement, params)
        lines = [" | ".join(str(c) for c in row) for row in cursor.fetchall()]
    finally:
        raw.close()
    return "\n".join("      " + line for line in lines)


def run_cases(db: Database, ds: Dataset, backend: str, reps: int, peer_reps: int, rng: random.Random,
              show_plans: bool) -> list[Result]:
    """Time every case for both actors, then the OFFSET peer at the last visible page."""
    results: list[Result] = []
    tap = StatementTap(db.engine)
    for label, identity in (("admin", ADMIN), ("non-admin", MEMBER)):
        for case, arg_sets in case_params(ds, db, identity, rng, reps).items():
            for kwargs in arg_sets[:5]:  # warm caches and the statement cache
                request(db, identity, list_files, **kwargs)
            gc.collect()
            timings, items = [], 0
            worst: tuple[float, dict[str, Any]] = (0.0, {})
            for kwargs in arg_sets:
                ms, n = request(db, identity, list_files, **kwargs)
                timings.append(ms)
                items += n
                worst = max(worst, (ms, kwargs), key=lambda w: w[0])
            results.append(Result(backend, label, case, timings, items / len(arg_sets)))
            if show_plans:
                request(db, identity, list_files, **worst[1])
                print(f"  plan {backend} {label} {case} (slowest args {worst[1]}, {worst[0]:.1f} ms):")
                print(explain(db, backend, tap))
        with db.session() as session:
            visible_count = session.scalar(select(func.count()).select_from(DataFile)
                                           .where(permissions.visible_datafiles(resolve(session, identity))))
        offset = max(0, visible_count - PAGE)
        request(db, identity, offset_page, offset=offset)
        gc.collect()
        timings, items = [], 0
        for _ in range(peer_reps):
            ms, n = request(db, identity, offset_page, offset=offset)
            timings.append(ms)
            items += n
        results.append(Result(backend, label, f"PEER OFFSET last page (n={offset:,})", timings, items / peer_reps))
        print(f"  {backend} {label}: sees {visible_count:,} of {ds.rows:,} files", flush=True)
    event.remove(db.engine, "before_cursor_execute", tap._tap)
    return results


# ---------------------------------------------------------------- backends


def postgres_base_url() -> str:
    """The throwaway server's URL from scripts/postgres.sh (started if needed; loopback only)."""
    done = subprocess.run([str(REPO / "scripts" / "postgres.sh"), "start"], capture_output=True, text=True,
                          check=True, timeout=300)
    url = done.stdout.strip().splitlines()[-1]
    if "@127.0.0.1:" not in url and "@localhost:" not in url:
        raise SystemExit(f"refusing to load a non-loopback database: {url.split('@')[-1]}")
    return url


def bench_backend(backend: str, rows: int, reps: int, peer_reps: int, seed: int,
                  show_plans: bool) -> list[Result]:
    """Fresh database, migrate, load, time; the database is removed afterwards."""
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-"))
    admin_engine: Engine | None = None
    name = f"flowbench_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'flow.sqlite'}"
    else:
        base = postgres_base_url()
        admin_engine = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    try:
        db.migrate()
        ds = plan_dataset(rows, rng)
        start = time.perf_counter()
        load(db, ds, rng, backend)
        print(f"  {backend}: loaded {rows:,} data files in {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        results = run_cases(db, ds, backend, reps, peer_reps, rng, show_plans)
        print(f"  {backend}: timed in {time.perf_counter() - start:.1f} s", flush=True)
        return results
    finally:
        db.dispose()
        if admin_engine is not None:
            with admin_engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin_engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: list[Result], backends: list[str]) -> None:
    """The table, a keyset/OFFSET ratio per actor, and the final line per backend."""
    print()
    print(f"{'backend':<11}{'actor':<10}{'case':<40}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}"
          f"{'rows':>6}{'n':>5}")
    for r in results:
        print(f"{r.backend:<11}{r.actor:<10}{r.case:<40}{r.p(50):8.1f}{r.p(95):8.1f}{r.p(99):8.1f}"
              f"{max(r.ms):8.1f}{r.rows:6.0f}{len(r.ms):5d}")
    print()
    for backend in backends:
        ours = [r for r in results if r.backend == backend and not r.case.startswith("PEER")]
        peers = [r for r in results if r.backend == backend and r.case.startswith("PEER")]
        for actor in ("admin", "non-admin"):
            deep = next(r for r in ours if r.actor == actor and r.case.startswith("b "))
            peer = next(r for r in peers if r.actor == actor)
            print(f"{backend} {actor}: last page keyset p99 {deep.p(99):.1f} ms vs OFFSET p99 {peer.p(99):.1f} ms "
                  f"→ {peer.p(99) / deep.p(99):.0f}×")
    print()
    for backend in backends:
        ours = [r for r in results if r.backend == backend and not r.case.startswith("PEER")]
        worst = max(ours, key=lambda r: r.p(99))
        peer_p99 = max(r.p(99) for r in results if r.backend == backend and r.case.startswith("PEER"))
        verdict = "PASS" if worst.p(99) < TARGET_MS else "FAIL"
        print(f"{backend}: keyset p99 {worst.p(99):.1f} ms (worst case: {worst.actor} {worst.case[2:]}; target < "
              f"{TARGET_MS:.0f} ms, {verdict}) vs OFFSET last page p99 {peer_p99:.1f} ms → "
              f"{peer_p99 / worst.p(99):.0f}× faster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--reps", type=int, default=200, help="timed calls per case and actor (default 200)")
    parser.add_argument("--peer-reps", type=int, default=200, help="timed OFFSET calls per actor (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--explain", action="store_true", help="print the plan of each case's slowest call")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: list[Result] = []
    for backend in backends:
        results += bench_backend(backend, args.rows, args.reps, args.peer_reps, args.seed, args.explain)
    report(results, backends)
    return 0


if __name__ == "__main__":
    sys.exit(main())
