"""Redeeming a reward: points, stock and the voucher code or fulfilment record in one
transaction, idempotent by the client's redemption id; cancellation by rule.

A physical good's points are **held** (``rules.HELD``): the redemption writes a 'hold'
entry, the balance stays and what may be spent shrinks; shipping it spends them (a
'redeem' entry), cancelling it before releases them (a 'release' entry). Other kinds
spend at once (a 'redeem' entry); a voucher's cancellation refunds (an 'adjustment').

Locks are taken in one order: the user's account, then the redemption, then its codes,
then the reward (a redemption takes the reward before any code: the codes it takes are
available ones, which no cancellation holds). Every refusal raises inside the transaction,
which rolls back: no stock or code stays reserved after a failure.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits.errors import Forbidden, NotFound
from carbon_credits.ledger import entries, settlement
from carbon_credits.ledger import redemptions as ledger_redemptions
from carbon_credits.rewards import catalogue, pseudonyms, rules, vouchers
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Account,
    Redemption,
    Reward,
    RewardRedemption,
    VoucherCode,
    utcnow,
)
from carbon_credits.tokens import Principal

ATTEMPTS = 3


def redeem(rt: Runtime, principal: Principal, data: dict[str, Any]) -> tuple[dict[str, Any],
                                                                             bool]:
    """Redeem ``quantity`` units of a reward once per redemption_id; (view, created)."""
    quantity = data.get("quantity") or 1
    digest = ledger_redemptions.payload_digest(
        {"reward_id": data["reward_id"], "quantity": quantity})
    city = principal.city or rt.config.default_city
    for attempt in range(ATTEMPTS):
        try:
            with rt.db.transaction() as session:
                account = entries.lock_account(session, principal.sub, city)
                existing = ledger_redemptions.replay(session, principal.sub,
                                                     data["redemption_id"], digest)
                if existing is not None:
                    return user_view(rt, session, existing), False
                reward = session.get(Reward, data["reward_id"])
                if reward is None:
                    raise NotFound("no such reward", code="reward_not_found",
                                   fields={"reward_id": ["unknown"]})
                refusal = rules.redeem_refusal(
                    reward, now=utcnow(), city=city, quantity=quantity,
                    already=_held(session, reward.id, principal.sub))
                if refusal is not None:
                    raise refusal.conflict()
                _reserve(session, reward, quantity)
                hold = rules.holds(reward.kind)
                redemption = (ledger_redemptions.reserve if hold else ledger_redemptions.spend)(
                    session, account, redemption_id=data["redemption_id"],
                    points=reward.price_points * quantity,
                    description=f"reward {reward.id} x{quantity}", digest=digest,
                    available=settlement.available(session, account, rt.config, rt.clock()))
                made = RewardRedemption(
                    redemption_pk=redemption.id, reward_id=reward.id, user_id=principal.sub,
                    quantity=quantity, points=redemption.points,
                    state=rules.FIRST_STATE[reward.kind], hold=hold,
                    created_at=redemption.created_at, updated_at=redemption.created_at)
                session.add(made)
                session.flush()
                if reward.kind == "voucher":
                    vouchers.issue(session, reward, made)
                elif reward.kind == "donation":
                    made.certificate_hash = certificate_hash(redemption, made, reward)
                return user_view(rt, session, redemption), True
        except IntegrityError:
            # A first redemption of a new account raced another (the account row), or two
            # copies of one redemption_id, or a generated code collided: all settle on retry.
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _held(session: Session, reward_id: int, user_id: str) -> int:
    """Units of the reward the user holds (redeemed and not cancelled); the user's account
    lock serialises this user's redemptions, so the count cannot race."""
    return int(session.scalar(select(func.coalesce(func.sum(RewardRedemption.quantity), 0))
                              .where(RewardRedemption.reward_id == reward_id,
                                     RewardRedemption.user_id == user_id,
                                     RewardRedemption.state != "cancelled")) or 0)


