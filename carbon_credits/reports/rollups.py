"""Report rollups: what partner reports read instead of the event table.

**Cells.** Every credited event belongs to one cell: (city, local date, mode, district,
methodology version). The district is the ``district`` of the event's entry or boarding
stop in the network version the event was quantified on (its parent station's when the
stop has none), else ``"unknown"`` (steps, bike-share, and networks without districts, e.g.
a GTFS feed: GTFS has no district field).

**No hot row.** A cell is split into 16 shards by the top 4 bits of a 64-bit hash of the
user id (BLAKE2b). Each credit adds its deltas to its own (cell, shard) row with one atomic
upsert (``INSERT ... ON CONFLICT DO UPDATE SET ug = ug + excluded.ug, ...``), so at peak a
cell's traffic spreads over 16 rows, and the row lock is held only from the upsert to the
end of the ingest transaction. Upserts add, so they are exact under any concurrency; reports
sum the shards (cost: days x groups x 16 rows, whatever the number of events). On SQLite,
where every writer holds the database lock (``BEGIN IMMEDIATE``), the sketch byte is
read-modified-written in Python; that is race-free there for the same reason.

**Distinct participants** are estimated with HyperLogLog, exact counting being
proportional to user-days (a report over a month of a 1 M-user city would read ~10^7
rows). Each (cell, shard) row carries that shard's slice of the cell's sketch: 256 one-byte
registers, so a cell's sketch has m = 4096 registers (p = 12), and the shard bits are the
top bits of the register index, making the 16 slices disjoint: a cell's sketch is their
concatenation, and a union over days or groups is a register-wise max. The estimate is
Ertl's improved raw estimator (O. Ertl, "New cardinality estimation algorithms for
HyperLogLog sketches", 2017), which needs no empirical bias correction: relative standard
error 1.04/sqrt(4096) = 1.6 % (about 3.3 % at 95 %) over the whole range; counts below a few
hundred are exact or one or two too low (two users in one register), never too high in
practice, which is the safe side for privacy suppression. A user active on many days of a
range is counted once, because the same user always lands in the same register.

**Reversals** subtract exactly what the event added (events, grams, points, avoided grams,
activity). A sketch cannot forget a user: a reversal that leaves the user no other live
credited event in the cell (read from the user's own events) rebuilds the shard's 256-byte
slice from the cell's remaining live credited events (the event table's ``(city,
local_date)`` index: one city-day, read only then), with the rollup row locked first, so a
concurrent credit either is seen by the rebuild (committed before it) or applies its
register after it (its upsert waits for the lock). No table keeps who is in which cell:
that was a row per credited event (~175 bytes an event) for the rare reversal.

**Rebuild** (``flask --app app rebuild-rollups``): in one transaction, with the rollup table
locked against writers (PostgreSQL ``LOCK ... IN EXCLUSIVE MODE``: reports keep reading the
old rows, ingests wait), delete the rollups and recompute them from events joined with
their ledger entries (earn minus reversal), through the same cell and hash functions as
the incremental path; the result is identical, row for row and byte for byte.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from carbon_credits.reports.sketch import SLICE_REGISTERS, UserHash, slice_of
from carbon_credits.storage.models import (
    Event,
    LedgerEntry,
    NetworkStop,
    ReportRollup,
)
from carbon_credits.storage.sql import Prebuilt
from methodology import Quantification

log = logging.getLogger(__name__)

LIVE_STATUSES = ("credited", "capped")
"""Statuses of an event that may hold an earn entry (``ledger.explain.CREDIT_STATUSES``;
not imported: ledger imports reports). Live = one of these with ``credited_ug > 0``: an
earn entry is written exactly then, and a reversal changes the status."""
UNKNOWN = "unknown"
"""District of events whose stop has none (steps, bike-share, networks without districts)."""
ACTIVITY_FIELDS = ("distance_m", "increase_steps")
"""Explanation fields holding the quantity a factor multiplies: metres, or steps credited."""

PK = ("city", "local_date", "mode", "district", "methodology_version", "source", "shard")
CLIENT = "client"
"""The ``source`` of rollups of events the users' own clients posted."""


@dataclass(frozen=True, order=True)
class Cell:
    city: str
    local_date: date
    mode: str
    district: str
    methodology_version: str
    source: str = CLIENT
    """Who reported the events: ``client``, or a scenario provider's id."""

    def key(self, shard: int) -> dict[str, Any]:
        return {"city": self.city, "local_date": self.local_date, "mode": self.mode,
                "district": self.district, "methodology_version": self.methodology_version,
                "source": self.source, "shard": shard}


