"""Deciding a chunk of posts, one event at a time, in memory: idempotency, the factor
version in force, the methodology's grams, the plausibility rules, the daily caps.

The chunk's state (``Book``: the users' locked accounts, the days' usage, the trips around
the events, the devices, the events already stored) is read once by ``intake.apply`` and
kept current here as each event is decided, so a later event sees earlier ones exactly as
separate posts would. Pure of the database: tested on fakes (tests/unit/test_decide.py).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol

from carbon_credits.antifraud import plausibility
from carbon_credits.config import Config
from carbon_credits.errors import InvalidInput
from carbon_credits.ingest import idempotency, trust
from carbon_credits.ledger import caps, entries, explain
from carbon_credits.networks.catalog import Timeline
from carbon_credits.privacy import consents
from carbon_credits.reports import rollups
from carbon_credits.tokens import Principal
from methodology import (
    METHODOLOGIES,
    Methodology,
    MethodologyInputError,
    Quantification,
    QuantifyContext,
    TransitNetwork,
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
    source: str | None = None
    """None for the user's own client; else the scenario provider that reported it."""

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
    source: str | None = None
    """None: the user's client; else the scenario provider that reported it."""
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
    boards: tuple[str, bool] | None = None
    """Not a column: (district, hidden) for the leaderboards, set in the crediting
    transaction by their hook (``leaderboards.service.BoardsHook``), so that what follows
    the commit needs no read of its own."""


@dataclass(frozen=True)
class Applied:
    """An event as stored: ``created`` is False for a replay of an earlier post."""

    event: NewEvent
    created: bool




@dataclass
class Trips:
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

    def remove(self, event_id: str, local_date: date) -> None:
        """A trip closed by another report of it (``trust``): it no longer counts."""
        for at, (_began, known, _ended) in enumerate(self.rows):
            if known == event_id:
                del self.starts[at], self.rows[at]
                self.per_day[local_date] -= 1
                return

    def around(self, local_date: date, start: datetime, end: datetime
               ) -> tuple[tuple[str, ...], int]:
        """Up to 5 trips overlapping [start, end), and the trips of ``local_date``."""
        lo = bisect_right(self.starts, start - LONGEST_TRIP)
        hi = bisect_left(self.starts, end)
        overlapping = tuple(event_id for began, event_id, ended in self.rows[lo:hi]
                            if (ended or began) > start)[:5]
        return overlapping, self.per_day[local_date]


@dataclass(slots=True)
class DayUsage:
    """A daily usage row (``DailyUsage``) as plain values (``caps.Usage``)."""

    user_id: str
    local_date: date
    mode: str
    events: int = 0
    credited_ug: int = 0
    points: int = 0
    max_quantity: int = 0
    last_post_at: datetime | None = None
    live_events: int = 0
    live_ug: int = 0
    live_points: int = 0
    activity: int = 0
    stored: bool = False
    """Whether the row exists (else ``_write`` inserts it)."""
    counted: bool = False
    """Whether the chunk added to it (else ``_write`` leaves it alone)."""


@dataclass(slots=True)
class YearUsage:
    """An annual usage row (``AnnualUsage``) as plain values (``caps.YearUsage``)."""

    user_id: str
    year: int
    credited_ug: int = 0
    points: int = 0
    stored: bool = False
    """Whether the row exists (else ``_write`` inserts it)."""
    counted: bool = False
    """Whether the chunk added to it (else ``_write`` leaves it alone)."""


@dataclass
class Member:
    """One user of a chunk: the locked account and what the rules read of that user."""

    account: entries.LockedAccount
    usage: dict[date, dict[str, DayUsage]] = field(default_factory=dict)
    years: dict[int, YearUsage] = field(default_factory=dict)
    """The user's annual usage of the chunk's local years (the annual cap's)."""
    trips: Trips = field(default_factory=Trips)
    city: str | None = None
    """A new user's city, from the first post of the user stored in the chunk: its token's
    city, else its event's (None: nothing stored)."""
    reports: dict[str, trust.Report] = field(default_factory=dict)
    """The user's reports around the chunk's provider records and trips, by event id, for
    matching a client post with a provider's record (``trust``); read with the trips."""
    notes: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    """The stored notes of ``reports``, by event id (kept when one is closed)."""


@dataclass
class Device:
    """A device of the chunk: how many accounts it has been seen with, and which of the
    chunk's users are among them (recorded when one of their events is stored)."""

    accounts: int
    users: set[str]
    new_users: list[str] = field(default_factory=list)
    """Users first seen on it in this chunk: written by ``_write``."""


