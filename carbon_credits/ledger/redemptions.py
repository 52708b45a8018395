"""Spend points: idempotent by the client's redemption id, never overdrawing the account."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from carbon_credits.errors import Conflict
from carbon_credits.ledger import entries
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Redemption
from carbon_credits.tokens import Principal

ATTEMPTS = 3


def redeem(rt: Runtime, principal: Principal, data: dict[str, Any]) -> tuple[dict[str, Any],
                                                                             bool]:
    """Apply a redemption once; returns (view, created). 409 if the balance falls short."""
    digest = hashlib.sha256(json.dumps(
        {"points": data["points"], "description": data.get("description")},
        sort_keys=True).encode()).hexdigest()
    for attempt in range(ATTEMPTS):
        try:
            with rt.db.transaction() as session:
                account = entries.lock_account(session, principal.sub,
                                              principal.city or rt.config.default_city)
                existing = session.scalars(select(Redemption).where(
                    Redemption.user_id == principal.sub,
                    Redemption.redemption_id == data["redemption_id"])).one_or_none()
                if existing is not None:
                    if existing.payload_hash != digest:
                        raise Conflict("redemption_id was already used with another payload",
                                       code="redemption_id_conflict",
                                       fields={"redemption_id": ["already used"]})
                    return view(existing), False
                if account.balance_points < data["points"]:
                    raise Conflict(
                        f"insufficient points: balance {account.balance_points}, "
                        f"requested {data['points']}", code="insufficient_points",
                        fields={"points": [f"balance is {account.balance_points}"],
                                "balance": account.balance_points})
                redemption = Redemption(
                    user_id=principal.sub, redemption_id=data["redemption_id"],
                    points=data["points"], description=data.get("description"),
                    payload_hash=digest, balance_after=account.balance_points - data["points"])
                session.add(redemption)
                session.flush()
                entries.redeem(session, account, points=data["points"],
                              redemption_pk=redemption.id)
                return view(redemption), True
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def view(r: Redemption) -> dict[str, Any]:
    return {"redemption_id": r.redemption_id, "points": r.points,
            "description": r.description, "balance_after": r.balance_after,
            "created_at": r.created_at}