# ---------------------------------------------------------------- cells of events

_districts: dict[int, dict[str, str]] = {}
_districts_lock = threading.Lock()


def _stop_districts(session: Session, network_id: int) -> dict[str, str]:
    """stop_id -> district of a network version (immutable, so cached per process)."""
    with _districts_lock:
        cached = _districts.get(network_id)
    if cached is not None:
        return cached
    rows = session.execute(select(NetworkStop.stop_id, NetworkStop.parent_stop_id,
                                  NetworkStop.district)
                           .where(NetworkStop.network_id == network_id)).all()
    own = {stop: district for stop, _parent, district in rows if district}
    found = {stop: own.get(stop) or own.get(parent or "") or UNKNOWN
             for stop, parent, _district in rows}
    with _districts_lock:
        _districts[network_id] = found
    return found


def district_of(session: Session, network_id: int | None, origin: str | None) -> str:
    """The district of the stop a trip began at (``Event.origin``)."""
    if network_id is None or origin is None:
        return UNKNOWN
    return _stop_districts(session, network_id).get(origin, UNKNOWN)


def activity_of(result: Quantification) -> int:
    """What the factor multiplied (an event's ``activity``): metres, or steps credited."""
    for name in ACTIVITY_FIELDS:
        value = result.explanation.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


