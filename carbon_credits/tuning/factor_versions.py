"""Admin tuning of methodology factors: immutable versions, audited, previewed first."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits import audit
from carbon_credits.errors import Conflict, InvalidInput
from carbon_credits.ledger import explain
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Event, FactorVersion
from carbon_credits.tokens import Principal
from methodology import METHODOLOGIES, FactorSet, MethodologyInputError, QuantifyContext
from methodology.factors import FactorError
from methodology.quantity import whole_grams

MAX_PREVIEW_DAYS = 92
"""A preview re-quantifies every event in its window; a quarter bounds the work (policy)."""


def build_factor_set(data: dict[str, Any], version: str = "draft") -> FactorSet:
    """A FactorSet from admin input, checked against what the mode reads; 422 otherwise."""
    method = METHODOLOGIES.get(data["mode"])
    if method is None:
        raise InvalidInput(f"unknown mode {data['mode']!r}",
                           fields={"mode": [f"one of {sorted(METHODOLOGIES)}"]})
    names = [f["name"] for f in data["factors"]]
    if len(set(names)) != len(names):
        raise InvalidInput("factor names repeat", fields={"factors": ["names must be unique"]})
    try:
        fs = FactorSet.from_dict({
            "mode": data["mode"], "city": data["city"], "version": version,
            "kind": data["kind"],
            "factors": [{**f, "value": str(Decimal(f["value"]))} for f in data["factors"]],
        })
        method.check_factors(fs)
    except FactorError as exc:
        raise InvalidInput(str(exc), code="invalid_factors",
                           fields={"factors": [str(exc)]}) from None
    return fs


def view(v: FactorVersion) -> dict[str, Any]:
    return {"id": v.id, "city": v.city, "mode": v.mode, "version": v.version,
            "kind": v.kind, "factors": v.factors["factors"],
            "effective_from": v.effective_from, "created_by": v.created_by,
            "reason": v.reason, "created_at": v.created_at}


def list_versions(rt: Runtime, city: str, mode: str | None) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        query = select(FactorVersion).where(FactorVersion.city == city)
        if mode:
            query = query.where(FactorVersion.mode == mode)
        rows = session.scalars(query.order_by(FactorVersion.mode,
                                              FactorVersion.effective_from))
        return [view(v) for v in rows]


LEAD_MARGIN_S = 60
"""Beyond the clock skew, how far ahead a new version must start (policy): covers the time
between this check and the version's commit with a wide margin."""

FIRST_VERSION = "first_version_any_start"
"""The start rule of a city's first version for a mode, before any event of that city and
mode: any instant, the past included."""
LATER_VERSION = "later_version_future_start"
"""The start rule of every other version: ahead of now by the skew and margin, and after
the latest version's start."""


def start_rule(effective_from: datetime, now: datetime, lead_s: int,
               latest: tuple[str, datetime] | None, events_exist: bool) -> str:
    """Which rule admits a new version starting at ``effective_from``; a 422 naming
    ``effective_from`` if none does.

    A city's first version for a mode may start at any time, the past included, as long as
    no event of that city and mode is stored: no stored result is priced without it, so
    none changes, and a city launching on the 1st credits that morning's trips (the
    backfill window still bounds how old an event may be). Every other version starts in
    the future, ``lead_s`` ahead at least (events may be dated up to the clock skew ahead
    of now, and one dated after the new version may already have been priced without it),
    and after the start of the latest version (``latest``: its name and start): past
    results never change.
    """
    if latest is None and not events_exist:
        return FIRST_VERSION
    why = ("events of this city and mode are stored already" if latest is None
           else "only a city's first version for a mode may start in the past")
    if effective_from <= now:
        raise InvalidInput(f"effective_from must be in the future: past results never change "
                           f"({why})", code="past_effective_date",
                           fields={"effective_from": ["must be in the future"]})
    earliest = now + timedelta(seconds=lead_s)
    if effective_from < earliest:
        raise InvalidInput(
            f"effective_from must be at least {lead_s} s ahead: events may be dated up to "
            "the clock skew ahead of now, and one dated after the new version may already "
            "have been applied",
            code="effective_date_too_soon",
            fields={"effective_from": [f"must be at or after {earliest.isoformat()}"]})
    if latest is not None and effective_from <= latest[1]:
        raise InvalidInput(
            f"overlaps version {latest[0]} effective from {latest[1].isoformat()}; a new "
            "version must start later",
            code="overlapping_effective_date",
            fields={"effective_from": ["must be after the latest version's start"]})
    return LATER_VERSION


