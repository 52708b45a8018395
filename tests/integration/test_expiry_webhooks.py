"""``points.expiring`` webhooks on the real database: each user's expiry date announced
once, EXPIRY_WEBHOOK_DAYS ahead, by the daily job; not again on a second run; nothing for
points not due within the period; the notices exported and erased with the user."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from carbon_credits.config import Config
from carbon_credits.ledger import chain
from carbon_credits.ledger.expiry import Lots
from carbon_credits.privacy import erasure, export
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import ExpiryNotice, WebhookDelivery, utcnow
from carbon_credits.tokens import Principal
from carbon_credits.tuning import expiry_policies
from carbon_credits.webhooks import endpoints, outbox
from carbon_credits.webhooks.expiring import announce_expiring, due_notices
from tests.conftest import app_on_own_database
from tests.integration.test_expiry import ADMIN, earn, new_city, spend


@pytest.fixture(scope="module")
def app(make_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Flask]:
    """The job takes every account of its database: a database of this module's own."""
    with app_on_own_database(make_config, tmp_path_factory.mktemp("notices"),
                             expiry_webhook_days=30) as application:
        yield application


@pytest.fixture
def sent() -> Iterator[list[tuple[str, str]]]:
    """What the outbox hands to the sender after each commit (no job queue here)."""
    handed: list[tuple[str, str]] = []
    before = outbox.use_sender(handed.extend)
    yield handed
    outbox.use_sender(before)


@pytest.fixture(scope="module")
def endpoint(app: Flask) -> str:
    rt: Runtime = app.extensions["carbon_credits"]
    endpoint_id = f"platform-{uuid.uuid4().hex[:8]}"
    endpoints.register(rt, ADMIN, {"id": endpoint_id, "url": "http://127.0.0.1:9/hooks",
                                   "kinds": ["points.expiring"], "reason": "test"})
    return endpoint_id


def user_in(city: str) -> Principal:
    return Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)


def later(days: int) -> datetime:
    return utcnow() + timedelta(days=days)


def deliveries(rt: Runtime, user_id: str) -> list[dict[str, Any]]:
    with rt.db.transaction() as s:
        return [d.payload for d in s.scalars(
            select(WebhookDelivery).where(WebhookDelivery.kind == "points.expiring")
            .order_by(WebhookDelivery.created_at)) if d.payload["user_id"] == user_id]


def test_each_expiry_date_is_announced_once_within_the_notice_period(
        rt: Runtime, endpoint: str, sent: list[tuple[str, str]]) -> None:
    city = new_city()
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 40,
                                                 "reason": "test: 40 days"})
    who = user_in(city)
    earn(rt, who, 120)  # expires in 40 days
    today = utcnow().astimezone(rt.config.tz).date()

    # 40 days ahead is beyond the 30-day notice period: nothing yet.
    assert announce_expiring(rt, utcnow()).notices == 0
    assert deliveries(rt, who.sub) == []

    first = announce_expiring(rt, later(15))  # now 25 days ahead
    assert (first.notices, first.points) == (1, 120)
    [payload] = deliveries(rt, who.sub)
    expires_on = date.fromisoformat(payload["expires_on"])
    assert expires_on == today + timedelta(days=40)
    assert payload == {"user_id": who.sub, "city": city, "points": 120,
                       "expires_on": expires_on.isoformat(),
                       "last_valid_day": (expires_on - timedelta(days=1)).isoformat()}
    assert len(sent) == 1 and sent[0][0] == endpoint  # handed to the queue after COMMIT

    # Run again, the same day or later: the date is not announced again.
    assert announce_expiring(rt, later(15)).notices == 0
    assert announce_expiring(rt, later(20)).notices == 0
    assert len(deliveries(rt, who.sub)) == 1 and len(sent) == 1
    with rt.db.transaction() as s:
        assert s.scalars(select(ExpiryNotice.points).where(
            ExpiryNotice.user_id == who.sub)).all() == [120]


def test_a_new_expiry_date_gets_its_own_notice(rt: Runtime, endpoint: str,
                                               sent: list[tuple[str, str]]) -> None:
    city = new_city()
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 10,
                                                 "reason": "test: 10 days"})
    who = user_in(city)
    earn(rt, who, 7)
    assert announce_expiring(rt, utcnow()).notices == 1
    # Points earned later (another date, as the clock moves on) are their own notice.
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 12,
                                                 "reason": "test: 12 days"})
    earn(rt, who, 5)
    assert announce_expiring(rt, utcnow()).notices == 1
    assert sorted(p["points"] for p in deliveries(rt, who.sub)) == [5, 7]


def test_nothing_is_announced_for_users_with_no_points_due(
        rt: Runtime, endpoint: str, sent: list[tuple[str, str]]) -> None:
    never, spent_city = new_city(), new_city()
    kept = user_in(never)
    earn(rt, kept, 50)  # a city without a policy: these never expire
    expiry_policies.set_policy(rt, ADMIN, spent_city, {"rule": "days", "amount": 5,
                                                       "reason": "test: 5 days"})
    spender = user_in(spent_city)
    earn(rt, spender, 30)
    # Spent before the job ran: no live points, nothing to announce.
    spend(rt, spender, 30)
    announce_expiring(rt, utcnow())
    assert deliveries(rt, kept.sub) == [] and deliveries(rt, spender.sub) == []


def test_erasure_removes_the_notices_and_the_pseudonym_is_told_nothing(
        rt: Runtime, endpoint: str, sent: list[tuple[str, str]]) -> None:
    city = new_city()
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 3,
                                                 "reason": "test: 3 days"})
    who = user_in(city)
    earn(rt, who, 9)
    assert announce_expiring(rt, utcnow()).notices == 1
    services = {"catalog": rt.catalog, "config": rt.config}
    exported = export.export(rt.db, who.sub, services)
    assert [n["points"] for n in exported["data"]["expiry_notices"]] == [9]

    done = erasure.erase(rt.db, who.sub, chain.keyring().keys, "ops", "test erasure",
                         services)
    with rt.db.transaction() as s:
        assert s.scalars(select(ExpiryNotice).where(ExpiryNotice.user_id == who.sub)
                         ).all() == []
    assert deliveries(rt, who.sub) == []  # the delivery's payload names the pseudonym
    # The pseudonym holds the points now; it is not announced to the platform.
    assert announce_expiring(rt, utcnow()).notices == 0
    assert deliveries(rt, done.pseudonym)[0]["points"] == 9  # the erased delivery only
    assert len(deliveries(rt, done.pseudonym)) == 1


def test_without_a_subscriber_nothing_is_recorded(
        make_config: Callable[..., Config], tmp_path: Any) -> None:
    with app_on_own_database(make_config, tmp_path) as application:
        rt: Runtime = application.extensions["carbon_credits"]
        city = new_city()
        expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 3,
                                                     "reason": "test: 3 days"})
        earn(rt, user_in(city), 4)
        assert announce_expiring(rt, utcnow()).notices == 0
        with rt.db.transaction() as s:
            assert s.scalars(select(ExpiryNotice)).all() == []


def test_due_notices_takes_lots_after_today_and_by_the_horizon() -> None:
    today = date(2026, 12, 7)
    lots = Lots(lots={"2026-12-07": 1, "2026-12-08": 2, "2027-01-06": 3, "2027-01-07": 4,
                      "never": 5, "2026-12-20": 0})
    assert due_notices({"u": lots, "erased-abc": lots}, today, date(2027, 1, 6)) == [
        ("u", date(2026, 12, 8), 2), ("u", date(2027, 1, 6), 3)]