def _reserve(session: Session, reward: Reward, quantity: int) -> None:
    """Take ``quantity`` units off the stock, race-free: a conditional UPDATE (which on
    PostgreSQL waits for a concurrent one on the row and re-checks its condition against the
    committed value), so the stock never goes below zero and is never sold twice."""
    taken = session.execute(
        update(Reward).where(Reward.id == reward.id, Reward.status == "approved",
                             Reward.stock_left >= quantity)
        .values(stock_left=Reward.stock_left - quantity)
        .returning(Reward.stock_left)).scalar_one_or_none()
    if taken is None:
        session.refresh(reward)
        raise rules.out_of_stock(reward.stock_left).conflict()
    reward.stock_left = taken


def certificate_hash(redemption: Redemption, made: RewardRedemption, reward: Reward) -> str:
    """SHA-256 over a donation's facts, printed on its certificate: anyone holding the
    facts (the service, an auditor) recomputes it to check a certificate is genuine."""
    project = reward.project or {}
    facts = "|".join([redemption.user_id, redemption.redemption_id, str(reward.id),
                      str(project.get("name")), str(project.get("unit")), str(made.quantity),
                      made.created_at.isoformat(timespec="microseconds")])
    return hashlib.sha256(facts.encode()).hexdigest()


def cancel(rt: Runtime, principal: Principal, redemption_id: str) -> dict[str, Any]:
    """Cancel an unused voucher or an unshipped good within the window: held points are
    released (a 'release' entry naming the redemption), spent ones come back (an
    'adjustment' naming it), the units back to stock, the codes void (never issued again).
    Cancelling again answers the cancelled view."""
    window = timedelta(days=rt.config.reward_cancel_days)
    with rt.db.transaction() as session:
        account = entries.lock_account(session, principal.sub,
                                       principal.city or rt.config.default_city)
        redemption, made = mine(session, principal.sub, redemption_id, lock=True)
        if made.state == "cancelled":
            return user_view(rt, session, redemption)
        reward = session.get(Reward, made.reward_id)
        assert reward is not None
        codes = vouchers.of_redemption(session, made.id, lock=True)
        refusal = rules.cancel_refusal(reward, made,
                                       used_codes=sum(c.state == "used" for c in codes),
                                       now=utcnow(), window=window)
        if refusal is not None:
            raise refusal.conflict()
        _undo(session, account, redemption, made, codes)
        return user_view(rt, session, redemption)


def _undo(session: Session, account: Account, redemption: Redemption,
          made: RewardRedemption, codes: list[VoucherCode]) -> None:
    """Cancel a redemption (account and redemption locked, the rule checked): codes void,
    units back to stock, held points released or spent ones refunded."""
    for code in codes:
        code.state = "void"
    made.state, made.updated_at = "cancelled", utcnow()
    session.execute(update(Reward).where(Reward.id == made.reward_id)
                    .values(stock_left=Reward.stock_left + made.quantity))
    if made.hold:
        entries.release(session, account, redemption_pk=redemption.id)
    else:
        entries.adjust(session, account, points=made.points, redemption_pk=redemption.id)
    session.flush()


def mine(session: Session, user_id: str, redemption_id: str, lock: bool = False
          ) -> tuple[Redemption, RewardRedemption]:
    redemption = session.scalars(select(Redemption).where(
        Redemption.user_id == user_id,
        Redemption.redemption_id == redemption_id)).one_or_none()
    # user_id as well: the statement is routed by the user key (storage.distribution).
    query = select(RewardRedemption).where(RewardRedemption.user_id == user_id,
                                           RewardRedemption.redemption_pk == (
        redemption.id if redemption is not None else -1))
    made = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if redemption is None or made is None:
        raise NotFound("no such reward redemption", code="redemption_not_found")
    return redemption, made


def show(rt: Runtime, principal: Principal, redemption_id: str) -> dict[str, Any]:
    with rt.db.transaction() as session:
        redemption, _ = mine(session, principal.sub, redemption_id)
        return user_view(rt, session, redemption)


