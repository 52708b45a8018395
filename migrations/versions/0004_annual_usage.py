"""annual usage: a user's credits per local year, for the annual cap

Revision ID: 0004_annual_usage
Revises: 0004_rollup_source
Create Date: 2026-12-07 06:45:00

Filled from the daily usage rows already stored, so a cap set later counts the year so
far.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_annual_usage'
down_revision = '0004_rollup_source'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'annual_usage',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('year', sa.SmallInteger(), nullable=False),
        sa.Column('credited_ug', sa.BigInteger(), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_annual_usage_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'year', name=op.f('pk_annual_usage')),
    )
    year = ("CAST(EXTRACT(YEAR FROM local_date) AS SMALLINT)"
            if op.get_bind().dialect.name == 'postgresql'
            else "CAST(strftime('%Y', local_date) AS INTEGER)")
    op.execute(f"INSERT INTO annual_usage (user_id, year, credited_ug, points) "
               f"SELECT user_id, {year}, sum(credited_ug), sum(points) FROM daily_usage "
               f"GROUP BY user_id, {year}")


def downgrade() -> None:
    op.drop_table('annual_usage')
