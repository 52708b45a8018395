"""Typed SQLAlchemy 2.x models. Amounts are integers: micrograms of CO2 and whole points."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite has no tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")
NullableJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSON whose Python None is SQL NULL (not JSON 'null'): nothing stored but a null bit."""
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Int4 = Integer().with_variant(BigInteger(), "sqlite")
"""4 bytes on PostgreSQL for a count that cannot near 2**31 (a row's points, a per-account
sequence number): next to another 4-byte column it saves the 8-byte alignment a bigint
needs (migration 0004). SQLite keeps the BIGINT it was created with (it stores integers in
1-8 bytes whatever the declared type, and cannot alter a column's type in place);
out-of-range values fail the write. An event's references to its factor set and network
version are plain ``Integer`` for the same reason (SQLite created them INTEGER, ``BigId``'s
type there)."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JsonType}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    city: Mapped[str] = mapped_column(String(64))
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A user's points. Changed only together with a ledger entry, in one transaction."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("carry_ug >= 0 AND carry_ug < 1000000", name="carry_below_a_point"),
    )

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    balance_points: Mapped[int] = mapped_column(BigInteger, default=0)
    """Negative only as a debt left by reversing points already spent (see ledger.reverse)."""
    lifetime_points: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_ug: Mapped[int] = mapped_column(BigInteger, default=0)
    carry_ug: Mapped[int] = mapped_column(BigInteger, default=0)
    """Micrograms credited but not yet worth a whole point (see ledger.points_for)."""
    entry_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32), default=bytes(32))
    """SHA-256 of the account's last ledger entry (32 zero bytes before the first)."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    user: Mapped[User] = relationship(lazy="raise")