@dataclass
class Book:
    """What the rules of a chunk read, kept current in memory as its events are decided."""

    members: dict[str, Member]
    stored: dict[tuple[str, str], NewEvent]
    """Events already stored under the chunk's (user id, event id) pairs: replays."""
    timeline: Timeline
    devices: dict[str, Device]
    fresh: dict[tuple[str, str], NewEvent] = field(default_factory=dict)
    """New events by (user id, event id), in the order decided: written by ``_write``."""
    earned: list[NewEvent] = field(default_factory=list)
    """New events with credited grams, in order: their earn entries are written in it."""
    ids: list[int] | None = None
    """Ids for the new events, drawn with the reads (PostgreSQL; None elsewhere)."""
    hooked: list[Any] = field(default_factory=list)
    """The crediting hooks' rows (``ledger.hooks.reads``), one entry per hook."""
    policies: dict[tuple[str, str], trust.Trust] = field(default_factory=dict)
    """The trust policies of the chunk's cities and modes (none: ``trust.CLIENT``)."""
    changed: dict[tuple[str, str], tuple[str, str | None, dict[str, Any] | None]] = field(
        default_factory=dict)
    """Stored events another report changed (status, reason, notes), by (user, event id):
    a held client post closed by its provider's record, a credited one confirmed by it."""
    without_consent: dict[str, str] = field(default_factory=dict)
    """Users whose events a city requiring consent refuses, with the reason code
    (``privacy.consents.refusal``); read only when a city of the chunk requires it."""



class Lookups(Protocol):
    """What deciding may look up beyond the chunk's state: the catalog, in the unit of
    work's session (``intake.apply``), or a fake in tests."""

    def explain(self, event: NewEvent) -> dict[str, Any]:
        """The explanation of an event stored by an earlier transaction."""
        ...

    def has_factors(self, city: str, mode: str) -> bool:
        """Whether any factor version exists for ``city`` and ``mode``."""
        ...

    def network(self, network_id: int) -> TransitNetwork:
        """A network version, by id."""
        ...


