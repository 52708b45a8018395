"""partition: events partitioned by month of local_date (PostgreSQL), event_keys

Revision ID: 0009_partition
Revises: 0009_holds
Create Date: 2026-12-07 15:40:00

PostgreSQL: ``events`` becomes a table partitioned by RANGE (local_date), a partition a
month (carbon_credits/storage/partitions.py says why this key). Its rows are copied into
the new table; months are created from the oldest stored event's (or a quarter before
today) to ``PREMAKE`` months ahead, by pg_partman when the extension is installed or can
be created here (a superuser's migration), else by the service's own ``ensure_months``.

Keys that cannot stay as they were:
- the primary key becomes (id, local_date) (a partitioned table's keys hold its partition
  key); ids still come from one sequence, so they stay unique;
- (user_id, event_id) is unique in ``event_keys``, an unpartitioned table kept by a trigger
  on events; the partitions hold (user_id, event_id, local_date);
- every foreign key to events.id is dropped: ledger_entries.event_pk's and the campaign
  tables' (no unique key on id alone remains, and a referenced partition could not be
  detached); verify-ledger checks that every earn, reversal and bonus entry has its event.

SQLite: ``event_keys`` and its trigger too (one key rule on both), ``events`` unchanged.
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

from carbon_credits.storage import partitions

revision = '0009_partition'
down_revision = '0009_holds'
branch_labels = None
depends_on = None

INDEXES = (
    "CREATE INDEX ix_events_city_local_date ON events (city, local_date)",
    "CREATE INDEX ix_events_user_id_occurred_at ON events (user_id, occurred_at)",
    "CREATE INDEX ix_events_held ON events (id) WHERE status = 'held'",
)


def upgrade() -> None:
    op.create_table(
        'event_keys',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('event_id', sa.String(length=100).with_variant(sa.String(64), 'sqlite'),
                  nullable=False),
        sa.Column('local_date', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', 'event_id', name=op.f('pk_event_keys')),
    )
    op.execute("INSERT INTO event_keys (user_id, event_id, local_date) "
               "SELECT user_id, event_id, local_date FROM events")
    if op.get_bind().dialect.name != "postgresql":
        op.execute("""
            CREATE TRIGGER events_key AFTER INSERT ON events BEGIN
              INSERT INTO event_keys (user_id, event_id, local_date)
              VALUES (NEW.user_id, NEW.event_id, NEW.local_date);
            END""")
        op.execute(f"""
            CREATE TRIGGER events_key_moved AFTER UPDATE OF user_id, event_id ON events
            WHEN {MOVED} BEGIN {MOVE_KEY}; END""")
        return
    _partition_events()


MOVED = "OLD.user_id IS NOT NEW.user_id OR OLD.event_id IS NOT NEW.event_id"
MOVE_KEY = ("UPDATE event_keys SET user_id = NEW.user_id, event_id = NEW.event_id "
            "WHERE user_id = OLD.user_id AND event_id = OLD.event_id")
"""An event's key follows the event when erasure moves it to a pseudonym
(privacy/erasure.py): the only change of an event's user or id the code makes. The service
role may not change event_keys itself (storage/roles.py): on PostgreSQL the trigger's
function runs as its owner (SECURITY DEFINER)."""


def _partition_events() -> None:
    conn = op.get_bind()
    for table, name in _foreign_keys_to_events(conn):
        op.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    for name in ("pk_events", "ix_events_city_local_date", "ix_events_held",
                 "ix_events_user_id_occurred_at", "uq_events_user_id_event_id"):
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_old")
    for name in ("ck_events_credited_le", "fk_events_factor_version_id_factor_versions",
                 "fk_events_network_id_networks", "fk_events_user_id_users"):
        op.execute(f"ALTER TABLE events_unpartitioned RENAME CONSTRAINT {name} TO {name}_old")
    op.execute("""
        CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS)
        PARTITION BY RANGE (local_date)""")
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (id, local_date)")
    op.execute("ALTER TABLE events ADD CONSTRAINT uq_events_user_id_event_id_local_date "
               "UNIQUE (user_id, event_id, local_date)")
    op.execute("ALTER TABLE events ADD CONSTRAINT ck_events_credited_le "
               "CHECK (credited_ug >= 0 AND credited_ug <= avoided_ug)")
    op.execute("ALTER TABLE events ADD CONSTRAINT fk_events_factor_version_id_factor_versions "
               "FOREIGN KEY (factor_version_id) REFERENCES factor_versions (id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT fk_events_network_id_networks "
               "FOREIGN KEY (network_id) REFERENCES networks (id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT fk_events_user_id_users "
               "FOREIGN KEY (user_id) REFERENCES users (id)")
    for statement in INDEXES:
        op.execute(statement)
    oldest = conn.scalar(sa.text("SELECT min(local_date) FROM events_unpartitioned"))
    today = date.today()
    first = min(oldest or today, today - timedelta(days=92))
    _create_months(conn, partitions.month_start(first), today)
    # Rows outside every month made above (none can be: the months run from the oldest)
    # would fail here, and the migration with them: nothing is left behind.
    op.execute("INSERT INTO events SELECT * FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    _key_trigger()


def _foreign_keys_to_events(conn: sa.Connection) -> list[tuple[str, str]]:
    """(table, constraint) of every foreign key that references ``events``."""
    return [(str(t), str(n)) for t, n in conn.execute(sa.text(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid = 'events'::regclass ORDER BY 1, 2"))]


REFERRING = (("ledger_entries", "fk_ledger_entries_event_pk_events"),
             ("campaign_contributions", "fk_campaign_contributions_event_pk_events"),
             ("campaign_bonuses", "fk_campaign_bonuses_event_pk_events"))
"""The foreign keys to events.id the schema before this revision has (put back by the
downgrade)."""


def _create_months(conn: sa.Connection, first: date, today: date) -> None:
    """By pg_partman if it is (or can be) installed, else by the service's own job."""
    have_partman = conn.scalar(sa.text(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_partman'"))
    superuser = conn.scalar(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    installed = conn.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_partman'"))
    if have_partman and (installed or superuser):
        if not installed:
            op.execute("CREATE SCHEMA IF NOT EXISTS partman")
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman")
        schema = conn.scalar(sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'"))
        conn.execute(sa.text(
            f"SELECT {schema}.create_parent('public.events', 'local_date', 'native', "
            f"'monthly', p_premake := :premake, p_start_partition := :start, "
            f"p_jobmon := false)"), {"premake": partitions.PREMAKE, "start": first.isoformat()})
        # No DEFAULT partition: an event of a month without one is refused with a 503 and
        # retried, where a default would hold it out of its month and block the month's
        # creation (partitions.py).
        op.execute("DROP TABLE IF EXISTS events_default")
        # Months ahead of today even when no event reached the newest month yet (a new
        # city): pg_partman 4 otherwise counts ahead from the newest month holding data.
        op.execute(f"UPDATE {schema}.part_config SET infinite_time_partitions = true "
                   "WHERE parent_table = 'public.events'")
        # Detaching old months is the operator's decision (flask partitions detach), not a
        # retention policy's.
    else:
        partitions.ensure_months(conn, partitions.months_between(
            first, partitions.add_months(partitions.month_start(today), partitions.PREMAKE)))


def _key_trigger() -> None:
    op.execute("""
        CREATE FUNCTION events_key() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO event_keys (user_id, event_id, local_date)
          VALUES (NEW.user_id, NEW.event_id, NEW.local_date);
          RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER events_key AFTER INSERT ON events "
               "FOR EACH ROW EXECUTE FUNCTION events_key()")
    op.execute(f"""
        CREATE FUNCTION events_key_moved() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
          {MOVE_KEY};
          RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER events_key_moved AFTER UPDATE OF user_id, event_id ON events "
               "FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id "
               "OR OLD.event_id IS DISTINCT FROM NEW.event_id) "
               "EXECUTE FUNCTION events_key_moved()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_key")
        op.execute("DROP TRIGGER IF EXISTS events_key_moved")
        op.drop_table('event_keys')
        return
    conn = op.get_bind()
    if conn.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_partman'")):
        schema = conn.scalar(sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'"))
        op.execute(f"DELETE FROM {schema}.part_config WHERE parent_table = 'public.events'")
        op.execute(f"DROP TABLE IF EXISTS {schema}.template_public_events")
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    for name in ("pk_events", "uq_events_user_id_event_id_local_date",
                 "ix_events_city_local_date", "ix_events_held", "ix_events_user_id_occurred_at"):
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_p")
    op.execute("CREATE TABLE events (LIKE events_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO events SELECT * FROM events_partitioned")
    op.execute("DROP TABLE events_partitioned CASCADE")
    op.execute("DROP FUNCTION events_key()")
    op.execute("DROP FUNCTION events_key_moved()")
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT uq_events_user_id_event_id "
               "UNIQUE (user_id, event_id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT ck_events_credited_le "
               "CHECK (credited_ug >= 0 AND credited_ug <= avoided_ug)")
    op.execute("ALTER TABLE events ADD CONSTRAINT fk_events_factor_version_id_factor_versions "
               "FOREIGN KEY (factor_version_id) REFERENCES factor_versions (id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT fk_events_network_id_networks "
               "FOREIGN KEY (network_id) REFERENCES networks (id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT fk_events_user_id_users "
               "FOREIGN KEY (user_id) REFERENCES users (id)")
    for statement in INDEXES:
        op.execute(statement)
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    for table, name in REFERRING:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} "
                   "FOREIGN KEY (event_pk) REFERENCES events (id)")
    op.drop_table('event_keys')
