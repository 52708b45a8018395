"""Apply posted events as a set: read once, decide each in memory, write once.

A chunk of events is applied in one transaction, with its users' accounts locked. A chunk
is up to ``ITEMS_PER_TRANSACTION`` items of one user's batch, or the single posts that a
worker process applies together (``group_commit``: one post, or several users' posts that
arrived while the process was busy). It goes in three steps:

1. **Read** what every rule needs for the whole chunk, one statement each, whatever the
   number of events or users, all in one round trip (``sql.read_together``, which on
   PostgreSQL also sends the transaction's BEGIN): first the accounts, locked in user id
   order, with their users' frozen flags; then, run by the server once the locks are
   granted:
   - the events already stored under the chunk's (user, event id) pairs (replays);
   - the factor versions and newest networks;
   - the daily usage of the chunk's local days;
   - each user's trips around them (overlap and trips-per-day rules);
   - the accounts seen on the chunk's devices;
   - on PostgreSQL, an id for each event that may be stored.
   (A new user's account is created and locked after that, and the reads sent again.)
2. **Decide** each event in order, in memory: idempotency, methodology, plausibility, daily
   caps, points. Each decision updates the in-memory state (usage rows, trips, devices,
   the account's carried remainder), so a later event of the chunk sees the earlier ones
   exactly as if each had been written before it. An event that is refused (conflict,
   invalid) has changed nothing yet, so a refusal needs no savepoint. Users do not
   interact except through a device's accounts, which the chunk keeps current, so a
   chunk of several users decides as their posts one after another would.
3. **Write**, and commit, in this order:
   - the devices' new accounts; new users who stored nothing are removed again;
   - then, sent with the COMMIT in one round trip (``UnitOfWork.commit``): the new events
     (with the ids drawn; elsewhere they are inserted first and their ids come back), their
     hash-chained earn entries, the accounts' balances, the usage rows (inserted or
     updated), one executemany each, and the report rollups, merged per row and in key
     order.
   A chunk that stored nothing rolls back instead.

Rows are read and written as plain values through statements built once (not ORM
instances, not statements built per chunk): for the few events of a post, building,
loading and flushing ORM objects cost more CPU than the database's work (BENCHMARKS.md,
"Ingest").

The account lock serialises everything of one user (ledger, caps, trips, event ids), so
what step 1 read cannot change before the commit. The unique (user_id, event_id)
constraint stays the last word on idempotency: should it fire, the caller rolls back and
applies the chunk again, which then answers the stored copy as a replay.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from carbon_credits.antifraud import plausibility
from carbon_credits.config import Config
from carbon_credits.errors import InvalidInput, ServiceError
from carbon_credits.ingest import idempotency
from carbon_credits.ledger import caps, entries, explain
from carbon_credits.networks.catalog import Catalog, Timeline, timeline_read
from carbon_credits.reports import rollups
from carbon_credits.storage.models import DailyUsage, DeviceAccount, Event, LedgerEntry, utcnow
from carbon_credits.storage.sql import (
    COPY_FROM_ROWS,
    Prebuilt,
    Read,
    bulk_insert,
    ids_read,
    insert_missing,
    read_together,
)
from carbon_credits.tokens import Principal
from methodology import (
    METHODOLOGIES,
    Methodology,
    MethodologyInputError,
    Quantification,
    QuantifyContext,
)
from methodology.quantity import whole_grams

TRIP_STATUSES = ("credited", "capped", "held")
"""Trips that count for overlap and trips-per-day: everything not rejected or reversed."""
TRIP_MODES = tuple(m.mode for m in METHODOLOGIES.values() if not m.cumulative)
"""Modes whose events are trips (not cumulative day counts)."""
LONGEST_TRIP = timedelta(days=1)
"""No trip lasts longer (policy): a trip that started more than a day before another
cannot overlap it, so the overlap rule reads one day back."""


@dataclass(frozen=True)
class Posted:
    """One posted event with what was derived from it before the transaction."""

    principal: Principal
    method: Methodology
    data: dict[str, Any]
    payload: dict[str, Any]
    digest: bytes
    """SHA-256 of the canonical payload: a replay has the same, a reuse of the id not."""
    occurred_at: datetime
    local_date: date
    device_id: str | None
    now: datetime
    tz: tzinfo
    """The city's time zone: local days are the city's, whatever offset the client sent."""

    @property
    def ends_at(self) -> datetime | None:
        ended: datetime | None = self.data.get("ended_at")
        return ended

    @property
    def is_trip(self) -> bool:
        return not self.method.cumulative


@dataclass(slots=True)
class NewEvent:
    """An event decided in a chunk and written at the chunk's end: its events row as plain
    values. Not an ORM instance: their attribute instrumentation cost a fifth of a batch's
    CPU. tests/integration/test_intake.py checks the fields are the table's columns (and
    ``explanation``, which is not stored)."""

    user_id: str
    event_id: str
    mode: str
    city: str
    occurred_at: datetime
    ends_at: datetime | None
    local_date: date
    device_id: str | None
    line_id: str | None
    origin: str | None
    destination: str | None
    distance_m: int | None
    steps: int | None
    payload_hash: bytes
    status: str
    reason: str | None
    avoided_ug: int
    credited_ug: int
    points: int
    factor_version_id: int
    methodology_version: str
    network_id: int | None
    activity: int
    previous_quantity: int | None
    notes: dict[str, Any] | None
    id: int = 0
    """Set when written."""
    created_at: datetime = datetime.min
    """Set when written."""
    reviewed_at: datetime | None = None
    reviewed_by: str | None = None
    review_reason: str | None = None
    reversed_at: datetime | None = None
    reversed_by: str | None = None
    reversal_reason: str | None = None
    explanation: dict[str, Any] | None = None
    """Not a column: the explanation answered, as decided, or built from the row for a
    replay (``ledger.explain``)."""


@dataclass(frozen=True)
class Applied:
    """An event as stored: ``created`` is False for a replay of an earlier post."""

    event: NewEvent
    created: bool


Writes = Callable[[], None]
"""The statements a chunk sends with its COMMIT (``UnitOfWork.commit``)."""


def apply(session: Session, config: Config, catalog: Catalog, chunk: Sequence[Posted]
          ) -> tuple[list[Applied | ServiceError], Writes | None]:
    """Decide ``chunk`` (events of one or more users, each user's in order) in the caller's
    unit of work: one result per event (what is stored, or why it was refused), and the
    writes to send with the COMMIT, or None when the chunk stores nothing (the caller then
    rolls back, so refusals and replays leave no account, user or device row behind).

    Users' events do not interact (every rule reads one user's own state, or a device's
    accounts, which the chunk keeps current), so a chunk of several users decides exactly
    as their posts one after another would. Reading may create a new user's account
    before any event is decided; a new user whose events were all refused is removed
    again (or, if the chunk stored nothing, rolled back), so refusals and replays leave
    nothing behind. A new user's city is the token's, else that of the first event
    stored (not of an earlier refused one).
    """
    book = _read(session, catalog, chunk)
    results: list[Applied | ServiceError] = []
    for posted in chunk:
        try:
            results.append(_decide(session, config, catalog, book, posted))
        except ServiceError as exc:
            results.append(exc)
    return results, (_write(session, book) if book.fresh else None)


# ---------------------------------------------------------------- read

@dataclass
class _Trips:
    """The user's trips (not rejected or reversed) over the chunk's window, by start."""

    starts: list[datetime] = field(default_factory=list)
    rows: list[tuple[datetime, str, datetime | None]] = field(default_factory=list)
    per_day: Counter[date] = field(default_factory=Counter)

    def add(self, event_id: str, local_date: date, began: datetime, ended: datetime | None
            ) -> None:
        at = bisect_right(self.starts, began)
        self.starts.insert(at, began)
        self.rows.insert(at, (began, event_id, ended))
        self.per_day[local_date] += 1

    def around(self, local_date: date, start: datetime, end: datetime
               ) -> tuple[tuple[str, ...], int]:
        """Up to 5 trips overlapping [start, end), and the trips of ``local_date``."""
        lo = bisect_right(self.starts, start - LONGEST_TRIP)
        hi = bisect_left(self.starts, end)
        overlapping = tuple(event_id for began, event_id, ended in self.rows[lo:hi]
                            if (ended or began) > start)[:5]
        return overlapping, self.per_day[local_date]


@dataclass(slots=True)
class _Usage:
    """A daily usage row (``DailyUsage``) as plain values (``caps.Usage``)."""

    user_id: str
    local_date: date
    mode: str
    events: int = 0
    credited_ug: int = 0
    points: int = 0
    max_quantity: int = 0
    last_post_at: datetime | None = None
    stored: bool = False
    """Whether the row exists (else ``_write`` inserts it)."""
    counted: bool = False
    """Whether the chunk added to it (else ``_write`` leaves it alone)."""


@dataclass
class _Member:
    """One user of a chunk: the locked account and what the rules read of that user."""

    account: entries.LockedAccount
    usage: dict[date, dict[str, _Usage]] = field(default_factory=dict)
    trips: _Trips = field(default_factory=_Trips)
    city: str | None = None
    """A new user's city, from the first post of the user stored in the chunk: its token's
    city, else its event's (None: nothing stored)."""


