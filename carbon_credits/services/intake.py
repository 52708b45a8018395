"""Apply one user's posted events as a set: read once, decide each in memory, write once.

A chunk of events (the one event of POST /v1/events, or up to ``ITEMS_PER_TRANSACTION``
items of a batch) is applied in one transaction, with the user's account locked, in three
steps:

1. **Read** what every rule needs for the whole chunk, one statement each, whatever the
   number of events: the account (locked, with its user's frozen flag), the events already
   stored under the chunk's event ids (replays), the factor versions and newest networks,
   the daily usage of the chunk's local days, the user's trips around them (overlap and
   trips-per-day rules) and the accounts seen on the device.
2. **Decide** each event in order, in memory: idempotency, methodology, plausibility, daily
   caps, points. Each decision updates the in-memory state (usage rows, trips, the
   account's carried remainder), so a later event of the chunk sees the earlier ones
   exactly as if each had been written before it. An event that is refused (conflict,
   invalid) has changed nothing yet, so a refusal needs no savepoint.
3. **Write** the new events with one multi-row INSERT (their ids come back in order), their
   hash-chained earn entries with another, the account and usage rows, then the report
   rollups merged per row and in key order.

The account lock serialises everything of one user (ledger, caps, trips, event ids), so
what step 1 read cannot change before the commit. The unique (user_id, event_id)
constraint stays the last word on idempotency: should it fire, the caller rolls back and
applies the chunk again, which then answers the stored copy as a replay.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from carbon_credits import plausibility
from carbon_credits.auth import Principal
from carbon_credits.catalog import Catalog, Timeline
from carbon_credits.config import Config
from carbon_credits.errors import Conflict, InvalidInput, ServiceError
from carbon_credits.models import Account, DailyUsage, DeviceAccount, Event, LedgerEntry, utcnow
from carbon_credits.services import crediting, ledger, rollups
from carbon_credits.sql import bulk_insert, insert_ignore
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
    digest: str
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
    CPU. tests/integration/test_intake.py checks the fields are the table's columns."""

    user_id: str
    event_id: str
    mode: str
    city: str
    occurred_at: datetime
    ends_at: datetime | None
    local_date: date
    device_id: str | None
    payload: dict[str, Any]
    payload_hash: str
    status: str
    reason: str | None
    avoided_ug: int
    credited_ug: int
    points: int
    factor_version_id: int
    methodology_version: str
    network_id: int | None
    explanation: dict[str, Any]
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


@dataclass(frozen=True)
class Applied:
    """An event as stored: ``created`` is False for a replay of an earlier post."""

    event: Event | NewEvent
    created: bool


def apply(session: Session, config: Config, catalog: Catalog, principal: Principal,
          chunk: Sequence[Posted]) -> list[Applied | ServiceError]:
    """Apply ``chunk`` (events of one user, in order) in the caller's transaction; one
    result per event: what was stored, or why it was refused.

    Reading may create the user's account (and record the device) before any event is
    decided; a caller whose chunk stored no new event rolls back, so refusals and replays
    leave nothing behind. A new user's city is the token's, else that of the first event
    stored (not of an earlier refused one).
    """
    book = _read(session, catalog, principal, chunk)
    results: list[Applied | ServiceError] = []
    for posted in chunk:
        try:
            results.append(_decide(session, config, catalog, book, posted))
        except ServiceError as exc:
            results.append(exc)
    if book.created and principal.city is None and book.fresh:
        book.account.user.city = next(iter(book.fresh.values())).city
    _write(session, book)
    return results


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


@dataclass
class _Book:
    """What the rules of a chunk read, kept current in memory as its events are decided."""

    account: Account
    created: bool
    """Whether this transaction created the account (a new user)."""
    stored: dict[str, Event]
    timeline: Timeline
    usage: dict[date, dict[str, DailyUsage]]
    trips: _Trips
    accounts_on_device: dict[str, int]
    fresh: dict[str, NewEvent] = field(default_factory=dict)
    """New events by event id, in the order decided: written by ``_write``."""
    earned: list[NewEvent] = field(default_factory=list)
    """New events with credited grams, in order: their earn entries are written in it."""


