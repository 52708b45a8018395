"""Spend points: idempotent by the client's redemption id, never overdrawing the account."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits.errors import Conflict
from carbon_credits.ledger import entries, settlement
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Account, LedgerEntry, Redemption
from carbon_credits.tokens import Principal

ATTEMPTS = 3


def payload_digest(payload: dict[str, Any]) -> str:
    """The fingerprint of a redemption's body: a replay must carry the same one."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def replay(session: Session, user_id: str, redemption_id: str, digest: str
           ) -> Redemption | None:
    """The redemption already applied under this id (the account locked by the caller), or
    None; 409 if it was applied with another payload."""
    existing = session.scalars(select(Redemption).where(
        Redemption.user_id == user_id,
        Redemption.redemption_id == redemption_id)).one_or_none()
    if existing is not None and existing.payload_hash != digest:
        raise Conflict("redemption_id was already used with another payload",
                       code="redemption_id_conflict",
                       fields={"redemption_id": ["already used"]})
    return existing


def spend(session: Session, account: Account, *, redemption_id: str, points: int,
          description: str | None, digest: str, available: int | None = None
          ) -> Redemption:
    """Debit ``points`` from a locked account as a redemption and its 'redeem' entry; 409
    if the balance, or what of it is ``available`` (less pending and unclaimed credits,
    ``ledger.settlement``), falls short (the caller's transaction then rolls back)."""
    _covered(account, points, available)
    redemption = Redemption(
        user_id=account.user_id, redemption_id=redemption_id, points=points,
        description=description, payload_hash=digest,
        balance_after=account.balance_points - points)
    session.add(redemption)
    session.flush()
    entries.redeem(session, account, points=points, redemption_pk=redemption.id)
    return redemption


def _covered(account: Account, points: int, available: int | None) -> None:
    """409 unless the locked account covers ``points``: its balance, and what of it is
    ``available`` (less pending, unclaimed and reserved points, ``ledger.settlement``)."""
    if available is not None and available < points <= account.balance_points:
        raise Conflict(
            f"insufficient points: balance {account.balance_points}, of which {available} "
            f"may be spent (the rest is pending, unclaimed or reserved), requested {points}",
            code="insufficient_points",
            params={"balance": account.balance_points, "requested": points},
            fields={"points": [f"{available} points may be spent"],
                    "balance": account.balance_points, "available": available})
    if account.balance_points < points:
        raise Conflict(
            f"insufficient points: balance {account.balance_points}, requested {points}",
            code="insufficient_points",
            params={"balance": account.balance_points, "requested": points},
            fields={"points": [f"balance is {account.balance_points}"],
                    "balance": account.balance_points})


def reserve(session: Session, account: Account, *, redemption_id: str, points: int,
            description: str | None, digest: str, available: int) -> Redemption:
    """Hold ``points`` of a locked account for a redemption (fulfilled later): the
    redemption and its 'hold' entry. The balance stays (``balance_after`` is the balance);
    what may be spent shrinks by ``points``: 409 if ``available`` falls short, as
    ``spend``. ``fulfil`` spends the held points; ``entries.release`` frees them."""
    _covered(account, points, available)
    redemption = Redemption(
        user_id=account.user_id, redemption_id=redemption_id, points=points,
        description=description, payload_hash=digest, balance_after=account.balance_points)
    session.add(redemption)
    session.flush()
    entries.hold(session, account, redemption_pk=redemption.id)
    return redemption


def fulfil(session: Session, account: Account, redemption: Redemption) -> LedgerEntry:
    """Spend the points a redemption held (its fulfilment): its 'redeem' entry. The caller
    checked the balance covers them (a reversal may have taken reserved points since,
    ``rewards.rules.fulfil_refusal``); the ledger's CHECK refuses an overdraft anyway."""
    return entries.redeem(session, account, points=redemption.points,
                          redemption_pk=redemption.id)


def redeem(rt: Runtime, principal: Principal, data: dict[str, Any]) -> tuple[dict[str, Any],
                                                                             bool]:
    """Apply a redemption once; returns (view, created). 409 if the balance falls short."""
    digest = payload_digest({"points": data["points"], "description": data.get("description")})
    for attempt in range(ATTEMPTS):
        try:
            with rt.db.transaction() as session:
                account = entries.lock_account(session, principal.sub,
                                              principal.city or rt.config.default_city)
                existing = replay(session, principal.sub, data["redemption_id"], digest)
                if existing is not None:
                    return view(existing), False
                redemption = spend(session, account, redemption_id=data["redemption_id"],
                                   points=data["points"], description=data.get("description"),
                                   digest=digest, available=settlement.available(
                                       session, account, rt.config, rt.clock()))
                return view(redemption), True
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def view(r: Redemption) -> dict[str, Any]:
    return {"redemption_id": r.redemption_id, "points": r.points,
            "description": r.description, "balance_after": r.balance_after,
            "created_at": r.created_at}