@dataclass
class _Device:
    """A device of the chunk: how many accounts it has been seen with, and which of the
    chunk's users are among them (recorded when one of their events is stored)."""

    accounts: int
    users: set[str]
    new_users: list[str] = field(default_factory=list)
    """Users first seen on it in this chunk: written by ``_write``."""


@dataclass
class _Book:
    """What the rules of a chunk read, kept current in memory as its events are decided."""

    members: dict[str, _Member]
    stored: dict[tuple[str, str], NewEvent]
    """Events already stored under the chunk's (user id, event id) pairs: replays."""
    timeline: Timeline
    devices: dict[str, _Device]
    fresh: dict[tuple[str, str], NewEvent] = field(default_factory=dict)
    """New events by (user id, event id), in the order decided: written by ``_write``."""
    earned: list[NewEvent] = field(default_factory=list)
    """New events with credited grams, in order: their earn entries are written in it."""
    ids: list[int] | None = None
    """Ids for the new events, drawn with the reads (PostgreSQL; None elsewhere)."""


def _read(session: Session, catalog: Catalog, chunk: Sequence[Posted]) -> _Book:
    """Everything in one round trip (``read_together``, which also begins the
    transaction): the accounts first, locked (nothing the rules read of their users can
    change before the commit), then the reads that need the locks, which the server runs
    once they are granted, and, on PostgreSQL, an id for each event that may be stored
    (``ids_read``), so the writes need no round trip of their own. A new user's account
    is created and locked after that, and the reads are sent again: the first ran without
    its lock."""
    cities: dict[str, str] = {}
    for p in chunk:
        cities.setdefault(p.principal.sub, p.principal.city or p.data["city"])
    keys = {(p.principal.sub, p.data["event_id"]) for p in chunk}
    reads: list[Read] = [
        (_STORED, {"users": sorted({user for user, _ in keys}),
                   "ids": sorted({event_id for _, event_id in keys})}),
        timeline_read({p.data["city"] for p in chunk}, {p.method.mode for p in chunk},
                      max(p.occurred_at for p in chunk)),
        (_USAGE, {"users": sorted(cities), "days": sorted({p.local_date for p in chunk})})]
    trips, devices = _trips_read(chunk), _devices_read(chunk)
    reads += [read for read in (trips, devices) if read is not None]
    draw = ids_read(session, EVENTS, len(chunk))
    locked, *results = read_together(session, [entries.accounts_read(cities), *reads,
                                               *([draw] if draw else [])])
    ids = [row[0] for row in results.pop()] if draw else None
    members = {user_id: _Member(account) for user_id, account
               in entries.open_accounts(session, cities, locked).items()}
    if len(locked) < len(cities):
        results = read_together(session, reads)
    rows = iter(results)
    stored = _stored(keys, next(rows))
    timeline = catalog.timeline_of(session, next(rows))
    _usage(members, chunk, next(rows))
    if trips is not None:
        for user_id, event_id, local_date, began, ended, mode, status in next(rows):
            if mode in TRIP_MODES and status in TRIP_STATUSES:
                members[user_id].trips.add(event_id, local_date, began, ended)
    return _Book(members, stored, timeline, {} if devices is None else _devices(
        devices[1]["devices"], next(rows)), ids=ids)


