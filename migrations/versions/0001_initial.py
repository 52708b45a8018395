"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 16:16:13.171855
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

APPEND_ONLY = ("ledger_entries", "factor_versions", "audit_log")
"""Tables whose rows are facts: corrections are new rows, never edits."""

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index(op.f('ix_audit_log_created_at'), 'audit_log', ['created_at'], unique=False)
    op.create_table('factor_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('factors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_factor_versions')),
    sa.UniqueConstraint('city', 'mode', 'effective_from', name=op.f('uq_factor_versions_city_mode_effective_from')),
    sa.UniqueConstraint('city', 'mode', 'version', name=op.f('uq_factor_versions_city_mode_version'))
    )
    op.create_table('networks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_networks')),
    sa.UniqueConstraint('city', 'version', name=op.f('uq_networks_city_version'))
    )
    op.create_index(op.f('ix_networks_city'), 'networks', ['city'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('frozen', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_table('accounts',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('balance_points', sa.BigInteger(), nullable=False),
    sa.Column('lifetime_points', sa.BigInteger(), nullable=False),
    sa.Column('lifetime_ug', sa.BigInteger(), nullable=False),
    sa.Column('carry_ug', sa.BigInteger(), nullable=False),
    sa.Column('entry_count', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('carry_ug >= 0 AND carry_ug < 1000000', name=op.f('ck_accounts_carry_below_a_point')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_accounts_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_accounts'))
    )
    op.create_table('daily_usage',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('credited_ug', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('max_quantity', sa.BigInteger(), nullable=False),
    sa.Column('last_post_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_daily_usage_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', 'local_date', 'mode', name=op.f('pk_daily_usage'))
    )
    op.create_table('device_accounts',
    sa.Column('device_id', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_device_accounts_user_id_users')),
    sa.PrimaryKeyConstraint('device_id', 'user_id', name=op.f('pk_device_accounts'))
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('device_id', sa.String(length=128), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('avoided_ug', sa.BigInteger(), nullable=False),
    sa.Column('credited_ug', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('factor_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('methodology_version', sa.String(length=64), nullable=False),
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('explanation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.String(length=128), nullable=True),
    sa.Column('review_reason', sa.Text(), nullable=True),
    sa.Column('reversed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reversed_by', sa.String(length=128), nullable=True),
    sa.Column('reversal_reason', sa.Text(), nullable=True),
    sa.CheckConstraint('credited_ug >= 0 AND credited_ug <= avoided_ug', name=op.f('ck_events_credited_le')),
    sa.ForeignKeyConstraint(['factor_version_id'], ['factor_versions.id'], name=op.f('fk_events_factor_version_id_factor_versions')),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_events_network_id_networks')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('user_id', 'event_id', name=op.f('uq_events_user_id_event_id'))
    )
    op.create_index('ix_events_city_local_date', 'events', ['city', 'local_date'], unique=False)
    op.create_index('ix_events_status_created_at', 'events', ['status', 'created_at'], unique=False)
    op.create_index('ix_events_user_id_occurred_at', 'events', ['user_id', 'occurred_at'], unique=False)
    op.create_table('network_lines',
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_id', sa.String(length=64), nullable=False),
    sa.Column('route_id', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('avg_trip_m', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_network_lines_network_id_networks')),
    sa.PrimaryKeyConstraint('network_id', 'line_id', name=op.f('pk_network_lines'))
    )
    op.create_table('network_stops',
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stop_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('parent_stop_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_network_stops_network_id_networks')),
    sa.PrimaryKeyConstraint('network_id', 'stop_id', name=op.f('pk_network_stops'))
    )
    op.create_table('network_line_stops',
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('stop_id', sa.String(length=64), nullable=False),
    sa.Column('dist_m', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['network_id', 'line_id'], ['network_lines.network_id', 'network_lines.line_id'], name=op.f('fk_network_line_stops_network_id_network_lines')),
    sa.ForeignKeyConstraint(['network_id', 'stop_id'], ['network_stops.network_id', 'network_stops.stop_id'], name=op.f('fk_network_line_stops_network_id_network_stops')),
    sa.PrimaryKeyConstraint('network_id', 'line_id', 'seq', name=op.f('pk_network_line_stops'))
    )
    op.create_table('redemptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('redemption_id', sa.String(length=64), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('points > 0', name=op.f('ck_redemptions_points_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['accounts.user_id'], name=op.f('fk_redemptions_user_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redemptions')),
    sa.UniqueConstraint('user_id', 'redemption_id', name=op.f('uq_redemptions_user_id_redemption_id'))
    )
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('ug', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('event_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('redemption_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('mode', sa.String(length=32), nullable=True),
    sa.Column('factor_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint("kind <> 'earn' OR (points >= 0 AND ug >= 0)", name=op.f('ck_ledger_entries_earn_positive')),
    sa.CheckConstraint("kind <> 'redeem' OR (balance_after >= 0 AND points < 0)", name=op.f('ck_ledger_entries_redeem_covered')),
    sa.CheckConstraint("kind IN ('earn', 'redeem', 'reversal', 'adjustment')", name=op.f('ck_ledger_entries_kind')),
    sa.ForeignKeyConstraint(['event_pk'], ['events.id'], name=op.f('fk_ledger_entries_event_pk_events')),
    sa.ForeignKeyConstraint(['factor_version_id'], ['factor_versions.id'], name=op.f('fk_ledger_entries_factor_version_id_factor_versions')),
    sa.ForeignKeyConstraint(['redemption_pk'], ['redemptions.id'], name=op.f('fk_ledger_entries_redemption_pk_redemptions')),
    sa.ForeignKeyConstraint(['user_id'], ['accounts.user_id'], name=op.f('fk_ledger_entries_user_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('event_pk', 'kind', name=op.f('uq_ledger_entries_event_pk_kind')),
    sa.UniqueConstraint('user_id', 'seq', name=op.f('uq_ledger_entries_user_id_seq'))
    )

    _append_only_triggers()


def _append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"
            )
    else:
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS refuse_change()")
    op.drop_table('ledger_entries')
    op.drop_table('redemptions')
    op.drop_table('network_line_stops')
    op.drop_table('network_stops')
    op.drop_table('network_lines')
    op.drop_index('ix_events_user_id_occurred_at', table_name='events')
    op.drop_index('ix_events_status_created_at', table_name='events')
    op.drop_index('ix_events_city_local_date', table_name='events')
    op.drop_table('events')
    op.drop_table('device_accounts')
    op.drop_table('daily_usage')
    op.drop_table('accounts')
    op.drop_table('users')
    op.drop_index(op.f('ix_networks_city'), table_name='networks')
    op.drop_table('networks')
    op.drop_table('factor_versions')
    op.drop_index(op.f('ix_audit_log_created_at'), table_name='audit_log')
    op.drop_table('audit_log')
