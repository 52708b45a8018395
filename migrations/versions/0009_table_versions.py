"""table_versions: a version per small admin-managed table that ingest caches in process

Revision ID: 0009_table_versions
Revises: 0009_campaigns
Create Date: 2026-12-07 19:00:00

Every post reads the active badges, the running campaigns and the webhook endpoints (the
crediting hooks, ``ledger/hooks.py``). They change a few times a year and are read
thousands of times a second, so ingest keeps them in the process
(``storage/cached.py``) and reads only their versions, one statement for all. A trigger
on each table writes a new random version in the transaction that changes it, whoever
writes (the API, a CLI, a DBA's SQL), so a cached copy is never used after a change has
committed. A campaign's ``spent_points`` (moved by every bonus paid) is left out: the
cached copy never holds it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_table_versions'
down_revision = '0009_campaigns'
branch_labels = None
depends_on = None

WATCHED = {
    "badges": None,
    "campaigns": ("city", "mode", "starts_on", "ends_on", "goal_events", "bonus_points",
                  "budget_points", "title_zh", "title_en", "ended_at", "id"),
    "webhook_endpoints": None,
}
"""The cached tables, and the columns whose update changes the cached copy (None: any)."""


def upgrade() -> None:
    op.create_table(
        'table_versions',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_table_versions')))
    postgres = op.get_bind().dialect.name == "postgresql"
    new_version = "gen_random_uuid()::text" if postgres else "lower(hex(randomblob(16)))"
    for table in WATCHED:
        op.execute(f"INSERT INTO table_versions (name, version) VALUES ('{table}', "
                   f"{new_version})")
    if postgres:
        op.execute("""
            CREATE FUNCTION new_table_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO table_versions (name, version)
                VALUES (TG_TABLE_NAME, gen_random_uuid()::text)
                ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version;
                RETURN NULL;
            END $$""")
        for table, columns in WATCHED.items():
            updates = "UPDATE" if columns is None else f"UPDATE OF {', '.join(columns)}"
            op.execute(f"CREATE TRIGGER {table}_version AFTER INSERT OR DELETE OR TRUNCATE "
                       f"OR {updates} ON {table} FOR EACH STATEMENT "
                       "EXECUTE FUNCTION new_table_version()")
        return
    for table, columns in WATCHED.items():
        updates = "UPDATE" if columns is None else f"UPDATE OF {', '.join(columns)}"
        for what in ("INSERT", "DELETE", updates):
            name = f"{table}_version_{what.split()[0].lower()}"
            op.execute(f"CREATE TRIGGER {name} AFTER {what} ON {table} BEGIN "
                       f"INSERT OR REPLACE INTO table_versions (name, version) "
                       f"VALUES ('{table}', {new_version}); END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_version ON {table}")
        else:
            for what in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_version_{what}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS new_table_version()")
    op.drop_table('table_versions')