# The reads are built once and run with bound values only (each statement's compiled form
# is cached): building them per chunk cost as much as running them.
EVENTS = cast(Table, Event.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)
USAGE = cast(Table, DailyUsage.__table__)
LINKS = cast(Table, DeviceAccount.__table__)
_STORED = Prebuilt(lambda one_of: select(EVENTS).where(one_of(EVENTS.c.user_id, "users"),
                                                        one_of(EVENTS.c.event_id, "ids")))
_EVENT_FIELDS = tuple(c.key for c in EVENTS.columns)
_USAGE_COLUMNS = tuple(f.name for f in fields(_Usage) if f.name not in ("stored", "counted"))
"""A usage row's columns, in ``_Usage``'s order (read, and written back, by name)."""
_USAGE = Prebuilt(lambda one_of: select(*(USAGE.c[name] for name in _USAGE_COLUMNS)).where(
    one_of(USAGE.c.user_id, "users"), one_of(USAGE.c.local_date, "days")))
_DEVICES = Prebuilt(lambda one_of: union_all(
    select(LINKS.c.device_id, LINKS.c.user_id, literal(0))
    .where(one_of(LINKS.c.device_id, "devices"), one_of(LINKS.c.user_id, "users")),
    select(LINKS.c.device_id, null(), func.count())
    .where(one_of(LINKS.c.device_id, "devices")).group_by(LINKS.c.device_id)))