def _read(session: Session, catalog: Catalog, principal: Principal,
          chunk: Sequence[Posted]) -> _Book:
    user_id = principal.sub
    account, created = ledger.open_account(session, user_id,
                                           principal.city or chunk[0].data["city"])
    stored = _stored(session, user_id, {p.data["event_id"] for p in chunk})
    new = [p for p in chunk if p.data["event_id"] not in stored]
    if not new:  # all replays: nothing else to read
        return _Book(account, created, stored, Timeline({}, {}), {}, _Trips(), {})
    timeline = catalog.timeline(session, {p.data["city"] for p in new},
                                {p.method.mode for p in new}, max(p.occurred_at for p in new))
    days = {p.local_date for p in new}
    usage: dict[date, dict[str, DailyUsage]] = {day: {} for day in days}
    for row in session.scalars(select(DailyUsage).where(DailyUsage.user_id == user_id,
                                                        DailyUsage.local_date.in_(days))):
        usage[row.local_date][row.mode] = row
    return _Book(account, created, stored, timeline, usage,
                 _read_trips(session, user_id, new), _read_devices(session, user_id, new))


def _stored(session: Session, user_id: str, event_ids: set[str]) -> dict[str, Event]:
    """The user's events already stored under these ids (their posts are replays)."""
    return {e.event_id: e for e in session.scalars(
        select(Event).where(Event.user_id == user_id, Event.event_id.in_(event_ids)))}


def _read_trips(session: Session, user_id: str, new: Sequence[Posted]) -> _Trips:
    """The user's trips from one day before the chunk's earliest trip (or the start of its
    first local day) to the end of its last trip's local day: one index range scan on
    (user_id, occurred_at), bounded by the chunk's span, not by the user's history.

    Days are the city's local days (``Posted.tz``), not the client's offset: an offset
    east or west of the city would otherwise cut a day short and hide its late trips.
    """
    trips = _Trips()
    spans = [(p.occurred_at, p.ends_at or p.occurred_at, p.local_date, p.tz)
             for p in new if p.is_trip]
    if not spans:
        return trips
    since = min(min(start - LONGEST_TRIP, datetime.combine(day, time(0), tzinfo=tz))
                for start, _end, day, tz in spans)
    until = max(max(end, datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz))
                for _start, end, day, tz in spans)
    rows = session.execute(
        select(Event.event_id, Event.local_date, Event.occurred_at, Event.ends_at)
        .where(Event.user_id == user_id, Event.occurred_at >= since,
               Event.occurred_at < until, Event.mode.in_(TRIP_MODES),
               Event.status.in_(TRIP_STATUSES))
        .order_by(Event.occurred_at))
    for event_id, local_date, began, ended in rows:
        trips.add(event_id, local_date, began, ended)
    return trips


def _read_devices(session: Session, user_id: str, new: Sequence[Posted]) -> dict[str, int]:
    """Record the user on each device of the chunk (one, the X-Device-Id of the request);
    how many accounts each device has been seen with, this one included."""
    counts: dict[str, int] = {}
    for device_id in sorted({p.device_id for p in new if p.device_id}):
        insert_ignore(session, DeviceAccount, {"device_id": device_id, "user_id": user_id,
                                               "first_seen": utcnow()})
        counts[device_id] = session.scalar(
            select(func.count()).select_from(DeviceAccount)
            .where(DeviceAccount.device_id == device_id)) or 0
    return counts


# ---------------------------------------------------------------- decide

