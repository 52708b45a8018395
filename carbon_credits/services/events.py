"""Ingest one event: idempotency -> methodology -> daily cap -> ledger, in one transaction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits.auth import Principal
from carbon_credits.catalog import Catalog
from carbon_credits.config import Config
from carbon_credits.errors import Conflict, InvalidInput, NotFound, ServiceError
from carbon_credits.extensions import Runtime
from carbon_credits.models import DailyUsage, Event
from carbon_credits.schemas import is_valid_id, load_event
from carbon_credits.services import ledger
from methodology import Methodology, MethodologyInputError, QuantifyContext, get_methodology
from methodology.quantity import g_to_ug, whole_grams

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


def ingest(rt: Runtime, principal: Principal, data: dict[str, Any]) -> Ingested:
    """Apply one validated event for a user, exactly once per (user, event_id)."""
    method = get_methodology(data["mode"])
    tz = rt.config.tz
    occurred_at = method.occurred_at(data, tz)
    local_date = occurred_at.astimezone(tz).date()
    _check_time_window(rt.config, data, occurred_at, local_date, rt.clock())
    payload = canonical_payload(data)
    digest = payload_hash(payload)
    for attempt in range(IDEMPOTENCY_ATTEMPTS):
        try:
            with rt.db.transaction() as session:
                return _ingest(session, rt.config, rt.catalog, principal, method, data,
                               payload, digest, occurred_at, local_date)
        except IntegrityError:
            # The unique (user_id, event_id) constraint caught a concurrent copy that the
            # account lock did not serialise (e.g. the account was being created): the
            # next attempt finds the stored event and answers as a replay.
            if attempt == IDEMPOTENCY_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def ingest_batch(rt: Runtime, principal: Principal, items: list[Any]) -> list[dict[str, Any]]:
    """Apply each item on its own (own transaction, own idempotency); per-item results."""
    results: list[dict[str, Any]] = []
    for index, body in enumerate(items):
        try:
            outcome = ingest(rt, principal, load_event(body))
        except ValidationError as exc:
            fields = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            results.append(_item_error(index, 422, "invalid_input",
                                       "the event has invalid fields", fields))
        except ServiceError as exc:
            results.append(_item_error(index, exc.status, exc.code, exc.message, exc.fields))
        else:
            results.append({"index": index, "status": 201 if outcome.created else 200,
                            "result": outcome.event, "error": None})
    return results


def _item_error(index: int, status: int, code: str, message: str, fields: dict[str, Any]
                ) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"index": index, "status": status, "result": None, "error": error}


def _ingest(session: Session, config: Config, catalog: Catalog, principal: Principal,
            method: Methodology, data: dict[str, Any], payload: dict[str, Any], digest: str,
            occurred_at: datetime, local_date: date) -> Ingested:
    account = ledger.lock_account(session, principal.sub, principal.city or data["city"])
    existing = session.scalars(
        select(Event).where(Event.user_id == principal.sub, Event.event_id == data["event_id"])
    ).one_or_none()
    if existing is not None:
        if existing.payload_hash != digest:
            raise Conflict(
                "event_id was already used with a different payload",
                code="event_id_conflict", fields={"event_id": ["already used"]},
            )
        return Ingested(event_view(existing), created=False)

    city, mode = data["city"], method.mode
    versioned = catalog.factors_at(session, city, mode, occurred_at)
    if versioned is None:
        field = _time_field(data) if catalog.has_factors(session, city, mode) else "city"
        raise InvalidInput(f"no {mode} methodology is in force for {city!r} at that time",
                           code="no_methodology", fields={field: ["no methodology in force"]})
    network_id, network = None, None
    if method.network_mode is not None:
        found = catalog.network(session, city)
        if found is None:
            raise InvalidInput(f"no transit network is loaded for {city!r}",
                               code="no_network", fields={"city": ["no network loaded"]})
        network_id, network = found

    usage = _day_usage(session, principal.sub, local_date)
    mode_usage = usage.get(mode)
    previous = mode_usage.max_quantity if (method.cumulative and mode_usage) else 0
    try:
        result = method.quantify(data, versioned.factors,
                                 QuantifyContext(network=network, previous_quantity=previous))
    except MethodologyInputError as exc:
        raise InvalidInput(exc.message, code="unquantifiable",
                           fields={exc.field: [exc.message]}) from None

    credited, cap = _apply_caps(config, method, versioned.factors, usage, mode,
                                result.avoided_ug)
    status = "credited" if credited == result.avoided_ug else "capped"
    explanation = dict(result.explanation)
    explanation["methodology"] = {"mode": mode, "version": versioned.factors.version,
                                  "kind": versioned.factors.kind,
                                  "effective_from": versioned.effective_from.isoformat()}
    explanation["avoided_grams"] = whole_grams(result.avoided_ug)
    explanation["credited_ug"] = credited
    explanation["cap_applied"] = cap
    points, _carry = ledger.points_for(account.carry_ug, credited)
    explanation["points_rule"] = ("1 point per gram; whole points of (carried remainder + "
                                  "this event's micrograms), the rest carried")

    event = Event(
        user_id=principal.sub, event_id=data["event_id"], mode=mode, city=city,
        occurred_at=occurred_at, local_date=local_date, payload=payload, payload_hash=digest,
        status=status, reason=None if status == "credited" else "daily_cap",
        avoided_ug=result.avoided_ug, credited_ug=credited, points=points,
        factor_version_id=versioned.id, methodology_version=versioned.factors.version,
        network_id=network_id, explanation=explanation,
    )
    session.add(event)
    session.flush()  # the unique (user_id, event_id) constraint speaks here
    if credited > 0:
        ledger.earn(session, account, ug=credited, event_pk=event.id, mode=mode,
                    factor_version_id=versioned.id)

    if mode_usage is None:
        mode_usage = DailyUsage(user_id=principal.sub, local_date=local_date, mode=mode,
                                events=0, credited_ug=0, points=0, max_quantity=0)
        session.add(mode_usage)
    mode_usage.events += 1
    mode_usage.credited_ug += credited
    mode_usage.points += points
    if method.cumulative:
        mode_usage.max_quantity = max(mode_usage.max_quantity, result.quantity)
    session.flush()
    return Ingested(event_view(event), created=True)


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


def _day_usage(session: Session, user_id: str, local_date: date) -> dict[str, DailyUsage]:
    rows = session.scalars(
        select(DailyUsage).where(DailyUsage.user_id == user_id,
                                 DailyUsage.local_date == local_date)
    )
    return {r.mode: r for r in rows}


def daily_caps_ug(config: Config, method: Methodology, factors: Any) -> tuple[int | None,
                                                                              int | None]:
    """The (mode cap, total cap) in micrograms for one user-day; None means no cap."""
    candidates = [method.daily_cap_ug(factors)]
    configured = config.daily_caps_g.get(method.mode)
    if configured is not None:
        candidates.append(g_to_ug(configured))
    present = [c for c in candidates if c is not None]
    total = config.daily_caps_g.get("total")
    return (min(present) if present else None,
            None if total is None else g_to_ug(Decimal(total)))


def _apply_caps(config: Config, method: Methodology, factors: Any,
                usage: dict[str, DailyUsage], mode: str, avoided_ug: int
                ) -> tuple[int, dict[str, Any] | None]:
    """How much of ``avoided_ug`` fits under today's caps (read under the account lock)."""
    mode_cap, total_cap = daily_caps_ug(config, method, factors)
    used_mode = usage[mode].credited_ug if mode in usage else 0
    used_total = sum(u.credited_ug for u in usage.values())
    credited, which, cap_ug, used = avoided_ug, None, 0, 0
    if mode_cap is not None and used_mode + credited > mode_cap:
        credited, which, cap_ug, used = max(0, mode_cap - used_mode), "mode", mode_cap, used_mode
    if total_cap is not None and used_total + credited > total_cap:
        credited = max(0, total_cap - used_total)
        which, cap_ug, used = "total", total_cap, used_total
    if which is None:
        return credited, None
    return credited, {"cap": which, "cap_g": whole_grams(cap_ug),
                      "used_before_ug": used, "uncapped_ug": avoided_ug,
                      "rule": "credited = min(avoided, cap - already credited today), "
                              "per local day in the city time zone"}


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
