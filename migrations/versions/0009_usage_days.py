"""usage days: the carbon account's day rows become columns of daily_usage

Revision ID: 0009_usage_days
Revises: 0009_audit_refs
Create Date: 2026-12-07 23:20:00

``account_days`` and ``daily_usage`` had the same key (user, local day, mode) and a row for
nearly every credited day: two heaps and two primary keys per row (~95 bytes an event,
BENCHMARKS.md figure 8). The account's counters (``live_events``, ``live_ug``,
``live_points``, ``activity``) move into ``daily_usage`` beside the caps' own, which they
differ from on purpose (storage/models.py ``DailyUsage``), and ``account_days`` goes. A
day row of ``account_days`` with no usage row (none is expected: every credit counts its
usage) becomes a usage row whose caps' counters are 0. Placed before ``0009_partition``,
which stays the last revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_usage_days'
down_revision = '0009_audit_refs'
branch_labels = None
depends_on = None

LIVE = (('live_events', sa.Integer()), ('live_ug', sa.BigInteger()),
        ('live_points', sa.BigInteger()), ('activity', sa.BigInteger()))


def upgrade() -> None:
    with op.batch_alter_table('daily_usage') as batch:
        for name, type_ in LIVE:
            batch.add_column(sa.Column(name, type_, nullable=False, server_default='0'))
    op.execute(
        "INSERT INTO daily_usage (user_id, local_date, mode, events, credited_ug, points, "
        "max_quantity, live_events, live_ug, live_points, activity) "
        "SELECT user_id, local_date, mode, 0, 0, 0, 0, events, ug, points, activity "
        "FROM account_days WHERE true "  # WHERE: SQLite's upsert-after-SELECT rule
        "ON CONFLICT (user_id, local_date, mode) DO UPDATE SET "
        "live_events = excluded.live_events, live_ug = excluded.live_ug, "
        "live_points = excluded.live_points, activity = excluded.activity")
    with op.batch_alter_table('daily_usage') as batch:
        for name, _type in LIVE:
            batch.alter_column(name, server_default=None)
    op.drop_table('account_days')


def downgrade() -> None:
    op.create_table(
        'account_days',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('local_date', sa.Date(), nullable=False),
        sa.Column('mode', sa.String(length=32), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.Column('ug', sa.BigInteger(), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('activity', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_account_days_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'local_date', 'mode', name=op.f('pk_account_days')),
    )
    op.execute("INSERT INTO account_days (user_id, local_date, mode, events, ug, points, "
               "activity) SELECT user_id, local_date, mode, live_events, live_ug, "
               "live_points, activity FROM daily_usage WHERE live_events > 0")
    with op.batch_alter_table('daily_usage') as batch:
        for name, _type in reversed(LIVE):
            batch.drop_column(name)
