"""lean rows: no report_participants table; 4-byte integers where 8 were padding

Revision ID: 0004_lean
Revises: 0003
Create Date: 2026-12-07 05:30:00

``report_participants`` kept a row per (report cell, user): 175 bytes an event, read only
by a reversal (is the user still in the cell? which users are left to rebuild the cell's
sketch slice?). A reversal now reads that from the event table (the user's own events,
then the city-day's; ``reports.rollups.reverse``), so the table goes.

On PostgreSQL a few bigint columns become integer (4 bytes) where the pair of 4-byte
columns they then make saves a whole 8-byte alignment slot per row: events (points,
factor_version_id, network_id), ledger_entries (seq, points) and daily_usage (points,
max_quantity). Values do not change (the hash chain's material is their decimal text, the
same), and a value out of range would stop the upgrade. The ledger's append-only trigger
is not involved: ALTER ... TYPE rewrites the table without UPDATEs. SQLite stores an
integer in 1 to 8 bytes whatever its declared type: nothing to change there.

The indexes whose keys only ever grow (the ids of events and ledger entries, and a ledger
entry's event) are packed full: PostgreSQL leaves 10 % of a b-tree page free where it
extends the index at the right (fillfactor 90), room no insert there will use; an event's
index entry is added elsewhere only by an update that is not HOT (a review or a reversal:
rare), which then splits a page. Indexes keyed by user (inserts land all over them) keep
the default.

Downgrade: the types back to bigint and an empty report_participants; run ``flask
rebuild-rollups`` after it, which the old code's rebuild fills the table with.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_lean'
down_revision = '0003'
branch_labels = None
depends_on = None

PACKED = ('pk_events', 'pk_ledger_entries', 'uq_ledger_entries_event_pk_kind')
NARROWED = {'events': ('points', 'factor_version_id', 'network_id'),
            'ledger_entries': ('seq', 'points'),
            'daily_usage': ('points', 'max_quantity')}


def upgrade() -> None:
    op.drop_table('report_participants')
    if op.get_bind().dialect.name == 'postgresql':
        _retype('integer')
        for index in PACKED:  # REINDEX: the pages already written are packed too
            op.execute(f"ALTER INDEX {index} SET (fillfactor = 100)")
            op.execute(f"REINDEX INDEX {index}")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _retype('bigint')
        for index in PACKED:
            op.execute(f"ALTER INDEX {index} RESET (fillfactor)")
    op.create_table(
        'report_participants',
        sa.Column('city', sa.String(length=64), nullable=False),
        sa.Column('local_date', sa.Date(), nullable=False),
        sa.Column('mode', sa.String(length=32), nullable=False),
        sa.Column('district', sa.String(length=64), nullable=False),
        sa.Column('methodology_version', sa.String(length=64), nullable=False),
        sa.Column('shard', sa.SmallInteger(), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('city', 'local_date', 'mode', 'district',
                                'methodology_version', 'shard', 'user_id',
                                name=op.f('pk_report_participants')))


def _retype(to: str) -> None:
    """One ALTER TABLE per table: one rewrite of it, whatever the number of columns."""
    for table, columns in NARROWED.items():
        op.execute(f"ALTER TABLE {table} "
                   + ", ".join(f"ALTER COLUMN {name} TYPE {to}" for name in columns))
