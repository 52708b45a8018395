"""trust: the source of each event and the trust policy of each city and mode

Revision ID: 0004_trust
Revises: 0003
Create Date: 2026-12-07 05:40:00

An event is either posted by the user's own client (``source`` NULL: no bytes but the
null bitmap's) or reported by a scenario provider (``source`` = the provider's id, and
``event_id`` = "<provider id>~<record id>", so a provider's record ids never meet the
client's, whose ids have no '~'; hence the longer column). A trust policy per city and
mode says whose word credits a trip (carbon_credits/ingest/trust.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_trust'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('events', sa.Column('source', sa.String(length=32), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':  # SQLite does not enforce lengths
        op.alter_column('events', 'event_id', type_=sa.String(length=100),
                        existing_type=sa.String(length=64), existing_nullable=False)
    op.create_table(
        'trust_policies',
        sa.Column('city', sa.String(length=64), nullable=False),
        sa.Column('mode', sa.String(length=32), nullable=False),
        sa.Column('policy', sa.String(length=24), nullable=False),
        sa.Column('confirm_days', sa.Integer(), nullable=False),
        sa.Column('tolerance_s', sa.Integer(), nullable=False),
        sa.Column('updated_by', sa.String(length=128), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("policy IN ('client', 'operator_confirms', 'operator_only')",
                           name=op.f('ck_trust_policies_known_policy')),
        sa.PrimaryKeyConstraint('city', 'mode', name=op.f('pk_trust_policies')),
    )


def downgrade() -> None:
    op.drop_table('trust_policies')
    op.drop_column('events', 'source')
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('events', 'event_id', type_=sa.String(length=64),
                        existing_type=sa.String(length=100), existing_nullable=False)
