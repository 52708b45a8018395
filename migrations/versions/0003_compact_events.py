"""compact events: typed inputs instead of payload, explanation built on read

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 03:00:00

Each event row carried its payload (JSON) and its whole explanation (JSON, every factor's
source text included): about 2 kB a row. Both are derived from what stays: the inputs go
to typed columns (line_id, origin, destination, distance_m, steps), the explanation is
rebuilt on read from them and the factor and network versions (carbon_credits.services.
explain), with ``activity`` (what the factor multiplied, for the rollups),
``previous_quantity`` (steps: the count measured against) and ``notes`` (plausibility
hits, the cap met, the status before a reversal; NULL when none) derived here from the
stored explanation. ``payload_hash`` becomes its 32 bytes, and the (status, created_at)
index a partial index of held events (the review queue's).

Ledger entries keep their hash as 32 bytes and no longer store ``prev_hash``: it must
equal the previous entry's (by seq) ``hash``, the genesis for the first, which is checked
here first (the upgrade stops if any differs: run verify-ledger); entries are not re-hashed
(the hash material is unchanged), so the chain verifies as before. ``accounts.last_hash``
becomes 32 bytes too.

Not reversible: the explanation a downgrade would need is built by application code.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

INPUT_FIELDS = {"line_id": ("line_id",), "origin": ("board_stop_id", "entry_station_id"),
                "destination": ("alight_stop_id", "exit_station_id"),
                "distance_m": ("distance_m",), "steps": ("steps",)}
"""Payload fields of each new column (copied, not imported from the application, so this
migration means the same thing whatever the code becomes)."""
CAP_KEYS = ("cap", "cap_g", "used_before_ug")
BATCH = 5000


def upgrade() -> None:
    bind = op.get_bind()
    for name in ('line_id', 'origin', 'destination'):
        op.add_column('events', sa.Column(name, sa.String(length=64), nullable=True))
    for name in ('distance_m', 'steps', 'previous_quantity'):
        op.add_column('events', sa.Column(name, sa.Integer(), nullable=True))
    op.add_column('events', sa.Column('notes', sa.JSON().with_variant(
        sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=True))
    # SQLite adds a NOT NULL column only with a default, and cannot alter it later
    # without copying the table (which its foreign keys forbid inside the migration's
    # transaction): there the new NOT NULL columns start at a default that every row
    # then replaces.
    _add_required('events', 'activity', sa.Integer(), "0")
    _add_required('events', 'payload_digest', sa.LargeBinary(length=32), "x''")
    events = sa.table('events', sa.column('id', sa.BigInteger()), sa.column('mode', sa.String()),
                      sa.column('status', sa.String()), sa.column('payload', sa.JSON()),
                      sa.column('explanation', sa.JSON()),
                      sa.column('payload_hash', sa.String()),
                      *(sa.column(n, sa.String()) for n in ('line_id', 'origin', 'destination')),
                      *(sa.column(n, sa.Integer()) for n in
                        ('distance_m', 'steps', 'activity', 'previous_quantity')),
                      sa.column('notes', sa.JSON(none_as_null=True)),
                      sa.column('payload_digest', sa.LargeBinary()))
    payload, explanation = events.c.payload, events.c.explanation
    # The typed columns in one statement (JSON paths work alike on both databases).
    values: dict[str, Any] = {
        name: sa.func.coalesce(*(payload[f].as_string() for f in fields), None)
        if name in ('line_id', 'origin', 'destination')
        else sa.func.coalesce(*(payload[f].as_integer() for f in fields), None)
        for name, fields in INPUT_FIELDS.items()}
    values['activity'] = sa.func.coalesce(explanation['distance_m'].as_integer(),
                                          explanation['increase_steps'].as_integer(), 0)
    values['previous_quantity'] = sa.case(
        (events.c.mode == 'steps',
         sa.func.coalesce(explanation['previous_steps'].as_integer(), 0)), else_=None)
    if bind.dialect.name == 'postgresql':
        values['payload_digest'] = sa.func.decode(events.c.payload_hash, 'hex')
    bind.execute(sa.update(events).values(values))
    # What only the explanation says: in Python, by keyset. On PostgreSQL only the few
    # rows that have any are read (SQLite's rows are all read for their digest).
    some = sa.true()
    if bind.dialect.name == 'postgresql':
        some = sa.or_(events.c.status.in_(('capped', 'reversed')),
                      sa.text("jsonb_array_length(explanation -> 'plausibility') > 0"),
                      sa.text("explanation -> 'cap_applied' <> 'null'::jsonb"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(events.c.id, events.c.status, events.c.explanation,
                      events.c.payload_hash)
            .where(events.c.id > last, some).order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            break
        last = rows[-1][0]
        updates = []
        for event_pk, status, stored, digest in rows:
            notes = _notes(status, stored or {})
            row: dict[str, Any] = {'pk': event_pk, 'n': notes}
            if bind.dialect.name != 'postgresql':
                row['d'] = bytes.fromhex(digest)
            if notes is not None or 'd' in row:
                updates.append(row)
        if updates:
            statement = sa.update(events).where(events.c.id == sa.bindparam('pk'))
            statement = statement.values(
                notes=sa.bindparam('n', type_=sa.JSON(none_as_null=True)),
                **({'payload_digest': sa.bindparam('d')}
                   if bind.dialect.name != 'postgresql' else {}))
            bind.execute(statement, updates)

    op.drop_index('ix_events_status_created_at', table_name='events')
    for name in ('payload', 'explanation', 'payload_hash'):
        _drop('events', name)
    _required('events', 'payload_digest', 'payload_hash', sa.LargeBinary(length=32))
    _required('events', 'activity', 'activity', sa.Integer())
    op.create_index('ix_events_held', 'events', ['id'], unique=False,
                    postgresql_where=sa.text("status = 'held'"),
                    sqlite_where=sa.text("status = 'held'"))
    _compact_ledger()


def _add_required(table: str, name: str, type_: sa.types.TypeEngine[Any], default: str
                  ) -> None:
    """A column that will be NOT NULL once filled (see ``_required``)."""
    if op.get_bind().dialect.name == 'sqlite':
        op.add_column(table, sa.Column(name, type_, nullable=False,
                                       server_default=sa.text(default)))
    else:
        op.add_column(table, sa.Column(name, type_, nullable=True))


def _required(table: str, name: str, final: str, type_: sa.types.TypeEngine[Any]) -> None:
    """Column ``name``, filled, becomes NOT NULL and is named ``final``."""
    if op.get_bind().dialect.name == 'sqlite':  # NOT NULL already (``_add_required``)
        if name != final:
            op.execute(f"ALTER TABLE {table} RENAME COLUMN {name} TO {final}")
        return
    op.alter_column(table, name, new_column_name=None if name == final else final,
                    nullable=False, existing_type=type_)


def _drop(table: str, name: str) -> None:
    if op.get_bind().dialect.name == 'sqlite':  # in place (SQLite >= 3.35), no table copy
        op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    else:
        op.drop_column(table, name)


def _compact_ledger() -> None:
    bind = op.get_bind()
    broken = bind.execute(sa.text(
        "SELECT count(*) FROM ledger_entries e LEFT JOIN ledger_entries p "
        "ON p.user_id = e.user_id AND p.seq = e.seq - 1 "
        "WHERE e.prev_hash <> CASE WHEN e.seq = 1 THEN :genesis ELSE p.hash END "
        "OR (e.seq > 1 AND p.hash IS NULL)"), {"genesis": "0" * 64}).scalar_one()
    if broken:
        raise RuntimeError(f"{broken} ledger entries do not chain to the previous entry's "
                           "hash: run verify-ledger and repair before this upgrade")
    postgres = bind.dialect.name == 'postgresql'
    # Append-only: its UPDATE trigger is lifted for this conversion only.
    if postgres:
        op.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
    for table, key, column in (('ledger_entries', 'id', 'hash'),
                               ('accounts', 'user_id', 'last_hash')):
        _add_required(table, 'digest', sa.LargeBinary(length=32), "x''")
        if postgres:
            op.execute(f"UPDATE {table} SET digest = decode({column}, 'hex')")
        else:
            rows = bind.execute(sa.text(f"SELECT {key}, {column} FROM {table}")).all()
            if rows:
                bind.execute(sa.text(f"UPDATE {table} SET digest = :d WHERE {key} = :k"),
                             [{"k": k, "d": bytes.fromhex(h)} for k, h in rows])
        if table == 'ledger_entries':
            _drop(table, 'prev_hash')
        _drop(table, column)
        _required(table, 'digest', column, sa.LargeBinary(length=32))
    if postgres:
        op.execute("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only")
    else:  # as 0001 made them
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_entries_no_{action.lower()} BEFORE {action} ON "
                f"ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: "
                f"{action} refused'); END")


def _notes(status: str, explanation: dict[str, Any]) -> dict[str, Any] | None:
    notes: dict[str, Any] = {}
    if explanation.get('plausibility'):
        notes['plausibility'] = explanation['plausibility']
    cap = explanation.get('cap_applied')
    if cap:
        notes['cap'] = {k: cap[k] for k in CAP_KEYS}
    if status == 'reversed':
        # Whether the decision went through the caps: its explanation says so.
        notes['was'] = ('capped' if cap else 'credited') if 'credited_ug' in explanation \
            else 'held'
    return notes or None


def downgrade() -> None:
    raise NotImplementedError("0003 is not reversible: restore a backup taken before it")
