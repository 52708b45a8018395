"""holds: a physical good's points are reserved until it ships, not spent at once

Revision ID: 0009_holds
Revises: 0009_usage_days
Create Date: 2026-12-07 23:30:00

The ledger's kind CHECK gains 'hold' and 'release', and a CHECK that neither moves points
(``ledger.redemptions``). ``reward_redemptions.hold`` says whether a redemption's points are
held until fulfilment; every existing row is false: its points were spent at once by its
'redeem' entry and stay so (a cancellation refunds them by an 'adjustment', as before), so
no entry is written or edited here. An index on (user_id, state) finds a user's open holds.

PostgreSQL: the kind constraint is dropped and added again (a scan of the ledger to
validate it, no rewrite). SQLite changes a table constraint only by copying the table
(as migration 0009_campaigns did). A downgrade with hold or release entries in the ledger
fails on the kind CHECK, by design: those entries cannot be expressed before this revision.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = '0009_holds'
down_revision = '0009_usage_days'
branch_labels = None
depends_on = None

OLD_KINDS = "'earn', 'redeem', 'reversal', 'adjustment', 'expiry', 'lapse', 'bonus'"
NEW_KINDS = ("'earn', 'redeem', 'reversal', 'adjustment', 'expiry', 'lapse', 'bonus', "
             "'hold', 'release'")
HOLD_CHECK = ("kind NOT IN ('hold', 'release') OR (points = 0 AND ug = 0 AND "
              "event_pk IS NULL AND redemption_pk IS NOT NULL)")
HOLD_NAME = 'ck_ledger_entries_hold_moves_no_points'


def upgrade() -> None:
    _kinds(OLD_KINDS, NEW_KINDS, hold_check=True)
    op.add_column('reward_redemptions',
                  sa.Column('hold', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index('ix_reward_redemptions_user_id_state', 'reward_redemptions',
                    ['user_id', 'state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reward_redemptions_user_id_state', table_name='reward_redemptions')
    with op.batch_alter_table('reward_redemptions') as batch:
        batch.drop_column('hold')
    _kinds(NEW_KINDS, OLD_KINDS, hold_check=False)


def _kinds(old: str, new: str, hold_check: bool) -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries', type_='check')
        op.create_check_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries',
                                   sa.text(f'kind IN ({new})'))
        if hold_check:
            op.create_check_constraint(op.f(HOLD_NAME), 'ledger_entries',
                                       sa.text(HOLD_CHECK))
        else:
            op.drop_constraint(op.f(HOLD_NAME), 'ledger_entries', type_='check')
        return
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'ledger_entries'")).scalar_one()
    changed = sql.replace(f"kind IN ({old})", f"kind IN ({new})")
    if changed == sql:
        raise RuntimeError("ledger_entries' kind CHECK is not as expected: not copied")
    hold = f", CONSTRAINT {HOLD_NAME} CHECK ({HOLD_CHECK})"
    if hold_check:
        changed = changed.rstrip().removesuffix(")").rstrip() + hold + "\n)"
    else:
        dropped = changed.replace(hold, "")
        if dropped == changed:
            raise RuntimeError("ledger_entries' hold CHECK is not as expected: not copied")
        changed = dropped
    indexes = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'ledger_entries' AND type IN "
        "('index', 'trigger') AND sql IS NOT NULL")).scalars().all()
    op.execute(re.sub(r'^CREATE TABLE "?ledger_entries"?', 'CREATE TABLE ledger_copy', changed))
    op.execute("INSERT INTO ledger_copy SELECT * FROM ledger_entries")
    op.execute("DROP TABLE ledger_entries")
    op.execute("ALTER TABLE ledger_copy RENAME TO ledger_entries")
    for statement in indexes:
        op.execute(statement)