class FactorVersion(Base):
    """An immutable factor set for one city and mode, in force from ``effective_from``."""

    __tablename__ = "factor_versions"
    __table_args__ = (
        UniqueConstraint("city", "mode", "version"),
        UniqueConstraint("city", "mode", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    factors: Mapped[dict[str, Any]] = mapped_column()
    effective_from: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Network(Base):
    """One imported version of a city's transit network; the newest is in use."""

    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("city", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NetworkStop(Base):
    __tablename__ = "network_stops"

    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id"), primary_key=True)
    stop_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    parent_stop_id: Mapped[str | None] = mapped_column(String(64))
    district: Mapped[str | None] = mapped_column(String(64))
    """The city district the stop lies in, when known: reports group trips by it."""


class NetworkLine(Base):
    """One stop pattern of a route (see methodology.network.Line)."""

    __tablename__ = "network_lines"

    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id"), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    route_id: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    avg_trip_m: Mapped[int | None] = mapped_column(Integer)


class NetworkLineStop(Base):
    __tablename__ = "network_line_stops"
    __table_args__ = (
        ForeignKeyConstraint(
            ["network_id", "line_id"], ["network_lines.network_id", "network_lines.line_id"]
        ),
        ForeignKeyConstraint(
            ["network_id", "stop_id"], ["network_stops.network_id", "network_stops.stop_id"]
        ),
    )

    network_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    stop_id: Mapped[str] = mapped_column(String(64))
    dist_m: Mapped[int] = mapped_column(Integer)


class Event(Base):
    """One posted event: its inputs, the versions it was priced with, and its result.

    The explanation of how the result was found is not stored: it is built on read
    (``ledger.explain``) from the inputs, the factor version and the network version,
    which are immutable, and from ``notes``, what the decision met that the inputs do not
    say (plausibility hits, the daily cap, the status before a reversal); ``notes`` is
    NULL for an event that met none. The payload is not stored either: its inputs are
    the typed columns (``ledger.explain.INPUT_COLUMNS`` maps each mode's declared
    inputs to them), its SHA-256 (``payload_hash``, 32 bytes) tells a replay from a
    reuse of the event id.
    """

    __tablename__ = "events"
    __table_args__ = (
        # The idempotency guarantee: one row per client event id per user, by constraint.
        UniqueConstraint("user_id", "event_id"),
        Index("ix_events_city_local_date", "city", "local_date"),
        Index("ix_events_user_id_occurred_at", "user_id", "occurred_at"),
        # The review queue reads held events only: a partial index holds just those.
        Index("ix_events_held", "id", postgresql_where=text("status = 'held'"),
              sqlite_where=text("status = 'held'")),
        CheckConstraint("credited_ug >= 0 AND credited_ug <= avoided_ug", name="credited_le"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    event_id: Mapped[str] = mapped_column(String(100).with_variant(String(64), "sqlite"))
    """The client's id, or "<provider id>~<record id>" for a provider's record (``source``).
    SQLite enforces no length, and changes a declared one only by copying the table: its
    declaration stays the first one."""
    mode: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column()
    """A trip's ``started_at``, or the start of a day count's local ``date``."""
    ends_at: Mapped[datetime | None] = mapped_column()
    """A trip's end (``ended_at``), when known: overlapping trips are a fraud signal."""
    local_date: Mapped[date] = mapped_column(Date)
    device_id: Mapped[str | None] = mapped_column(String(128))
    line_id: Mapped[str | None] = mapped_column(String(64))
    origin: Mapped[str | None] = mapped_column(String(64))
    """Where a trip began: a bus ``board_stop_id`` or a metro ``entry_station_id``."""
    destination: Mapped[str | None] = mapped_column(String(64))
    """Where it ended: ``alight_stop_id`` or ``exit_station_id``."""
    distance_m: Mapped[int | None] = mapped_column(Integer)
    """The distance the client (or the bike-share operator) reported, as posted."""
    steps: Mapped[int | None] = mapped_column(Integer)
    payload_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    avoided_ug: Mapped[int] = mapped_column(BigInteger)
    credited_ug: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(Int4)
    factor_version_id: Mapped[int] = mapped_column(Integer, ForeignKey("factor_versions.id"))
    methodology_version: Mapped[str] = mapped_column(String(64))
    network_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("networks.id"))
    activity: Mapped[int] = mapped_column(Integer)
    """What the factor multiplied: metres travelled, or steps credited (the increase)."""
    previous_quantity: Mapped[int | None] = mapped_column(Integer)
    """Cumulative modes: the day's highest earlier count it was measured against."""
    notes: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column()
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    review_reason: Mapped[str | None] = mapped_column(Text)
    reversed_at: Mapped[datetime | None] = mapped_column()
    reversed_by: Mapped[str | None] = mapped_column(String(128))
    reversal_reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(32))
    """None: posted by the user's client; else the id of the scenario provider that reported
    it (ingest/trust.py)."""


class EventKey(Base):
    """The global idempotency key of events: one row per (user, client event id), written
    by a trigger on every insert into ``events`` (migration 0009), never by the code.

    On PostgreSQL ``events`` is partitioned by month of ``local_date``
    (storage/partitions.py), and a partitioned table's unique keys must hold the partition
    key: its own key is (user_id, event_id, local_date) and its primary key (id,
    local_date), and ledger_entries.event_pk has no foreign key to it (verify-ledger
    checks the link). This table, unpartitioned, keeps an event id taken across months,
    also while its month is detached. SQLite keeps the declarations above."""

    __tablename__ = "event_keys"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100).with_variant(String(64), "sqlite"),
                                          primary_key=True)
    local_date: Mapped[date] = mapped_column(Date)
    """Which month's partition holds the event."""


class TrustPolicy(Base):
    """Whose word credits a trip of ``mode`` in ``city`` (ingest/trust.py); a city and
    mode without a row is ``client``, today's behaviour."""

    __tablename__ = "trust_policies"
    __table_args__ = (
        CheckConstraint("policy IN ('client', 'operator_confirms', 'operator_only')",
                        name="known_policy"),
    )

    city: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(32), primary_key=True)
    policy: Mapped[str] = mapped_column(String(24))
    confirm_days: Mapped[int] = mapped_column(Integer)
    """``operator_confirms``: days a client post waits for its operator record."""
    tolerance_s: Mapped[int] = mapped_column(Integer)
    """How far apart a client post's and an operator record's times may be to match."""
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


LEDGER_KINDS_SQL = ("'earn', 'redeem', 'reversal', 'adjustment', 'expiry', 'lapse', 'bonus', "
                    "'hold', 'release'")
"""The ledger's entry kinds (the kind CHECK; 'expiry' and 'lapse' since migration
0009_expiry, 'bonus' since 0009_campaigns, 'hold' and 'release' since 0009_holds)."""