def create_version(rt: Runtime, admin: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Store a new version: a city's first for a mode from any instant (``start_rule``),
    any other from a future instant after every existing one. Audited."""
    fs = build_factor_set(data, data["version"])
    effective_from = data["effective_from"]
    try:
        with rt.db.transaction() as session:
            _lock_city_mode(session, fs.city, fs.mode)
            latest = session.scalars(
                select(FactorVersion)
                .where(FactorVersion.city == fs.city, FactorVersion.mode == fs.mode)
                .order_by(FactorVersion.effective_from.desc()).limit(1).with_for_update()
            ).first()
            # Any stored event counts, whatever its status (credited, capped, held,
            # rejected, reversed): each was priced with a version of this city and mode.
            # An event refused for want of a version (no_methodology) is not stored, so it
            # does not count: its client may post it again once the version exists.
            events_exist = latest is None and session.scalar(
                select(Event.id).where(Event.city == fs.city, Event.mode == fs.mode).limit(1)
            ) is not None
            now = rt.clock()
            rule = start_rule(effective_from, now, rt.config.clock_skew_s + LEAD_MARGIN_S,
                              None if latest is None else (latest.version, latest.effective_from),
                              events_exist)
            row = FactorVersion(city=fs.city, mode=fs.mode, version=fs.version, kind=fs.kind,
                                factors=fs.to_dict(), effective_from=effective_from,
                                created_by=admin.sub, reason=data["reason"])
            session.add(row)
            session.flush()
            audit.record(session, actor=admin.sub, action="factor_version.create",
                         target=f"factors:{fs.city}/{fs.mode}/{fs.version}",
                         reason=data["reason"],
                         before=None if latest is None else {
                             "version": latest.version, "factors": latest.factors["factors"],
                             "effective_from": latest.effective_from.isoformat()},
                         after={"version": fs.version, "factors": fs.to_dict()["factors"],
                                "effective_from": effective_from.isoformat(),
                                "start_rule": rule,
                                "started_in_past": effective_from <= now})
            return view(row)
    except IntegrityError:
        raise Conflict(f"version {fs.version!r} already exists for {fs.city}/{fs.mode}",
                       code="version_exists", fields={"version": ["already exists"]}) from None


def _lock_city_mode(session: Session, city: str, mode: str) -> None:
    """Serialise the creation of a city and mode's versions until the transaction ends.

    The latest version's row lock cannot do it for a first version (there is no row yet):
    two first versions created at once would both see none, and both be admitted as
    first. On PostgreSQL a transaction-level advisory lock keyed by city and mode does
    (bounded by the session's lock_timeout); on SQLite every transaction already holds the
    database lock from its BEGIN IMMEDIATE (``db._sqlite_serializable``).
    Events need no such lock: one is stored only with a version of its city and mode in
    force, read in its own transaction, so an event racing a first version is either
    priced with it (the version committed first) or refused, not stored
    (``no_methodology``)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"factor_versions:{city}/{mode}".encode()).digest()
    session.execute(select(func.pg_advisory_xact_lock(
        int.from_bytes(digest[:8], "big", signed=True))))


def preview(rt: Runtime, data: dict[str, Any]) -> dict[str, Any]:
    """What a draft would have given the events of a past window. Writes nothing.

    Each credited event is re-quantified from its stored payload, on the network version it
    used and (steps) from the same previous count, with the draft's factors instead of its
    own. ``after`` figures are before daily caps and per event (points = whole grams); the
    ``before`` credited figures are what the ledger actually holds.
    """
    draft = build_factor_set(data)
    start: date = data["from_"]
    end: date = data["to"]
    if end < start or (end - start) > timedelta(days=MAX_PREVIEW_DAYS - 1):
        raise InvalidInput(f"the window must run forward and span at most {MAX_PREVIEW_DAYS} "
                           "days", fields={"to": ["window too long or reversed"]})
    method = METHODOLOGIES[draft.mode]
    days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with rt.db.transaction() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.city == draft.city, Event.mode == draft.mode,
                   Event.local_date >= start, Event.local_date <= end,
                   Event.status.in_(("credited", "capped")))
            .order_by(Event.id).execution_options(yield_per=1000))
        for event in rows:
            network = (rt.catalog.network_by_id(session, event.network_id)
                       if event.network_id is not None else None)
            ctx = QuantifyContext(network=network,
                                  previous_quantity=event.previous_quantity or 0)
            try:
                after = method.quantify(explain.inputs_of(event), draft, ctx).avoided_ug
            except MethodologyInputError:
                continue  # cannot happen for stored events; never let one sink a preview
            day = days[event.local_date]
            day["events"] += 1
            day["before_avoided_ug"] += event.avoided_ug
            day["before_credited_ug"] += event.credited_ug
            day["before_points"] += event.points
            day["after_avoided_ug"] += after
            day["after_points"] += whole_grams(after)
    per_day = [{"date": d, "mode": draft.mode, **_figures(v)} for d, v in sorted(days.items())]
    everything: dict[str, int] = defaultdict(int)
    for v in days.values():
        for k, n in v.items():
            everything[k] += n
    return {"city": draft.city, "mode": draft.mode, "from_": start, "to": end,
            "draft": draft.to_dict()["factors"], "days": per_day,
            "totals": _figures(everything),
            "note": "after = draft factors applied to each event before daily caps; "
                    "nothing was written"}


def _figures(sums: dict[str, int]) -> dict[str, int]:
    """Whole grams from exact microgram sums, so totals lose nothing to per-day rounding."""
    before, after = whole_grams(sums["before_avoided_ug"]), whole_grams(sums["after_avoided_ug"])
    return {"events": sums["events"], "before_grams": before,
            "before_credited_grams": whole_grams(sums["before_credited_ug"]),
            "before_points": sums["before_points"], "after_grams": after,
            "after_points": sums["after_points"], "delta_grams": after - before}