_trips_by_users: dict[int, Prebuilt] = {}


def _stored(keys: set[tuple[str, str]], rows: Sequence[tuple[Any, ...]]
            ) -> dict[tuple[str, str], NewEvent]:
    """The events already stored under these (user id, event id) pairs (their posts are
    replays), from the rows of ``_STORED``: the users' events under any of the ids."""
    events = (NewEvent(**dict(zip(_EVENT_FIELDS, row, strict=True))) for row in rows)
    return {key: e for e in events if (key := (e.user_id, e.event_id)) in keys}


def _usage(members: dict[str, _Member], chunk: Sequence[Posted],
           rows: Sequence[tuple[Any, ...]]) -> None:
    """Each member's daily usage rows of its events' local days (``_USAGE`` read those of
    the chunk's users and days)."""
    for p in chunk:
        members[p.principal.sub].usage.setdefault(p.local_date, {})
    for row in rows:
        found = _Usage(*row)
        found.stored = True
        usage = members[found.user_id].usage.get(found.local_date)
        if usage is not None:
            usage[found.mode] = found


def _trips_read(chunk: Sequence[Posted]) -> Read | None:
    """The read of each member's trips from one day before its earliest trip of the chunk
    (or the start of its first local day) to the end of its last trip's local day: an
    index range scan on (user_id, occurred_at) per user, bounded by the chunk's span, not
    by the users' history. None if the chunk has no trips.

    Days are the city's local days (``Posted.tz``), not the client's offset: an offset
    east or west of the city would otherwise cut a day short and hide its late trips.
    """
    windows: dict[str, tuple[datetime, datetime]] = {}
    for p in chunk:
        if not p.is_trip:
            continue
        since = min(p.occurred_at - LONGEST_TRIP,
                    datetime.combine(p.local_date, time(0), tzinfo=p.tz))
        until = max(p.ends_at or p.occurred_at,
                    datetime.combine(p.local_date + timedelta(days=1), time(0), tzinfo=p.tz))
        known = windows.get(p.principal.sub)
        windows[p.principal.sub] = (since, until) if known is None else (
            min(known[0], since), max(known[1], until))
    if not windows:
        return None
    values: dict[str, Any] = {}
    for n, (user_id, (since, until)) in enumerate(sorted(windows.items())):
        values.update({f"u{n}": user_id, f"s{n}": since, f"e{n}": until})
    return _trips_statement(len(windows)), values


