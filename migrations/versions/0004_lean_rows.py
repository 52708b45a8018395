"""lean rows: no report_participants table; 4-byte integers where 8 were padding

Revision ID: 0004_lean
Revises: 0004_annual_usage
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

The ledger's "one entry of each kind per event" (unique (event_pk, kind), 28 bytes an
entry) becomes two partial unique indexes keyed by the event alone, one of earn entries
and one of reversals (20 bytes an entry, each entry in one of them), and a third of
(event_pk, kind) for the entries of other kinds that name an event (none today). SQLite
drops a table constraint only by copying the table (``_sqlite_ledger_copy``).

The indexes whose keys only ever grow (the ids of events and ledger entries, the events of
earn and of reversal entries) are packed full: PostgreSQL leaves 10 % of a b-tree page
free where it extends the index at the right (fillfactor 90), room no insert there will
use; an event's index entry is added elsewhere only by an update that is not HOT (a review or a reversal:
rare), which then splits a page. Indexes keyed by user (inserts land all over them) keep
the default.

Downgrade: the types back to bigint, the (event_pk, kind) constraint back, and an empty
report_participants; run ``flask rebuild-rollups`` after it, which the old code's rebuild
fills the table with.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = '0004_lean'
down_revision = '0004_annual_usage'
branch_labels = None
depends_on = None

PACKED = ('pk_events', 'pk_ledger_entries', 'uq_ledger_entries_earn',
          'uq_ledger_entries_reversal')
NARROWED = {'events': ('points', 'factor_version_id', 'network_id'),
            'ledger_entries': ('seq', 'points'),
            'daily_usage': ('points', 'max_quantity')}


OTHER = "event_pk IS NOT NULL AND kind NOT IN ('earn', 'reversal')"
KIND_INDEXES = {'uq_ledger_entries_earn': (['event_pk'], "kind = 'earn'"),
                'uq_ledger_entries_reversal': (['event_pk'], "kind = 'reversal'"),
                'uq_ledger_entries_other': (['event_pk', 'kind'], OTHER)}


def upgrade() -> None:
    op.drop_table('report_participants')
    # One earn and one reversal per event: partial unique indexes of the event alone,
    # made before the (event_pk, kind) constraint goes, so the rule holds throughout.
    for name, (columns, where) in KIND_INDEXES.items():
        op.create_index(name, 'ledger_entries', columns, unique=True,
                        postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    if op.get_bind().dialect.name != 'postgresql':
        _sqlite_ledger_copy(lambda sql: sql.replace(EVENT_KIND, ''))
        return
    op.drop_constraint('uq_ledger_entries_event_pk_kind', 'ledger_entries', type_='unique')
    _retype('integer')
    for index in PACKED:  # REINDEX: the pages already written are packed too
        op.execute(f"ALTER INDEX {index} SET (fillfactor = 100)")
        op.execute(f"REINDEX INDEX {index}")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.create_unique_constraint('uq_ledger_entries_event_pk_kind', 'ledger_entries',
                                    ['event_pk', 'kind'])
        _retype('bigint')
        for index in PACKED:
            op.execute(f"ALTER INDEX {index} RESET (fillfactor)")
    else:
        _sqlite_ledger_copy(lambda sql: sql.replace(SEQ, EVENT_KIND + SEQ))
    for name in KIND_INDEXES:
        op.drop_index(name, table_name='ledger_entries')
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


EVENT_KIND = "CONSTRAINT uq_ledger_entries_event_pk_kind UNIQUE (event_pk, kind), \n\t"
SEQ = "CONSTRAINT uq_ledger_entries_user_id_seq UNIQUE (user_id, seq)"


def _sqlite_ledger_copy(change: Callable[[str], str]) -> None:
    """SQLite drops (or adds) a table constraint only by copying the table: the ledger's
    definition as SQLite keeps it, changed by ``change`` (which must change it), the rows
    copied as they are (ids included), the old table dropped (nothing references it) and
    the copy renamed; then its indexes and its append-only triggers (dropped with the old
    table) are made again. The constraint's rule holds throughout: the partial indexes
    stand on the table whose constraint goes, and are made again on the copy before any
    other write."""
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'ledger_entries'")).scalar_one()
    changed = change(sql)
    if changed == sql:
        raise RuntimeError("ledger_entries is not defined as 0001 made it: not copied")
    indexes = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'ledger_entries' AND type IN "
        "('index', 'trigger') AND sql IS NOT NULL")).scalars().all()
    # After a copy SQLite keeps the renamed table's name quoted: "ledger_entries".
    op.execute(re.sub(r'^CREATE TABLE "?ledger_entries"?', 'CREATE TABLE ledger_copy', changed))
    op.execute("INSERT INTO ledger_copy SELECT * FROM ledger_entries")
    op.execute("DROP TABLE ledger_entries")
    op.execute("ALTER TABLE ledger_copy RENAME TO ledger_entries")
    for statement in indexes:
        op.execute(statement)


def _retype(to: str) -> None:
    """One ALTER TABLE per table: one rewrite of it, whatever the number of columns."""
    for table, columns in NARROWED.items():
        op.execute(f"ALTER TABLE {table} "
                   + ", ".join(f"ALTER COLUMN {name} TYPE {to}" for name in columns))
