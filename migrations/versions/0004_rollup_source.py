"""rollup source: report rollups keyed by who reported the events

Revision ID: 0004_rollup_source
Revises: 0004_trust
Create Date: 2026-12-07 06:30:00

A partner report may be grouped by source: the users' own apps ('client') or each
scenario provider (issue 21). Existing rollups were all of client posts (providers came
with 0004_trust and 0005_providers, whose events a `flask rebuild-rollups` regroups).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_rollup_source'
down_revision = '0004_trust'
branch_labels = None
depends_on = None

KEY = ['city', 'local_date', 'mode', 'district', 'methodology_version']


def upgrade() -> None:
    with op.batch_alter_table('report_rollups') as batch:  # SQLite: a copy of the table
        batch.add_column(sa.Column('source', sa.String(length=32), nullable=False,
                                   server_default='client'))
        batch.drop_constraint('pk_report_rollups', type_='primary')
        batch.create_primary_key('pk_report_rollups', [*KEY, 'source', 'shard'])
    with op.batch_alter_table('report_rollups') as batch:
        batch.alter_column('source', server_default=None, existing_type=sa.String(32),
                           existing_nullable=False)


def downgrade() -> None:
    # One key per cell again: the providers' rows go, and `flask rebuild-rollups` (run it
    # after a downgrade) counts their events in again.
    op.execute("DELETE FROM report_rollups WHERE source <> 'client'")
    with op.batch_alter_table('report_rollups') as batch:
        batch.drop_constraint('pk_report_rollups', type_='primary')
        batch.create_primary_key('pk_report_rollups', [*KEY, 'shard'])
        batch.drop_column('source')
