"""claim leases for executions and background jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

A claim used to be the status itself (a claimed launch was ``submitted`` before any backend saw it). Now a claim is a
lease (``claimed_by``, ``claimed_at``) and ``submitted`` means accepted by the backend, so a row that was claimed
but never got a backend job goes back to ``pending``: the next host adopts a head job that was submitted after all
(the backend's ``find``) or submits it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_TABLES = ('executions', 'background_jobs')


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('claimed_by', sa.String(length=128), nullable=True))
            batch.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_executions_claimed_by', 'executions', ['claimed_by'])
    op.create_index('ix_background_jobs_claimed_by', 'background_jobs', ['claimed_by'])
    op.execute("UPDATE executions SET status = 'pending' WHERE status = 'submitted' AND backend_job IS NULL")


def downgrade() -> None:
    op.drop_index('ix_background_jobs_claimed_by', table_name='background_jobs')
    op.drop_index('ix_executions_claimed_by', table_name='executions')
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('claimed_at')
            batch.drop_column('claimed_by')
