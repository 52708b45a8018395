"""account: per-user aggregates of credited events (carbon account screen), badges

Revision ID: 0009_account
Revises: 0008_keyed_chain
Create Date: 2026-12-07 15:40:00

account_days and account_months are filled from the live credited events already stored
(status credited or capped, grams > 0: those with an earn entry and no reversal), so the
screen and the badge rules see the history before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009_account'
down_revision = '0009_pipl'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _sums() -> list[sa.Column]:
    return [sa.Column('events', sa.Integer(), nullable=False),
            sa.Column('ug', sa.BigInteger(), nullable=False),
            sa.Column('points', sa.BigInteger(), nullable=False),
            sa.Column('activity', sa.BigInteger(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        'account_days',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('local_date', sa.Date(), nullable=False),
        sa.Column('mode', sa.String(length=32), nullable=False),
        *_sums(),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_account_days_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'local_date', 'mode', name=op.f('pk_account_days')),
    )
    op.create_table(
        'account_months',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('mode', sa.String(length=32), nullable=False),
        *_sums(),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_account_months_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'month', 'mode', name=op.f('pk_account_months')),
    )
    op.create_table(
        'badges',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('name_zh', sa.String(length=200), nullable=False),
        sa.Column('name_en', sa.String(length=200), nullable=False),
        sa.Column('description_zh', sa.Text(), nullable=False),
        sa.Column('description_en', sa.Text(), nullable=False),
        sa.Column('rule', JSON, nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'retired')", name=op.f('ck_badges_known_status')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_badges')),
        sa.UniqueConstraint('code', name=op.f('uq_badges_code')),
    )
    op.create_table(
        'badge_awards',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('badge_id', BIG_ID, nullable=False),
        sa.Column('event_pk', sa.BigInteger(), nullable=False),
        sa.Column('event_id', sa.String(length=128), nullable=False),
        sa.Column('badge_version', sa.Integer(), nullable=False),
        sa.Column('awarded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['badge_id'], ['badges.id'],
                                name=op.f('fk_badge_awards_badge_id_badges')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_badge_awards_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'badge_id', name=op.f('pk_badge_awards')),
    )
    month = ("CAST(date_trunc('month', local_date) AS DATE)"
             if op.get_bind().dialect.name == 'postgresql'
             else "date(local_date, 'start of month')")
    live = "status IN ('credited', 'capped') AND credited_ug > 0"
    op.execute("INSERT INTO account_days (user_id, local_date, mode, events, ug, points, "
               "activity) SELECT user_id, local_date, mode, count(*), sum(credited_ug), "
               f"sum(points), sum(activity) FROM events WHERE {live} "
               "GROUP BY user_id, local_date, mode")
    op.execute("INSERT INTO account_months (user_id, month, mode, events, ug, points, "
               f"activity) SELECT user_id, {month}, mode, sum(events), sum(ug), sum(points), "
               f"sum(activity) FROM account_days GROUP BY user_id, {month}, mode")


def downgrade() -> None:
    op.drop_table('badge_awards')
    op.drop_table('badges')
    op.drop_table('account_months')
    op.drop_table('account_days')