def decide(config: Config, lookups: Lookups, book: Book, p: Posted) -> Applied:
    """One event against the chunk's state; the state moves on only if it is stored.

    Pure of the database: everything read is in ``book`` (``intake.apply`` reads it in one
    round trip) or comes from ``lookups``; tests/unit/test_decide.py runs it on fakes."""
    user_id, method, data = p.principal.sub, p.method, p.data
    member = book.members[user_id]
    refusal = book.without_consent.get(user_id)
    if refusal is not None and config.consent_required_in(data["city"]):
        # Before the replay check too: nothing of the user's is processed, or echoed.
        raise consents.refused(refusal, config.privacy_notice_version)
    key = (user_id, data["event_id"])
    prior = book.stored.get(key) or book.fresh.get(key)
    if prior is not None and idempotency.is_replay(prior.payload_hash, p.digest):
        if prior.explanation is None:  # stored by an earlier transaction: built again
            prior.explanation = lookups.explain(prior)
        return Applied(prior, created=False)

    city, mode = data["city"], method.mode
    trusted = book.policies.get((city, mode), trust.CLIENT)
    if p.source is None and trusted.policy == "operator_only":
        raise InvalidInput(f"{mode} trips in {city!r} are credited from scenario providers' "
                           "records only", code="operator_only",
                           fields={"mode": ["credited from providers' records only"]})
    versioned = book.timeline.at(city, mode, p.occurred_at)
    if versioned is None:
        field_name = time_field(data) if lookups.has_factors(city, mode) else "city"
        raise InvalidInput(f"no {mode} methodology is in force for {city!r} at that time",
                           code="no_methodology",
                           fields={field_name: ["no methodology in force"]})
    network_id, network = None, None
    if method.network_mode is not None:
        network_id = book.timeline.networks.get(city)
        if network_id is None:
            raise InvalidInput(f"no transit network is loaded for {city!r}",
                               code="no_network", fields={"city": ["no network loaded"]})
        network = lookups.network(network_id)

    usage = member.usage[p.local_date]
    mode_usage = usage.get(mode)
    previous = mode_usage.max_quantity if (method.cumulative and mode_usage) else 0
    try:
        result = method.quantify(data, versioned.factors,
                                 QuantifyContext(network=network, previous_quantity=previous))
    except MethodologyInputError as exc:
        raise InvalidInput(exc.message, code="unquantifiable",
                           fields={exc.field: [exc.message]}) from None

    inputs = explain.input_columns(data)
    report = trust.Report(data["event_id"], mode, p.occurred_at, p.ends_at, p.local_date,
                          inputs["origin"], inputs["destination"], inputs["line_id"], p.source)
    matched = trust.judge(trusted, report, (r for r in member.reports.values()
                                            if r.mode == mode))
    verdict = (plausibility.Verdict("credit", ()) if matched.outcome == "duplicate" else
               plausibility.judge(config.plausibility,
                                  _facts(book, member, p, result, previous, mode_usage,
                                         ignore=matched.close)))
    explanation = dict(result.explanation)
    explanation["methodology"] = {"mode": mode, "version": versioned.factors.version,
                                  "kind": versioned.factors.kind,
                                  "effective_from": versioned.effective_from.isoformat()}
    explanation["avoided_grams"] = whole_grams(result.avoided_ug)
    explanation["plausibility"] = [hit.to_dict() for hit in verdict.hits]
    if matched.outcome == "duplicate":  # credited once already, under the other report
        credit = caps.Credit(0, 0, "rejected", trust.SAME_TRIP, None)
    elif verdict.outcome == "credit" and matched.outcome == "hold":
        credit = caps.Credit(0, 0, "held", trust.AWAITING, None)
    elif verdict.outcome == "credit":
        year = member.years.setdefault(p.local_date.year,
                                       YearUsage(user_id, p.local_date.year))
        credit = caps.decide(config, method, versioned.factors, member.account, usage,
                             result.avoided_ug, year.credited_ug)
        explanation = caps.explain(explanation, credit)
    else:
        credit = caps.Credit(0, 0, "held" if verdict.outcome == "hold" else "rejected",
                                  verdict.reason, None)
    event = NewEvent(
        user_id=user_id, event_id=data["event_id"], mode=mode, city=city,
        occurred_at=p.occurred_at, ends_at=p.ends_at, local_date=p.local_date,
        device_id=p.device_id, **inputs, payload_hash=p.digest,
        status=credit.status, reason=credit.reason, avoided_ug=result.avoided_ug,
        credited_ug=credit.credited_ug, points=credit.points,
        factor_version_id=versioned.id, methodology_version=versioned.factors.version,
        network_id=network_id, activity=rollups.activity_of(result),
        previous_quantity=previous if method.cumulative else None,
        notes=_linked(explain.notes_for(verdict.hits, credit.cap), matched),
        explanation=explanation, source=p.source,
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
    if event.status in TRIP_STATUSES:
        if p.is_trip:
            member.trips.add(event.event_id, p.local_date, p.occurred_at, p.ends_at)
        member.reports[event.event_id] = replace(report, status=event.status,
                                                 reason=event.reason)
    _link_others(book, member, event, matched)
    if event.status in trust.CREDITED:
        if credit.credited_ug > 0:
            entries.claim_points(member.account, credit.credited_ug)
            book.earned.append(event)
        row = usage.get(mode)
        if row is None:  # added to ``usage``: the next event of the day sees it
            row = usage[mode] = DayUsage(user_id, p.local_date, mode)
        row.counted = True
        caps.count_usage(row, method, credit, result.quantity, p.now, event.activity)
        year = member.years[p.local_date.year]
        year.counted = True
        caps.count_year(year, credit)
    return Applied(event, created=True)


def _linked(notes: dict[str, Any] | None, matched: trust.Verdict
            ) -> dict[str, Any] | None:
    """An event's notes with its links to the other report of its trip: the credited one
    it repeats (``same_trip``), or the held client posts it confirms (``confirms``)."""
    if matched.outcome == "duplicate" and matched.match is not None:
        return {**(notes or {}), "same_trip": matched.match.event_id}
    if matched.close:
        return {**(notes or {}), "confirms": [r.event_id for r in matched.close]}
    return notes


def _link_others(book: Book, member: Member, event: NewEvent, matched: trust.Verdict
                 ) -> None:
    """The other reports of a stored event's trip: held client posts it confirms are
    closed (``same_trip``, credited once, here); a client post it repeats notes the
    provider that confirmed it."""
    changes: list[tuple[str, str, str | None, dict[str, Any]]] = []
    for closed in matched.close:
        member.trips.remove(closed.event_id, closed.local_date)
        changes.append((closed.event_id, "rejected", trust.SAME_TRIP,
                        {"same_trip": event.event_id}))
    if (matched.outcome == "duplicate" and matched.match is not None
            and event.source is not None and matched.match.source is None):
        changes.append((matched.match.event_id, matched.match.status, matched.match.reason,
                        {"confirmed_by": {"provider": event.source,
                                          "event_id": event.event_id}}))
    for event_id, status, reason, link in changes:
        key = (event.user_id, event_id)
        fresh = book.fresh.get(key)
        if fresh is not None:  # decided in this chunk: written as changed
            fresh.status, fresh.reason = status, reason
            fresh.notes = {**(fresh.notes or {}), **link}
        else:
            notes = {**(member.notes.get(event_id) or {}), **link}
            member.notes[event_id] = notes
            book.changed[key] = (status, reason, notes)
        if status == "rejected":
            member.reports.pop(event_id, None)
        else:
            member.reports[event_id] = replace(member.reports[event_id], status=status)


def _facts(book: Book, member: Member, p: Posted, result: Quantification, previous: int,
           mode_usage: DayUsage | None, ignore: tuple[trust.Report, ...] = ()
           ) -> plausibility.Facts:
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
    if ignore:  # another report of this very trip, closed by this one: not an overlap
        overlapping = tuple(e for e in overlapping if e not in {r.event_id for r in ignore})
        trips_today -= sum(r.local_date == p.local_date for r in ignore)
    duration = int((p.ends_at - start).total_seconds()) if p.ends_at is not None else None
    distance = result.explanation.get("distance_m")
    return plausibility.Facts(
        mode=p.method.mode, distance_m=distance if isinstance(distance, int) else None,
        duration_s=duration, overlapping_event_ids=overlapping, trips_today=trips_today,
        accounts_on_device=accounts_on_device, user_frozen=frozen)


def time_field(data: dict[str, Any]) -> str:
    """The field that dates an event: a day count's ``date`` or a trip's ``started_at``."""
    return "date" if "date" in data else "started_at"
