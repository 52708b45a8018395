"""expiry notices: the points.expiring webhooks announced, one per user and expiry date

Revision ID: 0009_notices
Revises: 0009_table_versions
Create Date: 2026-12-07 18:30:00

A new table only (``expiry_notices``): nothing existing changes. Placed before
``0009_partition``, which stays the last revision (bench/partition_bench.py and
tests/integration/test_partitions.py downgrade to its down_revision).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_notices'
down_revision = '0009_table_versions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'expiry_notices',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('expires_on', sa.Date(), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('announced_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_expiry_notices_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'expires_on', name=op.f('pk_expiry_notices')),
    )


def downgrade() -> None:
    op.drop_table('expiry_notices')