OTHER_EVENT_ENTRIES = "event_pk IS NOT NULL AND kind NOT IN ('earn', 'reversal')"


class LedgerEntry(Base):
    """Append-only: never updated or deleted (a trigger refuses it). Hash-chained per account."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("user_id", "seq"),
        # At most one entry of each kind per event: one earn, one reversal. A partial
        # unique index per kind keyed by the event alone (an entry is in one of them) is
        # 20 bytes an entry where (event_pk, kind) was 28 (migration 0004); a third keeps
        # the rule for other kinds, which carry no event today.
        Index("uq_ledger_entries_earn", "event_pk", unique=True,
              postgresql_where=text("kind = 'earn'"), sqlite_where=text("kind = 'earn'")),
        Index("uq_ledger_entries_reversal", "event_pk", unique=True,
              postgresql_where=text("kind = 'reversal'"),
              sqlite_where=text("kind = 'reversal'")),
        Index("uq_ledger_entries_other", "event_pk", "kind", unique=True,
              postgresql_where=text(OTHER_EVENT_ENTRIES),
              sqlite_where=text(OTHER_EVENT_ENTRIES)),
        # Unclaimed points lapse per event, as its points and nothing else.
        CheckConstraint("kind <> 'lapse' OR (points < 0 AND ug = 0 AND event_pk IS NOT NULL)",
                        name="lapse_takes_an_events_points"),
        # An expiry takes points and nothing else: no grams, no event, no redemption.
        CheckConstraint("kind <> 'expiry' OR (points < 0 AND ug = 0 AND event_pk IS NULL "
                        "AND redemption_pk IS NULL)", name="expiry_takes_points"),
        CheckConstraint(f"kind IN ({LEDGER_KINDS_SQL})", name="kind"),
        # Spending can never overdraw an account, whatever the code above the database does.
        CheckConstraint("kind <> 'redeem' OR (balance_after >= 0 AND points < 0)",
                        name="redeem_covered"),
        CheckConstraint("kind <> 'earn' OR (points >= 0 AND ug >= 0)", name="earn_positive"),
        # A hold reserves and a release frees a redemption's points: neither moves the
        # balance (ledger.redemptions); the amount is the redemption's.
        CheckConstraint("kind NOT IN ('hold', 'release') OR (points = 0 AND ug = 0 AND "
                        "event_pk IS NULL AND redemption_pk IS NOT NULL)",
                        name="hold_moves_no_points"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("accounts.user_id"))
    seq: Mapped[int] = mapped_column(Int4)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Int4)
    ug: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    """The account balance right after this entry: a running total auditors can re-add."""
    event_pk: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    redemption_pk: Mapped[int | None] = mapped_column(ForeignKey("redemptions.id"))
    mode: Mapped[str | None] = mapped_column(String(32))
    factor_version_id: Mapped[int | None] = mapped_column(ForeignKey("factor_versions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    """HMAC-SHA256 under the ledger chain key (plain SHA-256 before migration 0008) over the
    entry's facts and the previous entry's hash (``ledger.chain``): 32 bytes. The previous
    hash is not stored again in each entry: it is the previous entry's (by seq) ``hash``,
    which verify-ledger chains from the genesis."""


class LedgerChainStart(Base):
    """Where keyed ledger entries start (one row, written by migration 0008): entries up to
    ``legacy_last_entry_id`` may carry the plain SHA-256 they were written with; every later
    one must be keyed. ``mac`` seals the boundary under the chain key, so moving it to admit
    a forged unkeyed entry needs the key (``ledger.chain.start_mac``)."""

    __tablename__ = "ledger_chain_start"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    legacy_last_entry_id: Mapped[int] = mapped_column(BigInteger)
    mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Redemption(Base):
    """Points spent by a user, idempotent by the client's redemption id."""

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("user_id", "redemption_id"),
        CheckConstraint("points > 0", name="points_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("accounts.user_id"))
    redemption_id: Mapped[str] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(200))
    payload_hash: Mapped[str] = mapped_column(String(64))
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExpiryPolicy(Base):
    """A city's points expiry rule from ``effective_from`` on (``ledger.expiry``): rows are
    only added (by the admin API, audited), so the rule in force when any point was earned
    stays known; a city without a row: points never expire."""

    __tablename__ = "expiry_policies"
    __table_args__ = (
        CheckConstraint("rule IN ('never', 'days', 'months', 'year_end')", name="known_rule"),
        CheckConstraint("(rule = 'days' AND amount BETWEEN 1 AND 3652) OR (rule = 'months' "
                        "AND amount BETWEEN 1 AND 120) OR (rule IN ('never', 'year_end') "
                        "AND amount = 0)", name="at_most_ten_years"),
    )

    city: Mapped[str] = mapped_column(String(64), primary_key=True)
    effective_from: Mapped[datetime] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExpiryState(Base):
    """A user's points by expiry date, folded from the ledger up to entry ``seq``
    (``ledger.expiry.Lots`` as JSON): what the expiry job reads instead of the ledger.
    Derived data, never a source of truth: verify-ledger recomputes it from the entries,
    and a lost row is folded again from the first entry."""

    __tablename__ = "expiry_states"
    __table_args__ = (Index("ix_expiry_states_next_due", "next_due"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("accounts.user_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    next_due: Mapped[date | None] = mapped_column(Date)
    """The earliest expiry date with live points: the job's index."""
    lots: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExpiryNotice(Base):
    """A ``points.expiring`` webhook announced (``webhooks.expiring``): one per user and
    expiry date, ever (the primary key), with the points it announced; so running the
    announcing job again, or two at once, announces nothing twice."""

    __tablename__ = "expiry_notices"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    expires_on: Mapped[date] = mapped_column(Date, primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)
    announced_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointClaim(Base):
    """Where a user's credits stop being pending or unclaimed (``ledger.settlement``):
    every earn entry up to ``resolved_seq`` was claimed by the user or has lapsed."""

    __tablename__ = "point_claims"

    user_id: Mapped[str] = mapped_column(ForeignKey("accounts.user_id"), primary_key=True)
    resolved_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRecord(Base):
    """Who changed what, when and why: every admin action. Append-only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    subject_ref: Mapped[str | None] = mapped_column(String(32), index=True)
    """The user the record is about, by their opaque reference (``AuditSubject``), never
    by id: an erasure re-points the reference, and the append-only rows name nobody."""


class AuditSubject(Base):
    """The random reference audit records name a user by (``audit.subject_ref``).

    The only link from the audit log to a person: erasure moves it to the user's pseudonym
    (``privacy/personal_data.py``), so the log, append-only, keeps what was done to
    "subject X" (frozen, reversed, erased) without naming the subject."""

    __tablename__ = "audit_subjects"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ref: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DailyUsage(Base):
    """What a user was credited per local day and mode: the state daily caps read, and the
    carbon account's day rows (``live_*``, ``activity``: carbon_credits/account).

    The two sets of counters differ on purpose. The caps' (``events``, ``credited_ug``,
    ``points``) count every credit the day gave, a capped one of zero grams included, and a
    reversal leaves them alone: what a day credited stays used against its cap. The live
    ones count the credited events with grams that still stand: a reversal takes its event
    back out, and only earn entries count (bonus points, another entry kind, never do).
    One row for both (migration ``0009_usage_days``; they were two tables with the same
    key, ~95 bytes an event more: BENCHMARKS.md, figure 8)."""

    __tablename__ = "daily_usage"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    local_date: Mapped[date] = mapped_column(Date, primary_key=True)
    mode: Mapped[str] = mapped_column(String(32), primary_key=True)
    events: Mapped[int] = mapped_column(Integer, default=0)
    credited_ug: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(Int4, default=0)
    max_quantity: Mapped[int] = mapped_column(Int4, default=0)
    """For cumulative modes: the highest count posted that day (steps)."""
    last_post_at: Mapped[datetime | None] = mapped_column()
    """When the mode was last posted that day (server time): steps velocity."""
    live_events: Mapped[int] = mapped_column(Integer, default=0)
    """Credited events with grams, not reversed (trips, or a steps day's credited posts):
    a row with none is not a green day."""
    live_ug: Mapped[int] = mapped_column(BigInteger, default=0)
    live_points: Mapped[int] = mapped_column(BigInteger, default=0)
    activity: Mapped[int] = mapped_column(BigInteger, default=0)
    """What the factors multiplied for the live events (``Event.activity``): metres, or
    steps credited."""


class AnnualUsage(Base):
    """A user's credits of one local calendar year: what the annual cap reads
    (ANNUAL_CAP_G; ``ledger.caps``), kept with the daily usage in the crediting
    transaction, under the account lock."""

    __tablename__ = "annual_usage"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    credited_ug: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class DeviceAccount(Base):
    """Which accounts a client device (X-Device-Id) has posted for: farms share devices."""

    __tablename__ = "device_accounts"

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)


class ReportRollup(Base):
    """Credited reduction per city, local day, mode, district, methodology version, source
    and shard.

    Maintained per credit by ``reports.rollups`` (deltas added with an atomic upsert, never
    read-modify-written in Python on PostgreSQL) and rebuilt from the ledger by
    ``flask rebuild-rollups``. ``shard`` is the top 4 bits of a hash of the user id, so the
    events of one cell and day spread over 16 rows: no single row is hot. Reports sum the
    shards. ``hll`` is this shard's slice of a HyperLogLog sketch of the cell's live
    participants (256 one-byte registers; see ``reports.rollups``).
    """

    __tablename__ = "report_rollups"

    city: Mapped[str] = mapped_column(String(64), primary_key=True)
    local_date: Mapped[date] = mapped_column(Date, primary_key=True)
    mode: Mapped[str] = mapped_column(String(32), primary_key=True)
    district: Mapped[str] = mapped_column(String(64), primary_key=True)
    methodology_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Who reported the events: 'client' (the users' apps) or a scenario provider's id."""
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    """Live credited events: events with an earn entry and no reversal."""
    ug: Mapped[int] = mapped_column(BigInteger, default=0)
    """Credited micrograms CO2: earn minus reversal entries of the ledger."""
    avoided_ug: Mapped[int] = mapped_column(BigInteger, default=0)
    """What the methodology computed for those events before daily caps (MRV)."""
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    activity: Mapped[int] = mapped_column(BigInteger, default=0)
    """Metres travelled (trip modes) or steps credited (steps): the quantity a factor
    multiplies, for the verification export."""
    hll: Mapped[bytes] = mapped_column(LargeBinary)


class RecordFile(Base):
    """A provider's record file and the job that applies it (providers/jobs.py).

    One per (provider, content): the same file uploaded again is the same job. Progress
    is a checkpoint, the last line whose chunk was applied and counted, written in one
    transaction with that chunk's counts and errors, so a restarted job recounts nothing.
    """

    __tablename__ = "record_files"
    __table_args__ = (
        UniqueConstraint("provider_id", "sha256"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        CheckConstraint("format IN ('csv', 'jsonl')", name="format"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    """Hex SHA-256 of the file as uploaded (compressed or not): also its name on disk."""
    format: Mapped[str] = mapped_column(String(8))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    city: Mapped[str] = mapped_column(String(64))
    """The city of records that name none: the provider's, when uploaded."""
    status: Mapped[str] = mapped_column(String(16))
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    credited: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    replayed: Mapped[int] = mapped_column(BigInteger, default=0)
    refused: Mapped[int] = mapped_column(BigInteger, default=0)
    """Rows that failed to parse or validate, and rows the crediting refused."""
    checkpoint_line: Mapped[int] = mapped_column(BigInteger, default=0)
    checkpoint_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    """Byte offset (in the decompressed file) just after ``checkpoint_line``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failure: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class RecordFileError(Base):
    """Why one row of a record file was refused: its line, the field, a code and reason."""

    __tablename__ = "record_file_errors"

    file_id: Mapped[str] = mapped_column(ForeignKey("record_files.id"), primary_key=True)
    line: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    field: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(300))
    ref_digest: Mapped[bytes | None] = mapped_column(LargeBinary(16), index=True)
    """SHA-256 (16 bytes) of the file's provider and the row's ``user_ref``, when the row
    had one (``providers.files.ref_digest``): what erasure finds the rows of a user's
    bindings by, to scrub them, without the reference itself being kept here."""


class Reward(Base):
    """A merchant's offer in the rewards catalogue (carbon_credits/rewards). Shown to users
    only once an admin approved it; ``stock_left`` only moves by a conditional UPDATE
    (never below zero) in the transaction that spends the user's points."""

    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("kind IN ('voucher', 'physical', 'donation')", name="known_kind"),
        CheckConstraint("status IN ('pending_review', 'approved', 'rejected')",
                        name="known_status"),
        CheckConstraint("price_points > 0", name="price_positive"),
        CheckConstraint("stock_left >= 0 AND stock_left <= stock", name="stock_in_range"),
        CheckConstraint("per_user_limit >= 1", name="limit_positive"),
        CheckConstraint("valid_until > valid_from", name="valid_window"),
        Index("ix_rewards_city_status", "city", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    price_points: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer)
    """Units ever offered; ``stock_left`` + units redeemed and not cancelled == ``stock``."""
    stock_left: Mapped[int] = mapped_column(Integer)
    per_user_limit: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column()
    valid_until: Mapped[datetime] = mapped_column()
    city: Mapped[str] = mapped_column(String(64))
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    description_zh: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)
    codes: Mapped[str | None] = mapped_column(String(16))
    """Vouchers: 'generated' (by the server) or 'pool' (uploaded by the merchant)."""
    project: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)
    """Donations: the public-welfare project ({name, unit})."""
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RewardRedemption(Base):
    """A redemption of a reward: the points side is the ``Redemption`` (and its 'redeem'
    ledger entry, or while ``hold`` its 'hold' entry until shipped); this row holds the
    units, the fulfilment state and the certificate."""

    __tablename__ = "reward_redemptions"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("state IN ('issued', 'used', 'pending', 'shipped', 'delivered', "
                        "'donated', 'cancelled')", name="known_state"),
        Index("ix_reward_redemptions_reward_id_user_id", "reward_id", "user_id"),
        # A user's open holds, summed under the account lock on every redemption.
        Index("ix_reward_redemptions_user_id_state", "user_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    redemption_pk: Mapped[int] = mapped_column(ForeignKey("redemptions.id"), unique=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    certificate_hash: Mapped[str | None] = mapped_column(String(64))
    """Donations: SHA-256 of the certificate's facts, printed on it for verification."""
    hold: Mapped[bool] = mapped_column(default=False, server_default=false())
    """Whether the points are held ('hold' entry) until fulfilment rather than spent at once
    (physical goods since migration 0009_holds; earlier rows: spent at once)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    redemption: Mapped[Redemption] = relationship(lazy="raise")


class VoucherCode(Base):
    """A single-use voucher code: unique over all rewards, issued at most once, ever (a
    cancelled voucher's code is void, never issued again)."""

    __tablename__ = "voucher_codes"
    __table_args__ = (
        CheckConstraint("state IN ('available', 'issued', 'used', 'void')", name="known_state"),
        CheckConstraint("(state = 'available') = (reward_redemption_id IS NULL)",
                        name="issued_has_redemption"),
        Index("ix_voucher_codes_reward_id_state", "reward_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    reward_redemption_id: Mapped[int | None] = mapped_column(
        ForeignKey("reward_redemptions.id"), index=True)
    issued_at: Mapped[datetime | None] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class Provider(Base):
    """A scenario provider (场景方): a transit, bike-share or health platform that reports
    its users' trips, signed under one of its keys (``ProviderKey``)."""

    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(64))
    modes: Mapped[list[str]] = mapped_column(JsonType)
    """The modes it may report (a subset of the methodology registry's)."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProviderKey(Base):
    """A key a provider signs with, named by the ``keyid`` of its signatures (unique across
    providers: the key id alone finds the provider). Revoked keys are kept, with the time."""

    __tablename__ = "provider_keys"
    __table_args__ = (
        CheckConstraint("algorithm IN ('hmac-sha256', 'ed25519')", name="algorithm"),
        CheckConstraint("(algorithm = 'hmac-sha256') = (secret_sealed IS NOT NULL)"
                        " AND (algorithm = 'ed25519') = (public_key IS NOT NULL)",
                        name="material"),
    )

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"), index=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str | None] = mapped_column(Text)
    """Ed25519: the public key, PEM."""
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """HMAC-SHA256: the shared secret, encrypted (providers.registry says why and how)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class ProviderNonce(Base):
    """Nonces of providers' signatures seen within the signature age limit: the replay
    store when there is no Redis (providers.nonces)."""

    __tablename__ = "provider_nonces"

    provider_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class BindingCode(Base):
    """A one-time code a provider issued for its reference of a user; stored as its SHA-256
    so a database dump cannot be used to bind accounts."""

    __tablename__ = "provider_binding_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"))
    user_ref: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    used_by: Mapped[str | None] = mapped_column(String(128))


class ProviderBinding(Base):
    """A user's consent that a provider reports for them under the provider's reference
    (``user_ref``). Never deleted: a revocation sets ``revoked_at``; a later bind is a new
    row. At most one active row per (provider, user_ref) and per (provider, user): partial
    unique indexes, so a race of two binds cannot make a second."""

    __tablename__ = "provider_bindings"
    __table_args__ = (
        Index("uq_provider_bindings_active_ref", "provider_id", "user_ref", unique=True,
              postgresql_where=text("revoked_at IS NULL"),
              sqlite_where=text("revoked_at IS NULL")),
        Index("uq_provider_bindings_active_user", "provider_id", "user_id", unique=True,
              postgresql_where=text("revoked_at IS NULL"),
              sqlite_where=text("revoked_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"))
    user_ref: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    bound_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Consent(Base):
    """One step of a user's consent to a privacy notice version (carbon_credits/privacy):
    an acceptance or a withdrawal, with its time. Append-only: the user's state is the
    latest row (highest id); the rows before it are the history PIPL asks to keep."""

    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint("action IN ('accept', 'withdraw')", name="known_action"),
        CheckConstraint("source IN ('user', 'deemed')", name="known_source"),
        Index("ix_consents_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128))
    notice_version: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    """'user': the user's own request; 'deemed': recorded by an operator for a user of a
    deployment older than the notice (``flask deem-consent``), with ``note`` saying why."""
    note: Mapped[str | None] = mapped_column(String(300))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Erasure(Base):
    """A user erased (carbon_credits/privacy/erasure.py): the pseudonym their remaining rows
    now carry, and a keyed hash of their subject, so that their tokens are refused and a
    second erasure is answered with the first, without the subject being stored anywhere.
    ``subject_mac`` is HMAC-SHA256 under the ledger chain key named ``key_name`` (a key
    outside the database): without it, no list of candidate subjects can be tested."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subject_mac: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    key_name: Mapped[str] = mapped_column(String(64))
    pseudonym: Mapped[str] = mapped_column(String(128), unique=True)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    """'self' (DELETE /v1/me), or the admin who erased the user."""
    reason: Mapped[str] = mapped_column(Text)
class AccountMonth(Base):
    """``DailyUsage``'s live counters summed per local calendar month (``month``: its
    first day): lifetime totals and monthly trends read a few dozen rows, not a row per
    day. Kept in the crediting transaction (ingest, approvals) by the account's crediting
    hook, and taken back by a reversal."""

    __tablename__ = "account_months"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    mode: Mapped[str] = mapped_column(String(32), primary_key=True)
    events: Mapped[int] = mapped_column(Integer, default=0)
    ug: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    activity: Mapped[int] = mapped_column(BigInteger, default=0)


class Badge(Base):
    """A badge (勋章) defined as data (carbon_credits/badges): a rule in the badge rule
    language over the user's credited history, names in zh and en. Retired badges are
    kept (their awards stand) and no longer awarded."""

    __tablename__ = "badges"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'retired')", name="known_status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    description_zh: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[dict[str, Any]] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1)
    """Raised by each edit: an award records the version it was earned under."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BadgeAward(Base):
    """A badge earned by a user, once (the primary key), with the event whose credit
    earned it: the reversal of that event deletes the award (``badges.awards``)."""

    __tablename__ = "badge_awards"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    badge_id: Mapped[int] = mapped_column(ForeignKey("badges.id"), primary_key=True)
    event_pk: Mapped[int] = mapped_column(BigInteger)
    """``events.id`` of the event that earned it (no foreign key: see distribution.py)."""
    event_id: Mapped[str] = mapped_column(String(128))
    badge_version: Mapped[int] = mapped_column(Integer)
    awarded_at: Mapped[datetime] = mapped_column()
class TableVersion(Base):
    """The version of a small admin-managed table that ingest caches in process
    (``storage/cached.py``): a new random value written by the table's trigger in every
    transaction that changes it (migration 0009_table_versions)."""

    __tablename__ = "table_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))


class LeaderboardPrivacy(Base):
    """A user's choice to be kept off what others see of the leaderboards
    (``leaderboards``); no row: shown."""

    __tablename__ = "leaderboard_privacy"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Team(Base):
    """A company's, school's or organisation's account (Shanghai's 机构账户) in one city,
    created by an admin; users join it with its invite code (``teams``)."""

    __tablename__ = "teams"
    __table_args__ = (
        CheckConstraint("kind IN ('company', 'school', 'organisation')", name="known_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    invite_code: Mapped[str] = mapped_column(String(32), unique=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamMember(Base):
    """A user's team in a city: at most one per city (the primary key)."""

    __tablename__ = "team_members"
    __table_args__ = (Index("ix_team_members_team_id", "team_id"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    city: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[int] = mapped_column(Integer, ForeignKey("teams.id"))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class Friendship(Base):
    """One side of a friend link: a link is two rows, one per user, so each user's list is
    read from their own rows (Citus: by the user key). ``state``: ``requested`` (this user
    asked), ``invited`` (the other user asked this one), ``accepted`` (both rows)."""

    __tablename__ = "friendships"
    __table_args__ = (
        CheckConstraint("state IN ('requested', 'invited', 'accepted')", name="known_state"),
        CheckConstraint("user_id <> friend_id", name="not_self"),
    )

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    friend_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
class Campaign(Base):
    """A time-boxed challenge (活动) an admin runs (carbon_credits/campaigns): a goal over
    credited events in a city's local-date window, a bonus in points, and a budget that
    ``spent_points`` only reaches by a conditional UPDATE (never beyond it)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("goal_events >= 1", name="goal_positive"),
        CheckConstraint("bonus_points >= 1", name="bonus_positive"),
        CheckConstraint("spent_points >= 0 AND spent_points <= budget_points",
                        name="within_budget"),
        CheckConstraint("ends_on >= starts_on", name="window"),
        Index("ix_campaigns_city_window", "city", "ends_on"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str | None] = mapped_column(String(32))
    """The mode whose events count; None: every mode."""
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    """Inclusive: events whose local date (the city's time) is in [starts_on, ends_on]."""
    goal_events: Mapped[int] = mapped_column(Integer)
    bonus_points: Mapped[int] = mapped_column(Integer)
    budget_points: Mapped[int] = mapped_column(BigInteger)
    spent_points: Mapped[int] = mapped_column(BigInteger, default=0)
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
    """Set when an admin ends it early: events after that no longer count."""


class CampaignProgress(Base):
    """A user's progress in a campaign, moved under the user's account lock."""

    __tablename__ = "campaign_progress"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'completed', 'unfunded')", name="known_state"),
        CheckConstraint("(state = 'completed') = (bonus_points > 0)", name="bonus_held"),
    )

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    events: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="open")
    """open; completed (the bonus held); unfunded (the goal met with the budget spent)."""
    bonus_points: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignContribution(Base):
    """An event counted toward a campaign (so its reversal un-counts exactly it)."""

    __tablename__ = "campaign_contributions"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)


class CampaignBonus(Base):
    """Which campaign a 'bonus' ledger entry (user_id, seq) grants or takes back, and the
    event that completed it or whose reversal took it back. Append-only, like the entry."""

    __tablename__ = "campaign_bonuses"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id"))
    points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    """A client platform's endpoint for notifications out (carbon_credits/webhooks): the
    kinds it subscribes to and the HMAC key deliveries are signed with (kept sealed, as a
    provider's HMAC secret is)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    kinds: Mapped[list[str]] = mapped_column(JsonType)
    key_id: Mapped[str] = mapped_column(String(64))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The outbox: one notification to one endpoint, written in the unit of work of what
    it tells (so nothing is lost if the queue is down), then sent by a job, retried, and
    idempotent for the receiver by its id (the Webhook-Delivery-Id header)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="known_state"),
        Index("ix_webhook_deliveries_state", "state", "created_at"),
    )

    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"),
                                             primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
