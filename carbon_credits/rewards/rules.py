"""The rewards' decisions as pure functions of the rows they read (tested without a
database): may this reward be redeemed, are its points held or spent at once, may this
redemption be cancelled, may its fulfilment move on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from carbon_credits.errors import Conflict
from carbon_credits.storage.models import Reward, RewardRedemption

KINDS = ("voucher", "physical", "donation")
FIRST_STATE = {"voucher": "issued", "physical": "pending", "donation": "donated"}
"""A redemption's state when made, by the reward's kind."""
CANCELLABLE = {"voucher": "issued", "physical": "pending"}
"""The state in which a redemption of each kind may still be cancelled: a voucher none of
whose codes was used, a good not yet shipped. A donation is final."""
SHIPPING = {"pending": "shipped", "shipped": "delivered"}
"""A physical good's fulfilment: the one next state the merchant may set."""
HELD = frozenset({"physical"})
"""The kinds whose points a redemption holds (reserves) rather than spends at once: a
physical good's, until the merchant ships it (``pending`` -> ``shipped`` spends them; a
cancellation before releases them). A voucher's code and a donation's certificate are
handed over with the redemption, so their points are spent at once; a voucher's
cancellation refunds them (an 'adjustment')."""
SPENDS = ("pending", "shipped")
"""The fulfilment step that spends a held redemption's points."""


def holds(kind: str) -> bool:
    """Whether a redemption of a reward of ``kind`` holds its points until fulfilment."""
    return kind in HELD


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    params: Mapping[str, object] = field(default_factory=dict)
    """Named values for the code's message in other languages (carbon_credits.messages)."""

    def conflict(self) -> Conflict:
        return Conflict(self.message, code=self.code, params=self.params)


def redeem_refusal(reward: Reward, *, now: datetime, city: str, quantity: int,
                   already: int) -> Refusal | None:
    """Why the user (of ``city``, who holds ``already`` units of it) may not redeem
    ``quantity`` units of ``reward`` now, or None. Stock and points are checked where they
    are reserved (a conditional UPDATE; the locked account)."""
    if reward.status != "approved":
        return Refusal("reward_not_approved", "the reward is not approved")
    if now < reward.valid_from:
        return Refusal("reward_not_yet_valid", f"the reward is valid from {reward.valid_from}")
    if now >= reward.valid_until:
        return Refusal("reward_expired", f"the reward expired at {reward.valid_until}")
    if reward.city != city:
        return Refusal("reward_other_city", f"the reward is offered in {reward.city}")
    if already + quantity > reward.per_user_limit:
        return Refusal("over_user_limit",
                       f"at most {reward.per_user_limit} per user; you hold {already}",
                       {"limit": reward.per_user_limit, "held": already})
    if reward.stock_left < quantity:
        return out_of_stock(reward.stock_left)
    return None


def out_of_stock(left: int) -> Refusal:
    return Refusal("out_of_stock", f"out of stock: {left} left")


def cancel_refusal(reward: Reward, redemption: RewardRedemption, *, used_codes: int,
                   now: datetime, window: timedelta) -> Refusal | None:
    """Why a redemption may not be cancelled (by its user, for the points back), or None.
    An already cancelled one is answered as it stands by the caller (idempotent)."""
    if reward.kind == "donation":
        return Refusal("not_cancellable", "a donation is final")
    if used_codes:
        return Refusal("voucher_used", "a voucher code of this redemption was used")
    if redemption.state != CANCELLABLE[reward.kind]:
        return Refusal("already_shipped" if reward.kind == "physical" else "voucher_used",
                       f"the redemption is {redemption.state}")
    if now >= redemption.created_at + window:
        return Refusal("cancel_window_closed",
                       f"cancellable until {redemption.created_at + window}")
    return None


def next_shipping(kind: str, state: str, wanted: str) -> Refusal | None:
    """Why a merchant may not move a redemption from ``state`` to ``wanted``, or None."""
    if kind != "physical":
        return Refusal("not_physical", "only physical goods have a fulfilment state")
    if SHIPPING.get(state) != wanted:
        return Refusal("invalid_transition", f"cannot go from {state} to {wanted}")
    return None


def merchant_cancel_refusal(kind: str, state: str) -> Refusal | None:
    """Why a merchant may not cancel a redemption in ``state`` (one it cannot send), or
    None: only a physical good not yet shipped; an already cancelled one is answered as it
    stands by the caller. No time limit: a good held but never sent must be releasable."""
    if kind != "physical":
        return Refusal("not_physical", "only physical goods have a fulfilment state")
    if state != "pending":
        return Refusal("already_shipped", f"the redemption is {state}")
    return None


def fulfil_refusal(kind: str, state: str, wanted: str, *, hold: bool, points: int,
                   balance: int) -> Refusal | None:
    """``next_shipping``, and for the step that spends a hold's ``points``: the user's
    ``balance`` must cover them. It does unless a reversal or lapse took points after they
    were reserved (a debt: the reversal policy, ``ledger.entries``): the good is then not
    shipped on points the user no longer has; the user cancels or earns the debt back."""
    refusal = next_shipping(kind, state, wanted)
    if refusal is None and hold and (state, wanted) == SPENDS and balance < points:
        return Refusal("hold_not_covered",
                       f"the user's balance {balance} no longer covers the {points} points "
                       "held for this good", {"balance": balance, "points": points})
    return refusal
