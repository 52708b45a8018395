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
   - when a city of the chunk requires consent, the users' latest consent steps
     (``privacy.consents``; a withdrawal committed after this read is not seen by it);
   - what the installed crediting hooks read (``ledger.hooks``: the account aggregates
     and badges, campaigns, webhook endpoints);
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

from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import (
    TIMESTAMP,
    String,
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
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from carbon_credits.config import Config
from carbon_credits.errors import ServiceError
from carbon_credits.ingest import trust
from carbon_credits.ingest.decide import (
    LONGEST_TRIP,
    TRIP_MODES,
    TRIP_STATUSES,
    Applied,
    Book,
    DayUsage,
    Device,
    Member,
    NewEvent,
    Posted,
    YearUsage,
    decide,
)
from carbon_credits.ledger import entries, explain, hooks
from carbon_credits.networks.catalog import Catalog, timeline_read
from carbon_credits.privacy import consents
from carbon_credits.reports import rollups
from carbon_credits.storage.models import (
    AnnualUsage,
    DailyUsage,
    DeviceAccount,
    Event,
    LedgerEntry,
    TrustPolicy,
    utcnow,
)
from carbon_credits.storage.sql import (
    ARRAY_FROM,
    COPY_FROM_ROWS,
    Prebuilt,
    Read,
    bulk_insert,
    ids_read,
    insert_missing,
    read_together,
)
from methodology import TransitNetwork

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
    consent = any(config.consent_required_in(p.data["city"]) for p in chunk)
    book = _read(session, catalog, chunk,
                 config.privacy_notice_version if consent else None)
    lookups = _Lookups(session, catalog)
    results: list[Applied | ServiceError] = []
    for posted in chunk:
        try:
            results.append(decide(config, lookups, book, posted))
        except ServiceError as exc:
            results.append(exc)
    return results, (_write(session, book) if book.fresh else None)



class _Lookups:
    """``decide.Lookups`` on the catalog, in the unit of work's session."""

    def __init__(self, session: Session, catalog: Catalog) -> None:
        self.session, self.catalog = session, catalog

    def explain(self, event: NewEvent) -> dict[str, Any]:
        return explain.explain(self.session, self.catalog, event)

    def has_factors(self, city: str, mode: str) -> bool:
        return self.catalog.has_factors(self.session, city, mode)

    def network(self, network_id: int) -> TransitNetwork:
        return self.catalog.network_by_id(self.session, network_id)


# ---------------------------------------------------------------- read

def _read(session: Session, catalog: Catalog, chunk: Sequence[Posted],
          consent_version: str | None = None) -> Book:
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
    # A chunk of many users (a record file's): its windows and keys as arrays, joined.
    many = len(cities) >= ARRAY_FROM and session.get_bind().dialect.name == "postgresql"
    pairs = sorted(keys)
    reads: list[Read] = [
        (_STORED_PAIRS, {"users": [user for user, _ in pairs],
                         "ids": [event_id for _, event_id in pairs]}) if many else
        (_STORED, {"users": sorted({user for user, _ in keys}),
                   "ids": sorted({event_id for _, event_id in keys})}),
        timeline_read({p.data["city"] for p in chunk}, {p.method.mode for p in chunk},
                      max(p.occurred_at for p in chunk)),
        (_USAGE, {"users": sorted(cities), "days": sorted({p.local_date for p in chunk})}),
        (_YEARS, {"users": sorted(cities),
                  "years": sorted({p.local_date.year for p in chunk})}),
        (_POLICIES, {"cities": sorted({p.data["city"] for p in chunk}),
                     "modes": sorted({p.method.mode for p in chunk})})]
    trips, devices = _trips_read(chunk, many), _devices_read(chunk)
    consent: Read | None = None if consent_version is None else (
        consents.LATEST, {"users": sorted(cities)})
    reads += [read for read in (trips, devices, consent) if read is not None]
    # The crediting hooks' reads go last, with the others (one round trip).
    hooked = hooks.reads(session, hooks.Scope(tuple(sorted(cities)),
                                     tuple(sorted({p.data["city"] for p in chunk})),
                                     min(p.local_date for p in chunk),
                                     max(p.local_date for p in chunk)))
    reads += [read for hook_reads in hooked for read in hook_reads]
    draw = ids_read(session, EVENTS, len(chunk))
    locked, *results = read_together(session, [entries.accounts_read(cities), *reads,
                                               *([draw] if draw else [])])
    ids = [row[0] for row in results.pop()] if draw else None
    members = {user_id: Member(account) for user_id, account
               in entries.open_accounts(session, cities, locked).items()}
    if len(locked) < len(cities):
        results = read_together(session, reads)
    n_hooked = sum(len(hook_reads) for hook_reads in hooked)
    found = iter(results[len(results) - n_hooked:])
    hook_rows = [[next(found) for _ in hook_reads] for hook_reads in hooked]
    rows = iter(results[:len(results) - n_hooked])
    stored = _stored(keys, next(rows))
    timeline = catalog.timeline_of(session, next(rows))
    _usage(members, chunk, next(rows))
    for user_id, year, credited_ug, points in next(rows):
        members[user_id].years[year] = YearUsage(user_id, year, credited_ug, points,
                                                 stored=True)
    policies = {(city, mode): trust.Trust(policy, confirm_days, tolerance_s)
                for city, mode, policy, confirm_days, tolerance_s in next(rows)}
    if trips is not None:
        for (user_id, event_id, local_date, began, ended, mode, status, origin, destination,
             line_id, source, reason, notes) in next(rows):
            if status not in TRIP_STATUSES:
                continue
            member = members[user_id]
            if mode in TRIP_MODES:
                member.trips.add(event_id, local_date, began, ended)
            member.reports[event_id] = trust.Report(event_id, mode, began, ended, local_date,
                                                    origin, destination, line_id, source,
                                                    status, reason)
            member.notes[event_id] = notes
    book = Book(members, stored, timeline, {} if devices is None else _devices(
        devices[1]["devices"], next(rows)), ids=ids, policies=policies, hooked=hook_rows)
    if consent_version is not None:
        latest = consents.latest_by_user(next(rows))
        book.without_consent = {
            user_id: code for user_id in cities
            if (code := consents.refusal(latest.get(user_id), consent_version)) is not None}
    return book


# The reads are built once and run with bound values only (each statement's compiled form
# is cached): building them per chunk cost as much as running them.
EVENTS = cast(Table, Event.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)
USAGE = cast(Table, DailyUsage.__table__)
LINKS = cast(Table, DeviceAccount.__table__)
POLICIES = cast(Table, TrustPolicy.__table__)
YEARS = cast(Table, AnnualUsage.__table__)
_STORED = Prebuilt(lambda one_of: select(EVENTS).where(one_of(EVENTS.c.user_id, "users"),
                                                        one_of(EVENTS.c.event_id, "ids")))
_KEYS = func.unnest(bindparam("users", type_=ARRAY(String)),
                    bindparam("ids", type_=ARRAY(String))
                    ).table_valued("user_id", "event_id").render_derived()
_STORED_PAIRS = Prebuilt(lambda _: select(EVENTS).select_from(EVENTS.join(_KEYS, and_(
    EVENTS.c.user_id == _KEYS.c.user_id, EVENTS.c.event_id == _KEYS.c.event_id))),
    arrays=("users", "ids"))
"""``_STORED`` for a chunk of many users (PostgreSQL): the (user, event id) pairs joined,
where the two lists would match every user with every id (an index probe per pair of
the product: a million for a record file's chunk of a thousand users)."""
_EVENT_FIELDS = tuple(c.key for c in EVENTS.columns)
_USAGE_COLUMNS = tuple(f.name for f in fields(DayUsage) if f.name not in ("stored", "counted"))
"""A usage row's columns, in ``DayUsage``'s order (read, and written back, by name)."""
_USAGE = Prebuilt(lambda one_of: select(*(USAGE.c[name] for name in _USAGE_COLUMNS)).where(
    one_of(USAGE.c.user_id, "users"), one_of(USAGE.c.local_date, "days")))
_DEVICES = Prebuilt(lambda one_of: union_all(
    select(LINKS.c.device_id, LINKS.c.user_id, literal(0))
    .where(one_of(LINKS.c.device_id, "devices"), one_of(LINKS.c.user_id, "users")),
    select(LINKS.c.device_id, null(), func.count())
    .where(one_of(LINKS.c.device_id, "devices")).group_by(LINKS.c.device_id)))
_YEARS = Prebuilt(lambda one_of: select(
    YEARS.c.user_id, YEARS.c.year, YEARS.c.credited_ug, YEARS.c.points).where(
        one_of(YEARS.c.user_id, "users"), one_of(YEARS.c.year, "years")))
_ADD_YEAR = Prebuilt(lambda _: insert(YEARS).values(
    {name: bindparam(name) for name in ("user_id", "year", "credited_ug", "points")}))
_SAVE_YEAR = Prebuilt(lambda _: (
    update(YEARS).where(YEARS.c.user_id == bindparam("b_user_id"),
                        YEARS.c.year == bindparam("b_year"))
    .values(credited_ug=bindparam("b_credited_ug"), points=bindparam("b_points"))))
_POLICIES = Prebuilt(lambda one_of: select(
    POLICIES.c.city, POLICIES.c.mode, POLICIES.c.policy, POLICIES.c.confirm_days,
    POLICIES.c.tolerance_s).where(one_of(POLICIES.c.city, "cities"),
                                  one_of(POLICIES.c.mode, "modes")))
_trips_by_users: dict[int, Prebuilt] = {}


def _stored(keys: set[tuple[str, str]], rows: Sequence[tuple[Any, ...]]
            ) -> dict[tuple[str, str], NewEvent]:
    """The events already stored under these (user id, event id) pairs (their posts are
    replays), from the rows of ``_STORED``: the users' events under any of the ids."""
    events = (NewEvent(**dict(zip(_EVENT_FIELDS, row, strict=True))) for row in rows)
    return {key: e for e in events if (key := (e.user_id, e.event_id)) in keys}


def _usage(members: dict[str, Member], chunk: Sequence[Posted],
           rows: Sequence[tuple[Any, ...]]) -> None:
    """Each member's daily usage rows of its events' local days (``_USAGE`` read those of
    the chunk's users and days)."""
    for p in chunk:
        members[p.principal.sub].usage.setdefault(p.local_date, {})
    for row in rows:
        found = DayUsage(*row)
        found.stored = True
        usage = members[found.user_id].usage.get(found.local_date)
        if usage is not None:
            usage[found.mode] = found


def _trips_read(chunk: Sequence[Posted], many: bool = False) -> Read | None:
    """The read of each member's trips from one day before its earliest trip of the chunk
    (or the start of its first local day) to the end of its last trip's local day: an
    index range scan on (user_id, occurred_at) per user, bounded by the chunk's span, not
    by the users' history. None if the chunk has no trips. A day's step count reads its
    local day, for the other source's count of it (``trust``).

    Days are the city's local days (``Posted.tz``), not the client's offset: an offset
    east or west of the city would otherwise cut a day short and hide its late trips.
    """
    windows: dict[str, tuple[datetime, datetime]] = {}
    for p in chunk:
        since = min(p.occurred_at - LONGEST_TRIP,
                    datetime.combine(p.local_date, time(0), tzinfo=p.tz))
        until = max(p.ends_at or p.occurred_at,
                    datetime.combine(p.local_date + timedelta(days=1), time(0), tzinfo=p.tz))
        known = windows.get(p.principal.sub)
        windows[p.principal.sub] = (since, until) if known is None else (
            min(known[0], since), max(known[1], until))
    if not windows:
        return None
    if many:
        users = sorted(windows)
        tz = chunk[0].tz
        return _TRIPS_IN_WINDOWS, {
            "users": users, "since": [windows[u][0] for u in users],
            "until": [windows[u][1] for u in users],
            # The windows' local days, a day wider either way: the months to scan.
            "first_day": min(w[0] for w in windows.values()).astimezone(tz).date()
            - timedelta(days=1),
            "last_day": max(w[1] for w in windows.values()).astimezone(tz).date()
            + timedelta(days=1)}
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
                   EVENTS.c.occurred_at, EVENTS.c.ends_at, EVENTS.c.mode, EVENTS.c.status,
                   EVENTS.c.origin, EVENTS.c.destination, EVENTS.c.line_id, EVENTS.c.source,
                   EVENTS.c.reason, EVENTS.c.notes)
            .where(spans[0] if users == 1 else or_(*spans))
            .order_by(EVENTS.c.occurred_at)))
    return statement


