"""rewards: the catalogue of merchants' rewards, their redemptions and voucher codes

Revision ID: 0007_rewards
Revises: 0006_record_files
Create Date: 2026-12-07 05:40:00

A reward redemption hangs off the existing ``redemptions`` row (which holds the points
spent and the idempotency key); ``voucher_codes.code`` is unique over all rewards, so a
code is issued at most once, ever. See carbon_credits/rewards.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007_rewards'
down_revision = '0006_record_files'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'rewards',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('merchant_id', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('price_points', sa.BigInteger(), nullable=False),
        sa.Column('stock', sa.Integer(), nullable=False),
        sa.Column('stock_left', sa.Integer(), nullable=False),
        sa.Column('per_user_limit', sa.Integer(), nullable=False),
        sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('city', sa.String(length=64), nullable=False),
        sa.Column('title_zh', sa.String(length=200), nullable=False),
        sa.Column('title_en', sa.String(length=200), nullable=False),
        sa.Column('description_zh', sa.Text(), nullable=False),
        sa.Column('description_en', sa.Text(), nullable=False),
        sa.Column('codes', sa.String(length=16), nullable=True),
        sa.Column('project', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=True),
        sa.Column('review_reason', sa.Text(), nullable=True),
        sa.Column('reviewed_by', sa.String(length=128), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('voucher', 'physical', 'donation')", name=op.f('ck_rewards_known_kind')),
        sa.CheckConstraint("status IN ('pending_review', 'approved', 'rejected')", name=op.f('ck_rewards_known_status')),
        sa.CheckConstraint('price_points > 0', name=op.f('ck_rewards_price_positive')),
        sa.CheckConstraint('stock_left >= 0 AND stock_left <= stock', name=op.f('ck_rewards_stock_in_range')),
        sa.CheckConstraint('per_user_limit >= 1', name=op.f('ck_rewards_limit_positive')),
        sa.CheckConstraint('valid_until > valid_from', name=op.f('ck_rewards_valid_window')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rewards')),
    )
    op.create_index('ix_rewards_city_status', 'rewards', ['city', 'status'], unique=False)
    op.create_index(op.f('ix_rewards_merchant_id'), 'rewards', ['merchant_id'], unique=False)
    op.create_table(
        'reward_redemptions',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('redemption_pk', BIG_ID, nullable=False),
        sa.Column('reward_id', BIG_ID, nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('certificate_hash', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('quantity >= 1', name=op.f('ck_reward_redemptions_quantity_positive')),
        sa.CheckConstraint("state IN ('issued', 'used', 'pending', 'shipped', 'delivered', 'donated', 'cancelled')", name=op.f('ck_reward_redemptions_known_state')),
        sa.ForeignKeyConstraint(['redemption_pk'], ['redemptions.id'], name=op.f('fk_reward_redemptions_redemption_pk_redemptions')),
        sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_reward_redemptions_reward_id_rewards')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_redemptions')),
        sa.UniqueConstraint('redemption_pk', name=op.f('uq_reward_redemptions_redemption_pk')),
    )
    op.create_index('ix_reward_redemptions_reward_id_user_id', 'reward_redemptions', ['reward_id', 'user_id'], unique=False)
    op.create_table(
        'voucher_codes',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('reward_id', BIG_ID, nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reward_redemption_id', BIG_ID, nullable=True),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('available', 'issued', 'used', 'void')", name=op.f('ck_voucher_codes_known_state')),
        sa.CheckConstraint("(state = 'available') = (reward_redemption_id IS NULL)", name=op.f('ck_voucher_codes_issued_has_redemption')),
        sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_voucher_codes_reward_id_rewards')),
        sa.ForeignKeyConstraint(['reward_redemption_id'], ['reward_redemptions.id'], name=op.f('fk_voucher_codes_reward_redemption_id_reward_redemptions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_voucher_codes')),
        sa.UniqueConstraint('code', name=op.f('uq_voucher_codes_code')),
    )
    op.create_index('ix_voucher_codes_reward_id_state', 'voucher_codes', ['reward_id', 'state'], unique=False)
    op.create_index(op.f('ix_voucher_codes_reward_redemption_id'), 'voucher_codes', ['reward_redemption_id'], unique=False)


def downgrade() -> None:
    op.drop_table('voucher_codes')
    op.drop_table('reward_redemptions')
    op.drop_table('rewards')
