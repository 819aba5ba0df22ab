"""ids are never reused: every table with an integer id becomes AUTOINCREMENT on SQLite; file-identity columns

SQLite gives a new row max(id) + 1 unless the table was created AUTOINCREMENT, so deleting the newest data file
handed its id to the next one, and a stale reference (a saved sample sheet, a launch parameter, a client's
Flow-DataFile-Id) then silently named a different file. SQLite cannot alter that on a table, so each table is rebuilt
(alembic batch, recreate="always"), keeping every row, index, constraint and foreign key. PostgreSQL's SERIAL
sequences never go back already; there only the new data-file columns are added.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: Every table with an integer surrogate id (memberships has a composite key; uploads' ids are random UUIDs).
ID_TABLES = ("users", "groups", "projects", "shares", "samples", "datafiles", "background_jobs", "pipelines",
             "pipeline_versions", "executions", "process_executions")

#: The same as models.NEVER_REUSE_IDS, restated: a migration must not change when the models do.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}

#: Ids named outside a foreign key. A table's first sequence value starts above these too, so that a reference left
#: behind by a deletion before this migration cannot come to name a new row.
REFERENCED_ELSEWHERE = {
    "projects": "SELECT max(object_id) FROM shares WHERE object_type = 'project'",
    "datafiles": "SELECT max(object_id) FROM shares WHERE object_type = 'datafile'",
    "executions": "SELECT max(execution_id) FROM datafiles",
}


def upgrade() -> None:
    if not _on_sqlite():
        with op.batch_alter_table('datafiles', schema=None) as batch_op:
            _add_file_identity(batch_op)
        return
    with _sqlite_rebuilding(REFERENCED_ELSEWHERE):
        for table in ID_TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs=NEVER_REUSE_IDS) as batch_op:
                if table == "datafiles":
                    _add_file_identity(batch_op)


def downgrade() -> None:
    # AUTOINCREMENT stays: handing out deleted ids again is never wanted, and revision 0004's code works with it.
    if not _on_sqlite():
        with op.batch_alter_table('datafiles', schema=None) as batch_op:
            _drop_file_identity(batch_op)
        return
    with _sqlite_rebuilding({}):
        with op.batch_alter_table('datafiles', recreate="always", table_kwargs=NEVER_REUSE_IDS) as batch_op:
            _drop_file_identity(batch_op)


def _add_file_identity(batch_op) -> None:
    """The columns for serving a file by identity, not by path (their use is the data layer's, not this one's)."""
    batch_op.add_column(sa.Column('stat_inode', sa.BigInteger(), nullable=True))
    batch_op.add_column(sa.Column('stat_mtime_ns', sa.BigInteger(), nullable=True))
    batch_op.add_column(sa.Column('run_path', sa.String(length=4096), nullable=True))
    batch_op.add_column(sa.Column('replaces_id', sa.Integer(), nullable=True))
    batch_op.create_foreign_key(batch_op.f('fk_datafiles_replaces_id_datafiles'), 'datafiles', ['replaces_id'],
                                ['id'], ondelete='SET NULL')
    batch_op.create_index(batch_op.f('ix_datafiles_replaces_id'), ['replaces_id'], unique=False)
    batch_op.create_index('ix_datafiles_execution_id_id', ['execution_id', 'id'], unique=False)


def _drop_file_identity(batch_op) -> None:
    batch_op.drop_index('ix_datafiles_execution_id_id')
    batch_op.drop_index(batch_op.f('ix_datafiles_replaces_id'))
    batch_op.drop_constraint(batch_op.f('fk_datafiles_replaces_id_datafiles'), type_='foreignkey')
    for column in ('replaces_id', 'run_path', 'stat_mtime_ns', 'stat_inode'):
        batch_op.drop_column(column)


def _on_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


# --- rebuilding SQLite tables safely ------------------------------------------------------------------------------


@contextmanager
def _sqlite_rebuilding(floors: dict[str, str]) -> Iterator[None]:
    """Run the block's table rebuilds with foreign-key enforcement off, then prove nothing broke.

    A rebuild drops the old table, and with enforcement on SQLite's DROP TABLE first deletes every row, cascading
    into memberships, shares, samples and more. Dropping a table also forgets its AUTOINCREMENT high-water mark, so
    the marks are put back afterwards, raised to ``floors`` (table → SQL for the largest id named elsewhere)."""
    _without_foreign_key_enforcement()
    violations = _foreign_key_violations()
    marks = _sequences()
    yield
    for table, query in floors.items():
        marks[table] = max(marks.get(table, 0), op.get_bind().exec_driver_sql(query).scalar() or 0)
    _raise_sequences(marks)
    broken = _foreign_key_violations() - violations
    if broken:
        raise RuntimeError(f"rebuilding tables broke foreign keys (table, rowid, parent, fk): {sorted(broken)[:5]}")


def _without_foreign_key_enforcement() -> None:
    """Turn SQLite's foreign-key enforcement off for the rest of this run, and make the rest one transaction.

    The pragma is a no-op inside a transaction, so the steps before this one (complete, and stamped in
    alembic_version) are committed first. Enforcement is not turned back on: the connection is detached from its
    pool instead, so it is closed after the run and no later session can get a connection without enforcement."""
    pooled = op.get_bind().connection
    raw = pooled.driver_connection
    if raw is None:  # only an invalidated connection has none, and a running migration never holds one
        raise RuntimeError("the migration's database connection was invalidated")
    if raw.in_transaction:
        raw.commit()
    raw.execute("PRAGMA foreign_keys=OFF")
    if raw.execute("PRAGMA foreign_keys").fetchone()[0] != 0:
        raise RuntimeError("could not turn SQLite foreign-key enforcement off to rebuild tables")
    raw.execute("BEGIN")  # DDL included: a failure leaves no half-rebuilt table behind
    pooled.detach()


def _foreign_key_violations() -> set[tuple]:
    return {tuple(row) for row in op.get_bind().exec_driver_sql("PRAGMA foreign_key_check")}


def _sequences() -> dict[str, int]:
    """Each AUTOINCREMENT table's high-water mark (there is no sqlite_sequence until such a table exists)."""
    bind = op.get_bind()
    if not bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first():
        return {}
    return dict(bind.exec_driver_sql("SELECT name, seq FROM sqlite_sequence").all())


def _raise_sequences(marks: dict[str, int]) -> None:
    """Set each table's mark to at least the given one (a rebuilt table starts at its largest id kept)."""
    bind = op.get_bind()
    current = _sequences()
    for table, mark in marks.items():
        if table not in current:
            bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, mark))
        elif current[table] < mark:
            bind.exec_driver_sql("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (mark, table))
