"""pipl: personal-data rights (issue 23): consents to the privacy notice

Revision ID: 0009_pipl
Revises: 0008_keyed_chain
Create Date: 2026-12-07 15:30:00

``consents`` is append-only history: each acceptance or withdrawal of a privacy notice
version, with its time (carbon_credits/privacy). Existing users get no row here: whether
their events need one is the deployment's choice (CONSENT_REQUIRED; ``flask deem-consent``
records a deemed acceptance, see the README's "Consent").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_pipl'
down_revision = '0008_keyed_chain'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'consents',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('notice_version', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('note', sa.String(length=300), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('accept', 'withdraw')",
                           name=op.f('ck_consents_known_action')),
        sa.CheckConstraint("source IN ('user', 'deemed')",
                           name=op.f('ck_consents_known_source')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_consents')),
    )
    op.create_index('ix_consents_user_id_id', 'consents', ['user_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_consents_user_id_id', table_name='consents')
    op.drop_table('consents')
