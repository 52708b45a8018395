"""reports: rollups, participants, stop districts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 17:00:00

After upgrading a database that already holds credited events, run
``flask --app app rebuild-rollups`` once: the new tables start empty, and reports read
nothing else.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

DEMO_CITY, DEMO_VERSION = "shenzhen", "demo-2026.1"
DEMO_LUOHU = ("luohu", "guomao", "laojie", "dajuyuan", "hongling",
              "b-luohu", "b-guomao", "b-dajuyuan")
"""The demo network's stops in 罗湖区 (see carbon_credits.networks.demo_network); the rest are in 福田区.
Copied, not imported, so this migration means the same thing whatever the module becomes."""


def upgrade() -> None:
    op.add_column('network_stops', sa.Column('district', sa.String(length=64), nullable=True))
    op.create_table('report_rollups',
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=64), nullable=False),
    sa.Column('methodology_version', sa.String(length=64), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('events', sa.BigInteger(), nullable=False),
    sa.Column('ug', sa.BigInteger(), nullable=False),
    sa.Column('avoided_ug', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('activity', sa.BigInteger(), nullable=False),
    sa.Column('hll', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('city', 'local_date', 'mode', 'district', 'methodology_version', 'shard', name=op.f('pk_report_rollups'))
    )
    op.create_table('report_participants',
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=64), nullable=False),
    sa.Column('methodology_version', sa.String(length=64), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('city', 'local_date', 'mode', 'district', 'methodology_version', 'shard', 'user_id', name=op.f('pk_report_participants'))
    )
    # The demo network, when already loaded, gets its districts (new networks store them).
    demo = ("SELECT id FROM networks WHERE city = :city AND version = :version")
    for district, where in (("luohu", "stop_id IN :luohu"), ("futian", "stop_id NOT IN :luohu")):
        op.get_bind().execute(
            sa.text(f"UPDATE network_stops SET district = :district "
                    f"WHERE network_id IN ({demo}) AND {where}")
            .bindparams(sa.bindparam("luohu", expanding=True)),
            {"district": district, "city": DEMO_CITY, "version": DEMO_VERSION,
             "luohu": list(DEMO_LUOHU)})


def downgrade() -> None:
    op.drop_table('report_participants')
    op.drop_table('report_rollups')
    if op.get_bind().dialect.name == "sqlite":
        # SQLite >= 3.35 drops a column in place; a batch copy would have to drop
        # network_stops, which network_line_stops references.
        op.execute("ALTER TABLE network_stops DROP COLUMN district")
    else:
        op.drop_column('network_stops', 'district')
