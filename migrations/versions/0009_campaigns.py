"""campaigns and webhooks: challenges with a bonus budget, the 'bonus' ledger kind, and
the outbox of notifications to client platforms

Revision ID: 0009_campaigns
Revises: 0008_keyed_chain
Create Date: 2026-12-07 15:30:00

The ledger's kind CHECK gains 'bonus'. PostgreSQL: the constraint is dropped and added
again (a scan of the ledger to validate it, no rewrite). SQLite changes a table constraint
only by copying the table: the ledger's definition as SQLite keeps it, with the new kind
list, its rows copied as they are, then its indexes and append-only triggers made again
(as migration 0004 did).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = '0009_campaigns'
down_revision = '0009_leaders'
branch_labels = None
depends_on = None

OLD_KINDS = "'earn', 'redeem', 'reversal', 'adjustment', 'expiry', 'lapse'"
NEW_KINDS = "'earn', 'redeem', 'reversal', 'adjustment', 'expiry', 'lapse', 'bonus'"
BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    _kinds(OLD_KINDS, NEW_KINDS)
    op.create_table(
        'campaigns',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('city', sa.String(length=64), nullable=False),
        sa.Column('mode', sa.String(length=32), nullable=True),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('goal_events', sa.Integer(), nullable=False),
        sa.Column('bonus_points', sa.Integer(), nullable=False),
        sa.Column('budget_points', sa.BigInteger(), nullable=False),
        sa.Column('spent_points', sa.BigInteger(), nullable=False),
        sa.Column('title_zh', sa.String(length=200), nullable=False),
        sa.Column('title_en', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('goal_events >= 1', name=op.f('ck_campaigns_goal_positive')),
        sa.CheckConstraint('bonus_points >= 1', name=op.f('ck_campaigns_bonus_positive')),
        sa.CheckConstraint('spent_points >= 0 AND spent_points <= budget_points',
                           name=op.f('ck_campaigns_within_budget')),
        sa.CheckConstraint('ends_on >= starts_on', name=op.f('ck_campaigns_window')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')))
    op.create_index('ix_campaigns_city_window', 'campaigns', ['city', 'ends_on'])
    op.create_table(
        'campaign_progress',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('campaign_id', sa.String(length=64), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('bonus_points', sa.Integer(), nullable=False),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('open', 'completed', 'unfunded')",
                           name=op.f('ck_campaign_progress_known_state')),
        sa.CheckConstraint("(state = 'completed') = (bonus_points > 0)",
                           name=op.f('ck_campaign_progress_bonus_held')),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                                name=op.f('fk_campaign_progress_campaign_id_campaigns')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_campaign_progress_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'campaign_id', name=op.f('pk_campaign_progress')))
    op.create_table(
        'campaign_contributions',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('event_pk', BigId, nullable=False),
        sa.Column('campaign_id', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                                name=op.f('fk_campaign_contributions_campaign_id_campaigns')),
        sa.ForeignKeyConstraint(['event_pk'], ['events.id'],
                                name=op.f('fk_campaign_contributions_event_pk_events')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_campaign_contributions_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'event_pk', 'campaign_id',
                                name=op.f('pk_campaign_contributions')))
    op.create_table(
        'campaign_bonuses',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.String(length=64), nullable=False),
        sa.Column('event_pk', BigId, nullable=False),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                                name=op.f('fk_campaign_bonuses_campaign_id_campaigns')),
        sa.ForeignKeyConstraint(['event_pk'], ['events.id'],
                                name=op.f('fk_campaign_bonuses_event_pk_events')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_campaign_bonuses_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'seq', name=op.f('pk_campaign_bonuses')))
    op.create_index('ix_campaign_bonuses_campaign_id', 'campaign_bonuses', ['campaign_id'])
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('kinds', sa.JSON().with_variant(
            sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=False),
        sa.Column('key_id', sa.String(length=64), nullable=False),
        sa.Column('secret_sealed', sa.LargeBinary(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')))
    op.create_table(
        'webhook_deliveries',
        sa.Column('endpoint_id', sa.String(length=64), nullable=False),
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.JSON().with_variant(
            sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')",
                           name=op.f('ck_webhook_deliveries_known_state')),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'],
                                name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
        sa.PrimaryKeyConstraint('endpoint_id', 'id', name=op.f('pk_webhook_deliveries')))
    op.create_index('ix_webhook_deliveries_state', 'webhook_deliveries',
                    ['state', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_state', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
    op.drop_index('ix_campaign_bonuses_campaign_id', table_name='campaign_bonuses')
    op.drop_table('campaign_bonuses')
    op.drop_table('campaign_contributions')
    op.drop_table('campaign_progress')
    op.drop_index('ix_campaigns_city_window', table_name='campaigns')
    op.drop_table('campaigns')
    # Bonus entries are ledger history (append-only): a downgrade with any refuses here.
    _kinds(NEW_KINDS, OLD_KINDS)


def _kinds(old: str, new: str) -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries', type_='check')
        op.create_check_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries',
                                   sa.text(f'kind IN ({new})'))
        return
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'ledger_entries'")).scalar_one()
    changed = sql.replace(f"kind IN ({old})", f"kind IN ({new})")
    if changed == sql:
        raise RuntimeError("ledger_entries' kind CHECK is not as expected: not copied")
    indexes = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'ledger_entries' AND type IN "
        "('index', 'trigger') AND sql IS NOT NULL")).scalars().all()
    op.execute(re.sub(r'^CREATE TABLE "?ledger_entries"?', 'CREATE TABLE ledger_copy', changed))
    op.execute("INSERT INTO ledger_copy SELECT * FROM ledger_entries")
    op.execute("DROP TABLE ledger_entries")
    op.execute("ALTER TABLE ledger_copy RENAME TO ledger_entries")
    for statement in indexes:
        op.execute(statement)