def user_view(rt: Runtime, session: Session, redemption: Redemption) -> dict[str, Any]:
    """The points view of ``ledger.redemptions`` plus, for a reward, its units, state,
    voucher codes and the last moment it may be cancelled."""
    result = ledger_redemptions.view(redemption)
    made = session.scalars(select(RewardRedemption).where(
        RewardRedemption.user_id == redemption.user_id,
        RewardRedemption.redemption_pk == redemption.id)).one_or_none()
    if made is None:
        return result
    reward = session.get(Reward, made.reward_id)
    assert reward is not None
    cancellable = rules.CANCELLABLE.get(reward.kind) == made.state
    return result | {
        "reward_id": made.reward_id, "kind": reward.kind, "quantity": made.quantity,
        "state": made.state,
        "reserved": made.hold and made.state == settlement.HELD_STATE,
        "vouchers": [vouchers.code_view(c) for c in vouchers.of_redemption(session, made.id)],
        "cancellable_until": (made.created_at + timedelta(days=rt.config.reward_cancel_days)
                              if cancellable else None),
        "certificate_hash": made.certificate_hash}


def for_merchant(rt: Runtime, principal: Principal, reward_id: int) -> list[dict[str, Any]]:
    """The redemptions of a merchant's own reward, newest first; users by pseudonym."""
    with rt.db.transaction() as session:
        catalogue.own(session, principal, reward_id)
        made = list(session.scalars(select(RewardRedemption).where(
            RewardRedemption.reward_id == reward_id).order_by(RewardRedemption.id.desc())
            .limit(500)))
        codes: dict[int, list[VoucherCode]] = {}
        for code in session.scalars(select(VoucherCode).where(
                VoucherCode.reward_redemption_id.in_([m.id for m in made]))
                .order_by(VoucherCode.id)):
            codes.setdefault(code.reward_redemption_id or 0, []).append(code)
        return [merchant_view(rt, m, codes.get(m.id, [])) for m in made]


def merchant_view(rt: Runtime, made: RewardRedemption, codes: list[VoucherCode]
                  ) -> dict[str, Any]:
    return {"id": made.id, "reward_id": made.reward_id,
            "user": pseudonyms.pseudonym(rt.config, made.user_id), "quantity": made.quantity,
            "points": made.points, "state": made.state,
            "reserved": made.hold and made.state == settlement.HELD_STATE,
            "created_at": made.created_at,
            "updated_at": made.updated_at, "vouchers": [vouchers.code_view(c) for c in codes]}


def ship(rt: Runtime, principal: Principal, made_id: int, state: str) -> dict[str, Any]:
    """A merchant moves a physical good on: pending -> shipped -> delivered, or pending ->
    cancelled (it cannot send it: at any time, unlike the user's window; again: the same
    answer). Shipping a held good spends its points (a 'redeem' entry), cancelling releases
    them; the user's account is locked first, as a user's cancellation locks it, so
    shipping and cancelling one good cannot both succeed."""
    with rt.db.transaction() as session:
        found = session.scalars(select(RewardRedemption).where(
            RewardRedemption.id == made_id)).one_or_none()
        if found is None:
            raise NotFound("no such redemption", code="redemption_not_found")
        reward = session.get(Reward, found.reward_id)
        assert reward is not None
        if reward.merchant_id != principal.sub:
            raise Forbidden("another merchant's redemption", code="not_your_reward")
        account = entries.lock_account(session, found.user_id, reward.city)
        # Read again under the locks: a cancellation may have committed meanwhile.
        made = session.scalars(select(RewardRedemption).where(
            RewardRedemption.user_id == found.user_id, RewardRedemption.id == made_id)
            .with_for_update().execution_options(populate_existing=True)).one()
        if state == "cancelled":
            if made.state != "cancelled":
                refusal = rules.merchant_cancel_refusal(reward.kind, made.state)
                if refusal is not None:
                    raise refusal.conflict()
                redemption = session.get(Redemption, made.redemption_pk)
                assert redemption is not None
                _undo(session, account, redemption, made, [])
            return merchant_view(rt, made, [])
        refusal = rules.fulfil_refusal(reward.kind, made.state, state, hold=made.hold,
                                       points=made.points, balance=account.balance_points)
        if refusal is not None:
            raise refusal.conflict()
        if made.hold and (made.state, state) == rules.SPENDS:
            redemption = session.get(Redemption, made.redemption_pk)
            assert redemption is not None
            ledger_redemptions.fulfil(session, account, redemption)
        made.state, made.updated_at = state, utcnow()
        return merchant_view(rt, made, [])