def _trips_statement(users: int) -> Prebuilt:
    """The trips read for ``users`` users' windows (bound as u<n>, s<n>, e<n>), built once
    per number of users."""
    statement = _trips_by_users.get(users)
    if statement is None:
        spans = [and_(EVENTS.c.user_id == bindparam(f"u{n}"),
                      EVENTS.c.occurred_at >= bindparam(f"s{n}", type_=EVENTS.c.occurred_at.type),
                      EVENTS.c.occurred_at < bindparam(f"e{n}", type_=EVENTS.c.occurred_at.type))
                 for n in range(users)]
        # Mode and status are read and tested by the caller, not in the WHERE clause: the
        # windows' few rows (a user's events of two or three days) are all read anyway,
        # and a condition on status let the planner, without statistics on the column
        # (a new database, autovacuum off), AND in the (status, created_at) index, whose
        # every entry matches: a read of the whole index per transaction, growing with
        # the table (posts/s 477 -> 266 over 40,000 events; BENCHMARKS.md, eighth round).
        statement = _trips_by_users[users] = Prebuilt(lambda _: (
            select(EVENTS.c.user_id, EVENTS.c.event_id, EVENTS.c.local_date,
                   EVENTS.c.occurred_at, EVENTS.c.ends_at, EVENTS.c.mode, EVENTS.c.status)
            .where(spans[0] if users == 1 else or_(*spans))
            .order_by(EVENTS.c.occurred_at)))
    return statement


def _devices_read(chunk: Sequence[Posted]) -> Read | None:
    """The read of how many accounts each device of the chunk (a request's X-Device-Id) has
    been seen with, and which of the chunk's users are among them; None without devices.
    The chunk's users are recorded on it when their events are stored (``_write``)."""
    device_ids = sorted({p.device_id for p in chunk if p.device_id})
    if not device_ids:
        return None
    return _DEVICES, {"devices": device_ids,
                      "users": sorted({p.principal.sub for p in chunk if p.device_id})}


def _devices(device_ids: Sequence[str], rows: Sequence[tuple[Any, ...]]
             ) -> dict[str, _Device]:
    devices = {device_id: _Device(0, set()) for device_id in device_ids}
    for device_id, user_id, count in rows:
        if user_id is None:
            devices[device_id].accounts = count
        else:
            devices[device_id].users.add(user_id)
    return devices


# ---------------------------------------------------------------- decide