_WINDOWS = func.unnest(bindparam("users", type_=ARRAY(String)),
                       bindparam("since", type_=ARRAY(TIMESTAMP(timezone=True))),
                       bindparam("until", type_=ARRAY(TIMESTAMP(timezone=True)))
                       ).table_valued("user_id", "since", "until").render_derived()
_TRIPS_IN_WINDOWS = Prebuilt(lambda _: (
    select(EVENTS.c.user_id, EVENTS.c.event_id, EVENTS.c.local_date, EVENTS.c.occurred_at,
           EVENTS.c.ends_at, EVENTS.c.mode, EVENTS.c.status, EVENTS.c.origin,
           EVENTS.c.destination, EVENTS.c.line_id, EVENTS.c.source, EVENTS.c.reason,
           EVENTS.c.notes)
    .select_from(EVENTS.join(_WINDOWS, and_(
        EVENTS.c.user_id == _WINDOWS.c.user_id, EVENTS.c.occurred_at >= _WINDOWS.c.since,
        EVENTS.c.occurred_at < _WINDOWS.c.until)))
    .where(EVENTS.c.local_date >= bindparam("first_day", type_=EVENTS.c.local_date.type),
           EVENTS.c.local_date <= bindparam("last_day", type_=EVENTS.c.local_date.type))
    .order_by(EVENTS.c.occurred_at)), arrays=("users", "since", "until"))