class Credited(Protocol):
    """What a cell and a credit read of an event: a stored ``Event`` or one being written
    by a chunk (``intake.NewEvent``)."""

    @property
    def user_id(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def local_date(self) -> date: ...
    @property
    def mode(self) -> str: ...
    @property
    def network_id(self) -> int | None: ...
    @property
    def origin(self) -> str | None: ...
    @property
    def methodology_version(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def credited_ug(self) -> int: ...
    @property
    def avoided_ug(self) -> int: ...
    @property
    def points(self) -> int: ...
    @property
    def activity(self) -> int: ...


def cell_of(session: Session, event: Credited) -> Cell:
    return Cell(event.city, event.local_date, event.mode,
                district_of(session, event.network_id, event.origin),
                event.methodology_version, event.source or CLIENT)


# ---------------------------------------------------------------- incremental path

_SUMMED = ("p_events", "p_ug", "p_avoided_ug", "p_points", "p_activity")


def credit(session: Session, events: Sequence[Credited]) -> None:
    """Add just-credited events (earn entries written) to their cells. Caller holds the
    lock on the events' account.

    The credits are merged per cell and user (one upsert instead of one per event: the
    same register) and applied in one global order, the rows' key order: two transactions
    crediting the same cells lock them in the same order, so they cannot deadlock, and each
    row stays locked only from here to the commit. PostgreSQL: one upsert per row, all rows
    in one executemany (``apply_credits``),
    each upsert atomic under its row lock, so exact under concurrency. The statements are
    built once per dialect and run with bound values only.
    """
    apply_credits(session, credit_rows(session, events))


def credit_rows(session: Session, events: Sequence[Credited]) -> list[dict[str, Any]]:
    """``credit``'s first half: the events' credit rows, merged and in key order. It may
    read (a network's districts, on first use); ``apply_credits`` only writes, so a caller
    can send it with other writes (``sql.committing``)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for event in events:
        values = _credit_values(session, event)
        key = (*(values[f"p_{name}"] for name in PK), values["p_user_id"])
        into = merged.get(key)
        if into is None:
            merged[key] = values
        else:  # the same user: the same register and value, so the sketch byte agrees
            for name in _SUMMED:
                into[name] += values[name]
    rows = [merged[key] for key in sorted(merged)]
    for values in rows:
        del values["p_user_id"]  # merged by it; no statement binds it
    return rows


def _credit_values(session: Session, event: Credited) -> dict[str, Any]:
    cell = cell_of(session, event)
    user = UserHash.of(event.user_id)
    first = bytearray(SLICE_REGISTERS)
    first[user.register] = user.rho
    values = {f"p_{name}": value for name, value in cell.key(user.shard).items()}
    values.update(p_user_id=event.user_id, p_events=1, p_ug=event.credited_ug,
                  p_avoided_ug=event.avoided_ug, p_points=event.points,
                  p_activity=event.activity, p_hll=bytes(first),
                  p_register=user.register, p_rho=user.rho)
    return values


def apply_credits(session: Session, rows: list[dict[str, Any]]) -> None:
    """Apply credit rows, in the order given. PostgreSQL: one executemany of the upsert
    through the driver (``sql.Prebuilt``), which psycopg sends as one pipeline (one round
    trip, rows applied in order, each upsert atomic under its row lock). SQLite: row by
    row, the sketch byte read-modified-written under the database lock."""
    if not rows:
        return
    conn = session.connection()
    statements = _credit_statements(conn.dialect.name)
    if statements.upsert is not None:
        statements.upsert.run(session, rows)
        return
    for values in rows:
        for statement in statements.writes:
            conn.execute(statement, values)
        registers = bytearray(conn.execute(statements.read_slice, values).scalar_one())
        register, rho = values["p_register"], values["p_rho"]
        if registers[register] < rho:
            registers[register] = rho
            conn.execute(statements.raise_register, {**values, "p_new": bytes(registers)})


@dataclass(frozen=True)
class _CreditStatements:
    upsert: Prebuilt | None = None
    """PostgreSQL: the one statement of a credit row."""
    writes: tuple[Any, ...] = ()
    read_slice: Any = None
    raise_register: Any = None


_credit_cache: dict[str, _CreditStatements] = {}


def _credit_statements(dialect: str) -> _CreditStatements:
    cached = _credit_cache.get(dialect)
    if cached is None:
        cached = _credit_cache[dialect] = _build_credit_statements(dialect)
    return cached


def _build_credit_statements(dialect: str) -> _CreditStatements:
    pg = dialect == "postgresql"
    ins = postgresql.insert if pg else sqlite.insert
    rollup = cast(Table, ReportRollup.__table__)
    key: dict[str, Any] = {name: bindparam(f"p_{name}") for name in PK}

    row = ins(rollup).values(
        **key, events=bindparam("p_events"), **{name: bindparam(f"p_{name}")
                            for name in ("ug", "avoided_ug", "points", "activity", "hll")})
    sums: dict[str, Any] = {name: rollup.c[name] + row.excluded[name]
                            for name in ("events", "ug", "avoided_ug", "points", "activity")}
    where = and_(*(rollup.c[name] == bindparam(f"p_{name}") for name in PK))
    if pg:
        register: Any = bindparam("p_register")
        sums["hll"] = func.set_byte(rollup.c.hll, register, func.greatest(
            func.get_byte(rollup.c.hll, register), bindparam("p_rho")))
        upsert = row.on_conflict_do_update(index_elements=list(PK), set_=sums)
        return _CreditStatements(upsert=Prebuilt(lambda _: upsert))
    return _CreditStatements(
        writes=(row.on_conflict_do_update(index_elements=list(PK), set_=sums),),
        read_slice=select(rollup.c.hll).where(where),
        raise_register=update(rollup).where(where).values(hll=bindparam("p_new")))


def _row(key: dict[str, Any]) -> ColumnElement[bool]:
    return and_(*(getattr(ReportRollup, name) == key[name] for name in PK))


def reverse(session: Session, event: Event) -> None:
    """Take a reversed event's contribution back out of its cell. Caller holds the lock on
    the event's account and calls this before changing the event."""
    cell = cell_of(session, event)
    user = UserHash.of(event.user_id)
    key = cell.key(user.shard)
    where = _row(key)
    # This UPDATE locks the rollup row before the participants are read (see docstring).
    done = cast(CursorResult[Any], session.execute(update(ReportRollup).where(where).values(
        events=ReportRollup.events - 1, ug=ReportRollup.ug - event.credited_ug,
        avoided_ug=ReportRollup.avoided_ug - event.avoided_ug,
        points=ReportRollup.points - event.points,
        activity=ReportRollup.activity - event.activity)))
    if done.rowcount == 0:
        log.warning("event %s was credited before rollups existed; run rebuild-rollups",
                    event.id)
        return
    if _live_users(session, cell, event.id, event.user_id):
        return  # still in the cell through another event: its register stands
    users = [u for u in _live_users(session, cell, event.id)
             if UserHash.of(u).shard == user.shard]
    session.execute(update(ReportRollup).where(where).values(hll=slice_of(users)))


def _live_users(session: Session, cell: Cell, but: int, user_id: str | None = None
                ) -> set[str]:
    """Users with a live credited event in ``cell`` other than event ``but`` (of
    ``user_id`` only, if given: then through the user's index, else the city-day's)."""
    query = (select(Event.user_id, Event.network_id, Event.origin).distinct()
             .where(Event.city == cell.city, Event.local_date == cell.local_date,
                    Event.mode == cell.mode,
                    Event.methodology_version == cell.methodology_version,
                    (Event.source.is_(None) if cell.source == CLIENT
                     else Event.source == cell.source),
                    Event.status.in_(LIVE_STATUSES), Event.credited_ug > 0, Event.id != but))
    if user_id is not None:
        query = query.where(Event.user_id == user_id)
    return {user for user, network_id, origin in session.execute(query)
            if district_of(session, network_id, origin) == cell.district}


# ---------------------------------------------------------------- rebuild

@dataclass
class _Sums:
    events: int = 0
    ug: int = 0
    avoided_ug: int = 0
    points: int = 0
    activity: int = 0
    users: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Rebuilt:
    days: int
    rollup_rows: int
    events: int


def rebuild(session: Session, city: str | None = None, *, batch: int = 20_000) -> Rebuilt:
    """Replace the rollups (of one city, or all) with a recomputation from the ledger."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE report_rollups IN EXCLUSIVE MODE"))
    scope_r = [] if city is None else [ReportRollup.city == city]
    session.execute(delete(ReportRollup).where(*scope_r))
    days = session.execute(
        select(Event.city, Event.local_date).distinct()
        .join(LedgerEntry, and_(LedgerEntry.event_pk == Event.id, LedgerEntry.kind == "earn"))
        .where(*([] if city is None else [Event.city == city]))
        .order_by(Event.city, Event.local_date)).all()
    rollup_rows = events = 0
    for day_city, day in days:
        cells = _day_sums(session, day_city, day)
        rollups: list[dict[str, Any]] = []
        for (cell, shard), sums in sorted(cells.items()):
            key = cell.key(shard)
            live = [u for u, n in sums.users.items() if n > 0]
            rollups.append({**key, "events": sums.events, "ug": sums.ug,
                            "avoided_ug": sums.avoided_ug, "points": sums.points,
                            "activity": sums.activity, "hll": slice_of(live)})
            events += sums.events
        _insert(session, ReportRollup, rollups, batch)
        rollup_rows += len(rollups)
    return Rebuilt(len(days), rollup_rows, events)


def _day_sums(session: Session, city: str, day: date) -> dict[tuple[Cell, int], _Sums]:
    """One city-day of the ledger, per (cell, shard): earn minus reversal entries.

    An event has at most one earn and one reversal entry (a unique constraint), so per
    event "live" is 1 without a reversal and 0 with one; SQL sums per user and origin stop,
    Python maps stops to districts and users to shards with the incremental path's code.
    """
    earn, rev = aliased(LedgerEntry), aliased(LedgerEntry)
    stop, activity = Event.origin, Event.activity
    live = case((rev.id.is_(None), 1), else_=0)
    query = (
        select(Event.mode, Event.methodology_version, Event.source, Event.network_id, stop,
               Event.user_id,
               func.sum(live), func.sum(earn.ug + func.coalesce(rev.ug, 0)),
               func.sum(earn.points + func.coalesce(rev.points, 0)),
               func.sum(Event.avoided_ug * live), func.sum(activity * live))
        .join(earn, and_(earn.event_pk == Event.id, earn.kind == "earn"))
        .outerjoin(rev, and_(rev.event_pk == Event.id, rev.kind == "reversal"))
        .where(Event.city == city, Event.local_date == day)
        .group_by(Event.mode, Event.methodology_version, Event.source, Event.network_id,
                  stop, Event.user_id)
    )
    cells: dict[tuple[Cell, int], _Sums] = {}
    for mode, version, source, network_id, origin, user_id, n, ug, points, avoided, act in (
            session.connection().execute(query.execution_options(yield_per=10_000))):
        cell = Cell(city, day, mode, district_of(session, network_id, origin), version,
                    source or CLIENT)
        user = UserHash.of(user_id)
        sums = cells.setdefault((cell, user.shard), _Sums())
        sums.events += int(n)
        sums.ug += int(ug)
        sums.points += int(points)
        sums.avoided_ug += int(avoided)
        sums.activity += int(act)
        sums.users[user_id] = sums.users.get(user_id, 0) + int(n)
    return cells


def _insert(session: Session, model: type[ReportRollup],
            rows: list[dict[str, Any]], batch: int) -> None:
    """Bulk insert: COPY on PostgreSQL, else
    multi-row INSERTs."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    columns = [c.name for c in table.columns]
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return
    for i in range(0, len(rows), batch):
        conn.execute(insert(table), rows[i:i + batch])
