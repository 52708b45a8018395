"""record files: providers' uploaded record files, their jobs' progress and row errors

Revision ID: 0006_record_files
Revises: 0005_providers
Create Date: 2026-12-07 05:40:00

``provider_id`` has no foreign key yet: the providers table comes with its own migration,
and the key is added when the two are chained.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_record_files'
down_revision = '0005_providers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('record_files',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows_read', sa.BigInteger(), nullable=False),
    sa.Column('credited', sa.BigInteger(), nullable=False),
    sa.Column('held', sa.BigInteger(), nullable=False),
    sa.Column('replayed', sa.BigInteger(), nullable=False),
    sa.Column('refused', sa.BigInteger(), nullable=False),
    sa.Column('checkpoint_line', sa.BigInteger(), nullable=False),
    sa.Column('checkpoint_offset', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('failure', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("format IN ('csv', 'jsonl')", name=op.f('ck_record_files_format')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_record_files_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_files')),
    sa.UniqueConstraint('provider_id', 'sha256', name=op.f('uq_record_files_provider_id_sha256'))
    )
    op.create_table('record_file_errors',
    sa.Column('file_id', sa.String(length=32), nullable=False),
    sa.Column('line', sa.BigInteger(), nullable=False),
    sa.Column('field', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['record_files.id'], name=op.f('fk_record_file_errors_file_id_record_files')),
    sa.PrimaryKeyConstraint('file_id', 'line', name=op.f('pk_record_file_errors'))
    )


def downgrade() -> None:
    op.drop_table('record_file_errors')
    op.drop_table('record_files')