"""The trips read of a chunk of many users (PostgreSQL): their windows as arrays, joined
(one index range scan per user), where an OR of a window per user was a statement of
three parameters a user, planned again for each number of users; the local days bound
the months (partitions) scanned."""


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
             ) -> dict[str, Device]:
    devices = {device_id: Device(0, set()) for device_id in device_ids}
    for device_id, user_id, count in rows:
        if user_id is None:
            devices[device_id].accounts = count
        else:
            devices[device_id].users.add(user_id)
    return devices


# ---------------------------------------------------------------- write

_EVENT_COLUMNS = tuple(c.key for c in EVENTS.columns if c.key != "id")
_USAGE_KEY = ("user_id", "local_date", "mode")
_ADD_USAGE = Prebuilt(lambda _: insert(USAGE).values(
    {name: bindparam(name) for name in _USAGE_COLUMNS}))
_SAVE_USAGE = Prebuilt(lambda _: (
    update(USAGE).where(*(USAGE.c[name] == bindparam(f"b_{name}") for name in _USAGE_KEY))
    .values({name: bindparam(f"b_{name}") for name in _USAGE_COLUMNS
             if name not in _USAGE_KEY})))


def _write(session: Session, book: Book) -> Writes:
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
    # Other features' work on the credited events (campaigns, the webhook outbox), after
    # the earn entries (a bonus entry chains after them) and before the accounts are saved.
    hooked = hooks.credited(session, book.earned, {
        user_id: member.account for user_id, member in book.members.items()}, now,
        book.hooked)

    def with_the_commit() -> None:
        if drawn:
            bulk_insert(session, EVENTS, rows, ids=ids)
        bulk_insert(session, ENTRIES, earned, returning=False)
        entries.save_accounts(session, [book.members[user_id].account
                                       for user_id in sorted({e.user_id for e in book.earned})])
        _write_usage(session, book)
        _CHANGE_EVENTS.run(session, [
            {"b_user": user_id, "b_event": event_id, "b_status": status, "b_reason": reason,
             "b_notes": notes}
            for (user_id, event_id), (status, reason, notes) in sorted(book.changed.items())])
        rollups.apply_credits(session, credits)
        for writes in hooked:
            writes()

    return with_the_commit


_CHANGE_EVENTS = Prebuilt(lambda _: (
    update(EVENTS).where(EVENTS.c.user_id == bindparam("b_user"),
                         EVENTS.c.event_id == bindparam("b_event"))
    .values(status=bindparam("b_status"), reason=bindparam("b_reason"),
            notes=bindparam("b_notes", type_=EVENTS.c.notes.type))), json=("b_notes",))
"""Stored events another report of their trip changed (``Book.changed``)."""


def _write_usage(session: Session, book: Book) -> None:
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
    years = [y for member in book.members.values() for y in member.years.values()
             if y.counted]
    _ADD_YEAR.run(session, [{"user_id": y.user_id, "year": y.year,
                             "credited_ug": y.credited_ug, "points": y.points}
                            for y in years if not y.stored])
    _SAVE_YEAR.run(session, [{"b_user_id": y.user_id, "b_year": y.year,
                              "b_credited_ug": y.credited_ug, "b_points": y.points}
                             for y in years if y.stored])