def _decide(session: Session, config: Config, catalog: Catalog, book: _Book,
            p: Posted) -> Applied:
    """One event against the chunk's state; the state moves on only if it is stored."""
    user_id, method, data = p.principal.sub, p.method, p.data
    member = book.members[user_id]
    key = (user_id, data["event_id"])
    prior = book.stored.get(key) or book.fresh.get(key)
    if prior is not None and idempotency.is_replay(prior.payload_hash, p.digest):
        if prior.explanation is None:  # stored by an earlier transaction: built again
            prior.explanation = explain.explain(session, catalog, prior)
        return Applied(prior, created=False)

    city, mode = data["city"], method.mode
    versioned = book.timeline.at(city, mode, p.occurred_at)
    if versioned is None:
        field_name = time_field(data) if catalog.has_factors(session, city, mode) else "city"
        raise InvalidInput(f"no {mode} methodology is in force for {city!r} at that time",
                           code="no_methodology",
                           fields={field_name: ["no methodology in force"]})
    network_id, network = None, None
    if method.network_mode is not None:
        network_id = book.timeline.networks.get(city)
        if network_id is None:
            raise InvalidInput(f"no transit network is loaded for {city!r}",
                               code="no_network", fields={"city": ["no network loaded"]})
        network = catalog.network_by_id(session, network_id)

    usage = member.usage[p.local_date]
    mode_usage = usage.get(mode)
    previous = mode_usage.max_quantity if (method.cumulative and mode_usage) else 0
    try:
        result = method.quantify(data, versioned.factors,
                                 QuantifyContext(network=network, previous_quantity=previous))
    except MethodologyInputError as exc:
        raise InvalidInput(exc.message, code="unquantifiable",
                           fields={exc.field: [exc.message]}) from None

    verdict = plausibility.judge(config.plausibility,
                                 _facts(book, member, p, result, previous, mode_usage))
    explanation = dict(result.explanation)
    explanation["methodology"] = {"mode": mode, "version": versioned.factors.version,
                                  "kind": versioned.factors.kind,
                                  "effective_from": versioned.effective_from.isoformat()}
    explanation["avoided_grams"] = whole_grams(result.avoided_ug)
    explanation["plausibility"] = [hit.to_dict() for hit in verdict.hits]
    if verdict.outcome == "credit":
        credit = caps.decide(config, method, versioned.factors, member.account, usage,
                                  result.avoided_ug)
        explanation = caps.explain(explanation, credit)
    else:
        credit = caps.Credit(0, 0, "held" if verdict.outcome == "hold" else "rejected",
                                  verdict.reason, None)
    event = NewEvent(
        user_id=user_id, event_id=data["event_id"], mode=mode, city=city,
        occurred_at=p.occurred_at, ends_at=p.ends_at, local_date=p.local_date,
        device_id=p.device_id, **explain.input_columns(data), payload_hash=p.digest,
        status=credit.status, reason=credit.reason, avoided_ug=result.avoided_ug,
        credited_ug=credit.credited_ug, points=credit.points,
        factor_version_id=versioned.id, methodology_version=versioned.factors.version,
        network_id=network_id, activity=rollups.activity_of(result),
        previous_quantity=previous if method.cumulative else None,
        notes=explain.notes_for(verdict.hits, credit.cap), explanation=explanation,
    )
    # From here on the event is accepted: the chunk's state moves on.
    book.fresh[key] = event
    if member.city is None:
        member.city = p.principal.city or city
    device = book.devices.get(p.device_id) if p.device_id else None
    if device is not None and user_id not in device.users:
        device.users.add(user_id)
        device.new_users.append(user_id)
        device.accounts += 1
    if p.is_trip and event.status in TRIP_STATUSES:
        member.trips.add(event.event_id, p.local_date, p.occurred_at, p.ends_at)
    if verdict.outcome == "credit":
        if credit.credited_ug > 0:
            entries.claim_points(member.account, credit.credited_ug)
            book.earned.append(event)
        row = usage.get(mode)
        if row is None:  # added to ``usage``: the next event of the day sees it
            row = usage[mode] = _Usage(user_id, p.local_date, mode)
        row.counted = True
        caps.count_usage(row, method, credit, result.quantity, p.now)
    return Applied(event, created=True)


def _facts(book: _Book, member: _Member, p: Posted, result: Quantification, previous: int,
           mode_usage: _Usage | None) -> plausibility.Facts:
    """What the plausibility rules need, from the chunk's state."""
    accounts_on_device = 0
    if p.device_id:  # the device's accounts, this user's included as if recorded already
        device = book.devices[p.device_id]
        accounts_on_device = device.accounts + (p.principal.sub not in device.users)
    frozen = member.account.frozen
    if p.method.cumulative:
        if mode_usage is not None and mode_usage.last_post_at is not None:
            since = mode_usage.last_post_at
        else:  # the day's first post: the steps accrued since local midnight
            since = datetime.combine(p.local_date, time(0), tzinfo=p.tz)
        return plausibility.Facts(
            mode=p.method.mode, steps=result.quantity,
            steps_increase=max(0, result.quantity - previous),
            minutes_since_last_post=max(0.0, (p.now - since).total_seconds() / 60),
            day_closed=p.local_date < p.now.astimezone(p.tz).date(),
            accounts_on_device=accounts_on_device, user_frozen=frozen)
    start = p.occurred_at
    overlapping, trips_today = member.trips.around(p.local_date, start, p.ends_at or start)
    duration = int((p.ends_at - start).total_seconds()) if p.ends_at is not None else None
    distance = result.explanation.get("distance_m")
    return plausibility.Facts(
        mode=p.method.mode, distance_m=distance if isinstance(distance, int) else None,
        duration_s=duration, overlapping_event_ids=overlapping, trips_today=trips_today,
        accounts_on_device=accounts_on_device, user_frozen=frozen)


