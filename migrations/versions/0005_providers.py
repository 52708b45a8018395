"""providers: scenario providers, their keys, replay nonces, binding codes and bindings

Revision ID: 0005_providers
Revises: 0004_lean
Create Date: 2026-12-07 05:30:00

New tables only; nothing existing changes. Bindings are never deleted (a revocation sets
``revoked_at``); the partial unique indexes allow one active binding per (provider,
user_ref) and per (provider, user).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_providers'
down_revision = '0004_lean'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql')
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('providers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('modes', JSON, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_providers'))
    )
    op.create_table('provider_keys',
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.String(length=32), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=True),
    sa.Column('secret_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("algorithm IN ('hmac-sha256', 'ed25519')", name=op.f('ck_provider_keys_algorithm')),
    sa.CheckConstraint("(algorithm = 'hmac-sha256') = (secret_sealed IS NOT NULL) AND (algorithm = 'ed25519') = (public_key IS NOT NULL)", name=op.f('ck_provider_keys_material')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_keys_provider_id_providers')),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_provider_keys'))
    )
    op.create_index(op.f('ix_provider_keys_provider_id'), 'provider_keys', ['provider_id'], unique=False)
    op.create_table('provider_nonces',
    sa.Column('provider_id', sa.String(length=32), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider_id', 'nonce', name=op.f('pk_provider_nonces'))
    )
    op.create_index(op.f('ix_provider_nonces_expires_at'), 'provider_nonces', ['expires_at'], unique=False)
    op.create_table('provider_binding_codes',
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.String(length=32), nullable=False),
    sa.Column('user_ref', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_binding_codes_provider_id_providers')),
    sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_provider_binding_codes'))
    )
    op.create_table('provider_bindings',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('provider_id', sa.String(length=32), nullable=False),
    sa.Column('user_ref', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('bound_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_bindings_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_bindings'))
    )
    op.create_index(op.f('ix_provider_bindings_user_id'), 'provider_bindings', ['user_id'], unique=False)
    op.create_index('uq_provider_bindings_active_ref', 'provider_bindings', ['provider_id', 'user_ref'], unique=True, postgresql_where=sa.text('revoked_at IS NULL'), sqlite_where=sa.text('revoked_at IS NULL'))
    op.create_index('uq_provider_bindings_active_user', 'provider_bindings', ['provider_id', 'user_id'], unique=True, postgresql_where=sa.text('revoked_at IS NULL'), sqlite_where=sa.text('revoked_at IS NULL'))


def downgrade() -> None:
    op.drop_table('provider_bindings')
    op.drop_table('provider_binding_codes')
    op.drop_table('provider_nonces')
    op.drop_table('provider_keys')
    op.drop_table('providers')
