"""A user's reward redemptions (with the voucher codes handed to them): their part of the
export."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.rewards import vouchers
from carbon_credits.storage.models import RewardRedemption


def _export(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return [{**columns(made), "vouchers": [vouchers.code_view(c) for c in
                                           vouchers.of_redemption(session, made.id)]}
            for made in session.scalars(
                select(RewardRedemption).where(RewardRedemption.user_id == subject.user_id)
                .order_by(RewardRedemption.id))]


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Kept under the pseudonym: merchants' stock and vouchers stand on them."""
    session.execute(update(RewardRedemption).where(
        RewardRedemption.user_id == subject.user_id).values(user_id=pseudonym))


HOLDER = register(Holder("reward_redemptions", ("reward_redemptions",), _export, _erase,
                         order=350))
