"""Admin tuning of a city's points expiry policy (ledger/expiry.py). Audited; a new policy
applies to points earned from now on, never to points already earned."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from carbon_credits import audit
from carbon_credits.errors import InvalidInput
from carbon_credits.ledger.expiry import NEVER, Policy
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import is_valid_id
from carbon_credits.storage.models import ExpiryPolicy, utcnow
from carbon_credits.tokens import Principal


def view(row: ExpiryPolicy | None, city: str) -> dict[str, Any]:
    if row is None:
        return {"city": city, "rule": NEVER.rule, "amount": 0, "effective_from": None,
                "created_by": None, "reason": None}
    return {"city": row.city, "rule": row.rule, "amount": row.amount,
            "effective_from": row.effective_from, "created_by": row.created_by,
            "reason": row.reason}


def _check(city: str) -> None:
    if not is_valid_id(city):
        raise InvalidInput("invalid city", fields={"city": ["not a city id"]})


def show(rt: Runtime, city: str) -> dict[str, Any]:
    """The city's policy in force and its history (``never`` where none was set)."""
    _check(city)
    with rt.db.transaction() as session:
        rows = list(session.scalars(select(ExpiryPolicy).where(ExpiryPolicy.city == city)
                                    .order_by(ExpiryPolicy.effective_from)))
    return {"current": view(rows[-1] if rows else None, city),
            "history": [view(r, city) for r in rows]}


def set_policy(rt: Runtime, admin: Principal, city: str, data: dict[str, Any]
               ) -> dict[str, Any]:
    """A new policy for the city, in force from now for points earned from now on;
    audited with the policy before and after."""
    _check(city)
    amount = int(data.get("amount") or 0)
    try:
        Policy(data["rule"], amount)
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"amount": [str(exc)]}) from None
    # Wall time, not the business clock: what a policy applies to is told by the ledger
    # entries' own created_at, which is wall time.
    now = utcnow()
    with rt.db.transaction() as session:
        last = session.scalars(select(ExpiryPolicy).where(ExpiryPolicy.city == city)
                               .order_by(ExpiryPolicy.effective_from.desc())
                               .limit(1).with_for_update()).first()
        before = view(last, city)
        # Strictly after the last one, so the order of a city's policies is their history.
        effective = max(now, last.effective_from) if last is not None else now
        if last is not None and effective == last.effective_from:
            effective += timedelta(microseconds=1)
        row = ExpiryPolicy(city=city, effective_from=effective, rule=data["rule"],
                           amount=amount, created_by=admin.sub, reason=data["reason"])
        session.add(row)
        session.flush()
        after = view(row, city)
        audit.record(session, actor=admin.sub, action="expiry_policy.set",
                     target=f"expiry:{city}", reason=data["reason"],
                     before=_jsonable(before), after=_jsonable(after))
    return after


def _jsonable(v: dict[str, Any]) -> dict[str, Any]:
    return {k: (x.isoformat() if hasattr(x, "isoformat") else x) for k, x in v.items()}
