"""expiry: points expiry policies per city, users' lots by expiry date, the 'expiry' entry kind

Revision ID: 0009_expiry
Revises: 0008_keyed_chain
Create Date: 2026-12-07 15:30:00

``expiry_policies`` keeps each city's expiry rules with the instant they apply from (rows
only added); ``expiry_states`` a user's points by expiry date folded from the ledger
(carbon_credits/ledger/expiry.py); ``point_claims`` up to which entry a user's credits were
claimed or lapsed (ledger/settlement.py). The ledger's kind CHECK admits 'expiry' and
'lapse', and new CHECKs say what each takes. No column of ledger_entries changes. SQLite changes a
table constraint only by copying the table (its indexes and append-only triggers made
again on the copy).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009_expiry'
down_revision = '0008_keyed_chain'
branch_labels = None
depends_on = None

EXPIRY_CHECK = ("kind <> 'expiry' OR (points < 0 AND ug = 0 AND event_pk IS NULL "
                "AND redemption_pk IS NULL)")
LAPSE_CHECK = "kind <> 'lapse' OR (points < 0 AND ug = 0 AND event_pk IS NOT NULL)"
NEW_KINDS = ("expiry", "lapse")
KIND_LIST = re.compile(r"(CONSTRAINT ck_ledger_entries_kind CHECK \(kind IN \()([^)]*)(\)\))")


def upgrade() -> None:
    op.create_table(
        'expiry_policies',
        sa.Column('city', sa.String(length=64), nullable=False),
        sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('rule', sa.String(length=16), nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rule IN ('never', 'days', 'months', 'year_end')",
                           name=op.f('ck_expiry_policies_known_rule')),
        sa.CheckConstraint("(rule = 'days' AND amount BETWEEN 1 AND 3652) OR (rule = 'months' "
                           "AND amount BETWEEN 1 AND 120) OR (rule IN ('never', 'year_end') "
                           "AND amount = 0)", name=op.f('ck_expiry_policies_at_most_ten_years')),
        sa.PrimaryKeyConstraint('city', 'effective_from', name=op.f('pk_expiry_policies')),
    )
    op.create_table(
        'expiry_states',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('next_due', sa.Date(), nullable=True),
        sa.Column('lots', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['accounts.user_id'],
                                name=op.f('fk_expiry_states_user_id_accounts')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_expiry_states')),
    )
    op.create_index('ix_expiry_states_next_due', 'expiry_states', ['next_due'])
    op.create_table(
        'point_claims',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('resolved_seq', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['accounts.user_id'],
                                name=op.f('fk_point_claims_user_id_accounts')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_point_claims')),
    )
    _kinds(add=True)


def _kinds(add: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        kinds = bind.execute(sa.text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'ck_ledger_entries_kind'")).scalar_one()
        listed = [k for k in re.findall(r"'([a-z_]+)'", kinds) if k not in NEW_KINDS]
        listed = [*listed, *NEW_KINDS] if add else listed
        op.execute("ALTER TABLE ledger_entries DROP CONSTRAINT ck_ledger_entries_kind")
        op.execute("ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_kind CHECK "
                   f"(kind IN ({', '.join(repr(k) for k in listed)}))")
        for name, check in (("expiry_takes_points", EXPIRY_CHECK),
                            ("lapse_takes_an_events_points", LAPSE_CHECK)):
            op.execute(f"ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_{name} "
                       f"CHECK ({check})" if add else
                       f"ALTER TABLE ledger_entries DROP CONSTRAINT ck_ledger_entries_{name}")
        return

    def change(sql: str) -> str:
        def kinds(m: re.Match[str]) -> str:
            listed = [k.strip() for k in m.group(2).split(',')
                      if k.strip().strip("'") not in NEW_KINDS]
            listed = [*listed, *(f"'{k}'" for k in NEW_KINDS)] if add else listed
            return m.group(1) + ', '.join(listed) + m.group(3)
        sql = KIND_LIST.sub(kinds, sql)
        extra = (f",\n\tCONSTRAINT ck_ledger_entries_expiry_takes_points CHECK ({EXPIRY_CHECK})"
                 f",\n\tCONSTRAINT ck_ledger_entries_lapse_takes_an_events_points CHECK "
                 f"({LAPSE_CHECK})")
        if add:
            sql = sql.rstrip().removesuffix(')') + extra + '\n)'
        else:
            sql = sql.replace(extra, '')
        return sql
    _sqlite_ledger_copy(change)


def _sqlite_ledger_copy(change: Callable[[str], str]) -> None:
    """As in 0004_lean_rows: copy the table with its changed definition, then make its
    indexes and append-only triggers again."""
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'ledger_entries'")).scalar_one()
    changed = change(sql)
    if changed == sql:
        raise RuntimeError("ledger_entries' kind constraint not found: not copied")
    others = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'ledger_entries' AND type IN "
        "('index', 'trigger') AND sql IS NOT NULL")).scalars().all()
    op.execute(re.sub(r'^CREATE TABLE "?ledger_entries"?', 'CREATE TABLE ledger_copy', changed))
    op.execute("INSERT INTO ledger_copy SELECT * FROM ledger_entries")
    op.execute("DROP TABLE ledger_entries")
    op.execute("ALTER TABLE ledger_copy RENAME TO ledger_entries")
    for statement in others:
        op.execute(statement)


def downgrade() -> None:
    # Expiry entries written since the upgrade would break the old CHECK: the downgrade
    # then fails rather than drop ledger rows.
    _kinds(add=False)
    op.drop_table('point_claims')
    op.drop_index('ix_expiry_states_next_due', table_name='expiry_states')
    op.drop_table('expiry_states')
    op.drop_table('expiry_policies')
