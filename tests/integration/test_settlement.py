"""Pending and settled points (SETTLEMENT_DAYS), claims and lapses (CLAIM_DAYS) on the
real database: pending points show apart and cannot be spent, a reversal before settling
takes them away, unclaimed points lapse once, and verify-ledger passes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from flask import Flask

from carbon_credits.errors import ServiceError
from carbon_credits.ledger import expiring, reversals, settlement, verification
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import utcnow
from carbon_credits.tokens import Principal
from tests.integration.test_expiry import ADMIN, earn, kinds, new_city, spend


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def city() -> str:
    return new_city()


@pytest.fixture
def beijing_like(make_app: Callable[..., Flask], city: str) -> tuple[Flask, Runtime, Clock]:
    app = make_app(settlement_days={city: 2}, claim_days={city: 7})
    rt: Runtime = app.extensions["carbon_credits"]
    clock = rt.clock = Clock()
    return app, rt, clock


def test_pending_points_show_apart_cannot_be_spent_and_are_claimed_once(
        beijing_like: tuple[Flask, Runtime, Clock], city: str) -> None:
    app, rt, clock = beijing_like
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {rt.codec.encode(who.sub, 'user', city, 600)}"}
    earn(rt, who, 30)
    account = client.get("/v1/me/account", headers=auth).json
    assert (account["balance"], account["available"], account["pending"],
            account["unclaimed"]) == (30, 0, 30, 0)
    with pytest.raises(ServiceError) as refused:
        spend(rt, who, 10)
    assert refused.value.code == "insufficient_points"
    clock.now += timedelta(days=3)  # settled, to claim
    account = client.get("/v1/me/account", headers=auth).json
    assert (account["available"], account["pending"], account["unclaimed"]) == (0, 0, 30)
    claimed = client.post("/v1/me/claims", headers=auth)
    assert claimed.status_code == 200 and claimed.json["claimed"] == 30, claimed.json
    assert client.post("/v1/me/claims", headers=auth).json["claimed"] == 0  # once
    spend(rt, who, 10)
    assert client.get("/v1/me/account", headers=auth).json["available"] == 20
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_unclaimed_points_lapse_once_and_a_reversal_before_settling_takes_them(
        beijing_like: tuple[Flask, Runtime, Clock], city: str) -> None:
    _, rt, clock = beijing_like
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    earn(rt, who, 20)
    fraud = earn(rt, who, 9)
    reversals.reverse_event(rt, ADMIN, who.sub, fraud, "fraud, before settling")
    with rt.db.transaction() as s:
        assert settlement.held(s, who.sub, settlement.rule_for(rt.config, city),
                               clock.now).pending == 20  # the reversed 9 fell away
    assert settlement.lapse_unclaimed(rt, clock.now + timedelta(days=8)) == 0  # 1 day left
    assert settlement.lapse_unclaimed(rt, clock.now + timedelta(days=10)) == 20
    assert settlement.lapse_unclaimed(rt, clock.now + timedelta(days=10)) == 0  # never twice
    assert kinds(rt, who.sub) == [("earn", 20), ("earn", 9), ("reversal", -9),
                                  ("lapse", -20)]
    # Folded by the expiry job too: the lapse took the event's own lot.
    expiring.expire_due(rt, clock.now + timedelta(days=10))
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_a_city_without_a_claim_window_needs_no_claim(rt: Runtime) -> None:
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", new_city())
    earn(rt, who, 5)
    with pytest.raises(ServiceError) as refused:
        settlement.claim(rt, who)
    assert (refused.value.code, refused.value.status) == ("no_claim_needed", 409)
    with rt.db.transaction() as s:
        assert settlement.summary(s, who.sub, who.city or "", 5, rt.config, utcnow()) == {
            "available": 5, "pending": 0, "unclaimed": 0, "reserved": 0}


def test_a_claim_window_enabled_later_does_not_lapse_past_points(
        make_app: Callable[..., Flask], rt: Runtime) -> None:
    """Credits written long before the window (older than it and its grace) count as
    claimed: spendable, never lapsed."""
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    earn(rt, who, 30)  # before the city had a claim window
    later = make_app(claim_days={city: 7}).extensions["carbon_credits"]
    assert settlement.lapse_unclaimed(later, utcnow() + timedelta(days=30)) == 0
    later.clock = lambda: utcnow() + timedelta(days=30)
    spend(later, who, 30)
    assert kinds(rt, who.sub) == [("earn", 30), ("redeem", -30)]
