"""The catalogue: merchants offer rewards, an admin approves them, users browse them.

A new or edited reward waits for review (``pending_review``) and is shown to users only
once approved; the admin's decision is audit-logged. A merchant reaches only its own
rewards (403 otherwise)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits import audit
from carbon_credits.errors import Conflict, Forbidden, InvalidInput, NotFound
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Reward, utcnow
from carbon_credits.tokens import Principal

EDITABLE = ("price_points", "per_user_limit", "valid_from", "valid_until", "city",
            "title", "description", "project")
"""What a merchant may change; any change sends the reward back to review. Stock has its
own rule (it never drops below the units already redeemed)."""


def create(rt: Runtime, principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """A merchant's new reward, pending review."""
    now = utcnow()
    reward = Reward(merchant_id=principal.sub, kind=data["kind"], status="pending_review",
                    stock=data["stock"], stock_left=data["stock"], created_at=now,
                    updated_at=now,
                    codes=(data.get("codes") or "generated") if data["kind"] == "voucher"
                    else None)
    _apply(reward, data)
    _check(reward)
    with rt.db.transaction() as session:
        session.add(reward)
        session.flush()
        return view(reward)


def edit(rt: Runtime, principal: Principal, reward_id: int, data: dict[str, Any]
         ) -> dict[str, Any]:
    """Change a merchant's own reward; it goes back to review."""
    with rt.db.transaction() as session:
        reward = own(session, principal, reward_id, lock=True)
        _apply(reward, data)
        if "stock" in data:
            sold = reward.stock - reward.stock_left
            if data["stock"] < sold:
                raise Conflict(f"{sold} units are already redeemed",
                               code="stock_below_redeemed",
                               fields={"stock": [f"at least {sold}"]})
            reward.stock, reward.stock_left = data["stock"], data["stock"] - sold
        _check(reward)
        reward.status, reward.review_reason, reward.reviewed_by = "pending_review", None, None
        reward.updated_at = utcnow()
        return view(reward)


def _apply(reward: Reward, data: dict[str, Any]) -> None:
    for name in ("price_points", "per_user_limit", "valid_from", "valid_until", "city"):
        if name in data:
            setattr(reward, name, data[name])
    if "title" in data:
        reward.title_zh, reward.title_en = data["title"]["zh"], data["title"]["en"]
    if "description" in data:
        reward.description_zh = data["description"]["zh"]
        reward.description_en = data["description"]["en"]
    if "project" in data:
        reward.project = data["project"]


def _check(reward: Reward) -> None:
    """Cross-field rules on the reward as it would be stored (422 naming the field)."""
    if reward.valid_until <= reward.valid_from:
        raise InvalidInput("valid_until must be after valid_from",
                           fields={"valid_until": ["must be after valid_from"]})
    if (reward.kind == "donation") != (reward.project is not None):
        raise InvalidInput("a donation names its project; other kinds have none",
                           fields={"project": ["required for a donation, and only then"]})


def own(session: Session, principal: Principal, reward_id: int, lock: bool = False) -> Reward:
    """The merchant's own reward: 404 if none, 403 if another merchant's."""
    reward = _get(session, reward_id, lock)
    if reward.merchant_id != principal.sub:
        raise Forbidden("another merchant's reward", code="not_your_reward")
    return reward


def _get(session: Session, reward_id: int, lock: bool = False) -> Reward:
    query = select(Reward).where(Reward.id == reward_id)
    reward = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if reward is None:
        raise NotFound("no such reward", code="reward_not_found")
    return reward


def merchant_list(rt: Runtime, principal: Principal) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        return [view(r) for r in session.scalars(
            select(Reward).where(Reward.merchant_id == principal.sub).order_by(Reward.id))]


def merchant_get(rt: Runtime, principal: Principal, reward_id: int) -> dict[str, Any]:
    with rt.db.transaction() as session:
        return view(own(session, principal, reward_id))


def review_queue(rt: Runtime, status: str) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        return [view(r) for r in session.scalars(
            select(Reward).where(Reward.status == status).order_by(Reward.id).limit(200))]


def review(rt: Runtime, principal: Principal, reward_id: int, approve: bool, reason: str
           ) -> dict[str, Any]:
    """An admin approves a reward (users see it from now) or rejects it with a reason;
    audit-logged."""
    with rt.db.transaction() as session:
        reward = _get(session, reward_id, lock=True)
        before = {"status": reward.status}
        reward.status = "approved" if approve else "rejected"
        reward.review_reason, reward.reviewed_by = reason, principal.sub
        reward.updated_at = utcnow()
        audit.record(session, actor=principal.sub,
                     action="approve_reward" if approve else "reject_reward",
                     target=f"reward/{reward.id}", reason=reason, before=before,
                     after={"status": reward.status})
        return view(reward)


def offered(rt: Runtime, principal: Principal, now: datetime | None = None
            ) -> list[dict[str, Any]]:
    """What the user may redeem now: approved, in validity, in the user's city, in stock."""
    now = now or utcnow()
    city = principal.city or rt.config.default_city
    with rt.db.transaction() as session:
        return [public_view(r) for r in session.scalars(
            select(Reward).where(Reward.status == "approved", Reward.city == city,
                                 Reward.valid_from <= now, Reward.valid_until > now,
                                 Reward.stock_left > 0).order_by(Reward.id).limit(500))]


def shown(rt: Runtime, principal: Principal, reward_id: int) -> dict[str, Any]:
    """One approved reward of the user's city (404 for any other: unreviewed offers are
    not shown)."""
    city = principal.city or rt.config.default_city
    with rt.db.transaction() as session:
        reward = session.get(Reward, reward_id)
        if reward is None or reward.status != "approved" or reward.city != city:
            raise NotFound("no such reward", code="reward_not_found")
        return public_view(reward)


def public_view(r: Reward) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "price_points": r.price_points,
            "stock_left": r.stock_left, "per_user_limit": r.per_user_limit,
            "valid_from": r.valid_from, "valid_until": r.valid_until, "city": r.city,
            "title": {"zh": r.title_zh, "en": r.title_en},
            "description": {"zh": r.description_zh, "en": r.description_en},
            "project": r.project}


def view(r: Reward) -> dict[str, Any]:
    """The merchant's and the admin's view: the public one and its review."""
    return public_view(r) | {"merchant_id": r.merchant_id, "status": r.status,
                             "stock": r.stock, "codes": r.codes,
                             "review_reason": r.review_reason, "reviewed_by": r.reviewed_by,
                             "created_at": r.created_at, "updated_at": r.updated_at}