def _decide(session: Session, config: Config, catalog: Catalog, book: _Book,
            p: Posted) -> Applied:
    """One event against the chunk's state; the state moves on only if it is stored."""
    user_id, method, data = p.principal.sub, p.method, p.data
    prior: Event | NewEvent | None = (book.stored.get(data["event_id"])
                                      or book.fresh.get(data["event_id"]))
    if prior is not None:
        if prior.payload_hash != p.digest:
            raise Conflict(
                "event_id was already used with a different payload",
                code="event_id_conflict", fields={"event_id": ["already used"]},
            )
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

    usage = book.usage[p.local_date]
    mode_usage = usage.get(mode)
    previous = mode_usage.max_quantity if (method.cumulative and mode_usage) else 0
    try:
        result = method.quantify(data, versioned.factors,
                                 QuantifyContext(network=network, previous_quantity=previous))
    except MethodologyInputError as exc:
        raise InvalidInput(exc.message, code="unquantifiable",
                           fields={exc.field: [exc.message]}) from None

    verdict = plausibility.judge(config.plausibility,
                                 _facts(book, p, result, previous, mode_usage))
    explanation = dict(result.explanation)
    explanation["methodology"] = {"mode": mode, "version": versioned.factors.version,
                                  "kind": versioned.factors.kind,
                                  "effective_from": versioned.effective_from.isoformat()}
    explanation["avoided_grams"] = whole_grams(result.avoided_ug)
    explanation["plausibility"] = [hit.to_dict() for hit in verdict.hits]
    if verdict.outcome == "credit":
        credit = crediting.decide(config, method, versioned.factors, book.account, usage,
                                  result.avoided_ug)
        explanation = crediting.explain(explanation, credit)
    else:
        credit = crediting.Credit(0, 0, "held" if verdict.outcome == "hold" else "rejected",
                                  verdict.reason, None)
    event = NewEvent(
        user_id=user_id, event_id=data["event_id"], mode=mode, city=city,
        occurred_at=p.occurred_at, ends_at=p.ends_at, local_date=p.local_date,
        device_id=p.device_id, payload=p.payload, payload_hash=p.digest,
        status=credit.status, reason=credit.reason, avoided_ug=result.avoided_ug,
        credited_ug=credit.credited_ug, points=credit.points,
        factor_version_id=versioned.id, methodology_version=versioned.factors.version,
        network_id=network_id, explanation=explanation,
    )
    # From here on the event is accepted: the chunk's state moves on.
    book.fresh[event.event_id] = event
    if p.is_trip and event.status in TRIP_STATUSES:
        book.trips.add(event.event_id, p.local_date, p.occurred_at, p.ends_at)
    if verdict.outcome == "credit":
        if credit.credited_ug > 0:
            ledger.claim_points(book.account, credit.credited_ug)
            book.earned.append(event)
        crediting.count_usage(session, user_id, p.local_date, usage, method, credit,
                              result.quantity, p.now)
    return Applied(event, created=True)


def _facts(book: _Book, p: Posted, result: Quantification, previous: int,
           mode_usage: DailyUsage | None) -> plausibility.Facts:
    """What the plausibility rules need, from the chunk's state."""
    accounts_on_device = book.accounts_on_device.get(p.device_id, 0) if p.device_id else 0
    frozen = book.account.user.frozen
    if p.method.cumulative:
        if mode_usage is not None and mode_usage.last_post_at is not None:
            since = mode_usage.last_post_at
        else:  # the day's first post: the steps accrued since local midnight
            since = datetime.combine(p.local_date, time(0), tzinfo=p.tz)
        return plausibility.Facts(
            mode=p.method.mode, steps=result.quantity,
            steps_increase=max(0, result.quantity - previous),
            minutes_since_last_post=max(0.0, (p.now - since).total_seconds() / 60),
            accounts_on_device=accounts_on_device, user_frozen=frozen)
    start = p.occurred_at
    overlapping, trips_today = book.trips.around(p.local_date, start, p.ends_at or start)
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

EVENTS = cast(Table, Event.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)
_EVENT_COLUMNS = tuple(c.key for c in EVENTS.columns if c.key != "id")


def _write(session: Session, book: _Book) -> None:
    """The chunk's new events, earn entries, account, usage and rollups."""
    if not book.fresh:
        return
    now = utcnow()
    events = list(book.fresh.values())
    for event in events:
        event.created_at = now
    ids = bulk_insert(session, EVENTS,
                      [{name: getattr(e, name) for name in _EVENT_COLUMNS} for e in events])
    for event, event_pk in zip(events, ids, strict=True):
        event.id = event_pk
    entries = [ledger.earn_entry(book.account, points=e.points, ug=e.credited_ug,
                                 event_pk=e.id, mode=e.mode,
                                 factor_version_id=e.factor_version_id, now=now)
               for e in book.earned]
    bulk_insert(session, ENTRIES, entries)
    session.flush()  # the account and the day's usage rows
    rollups.credit(session, book.earned)
