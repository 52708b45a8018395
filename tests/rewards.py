"""Test data for the rewards catalogue: points to spend and approved rewards to spend them on."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from carbon_credits.ledger import entries
from carbon_credits.rewards import catalogue
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import utcnow
from carbon_credits.tokens import Principal

ADMIN = Principal("admin-rewards", "admin", None)


def merchant() -> Principal:
    return Principal(f"m-{uuid.uuid4().hex[:12]}", "merchant", None)


def user(city: str = "shenzhen") -> Principal:
    return Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)


def grant(rt: Runtime, who: Principal, points: int) -> None:
    """Give a user points to spend: an operator's adjustment entry on the ledger."""
    with rt.db.transaction() as session:
        account = entries.lock_account(session, who.sub, who.city or "shenzhen")
        entries.adjust(session, account, points=points)


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
