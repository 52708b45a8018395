"""Test data for the rewards catalogue: points to spend and approved rewards to spend them on."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from carbon_credits.ledger import entries
from carbon_credits.rewards import catalogue
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Event, FactorVersion, utcnow
from carbon_credits.tokens import Principal

ADMIN = Principal("admin-rewards", "admin", None)


def merchant() -> Principal:
    return Principal(f"m-{uuid.uuid4().hex[:12]}", "merchant", None)


def user(city: str = "shenzhen") -> Principal:
    return Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)


def grant(rt: Runtime, who: Principal, points: int) -> None:
    """Give a user points to spend: a credited event of exactly that many points and its
    earn entry, as ingest writes them (verify-ledger names any other source of points)."""
    city = who.city or "shenzhen"
    with rt.db.transaction() as session:
        account = entries.lock_account(session, who.sub, city)
        factors = session.scalars(select(FactorVersion).where(
            FactorVersion.city == city, FactorVersion.mode == "metro")).first()
        assert factors is not None, "the seeded default factors"
        now = utcnow()
        ug = points * entries.UG_PER_POINT  # whole points: the carried remainder is unchanged
        event = Event(user_id=who.sub, event_id=f"grant-{uuid.uuid4().hex}", mode="metro",
                      city=city, occurred_at=now,
                      # The city's day, as ingest stores it (not the UTC date: a day behind
                      # from 16:00 UTC on).
                      local_date=now.astimezone(rt.config.tz).date(),
                      payload_hash=bytes(32), status="credited", avoided_ug=ug,
                      credited_ug=ug, points=points, factor_version_id=factors.id,
                      methodology_version="test-grant", activity=0)
        session.add(event)
        session.flush()
        entries.earn(session, account, ug=ug, event_pk=event.id, mode="metro",
                     factor_version_id=factors.id)


def reward_body(kind: str = "voucher", **overrides: Any) -> dict[str, Any]:
    now = utcnow()
    body: dict[str, Any] = {
        "kind": kind, "price_points": 10, "stock": 100, "per_user_limit": 5,
        "valid_from": now - timedelta(days=1), "valid_until": now + timedelta(days=30),
        "city": "shenzhen", "title": {"zh": "奖品", "en": "A reward"},
        "description": {"zh": "说明", "en": "What it is"},
        "project": ({"name": "Alxa desert greening", "unit": "1 tree planted"}
                    if kind == "donation" else None),
        "codes": "generated" if kind == "voucher" else None}
    body.update(overrides)
    return body


def approved(rt: Runtime, owner: Principal | None = None, kind: str = "voucher",
             **overrides: Any) -> int:
    """An approved reward's id (a new merchant's unless ``owner``)."""
    created = catalogue.create(rt, owner or merchant(), reward_body(kind, **overrides))
    catalogue.review(rt, ADMIN, created["id"], True, "checked")
    return int(created["id"])
