"""listing indexes: every listing filter gets an index ending in id; names compare by code point on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("datafiles", "filename", type_=sa.String(255, collation="C"), existing_nullable=False)
    with op.batch_alter_table('datafiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datafiles_filename'))
        batch_op.drop_index(batch_op.f('ix_datafiles_sample_id'))
        batch_op.create_index('ix_datafiles_file_type_id', ['file_type', 'id'], unique=False)
        batch_op.create_index('ix_datafiles_filename_id', ['filename', 'id'], unique=False)
        batch_op.create_index('ix_datafiles_sample_id_id', ['sample_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('datafiles', schema=None) as batch_op:
        batch_op.drop_index('ix_datafiles_sample_id_id')
        batch_op.drop_index('ix_datafiles_filename_id')
        batch_op.drop_index('ix_datafiles_file_type_id')
        batch_op.create_index(batch_op.f('ix_datafiles_sample_id'), ['sample_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_datafiles_filename'), ['filename'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("datafiles", "filename", type_=sa.String(255), existing_nullable=False)

