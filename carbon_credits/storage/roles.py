"""The service's own PostgreSQL role: least privilege (issue 23).

Migrations run as the owner (the role of ``init-db``'s DATABASE_URL), which owns every
table. The service runs as another role, made and granted here
(``flask --app app grant-service-role NAME``, run by the owner after each ``init-db``, as
its grants cover the tables that exist), which:

- reads and writes rows, but cannot run DDL: it owns nothing, and since PostgreSQL 15 no
  role but the owner may CREATE in the ``public`` schema (a database upgraded from an
  older server keeps PUBLIC's CREATE: it is revoked here too);
- cannot UPDATE, DELETE or TRUNCATE the append-only tables (``APPEND_ONLY``: the ledger,
  the audit log, factor versions and network versions), whatever a trigger says; the
  owner's triggers refuse it too, a second wall. One exception: ``user_id`` and ``hash``
  of ledger entries, which erasure rewrites (an erased user's entries move to their
  pseudonym, re-chained under the chain key); the trigger admits only that move;
- cannot touch ``alembic_version`` beyond reading it.

It may still INSERT ledger entries: the ingest path writes them by COPY, which no
function can take. What stops a forged entry is the keyed hash chain, whose key is not in
the database (ledger/chain.py), not a grant. ``GRANTS_SQL`` is the same as SQL for a DBA.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from carbon_credits.schemas import is_valid_id

APPEND_ONLY = ("ledger_entries", "audit_log", "factor_versions", "networks", "network_stops",
               "network_lines", "network_line_stops", "expiry_policies", "event_keys",
               "campaign_bonuses")
"""Tables whose rows, once written, only the owner may change (and whose triggers refuse
even that for the first three). ``event_keys`` (an event id taken, across the months of
events: storage/partitions.py) is written by the trigger on events only."""


def grants_sql(role: str) -> list[str]:
    """The statements that make ``role`` the service's role (idempotent)."""
    if not is_valid_id(role) or not role.replace("_", "").isalnum():
        raise ValueError("a role name of letters, digits and _")
    append_only = ", ".join(APPEND_ONLY)
    return [
        f"""DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
              END IF;
            END $$""",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"REVOKE ALL ON SCHEMA public FROM {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public "
        f"FROM {role}",
        f"GRANT UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE UPDATE, DELETE ON {append_only} FROM {role}",
        # Erasure moves an erased user's entries to their pseudonym, re-chained under the
        # key (privacy/erasure.py): these two columns only, and the owner's trigger refuses
        # any other change (migration 0009).
        f"GRANT UPDATE (user_id, hash) ON ledger_entries TO {role}",
        # ... and with them the campaign bonuses that name the entries by (user, seq).
        # (The event ids taken, event_keys, follow their events by the owner's trigger.)
        f"GRANT UPDATE (user_id) ON campaign_bonuses TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
        # Where keyed ledger entries start: written once by migration 0008, as the owner.
        f"REVOKE INSERT, UPDATE, DELETE ON ledger_chain_start FROM {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]


def grant_service_role(connection: Connection, role: str) -> None:
    """Create (if missing) and grant the service's role, in the caller's transaction."""
    for statement in grants_sql(role):
        connection.execute(text(statement))
