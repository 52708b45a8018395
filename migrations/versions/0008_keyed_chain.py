"""keyed chain: record (and seal under the chain key) where keyed ledger entries start

Revision ID: 0008_keyed_chain
Revises: 0007_rewards
Create Date: 2026-12-07 06:15:00

From this revision on every new ledger entry's hash is HMAC-SHA256 under the ledger chain
key (carbon_credits/ledger/chain.py). Entries already stored keep their plain SHA-256 and
stay verifiable; the highest of their ids is stored here with a MAC under the current chain
key, so verify-ledger refuses a plain SHA-256 entry after it, and moving the boundary
needs the key. The key comes from the process's keyring: ``create_app`` installs it before
init-db migrates, and migrations/env.py installs it for a stand-alone ``alembic upgrade``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from carbon_credits.ledger import chain
from carbon_credits.storage.models import utcnow

revision = '0008_keyed_chain'
down_revision = '0007_rewards'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'ledger_chain_start',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('legacy_last_entry_id', sa.BigInteger(), nullable=False),
        sa.Column('mac', sa.LargeBinary(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_ledger_chain_start_one_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_chain_start')),
    )
    conn = op.get_bind()
    if conn.dialect.name == 'postgresql':
        # No entry may be written between reading the highest id and recording it.
        conn.execute(sa.text('LOCK TABLE ledger_entries IN SHARE MODE'))
    last = conn.execute(sa.text('SELECT coalesce(max(id), 0) FROM ledger_entries')).scalar_one()
    op.bulk_insert(table, [{
        'id': 1, 'legacy_last_entry_id': int(last),
        'mac': chain.start_mac(int(last), chain.keyring().current[1]),
        'created_at': utcnow()}])


def downgrade() -> None:
    op.drop_table('ledger_chain_start')
