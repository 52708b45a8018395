"""Ingest one event: idempotency -> methodology -> daily cap -> ledger, in one transaction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits import metrics, plausibility
from carbon_credits.auth import Principal
from carbon_credits.catalog import Catalog
from carbon_credits.config import Config
from carbon_credits.errors import Conflict, InvalidInput, NotFound, ServiceError
from carbon_credits.extensions import Runtime
from carbon_credits.models import DailyUsage, DeviceAccount, Event, utcnow
from carbon_credits.schemas import is_valid_id, load_event
from carbon_credits.services import crediting, ledger, rollups
from carbon_credits.sql import insert_ignore
from methodology import (
    METHODOLOGIES,
    Methodology,
    MethodologyInputError,
    Quantification,
    QuantifyContext,
    get_methodology,
)
from methodology.quantity import whole_grams

IDEMPOTENCY_ATTEMPTS = 3


@dataclass(frozen=True)
class Ingested:
    event: dict[str, Any]
    created: bool


def canonical_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The validated payload in a canonical JSON form: instants in UTC, dates ISO."""

    def norm(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return value

    return {k: norm(v) for k, v in sorted(data.items())}


def payload_hash(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def ingest(rt: Runtime, principal: Principal, data: dict[str, Any],
           device_id: str | None = None) -> Ingested:
    """Apply one validated event for a user, exactly once per (user, event_id)."""
    posted = _posted(rt, principal, data, device_id)
    for attempt in range(IDEMPOTENCY_ATTEMPTS):
        try:
            with rt.db.transaction() as session:
                outcome = _ingest(session, rt.config, rt.catalog, posted)
            _count(outcome)  # after the commit: only what was applied is counted
            return outcome
        except IntegrityError:
            # The unique (user_id, event_id) constraint caught a concurrent copy that the
            # account lock did not serialise (e.g. the account was being created): the
            # next attempt finds the stored event and answers as a replay.
            if attempt == IDEMPOTENCY_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _posted(rt: Runtime, principal: Principal, data: dict[str, Any],
            device_id: str | None) -> _Posted:
    """What the transaction needs, derived before it: time checks, canonical payload."""
    method = get_methodology(data["mode"])
    tz = rt.config.tz
    now = rt.clock()
    occurred_at = method.occurred_at(data, tz)
    local_date = occurred_at.astimezone(tz).date()
    _check_time_window(rt.config, data, occurred_at, local_date, now)
    payload = canonical_payload(data)
    return _Posted(principal, method, data, payload, payload_hash(payload), occurred_at,
                   local_date, device_id, now, tz)


def _count(outcome: Ingested) -> None:
    event = outcome.event
    metrics.EVENTS.labels(event["mode"], event["status"] if outcome.created else "replay").inc()
    if outcome.created and event["grams"]:
        metrics.CREDITED_GRAMS.labels(event["mode"]).inc(event["grams"])


@dataclass(frozen=True)
class _Posted:
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


ITEMS_PER_TRANSACTION = 50
"""Batch items per transaction (policy): 50 keeps a chunk well under a second of work, so
the account lock is not held for the length of a 500-event sync."""


def ingest_batch(rt: Runtime, principal: Principal, items: list[Any],
                 device_id: str | None = None) -> list[dict[str, Any]]:
    """Apply each item exactly once per (user, event_id); per-item results.

    Items apply in order (a later item sees the caps and trips of earlier ones), up to
    ``ITEMS_PER_TRANSACTION`` per transaction: one account lock and one durable commit per
    chunk instead of per event, while a long batch still makes progress chunk by chunk (a
    worker cut off mid-batch keeps what it committed; the retry replays that and applies the
    rest). Each item runs in a savepoint of its own, so an item refused (invalid,
    conflicting, unquantifiable) is rolled back alone and the others stand. If a transaction
    fails (database unavailable), the request is a 503 and its retry is safe.
    """
    results: list[dict[str, Any] | None] = [None] * len(items)
    ready: list[tuple[int, _Posted]] = []
    for index, body in enumerate(items):
        try:
            ready.append((index, _posted(rt, principal, load_event(body), device_id)))
        except ValidationError as exc:
            results[index] = _invalid_item(index, exc)
        except ServiceError as exc:
            results[index] = _item_error(index, exc.status, exc.code, exc.message, exc.fields)
    for start in range(0, len(ready), ITEMS_PER_TRANSACTION):
        applied: list[Ingested] = []
        with rt.db.transaction() as session:
            pending = rollups.defer(session)  # rollup rows locked in one order, at the end
            for index, posted in ready[start:start + ITEMS_PER_TRANSACTION]:
                try:
                    outcome = _ingest_item(session, rt, posted, pending)
                except ServiceError as exc:
                    results[index] = _item_error(index, exc.status, exc.code, exc.message,
                                                 exc.fields)
                else:
                    applied.append(outcome)
                    results[index] = {"index": index, "status": 201 if outcome.created else 200,
                                      "result": outcome.event, "error": None}
            rollups.apply_deferred(session)
        for outcome in applied:
            _count(outcome)  # after the commit
    return [r for r in results if r is not None]


def _ingest_item(session: Session, rt: Runtime, posted: _Posted,
                 pending: list[dict[str, Any]]) -> Ingested:
    """One batch item in a savepoint; a concurrent copy caught by the unique constraint is
    rolled back and the item retried, which then answers as a replay. A rolled-back item
    also drops the rollup credits it held back."""
    for attempt in range(IDEMPOTENCY_ATTEMPTS):
        mark = len(pending)
        try:
            with session.begin_nested():
                return _ingest(session, rt.config, rt.catalog, posted)
        except IntegrityError:
            del pending[mark:]
            if attempt == IDEMPOTENCY_ATTEMPTS - 1:
                raise
        except BaseException:
            del pending[mark:]
            raise
    raise AssertionError("unreachable")


def _invalid_item(index: int, exc: ValidationError) -> dict[str, Any]:
    fields = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return _item_error(index, 422, "invalid_input", "the event has invalid fields", fields)


def _item_error(index: int, status: int, code: str, message: str, fields: dict[str, Any]
                ) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"index": index, "status": status, "result": None, "error": error}


def _ingest(session: Session, config: Config, catalog: Catalog, p: _Posted) -> Ingested:
    user_id, method, data = p.principal.sub, p.method, p.data
    account = ledger.lock_account(session, user_id, p.principal.city or data["city"])
    existing = session.scalars(
        select(Event).where(Event.user_id == user_id, Event.event_id == data["event_id"])
    ).one_or_none()
    if existing is not None:
        if existing.payload_hash != p.digest:
            raise Conflict(
                "event_id was already used with a different payload",
                code="event_id_conflict", fields={"event_id": ["already used"]},
            )
        return Ingested(event_view(existing), created=False)

    city, mode = data["city"], method.mode
    versioned, found = catalog.factors_and_network(
        session, city, mode, p.occurred_at, with_network=method.network_mode is not None)
    if versioned is None:
        field = _time_field(data) if catalog.has_factors(session, city, mode) else "city"
        raise InvalidInput(f"no {mode} methodology is in force for {city!r} at that time",
                           code="no_methodology", fields={field: ["no methodology in force"]})
    network_id, network = None, None
    if method.network_mode is not None:
        if found is None:
            raise InvalidInput(f"no transit network is loaded for {city!r}",
                               code="no_network", fields={"city": ["no network loaded"]})
        network_id, network = found

    usage = crediting.day_usage(session, user_id, p.local_date)
    mode_usage = usage.get(mode)
    previous = mode_usage.max_quantity if (method.cumulative and mode_usage) else 0
    try:
        result = method.quantify(data, versioned.factors,
                                 QuantifyContext(network=network, previous_quantity=previous))
    except MethodologyInputError as exc:
        raise InvalidInput(exc.message, code="unquantifiable",
                           fields={exc.field: [exc.message]}) from None

    verdict = plausibility.judge(config.plausibility,
                                 _facts(session, p, result, previous, mode_usage,
                                        account.user.frozen))
    explanation = dict(result.explanation)
    explanation["methodology"] = {"mode": mode, "version": versioned.factors.version,
                                  "kind": versioned.factors.kind,
                                  "effective_from": versioned.effective_from.isoformat()}
    explanation["avoided_grams"] = whole_grams(result.avoided_ug)
    explanation["plausibility"] = [hit.to_dict() for hit in verdict.hits]
    if verdict.outcome == "credit":
        credit = crediting.decide(config, method, versioned.factors, account, usage,
                                  result.avoided_ug)
        explanation = crediting.explain(explanation, credit)
    else:
        credit = crediting.Credit(0, 0, "held" if verdict.outcome == "hold" else "rejected",
                                  verdict.reason, None)
    event = Event(
        user_id=user_id, event_id=data["event_id"], mode=mode, city=city,
        occurred_at=p.occurred_at, ends_at=p.ends_at, local_date=p.local_date,
        device_id=p.device_id, payload=p.payload, payload_hash=p.digest,
        status=credit.status, reason=credit.reason, avoided_ug=result.avoided_ug,
        credited_ug=credit.credited_ug, points=credit.points,
        factor_version_id=versioned.id, methodology_version=versioned.factors.version,
        network_id=network_id, explanation=explanation,
    )
    session.add(event)
    session.flush()  # the unique (user_id, event_id) constraint speaks here
    if verdict.outcome == "credit":
        crediting.apply(session, account, event, credit, usage, method, result.quantity, p.now)
    session.flush()
    return Ingested(event_view(event), created=True)


TRIP_STATUSES = ("credited", "capped", "held")
"""Trips that count for overlap and trips-per-day: everything not rejected or reversed."""


def _facts(session: Session, p: _Posted, result: Quantification, previous: int,
           mode_usage: DailyUsage | None, frozen: bool) -> plausibility.Facts:
    """What the plausibility rules need, read under the account lock."""
    user_id = p.principal.sub
    accounts_on_device = 0
    if p.device_id:
        insert_ignore(session, DeviceAccount, {"device_id": p.device_id, "user_id": user_id,
                                               "first_seen": utcnow()})
        accounts_on_device = session.scalar(select(func.count()).select_from(DeviceAccount)
                                            .where(DeviceAccount.device_id == p.device_id)) or 0
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
    start, end = p.occurred_at, p.ends_at or p.occurred_at
    overlapping, trips_today = _trips_around(session, user_id, p.local_date, p.tz, start,
                                             end)
    duration = int((p.ends_at - start).total_seconds()) if p.ends_at is not None else None
    distance = result.explanation.get("distance_m")
    return plausibility.Facts(
        mode=p.method.mode, distance_m=distance if isinstance(distance, int) else None,
        duration_s=duration, overlapping_event_ids=tuple(overlapping), trips_today=trips_today,
        accounts_on_device=accounts_on_device, user_frozen=frozen)


def _trips_around(session: Session, user_id: str, local_date: date, tz: tzinfo,
                  start: datetime, end: datetime) -> tuple[tuple[str, ...], int]:
    """The user's trips overlapping [start, end) (up to 5 ids) and the day's trip count,
    in one round trip.

    One index range scan on (user_id, occurred_at) covers both: the local day (a trip's
    local_date is the local date of its start) and the day before ``start`` (no trip lasts
    longer), so the cost does not grow with the user's history. The day's bounds are the
    city's local midnights (``tz``), not the client's offset: an offset east or west of the
    city would otherwise cut the day short and hide its late trips.
    """
    day_start = datetime.combine(local_date, time(0), tzinfo=tz)
    day_end = datetime.combine(local_date + timedelta(days=1), time(0), tzinfo=tz)
    rows = session.execute(
        select(Event.event_id, Event.local_date, Event.occurred_at, Event.ends_at)
        .where(Event.user_id == user_id,
               Event.occurred_at >= min(day_start, start - timedelta(days=1)),
               Event.occurred_at < max(day_end, end),
               Event.mode.in_(_trip_modes()), Event.status.in_(TRIP_STATUSES))
        .order_by(Event.occurred_at)).all()
    overlapping = tuple(event_id for event_id, _day, began, ended in rows
                        if start - timedelta(days=1) < began < end and (ended or began) > start
                        )[:5]
    return overlapping, sum(1 for row in rows if row.local_date == local_date)


def _trip_modes() -> list[str]:
    """Modes whose events are trips (not cumulative day counts)."""
    return [m.mode for m in METHODOLOGIES.values() if not m.cumulative]


def _check_time_window(config: Config, data: dict[str, Any], occurred_at: datetime,
                       local_date: date, now: datetime) -> None:
    """Refuse events from the future (beyond clock skew) or older than the backfill window.

    A future-dated event would open a fresh day of caps for nobody's real trip.
    """
    field = _time_field(data)
    latest = now + timedelta(seconds=config.clock_skew_s)
    instants = [v for v in data.values() if isinstance(v, datetime)]
    future = (local_date > latest.astimezone(config.tz).date() if field == "date"
              else any(t > latest for t in instants))
    if future:
        raise InvalidInput("the event is in the future", code="event_in_future",
                           fields={field: [f"later than now + {config.clock_skew_s} s"]})
    earliest = now - timedelta(days=config.backfill_days)
    if (local_date < earliest.astimezone(config.tz).date() if field == "date"
            else occurred_at < earliest):
        raise InvalidInput(f"the event is older than the {config.backfill_days}-day backfill "
                           "window", code="event_too_old",
                           fields={field: [f"older than {config.backfill_days} days"]})


def _time_field(data: dict[str, Any]) -> str:
    return "date" if "date" in data else "started_at"


def event_view(event: Event) -> dict[str, Any]:
    """The public result of an event; a replay returns exactly this again."""
    return {
        "event_id": event.event_id,
        "mode": event.mode,
        "city": event.city,
        "status": event.status,
        "grams": whole_grams(event.credited_ug),
        "points": event.points,
        "reason": event.reason,
        "occurred_at": event.occurred_at.astimezone(UTC),
        "local_date": event.local_date,
        "created_at": event.created_at,
        "methodology": {"mode": event.mode, "version": event.methodology_version},
        "explanation": event.explanation,
        "reversal": None if event.reversed_at is None else {
            "reversed_at": event.reversed_at, "by": event.reversed_by,
            "reason": event.reversal_reason},
    }


def get_event(rt: Runtime, principal: Principal, event_id: str) -> dict[str, Any]:
    if not is_valid_id(event_id):
        raise NotFound(f"no event {event_id!r} for this user")  # could never have been stored
    with rt.db.transaction() as session:
        event = session.scalars(
            select(Event).where(Event.user_id == principal.sub, Event.event_id == event_id)
        ).one_or_none()
        if event is None:
            raise NotFound(f"no event {event_id!r} for this user")
        return event_view(event)