def time_field(data: dict[str, Any]) -> str:
    """The field that dates an event: a day count's ``date`` or a trip's ``started_at``."""
    return "date" if "date" in data else "started_at"


# ---------------------------------------------------------------- write

_EVENT_COLUMNS = tuple(c.key for c in EVENTS.columns if c.key != "id")
_USAGE_KEY = ("user_id", "local_date", "mode")
_ADD_USAGE = Prebuilt(lambda _: insert(USAGE).values(
    {name: bindparam(name) for name in _USAGE_COLUMNS}))
_SAVE_USAGE = Prebuilt(lambda _: (
    update(USAGE).where(*(USAGE.c[name] == bindparam(f"b_{name}") for name in _USAGE_KEY))
    .values({name: bindparam(f"b_{name}") for name in _USAGE_COLUMNS
             if name not in _USAGE_KEY})))


def _write(session: Session, book: _Book) -> Writes:
    """The chunk's new events, earn entries, device records, accounts, usage and rollups;
    new users who stored nothing are removed again, the others get their city. What can
    go before the COMMIT is done here; the rest is returned, to be sent with it.

    On PostgreSQL all of it goes in one round trip with the COMMIT (``UnitOfWork.commit``),
    the events with the ids drawn with the reads; only a batch's many events and entries
    go by COPY before it, and the rare writes that go through SQLAlchemy (new device
    records, new users to settle) and the rollup cells (which may read a network's
    districts) are done or looked up before it too. Elsewhere the events are inserted
    first, their ids coming back for the entries."""
    now = utcnow()
    events = list(book.fresh.values())
    for event in events:
        event.created_at = now
    rows = [{name: getattr(e, name) for name in _EVENT_COLUMNS} for e in events]
    drawn = book.ids is not None
    ids = book.ids if book.ids is not None else bulk_insert(session, EVENTS, rows)
    for event, event_pk in zip(events, ids, strict=not drawn):  # more may have been drawn
        event.id = event_pk
    if drawn and len(rows) >= COPY_FROM_ROWS:  # by COPY, which cannot ride the pipeline
        bulk_insert(session, EVENTS, rows, ids=ids)
        rows = []
    earned = [entries.earn_entry(book.members[e.user_id].account, points=e.points,
                                 ug=e.credited_ug, event_pk=e.id, mode=e.mode,
                                 factor_version_id=e.factor_version_id, now=now)
               for e in book.earned]
    if len(earned) >= COPY_FROM_ROWS:  # by COPY, which cannot ride the pipeline
        bulk_insert(session, ENTRIES, earned, returning=False)
        earned = []
    insert_missing(session, DeviceAccount, sorted(
        ({"device_id": device_id, "user_id": user_id, "first_seen": now}
         for device_id, device in book.devices.items() for user_id in device.new_users),
        key=lambda row: (row["device_id"], row["user_id"])))
    # New users: as if created by the first post stored (an earlier, refused one may
    # have named another city), or not at all.
    entries.settle_new_accounts(session, {
        user_id: member.city for user_id, member in book.members.items()
        if member.account.created and member.city != member.account.city})
    credits = rollups.credit_rows(session, book.earned)

    def with_the_commit() -> None:
        if drawn:
            bulk_insert(session, EVENTS, rows, ids=ids)
        bulk_insert(session, ENTRIES, earned, returning=False)
        entries.save_accounts(session, [book.members[user_id].account
                                       for user_id in sorted({e.user_id for e in book.earned})])
        _write_usage(session, book)
        rollups.apply_credits(session, credits)

    return with_the_commit


def _write_usage(session: Session, book: _Book) -> None:
    """The usage rows the chunk added to: new ones inserted, the others updated."""
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for member in book.members.values():
        for day in member.usage.values():
            for row in day.values():
                if not row.counted:
                    continue
                if row.stored:
                    changed.append({f"b_{name}": getattr(row, name) for name in _USAGE_COLUMNS})
                else:
                    added.append({name: getattr(row, name) for name in _USAGE_COLUMNS})
    _ADD_USAGE.run(session, added)
    _SAVE_USAGE.run(session, changed)
