"""How each table would be placed on distributed PostgreSQL (Citus), and where today's
schema does not yet follow the rules; checked against the live schema by
tests/integration/test_distribution_rules.py and spelled out in docs/SCALING.md.

**Rules** (Citus: co-located joins and foreign keys, single-shard routing):

1. A user-owned table is *distributed* by the user key, and every primary or unique key of
   it includes that column (a unique index can only be enforced within one shard).
2. Cross-user tables are *reference* tables (a full copy on every node: small, rarely
   written), or distributed by a key of their own (``APART``: the city of the rollups, the
   provider of the nonces; written on every ingest or signed request, so a copy per node
   would multiply every write).
3. A foreign key between two distributed tables includes the distribution column on both
   sides (co-location); a distributed table may reference a reference table, never the
   other way round.
4. Every table is in exactly one list: a new table must be classified here.

Every statement of the ingest and redemption paths on a distributed table filters by (or,
an INSERT, carries) the user key, so Citus routes it to one shard
(tests/integration/test_distribution_rules.py captures them).
"""

from __future__ import annotations

DISTRIBUTED: dict[str, str] = {
    "users": "id",
    "accounts": "user_id",
    "daily_usage": "user_id",
    "annual_usage": "user_id",
    "device_accounts": "user_id",
    "events": "user_id",
    "event_keys": "user_id",
    "ledger_entries": "user_id",
    "redemptions": "user_id",
    "reward_redemptions": "user_id",
    "expiry_states": "user_id",
    "expiry_notices": "user_id",
    "point_claims": "user_id",
    "consents": "user_id",
    "audit_subjects": "user_id",
    "account_months": "user_id",
    "badge_awards": "user_id",
    "leaderboard_privacy": "user_id",
    "team_members": "user_id",
    "friendships": "user_id",
    "campaign_progress": "user_id",
    "campaign_contributions": "user_id",
    "campaign_bonuses": "user_id",
}
"""User-owned tables: table -> the column holding the user key (co-located with users)."""

REFERENCE: frozenset[str] = frozenset({
    "factor_versions", "networks", "network_stops", "network_lines", "network_line_stops",
    "trust_policies", "rewards", "audit_log", "record_files", "record_file_errors",
    "voucher_codes", "providers", "provider_keys", "provider_binding_codes",
    "provider_bindings", "ledger_chain_start", "expiry_policies",
    "erasures",
    "badges",
    "teams",
    "campaigns", "webhook_endpoints",
    "table_versions",
})
"""Cross-user tables written by admins, operators and merchants, read by everyone."""

APART: dict[str, str] = {"report_rollups": "city", "provider_nonces": "provider_id",
                         "webhook_deliveries": "endpoint_id"}
"""Cross-user tables written on every ingest (rollups) or signed provider request (the
nonces' replay store without Redis): distributed by a key of their own, not co-located with
the user tables (no foreign key joins them)."""

LOCAL: frozenset[str] = frozenset({"alembic_version"})
"""The coordinator's own bookkeeping (Alembic's revision), never distributed."""

EXCEPTIONS: dict[str, str] = {
    # Keys of distributed tables without the user key: surrogate ids, unique on their own.
    "events: unique key (id, local_date) lacks user_id":
        "the surrogate key of a partitioned events (migration 0009: a partitioned table's "
        "keys hold its partition key); on Citus the primary key becomes (user_id, id, "
        "local_date) (ids stay unique from their sequence). ledger_entries.event_pk has no "
        "foreign key to it any more (verify-ledger checks the link), so none needs moving",
    "ledger_entries: unique key (id) lacks user_id":
        "a surrogate key nothing references; on Citus the primary key becomes "
        "(user_id, id) or (user_id, seq), which UNIQUE (user_id, seq) already is",
    "ledger_entries: unique key (event_pk) lacks user_id":
        "uq_ledger_entries_earn and _reversal, partial: one earn and one reversal entry "
        "per event; on Citus (user_id, event_pk): an event belongs to one user, so the "
        "rule is the same",
    "ledger_entries: unique key (event_pk, kind) lacks user_id":
        "one entry of each other kind per event; on Citus (user_id, event_pk, kind)",
    "redemptions: unique key (id) lacks user_id":
        "the surrogate key ledger_entries.redemption_pk and reward_redemptions point at; "
        "on Citus the primary key becomes (user_id, id), and those keys carry user_id",
    "reward_redemptions: unique key (id) lacks user_id":
        "the surrogate key voucher_codes.reward_redemption_id points at; on Citus "
        "(user_id, id)",
    "consents: unique key (id) lacks user_id":
        "a surrogate key nothing references (SQLite numbers only a lone INTEGER primary "
        "key); on Citus the primary key becomes (user_id, id)",
    "reward_redemptions: unique key (redemption_pk) lacks user_id":
        "one reward redemption per points redemption; on Citus (user_id, redemption_pk)",
    # Foreign keys between distributed tables on surrogate ids, not the user key.
    "ledger_entries: foreign key (redemption_pk) -> redemptions (id) is not co-located":
        "becomes (user_id, redemption_pk) -> redemptions (user_id, id)",
    "reward_redemptions: foreign key (redemption_pk) -> redemptions (id) is not "
    "co-located":
        "becomes (user_id, redemption_pk) -> redemptions (user_id, id)",
    # A user's table kept as a reference table.
    "provider_bindings: carries user_id but is not distributed by it":
        "a provider's reference of a user (user_ref) -> the user: read by (provider_id, "
        "user_ref) on every provider post, before the user is known, so distributed by "
        "user_id it would be a query of every shard; a reference table (one row per user "
        "and provider, written once at binding) routes it on any node",
    # A reference table pointing into a distributed one.
    "voucher_codes: foreign key (reward_redemption_id) -> reward_redemptions (id) is "
    "from a reference table to a distributed one":
        "a merchant's code pool is shared until a code is handed out; on Citus drop this "
        "foreign key (the code's holder is checked by the redemption's own transaction, "
        "which locks the code row) or move handed-out codes into a user_id-keyed table",
}
"""Where today's schema breaks a rule, and what an operator who runs Citus changes. Kept
as they are because the change touches the ingest fast path's prebuilt statements and
every query of the ledger (issue 24 left the migration for a later change); the test
fails on any violation not listed here, and on any listed one that is gone."""
