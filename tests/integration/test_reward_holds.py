"""A physical good's points held until it ships, on the real database: the balance stays
and what may be spent shrinks, shipping spends them once, cancelling releases them,
shipping and cancelling racing for one good (exactly one wins), the concurrency tests of
the catalogue with holds, and verify-ledger naming a tampered hold."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from carbon_credits.errors import ServiceError
from carbon_credits.ledger import redemptions as plain
from carbon_credits.ledger import reversals, settlement, verification
from carbon_credits.rewards import redemptions
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Account,
    LedgerEntry,
    Redemption,
    RewardRedemption,
)
from carbon_credits.tokens import Principal
from tests import rewards as data
from tests.integration.test_expiry import earn


def redeem(rt: Runtime, who: Principal, reward_id: int, rid: str, quantity: int = 1
           ) -> tuple[dict[str, Any], bool]:
    return redemptions.redeem(rt, who, {"redemption_id": rid, "reward_id": reward_id,
                                        "quantity": quantity})


def refused(call: Callable[[], Any]) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


def split(rt: Runtime, who: Principal) -> dict[str, int]:
    """Balance and its split, as GET /v1/me/account shows them."""
    with rt.db.transaction() as s:
        account = s.get(Account, who.sub)
        assert account is not None
        return {"balance": account.balance_points, **settlement.summary(
            s, who.sub, who.city or "shenzhen", account.balance_points, rt.config,
            rt.clock())}


def made_id(rt: Runtime, who: Principal, rid: str) -> int:
    with rt.db.transaction() as s:
        return int(s.scalar(select(RewardRedemption.id)
                            .join(Redemption, Redemption.id == RewardRedemption.redemption_pk)
                            .where(Redemption.user_id == who.sub,
                                   Redemption.redemption_id == rid)) or 0)


def kinds(rt: Runtime, who: Principal) -> list[tuple[str, int]]:
    with rt.db.transaction() as s:
        return [(e.kind, e.points) for e in s.scalars(
            select(LedgerEntry).where(LedgerEntry.user_id == who.sub)
            .order_by(LedgerEntry.seq))]


def test_a_held_good_stays_in_the_balance_counts_against_available_and_ships_once(
        rt: Runtime) -> None:
    owner = data.merchant()
    good = data.approved(rt, owner, kind="physical", stock=5, price_points=30)
    voucher = data.approved(rt, owner, stock=5, price_points=80)
    who = data.user()
    data.grant(rt, who, 100)
    view, created = redeem(rt, who, good, "g1")
    assert created and view["reserved"] is True and view["balance_after"] == 100
    assert redeem(rt, who, good, "g1") == (view, False)  # idempotent: one hold
    assert split(rt, who) == {"balance": 100, "available": 70, "pending": 0, "unclaimed": 0,
                              "reserved": 30}
    # Held points cannot be spent again, by a reward or the points form.
    assert refused(lambda: redeem(rt, who, voucher, "v1")).code == "insufficient_points"
    err = refused(lambda: plain.redeem(rt, who, {"redemption_id": "p1", "points": 71}))
    assert err.code == "insufficient_points" and err.fields["available"] == 70
    shipped = redemptions.ship(rt, owner, made_id(rt, who, "g1"), "shipped")
    assert shipped["reserved"] is False
    assert split(rt, who) == {"balance": 70, "available": 70, "pending": 0, "unclaimed": 0,
                              "reserved": 0}
    assert refused(lambda: redemptions.ship(rt, owner, made_id(rt, who, "g1"), "shipped")
                   ).code == "invalid_transition"  # spent once
    redemptions.ship(rt, owner, made_id(rt, who, "g1"), "delivered")
    assert kinds(rt, who) == [("earn", 100), ("hold", 0), ("redeem", -30)]
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_cancelling_a_held_good_releases_its_points_with_a_ledger_entry(rt: Runtime) -> None:
    good = data.approved(rt, kind="physical", stock=5, price_points=30)
    who = data.user()
    data.grant(rt, who, 50)
    redeem(rt, who, good, "g1")
    view = redemptions.cancel(rt, who, "g1")
    assert view["state"] == "cancelled" and view["reserved"] is False
    assert redemptions.cancel(rt, who, "g1") == view  # again: no second release
    assert split(rt, who) == {"balance": 50, "available": 50, "pending": 0, "unclaimed": 0,
                              "reserved": 0}
    assert kinds(rt, who) == [("earn", 50), ("hold", 0), ("release", 0)]
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_a_merchant_that_cannot_send_a_good_releases_its_points_after_the_users_window(
        rt: Runtime) -> None:
    """A hold no one ships must not keep the points for ever: past the user's cancel
    window the merchant may still cancel a good not yet shipped, and only that."""
    owner = data.merchant()
    good = data.approved(rt, owner, kind="physical", stock=5, price_points=30)
    who = data.user()
    data.grant(rt, who, 60)
    redeem(rt, who, good, "late")
    redeem(rt, who, good, "sent")
    shift = ("created_at - INTERVAL '30 days'" if rt.db.engine.dialect.name == "postgresql"
             else "datetime(created_at, '-30 days')")
    with rt.db.transaction() as s:  # past the user's window
        s.execute(text(f"UPDATE reward_redemptions SET created_at = {shift} "
                       "WHERE user_id = :u"), {"u": who.sub})
    assert refused(lambda: redemptions.cancel(rt, who, "late")).code == \
        "cancel_window_closed"
    view = redemptions.ship(rt, owner, made_id(rt, who, "late"), "cancelled")
    assert view["state"] == "cancelled" and view["reserved"] is False
    assert redemptions.ship(rt, owner, made_id(rt, who, "late"), "cancelled") == view
    redemptions.ship(rt, owner, made_id(rt, who, "sent"), "shipped")
    assert refused(lambda: redemptions.ship(rt, owner, made_id(rt, who, "sent"),
                                            "cancelled")).code == "already_shipped"
    assert refused(lambda: redemptions.ship(rt, data.merchant(), made_id(rt, who, "sent"),
                                            "cancelled")).code == "not_your_reward"
    assert split(rt, who) == {"balance": 30, "available": 30, "pending": 0, "unclaimed": 0,
                              "reserved": 0}
    assert kinds(rt, who)[-3:] == [("hold", 0), ("release", 0), ("redeem", -30)]
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_a_reversal_after_a_hold_stops_the_good_shipping_until_the_points_are_back(
        rt: Runtime) -> None:
    """The reversal policy: the points a fraudster earned go, held or not; the good is not
    shipped on points the user no longer has (409), and the hold can still be cancelled."""
    owner = data.merchant()
    good = data.approved(rt, owner, kind="physical", stock=5, price_points=30)
    who = data.user()
    fraud = earn(rt, who, 30)  # a step count: its explanation needs no network
    redeem(rt, who, good, "g1")
    reversals.reverse_event(rt, data.ADMIN, who.sub, fraud, "fraud found later")
    assert split(rt, who) == {"balance": 0, "available": -30, "pending": 0, "unclaimed": 0,
                              "reserved": 30}
    err = refused(lambda: redemptions.ship(rt, owner, made_id(rt, who, "g1"), "shipped"))
    assert (err.code, err.status) == ("hold_not_covered", 409)
    data.grant(rt, who, 30)
    redemptions.ship(rt, owner, made_id(rt, who, "g1"), "shipped")
    assert split(rt, who)["balance"] == 0
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_shipping_and_cancelling_one_held_good_at_once_exactly_one_wins(
        rt: Runtime, is_postgres: bool) -> None:
    owner = data.merchant()
    n = 12 if is_postgres else 4
    good = data.approved(rt, owner, kind="physical", stock=n, price_points=10,
                         per_user_limit=n)
    who = data.user()
    data.grant(rt, who, 10 * n)
    for i in range(n):
        redeem(rt, who, good, f"g{i}")
    ids = [made_id(rt, who, f"g{i}") for i in range(n)]

    def race(i: int) -> list[str]:
        start = threading.Barrier(2)

        def ship() -> str:
            start.wait()
            try:
                return redemptions.ship(rt, owner, ids[i], "shipped")["state"]
            except ServiceError as exc:
                return exc.code

        def cancel() -> str:
            start.wait()
            try:
                return str(redemptions.cancel(rt, who, f"g{i}")["state"])
            except ServiceError as exc:
                return exc.code

        with ThreadPoolExecutor(max_workers=2) as pair:
            return [f.result() for f in [pair.submit(ship), pair.submit(cancel)]]

    outcomes = [race(i) for i in range(n)]
    assert all(o in (["shipped", "already_shipped"], ["invalid_transition", "cancelled"])
               for o in outcomes), outcomes
    shipped = sum(o[0] == "shipped" for o in outcomes)
    assert split(rt, who) == {"balance": 10 * (n - shipped), "available": 10 * (n - shipped),
                              "pending": 0, "unclaimed": 0, "reserved": 0}
    with rt.db.transaction() as s:
        per_kind = dict(s.execute(select(LedgerEntry.kind, func.count())
                                  .where(LedgerEntry.user_id == who.sub)
                                  .group_by(LedgerEntry.kind)).all())
    assert per_kind == {"earn": 1, "hold": n, **({"redeem": shipped} if shipped else {}),
                        **({"release": n - shipped} if shipped < n else {})}
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_one_user_holding_from_20_threads_never_goes_below_zero_available(
        rt: Runtime) -> None:
    owner = data.merchant()
    good = data.approved(rt, owner, kind="physical", stock=1000, price_points=7,
                         per_user_limit=1000)
    who = data.user()
    data.grant(rt, who, 100)  # 14 units' worth, and 2 points over
    start = threading.Barrier(20)

    def run(i: int) -> list[str]:
        start.wait()
        out = []
        for j in range(5):
            try:
                redeem(rt, who, good, f"t{i}-{j}")
                out.append("won")
            except ServiceError as exc:
                out.append(exc.code)
        return out

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = [o for chunk in pool.map(run, range(20)) for o in chunk]
    assert outcomes.count("won") == 14
    assert set(outcomes) == {"won", "insufficient_points"}
    assert split(rt, who) == {"balance": 100, "available": 2, "pending": 0, "unclaimed": 0,
                              "reserved": 98}
    with rt.db.transaction() as s:
        held = list(s.scalars(select(RewardRedemption.id)
                              .where(RewardRedemption.user_id == who.sub)))
    for made in held:
        redemptions.ship(rt, owner, made, "shipped")
    assert split(rt, who)["balance"] == 2
    with rt.db.transaction() as s:
        assert s.scalar(select(func.min(LedgerEntry.balance_after))
                        .where(LedgerEntry.user_id == who.sub)) == 2
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_200_users_racing_to_hold_the_last_10_goods_exactly_10_win(
        rt: Runtime, is_postgres: bool) -> None:
    n_users = 200 if is_postgres else 40  # SQLite serialises every writer: fewer there
    good = data.approved(rt, kind="physical", stock=10, price_points=10, per_user_limit=1)
    users = [data.user() for _ in range(n_users)]
    for u in users:
        data.grant(rt, u, 10)
    start = threading.Barrier(16)

    def run(chunk: list[Principal]) -> list[str]:
        start.wait()
        out = []
        for u in chunk:
            try:
                redeem(rt, u, good, "race")
                out.append("won")
            except ServiceError as exc:
                out.append(exc.code)
        return out

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = [r for chunk in pool.map(run, [users[i::16] for i in range(16)])
                   for r in chunk]
    assert results.count("won") == 10 and set(results) == {"won", "out_of_stock"}
    splits = [split(rt, u) for u in users]
    assert all(s["balance"] == 10 for s in splits)  # held, not spent
    assert sorted(s["reserved"] for s in splits) == [0] * (n_users - 10) + [10] * 10
    assert list(verification.verify(rt.db, user_ids=[u.sub for u in users],
                                    tz=rt.config.tz)) == []


TAMPERING = [
    # A held good marked shipped without its points spent: goods for nothing.
    ("UPDATE reward_redemptions SET state = 'delivered' WHERE id = :held",
     "1 hold, 0 redeem"),
    # A hold's amount lowered on its row (the hold entry names none): the row and its
    # redemption disagree.
    ("UPDATE reward_redemptions SET points = 1 WHERE id = :held", "(redemption of 30)"),
    # A held good turned into one spent at once: its hold entry holds for no such row.
    ("UPDATE reward_redemptions SET hold = false WHERE id = :held", "holds no points"),
    # A hold cancelled on its row without its release: the points never come back.
    ("UPDATE reward_redemptions SET state = 'cancelled' WHERE id = :held",
     "0 release entries"),
    # The spent hold made pending again: spent points would be held (and spent) again.
    ("UPDATE reward_redemptions SET state = 'pending' WHERE id = :shipped",
     "not shipped"),
]


def test_verify_ledger_names_a_tampered_hold(isolated_app: Flask) -> None:
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    owner = data.merchant()
    good = data.approved(rt, owner, kind="physical", stock=5, price_points=30)
    who = data.user()
    data.grant(rt, who, 100)
    redeem(rt, who, good, "held")
    redeem(rt, who, good, "shipped")
    redemptions.ship(rt, owner, made_id(rt, who, "shipped"), "shipped")
    assert list(verification.verify(rt.db, tz=rt.config.tz)) == []
    ids = {"held": made_id(rt, who, "held"), "shipped": made_id(rt, who, "shipped")}
    for statement, named in TAMPERING:
        with rt.db.engine.begin() as conn:
            before = conn.execute(text("SELECT id, state, points, hold FROM "
                                       "reward_redemptions WHERE id IN (:held, :shipped)"),
                                  ids).all()
            conn.execute(text(statement), ids)
        problems = [str(p) for p in verification.verify(rt.db, tz=rt.config.tz)]
        assert any(named in p for p in problems), (statement, problems)
        with rt.db.engine.begin() as conn:
            for made, state, points, hold in before:
                conn.execute(text("UPDATE reward_redemptions SET state = :s, points = :p, "
                                  "hold = :h WHERE id = :id"),
                             {"s": state, "p": points, "h": hold, "id": made})
        assert list(verification.verify(rt.db, tz=rt.config.tz)) == [], statement
