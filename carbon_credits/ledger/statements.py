"""What a user sees of their own points: account summary and ledger pages."""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.errors import InvalidInput
from carbon_credits.ledger import expiring, settlement
from carbon_credits.ledger.caps import daily_caps_ug
from carbon_credits.networks.catalog import Timeline
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Account,
    DailyUsage,
    Event,
    LedgerEntry,
    Redemption,
    User,
)
from carbon_credits.tokens import Principal
from methodology import METHODOLOGIES
from methodology.quantity import whole_grams


def account_view(rt: Runtime, principal: Principal, day: date | None = None
                 ) -> dict[str, Any]:
    """Balance, lifetime totals, today's use of each daily cap, and under ``day`` that of
    ``day`` (default today): a trip is credited to its own local day, so yesterday's trips
    posted this morning show there, not in ``today``."""
    now = rt.clock()
    tz = rt.config.tz
    today = now.astimezone(tz).date()
    asked = today if day is None else day
    earliest = (now - timedelta(days=rt.config.backfill_days)).astimezone(tz).date()
    if not earliest <= asked <= today:
        # The days events may still be posted for (ingest/events.py): older ones are
        # closed for good, and a future day has nothing yet.
        raise InvalidInput(f"date must be a local day from {earliest.isoformat()} (the "
                           f"{rt.config.backfill_days}-day backfill window) to today, "
                           f"{today.isoformat()}", fields={"date": [
                               f"from {earliest.isoformat()} to {today.isoformat()}"]})
    city = principal.city or rt.config.default_city
    with rt.db.transaction() as session:
        account = session.get(Account, principal.sub)
        usage: dict[date, dict[str, DailyUsage]] = {today: {}, asked: {}}
        for u in session.scalars(select(DailyUsage).where(
                DailyUsage.user_id == principal.sub,
                DailyUsage.local_date.in_(sorted(usage)))):
            usage[u.local_date][u.mode] = u
        in_force = rt.catalog.timeline(session, {city}, METHODOLOGIES.keys(), now)
        # A past day's caps are those of the versions in force at its end (a version may
        # start mid-day); today's, those in force now.
        day_end = datetime.combine(asked + timedelta(days=1), time(0), tzinfo=tz)
        asked_at = min(now, day_end - timedelta(microseconds=1))
        per_mode = _usage(rt, in_force, city, usage[today], now)
        asked_usage = per_mode if asked == today else _usage(rt, in_force, city,
                                                              usage[asked], asked_at)
        user = session.get(User, principal.sub) if account else None
        soon = [] if user is None else expiring.expiring_soon(
            session, principal.sub, user.city, tz, today, rt.config.expiry_notice_days)
        split = (settlement.split(0, 0, 0, 0) if user is None or
                 account is None else settlement.summary(
                     session, principal.sub, user.city, account.balance_points, rt.config,
                     now))
    return {
        "user_id": principal.sub,
        "balance": account.balance_points if account else 0,
        "lifetime_points": account.lifetime_points if account else 0,
        "lifetime_grams": whole_grams(account.lifetime_ug) if account else 0,
        "local_date": today,
        "today": per_mode,
        "day": {"local_date": asked, "usage": asked_usage},
        "expiring_soon": soon,
        **split,
    }


def _usage(rt: Runtime, in_force: Timeline, city: str, usage: dict[str, DailyUsage],
           at: datetime) -> dict[str, dict[str, Any]]:
    """One day's use of each mode's daily cap and the total, with the caps in force ``at``."""
    per_mode: dict[str, dict[str, Any]] = {}
    total_cap: int | None = None
    for mode, method in METHODOLOGIES.items():
        versioned = in_force.at(city, mode, at)
        mode_cap, total_cap = (daily_caps_ug(rt.config, method, versioned.factors)
                               if versioned else (None, total_cap))
        per_mode[mode] = _day(usage.get(mode), mode_cap)
    per_mode["total"] = {
        "points": sum(u.points for u in usage.values()),
        "grams": whole_grams(sum(u.credited_ug for u in usage.values())),
        "events": sum(u.events for u in usage.values()),
        "cap": None if total_cap is None else whole_grams(total_cap),
    }
    return per_mode


def _day(usage: DailyUsage | None, cap_ug: int | None) -> dict[str, Any]:
    return {
        "points": usage.points if usage else 0,
        "grams": whole_grams(usage.credited_ug) if usage else 0,
        "events": usage.events if usage else 0,
        "cap": None if cap_ug is None else whole_grams(cap_ug),
    }


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"le:{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, raw = text.partition(":")
        entry_id = int(raw)
        if prefix != "le" or not 0 < entry_id < 2**63:
            raise ValueError(prefix)
        return entry_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid cursor", fields={"cursor": ["not a cursor from this API"]}
                           ) from None


def ledger_page(rt: Runtime, principal: Principal, limit: int, cursor: str | None
                ) -> dict[str, Any]:
    """Entries newest first; ``next_cursor`` continues after the last one returned."""
    with rt.db.transaction() as session:
        rows = _entries(session, principal.sub, limit + 1,
                        None if cursor is None else decode_cursor(cursor))
    items = [
        {"id": e.id, "kind": e.kind, "points": e.points, "grams": _grams(e.ug),
         "ug": e.ug, "balance_after": e.balance_after, "event_id": event_id,
         "redemption_id": redemption_id, "mode": e.mode, "created_at": e.created_at}
        for e, event_id, redemption_id in rows[:limit]
    ]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor(rows[limit - 1][0].id) if more else None}


def _grams(ug: int) -> int:
    """Whole grams, rounded toward zero so a reversal shows minus what the earn showed."""
    return whole_grams(ug) if ug >= 0 else -whole_grams(-ug)


def _entries(session: Session, user_id: str, n: int, before_id: int | None
             ) -> list[tuple[LedgerEntry, str | None, str | None]]:
    query = (select(LedgerEntry, Event.event_id, Redemption.redemption_id)
             .outerjoin(Event, Event.id == LedgerEntry.event_pk)
             .outerjoin(Redemption, Redemption.id == LedgerEntry.redemption_pk)
             .where(LedgerEntry.user_id == user_id))
    if before_id is not None:
        query = query.where(LedgerEntry.id < before_id)
    return [(e, eid, rid) for e, eid, rid in session.execute(
        query.order_by(LedgerEntry.id.desc()).limit(n))]
