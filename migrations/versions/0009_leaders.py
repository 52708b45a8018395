"""leaders: leaderboard privacy, teams and their members, friend links (issue 25)

Revision ID: 0009_leaders
Revises: 0008_keyed_chain
Create Date: 2026-12-07 15:20:00

The leaderboards themselves live in Redis (or in-process), rebuilt from the ledger by
``flask rebuild-leaderboards``: no table holds them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_leaders'
down_revision = '0009_account'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'leaderboard_privacy',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('hidden', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_leaderboard_privacy_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_leaderboard_privacy')),
    )
    op.create_table(
        'teams',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('city', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('invite_code', sa.String(length=32), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('company', 'school', 'organisation')",
                           name=op.f('ck_teams_known_kind')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
        sa.UniqueConstraint('invite_code', name=op.f('uq_teams_invite_code')),
    )
    op.create_table(
        'team_members',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('city', sa.String(length=64), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'],
                                name=op.f('fk_team_members_team_id_teams')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_team_members_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'city', name=op.f('pk_team_members')),
    )
    op.create_index('ix_team_members_team_id', 'team_members', ['team_id'])
    op.create_table(
        'friendships',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('friend_id', sa.String(length=128), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('requested', 'invited', 'accepted')",
                           name=op.f('ck_friendships_known_state')),
        sa.CheckConstraint('user_id <> friend_id', name=op.f('ck_friendships_not_self')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_friendships_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', 'friend_id', name=op.f('pk_friendships')),
    )


def downgrade() -> None:
    op.drop_table('friendships')
    op.drop_index('ix_team_members_team_id', table_name='team_members')
    op.drop_table('team_members')
    op.drop_table('teams')
    op.drop_table('leaderboard_privacy')
