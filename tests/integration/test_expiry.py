"""Points expiry on the real database: a city's policy (admin API, audited), the job's
'expiry' entries (oldest points first, never twice), the account's "expiring soon", and
the job running while users redeem and admins reverse: verify-ledger passes throughout."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from carbon_credits.config import Config
from carbon_credits.errors import ServiceError
from carbon_credits.ledger import entries, expiring, redemptions, reversals, verification
from carbon_credits.rewards import redemptions as reward_redemptions
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    AuditRecord,
    Event,
    ExpiryState,
    FactorVersion,
    LedgerEntry,
    Redemption,
    RewardRedemption,
    utcnow,
)
from carbon_credits.tokens import Principal
from carbon_credits.tuning import expiry_policies
from tests import rewards as reward_data
from tests.conftest import app_on_own_database


@pytest.fixture(scope="module")
def app(make_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Flask]:
    """This module's tests run the expiry job, which takes every account of its database:
    on a database of the module's own, so that the accounts and cities' policies other
    modules leave in the suite's database are not theirs to count (``rt``, ``client`` and
    ``token`` follow this app)."""
    with app_on_own_database(make_config, tmp_path_factory.mktemp("own")) as application:
        yield application

ADMIN = Principal("admin-expiry", "admin", None)


def new_city() -> str:
    """A city of its own per test: a policy set here touches no other test's users."""
    return f"x{uuid.uuid4().hex[:12]}"


def earn(rt: Runtime, who: Principal, points: int) -> str:
    """A credited step count of exactly ``points`` and its earn entry, as ingest writes
    them (steps: its explanation, rebuilt by a reversal, needs no network); its event id."""
    event_id = f"grant-{uuid.uuid4().hex}"
    with rt.db.transaction() as session:
        account = entries.lock_account(session, who.sub, who.city or "shenzhen")
        factors = session.scalars(select(FactorVersion).where(
            FactorVersion.city == "shenzhen", FactorVersion.mode == "steps")).first()
        assert factors is not None
        now = utcnow()
        ug = points * entries.UG_PER_POINT
        event = Event(user_id=who.sub, event_id=event_id, mode="steps", city="shenzhen",
                      occurred_at=now,
                      # The city's day, as ingest stores it (not the UTC date: a day behind
                      # from 16:00 UTC on).
                      local_date=now.astimezone(rt.config.tz).date(), payload_hash=bytes(32),
                      status="credited", avoided_ug=ug, credited_ug=ug, points=points,
                      factor_version_id=factors.id, methodology_version=factors.version,
                      activity=points * 50, steps=points * 50, previous_quantity=0)
        session.add(event)
        session.flush()
        entries.earn(session, account, ug=ug, event_pk=event.id, mode="steps",
                     factor_version_id=factors.id)
    return event_id


def spend(rt: Runtime, who: Principal, points: int) -> None:
    redemptions.redeem(rt, who, {"redemption_id": f"r-{uuid.uuid4().hex[:20]}",
                                 "points": points})


def kinds(rt: Runtime, user_id: str) -> list[tuple[str, int]]:
    with rt.db.transaction() as s:
        return [(e.kind, e.points) for e in s.scalars(
            select(LedgerEntry).where(LedgerEntry.user_id == user_id)
            .order_by(LedgerEntry.seq))]


def days_later(days: int) -> datetime:
    return utcnow() + timedelta(days=days)


def test_points_expire_by_the_policy_in_force_when_earned_oldest_spent_first(
        rt: Runtime) -> None:
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 30,
                                                 "reason": "test: 30 days"})
    earn(rt, who, 100)  # expires in 30 days
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 60,
                                                 "reason": "test: 60 days"})
    earn(rt, who, 50)  # expires in 60 days
    spend(rt, who, 70)  # the oldest first: 70 of the 100
    assert expiring.expire_due(rt, days_later(29)).expired_points == 0
    first = expiring.expire_due(rt, days_later(31))
    assert (first.expired_points, first.expired_accounts) == (30, 1)
    assert expiring.expire_due(rt, days_later(31)).expired_points == 0  # never twice
    assert expiring.expire_due(rt, days_later(61)).expired_points == 50
    assert kinds(rt, who.sub) == [("earn", 100), ("earn", 50), ("redeem", -70),
                                  ("expiry", -30), ("expiry", -50)]
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_a_refund_brings_points_back_with_their_own_date(rt: Runtime) -> None:
    """Cancelling a reward never makes points live longer: back into the lots they came
    from, expired at the next run when their date has passed."""
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 10,
                                                 "reason": "test"})
    earn(rt, who, 40)
    reward_id = reward_data.approved(rt, city=city, price_points=30)
    reward_redemptions.redeem(rt, who, {"redemption_id": "r-1", "reward_id": reward_id,
                                        "quantity": 1})
    assert expiring.expire_due(rt, days_later(11)).expired_points == 10
    reward_redemptions.cancel(rt, who, "r-1")
    assert expiring.expire_due(rt, days_later(11)).expired_points == 30
    assert [k for k, _ in kinds(rt, who.sub)] == ["earn", "redeem", "expiry", "adjustment",
                                                  "expiry"]
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_held_points_never_expire_and_come_back_with_their_own_date(rt: Runtime) -> None:
    """A physical good's points held past their date are not expired while held; shipped,
    they are spent; released, they are back in their lot and expire at the next run."""
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 10,
                                                 "reason": "test"})
    earn(rt, who, 100)
    owner = reward_data.merchant()
    good = reward_data.approved(rt, owner, kind="physical", city=city, price_points=30,
                                per_user_limit=5)
    for rid in ("kept", "shipped"):
        reward_redemptions.redeem(rt, who, {"redemption_id": rid, "reward_id": good,
                                            "quantity": 1})
    assert expiring.expire_due(rt, days_later(11)).expired_points == 40  # not the 60 held
    with rt.db.transaction() as s:
        made = {r: s.scalars(select(RewardRedemption.id).join(
            Redemption, Redemption.id == RewardRedemption.redemption_pk).where(
            Redemption.user_id == who.sub, Redemption.redemption_id == r)).one()
            for r in ("kept", "shipped")}
    reward_redemptions.ship(rt, owner, made["shipped"], "shipped")
    assert expiring.expire_due(rt, days_later(12)).expired_points == 0
    reward_redemptions.cancel(rt, who, "kept")
    assert expiring.expire_due(rt, days_later(12)).expired_points == 30
    assert kinds(rt, who.sub) == [("earn", 100), ("hold", 0), ("hold", 0), ("expiry", -40),
                                  ("redeem", -30), ("release", 0), ("expiry", -30)]
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_a_reversal_of_expired_points_leaves_a_debt_repaid_first(rt: Runtime) -> None:
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 5,
                                                 "reason": "test"})
    fraud = earn(rt, who, 20)
    assert expiring.expire_due(rt, days_later(6)).expired_points == 20
    reversals.reverse_event(rt, ADMIN, who.sub, fraud, "fraud found later")
    earn(rt, who, 25)  # repays the debt of 20 first; 5 left to expire
    assert expiring.expire_due(rt, days_later(6)).expired_points == 5
    with rt.db.transaction() as s:
        state = s.get(ExpiryState, who.sub)
        assert state is not None and state.lots["debt"] == 0
    assert list(verification.verify(rt.db, user_ids=[who.sub], tz=rt.config.tz)) == []


def test_the_account_shows_points_expiring_soon(client: FlaskClient, rt: Runtime,
                                                token: Any) -> None:
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    auth = {"Authorization": f"Bearer {token(who.sub, city=city)}"}
    earn(rt, who, 10)  # before any policy: never expires
    assert client.get("/v1/me/account", headers=auth).json["expiring_soon"] == []
    admin = {"Authorization": f"Bearer {token('ops', role='admin')}"}
    r = client.put(f"/v1/admin/expiry-policies/{city}", headers=admin,
                   json={"rule": "days", "amount": 7, "reason": "a week"})
    assert r.status_code == 200, r.json
    earn(rt, who, 12)
    soon = client.get("/v1/me/account", headers=auth).json["expiring_soon"]
    assert [s["points"] for s in soon] == [12]
    assert soon[0]["expires_on"] > soon[0]["last_valid_day"]
    shown = client.get(f"/v1/admin/expiry-policies/{city}", headers=admin).json
    assert shown["current"]["rule"] == "days" and len(shown["history"]) == 1
    with rt.db.transaction() as s:
        audit = s.scalars(select(AuditRecord).where(AuditRecord.target == f"expiry:{city}")
                          ).one()
        assert audit.action == "expiry_policy.set" and audit.after is not None
        assert audit.after["amount"] == 7 and audit.reason == "a week"


@pytest.mark.parametrize("body, field", [
    ({"rule": "days", "amount": 3653, "reason": "too long"}, "amount"),
    ({"rule": "months", "amount": 121, "reason": "too long"}, "amount"),
    ({"rule": "months", "reason": "no amount"}, "amount"),
    ({"rule": "weeks", "amount": 2, "reason": "unknown"}, "rule"),
    ({"rule": "year_end"}, "reason"),
])
def test_a_policy_beyond_ten_years_or_malformed_is_refused(
        client: FlaskClient, token: Any, body: dict[str, Any], field: str) -> None:
    admin = {"Authorization": f"Bearer {token('ops', role='admin')}"}
    r = client.put(f"/v1/admin/expiry-policies/{new_city()}", headers=admin, json=body)
    assert r.status_code == 422 and field in r.json["error"]["fields"], r.json


def test_only_admins_set_policies(client: FlaskClient, token: Any) -> None:
    r = client.put("/v1/admin/expiry-policies/shenzhen", headers={
        "Authorization": f"Bearer {token('u1')}"}, json={"rule": "year_end", "reason": "x"})
    assert r.status_code == 403


def test_the_job_during_redemptions_and_reversals_keeps_every_invariant(
        rt: Runtime, is_postgres: bool) -> None:
    """The job, run again and again (and twice at once) with every lot due, while users
    spend and admins reverse: each point is spent or expired once, never below zero where
    a redemption is concerned, and verify-ledger passes."""
    city = new_city()
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 1,
                                                 "reason": "test"})
    n_users = 30 if is_postgres else 6
    users = [Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city) for _ in range(n_users)]
    events = {u.sub: [earn(rt, u, 20 + i) for i in range(6)] for u in users}
    later = days_later(2)
    stop = threading.Event()
    runs: list[expiring.Run] = []

    def job() -> None:
        while not stop.is_set():
            runs.append(expiring.expire_due(rt, later, batch=7))

    def user_side(who: Principal) -> None:
        for i, event_id in enumerate(events[who.sub]):
            try:
                spend(rt, who, 15)
            except ServiceError as exc:
                assert exc.code == "insufficient_points"
            if i % 2:
                reversals.reverse_event(rt, ADMIN, who.sub, event_id, "test")
            earn(rt, who, 5)

    with ThreadPoolExecutor(max_workers=6) as pool:
        jobs = [pool.submit(job), pool.submit(job)]
        list(pool.map(user_side, users))
        stop.set()
        for j in jobs:
            j.result()
    final = expiring.expire_due(rt, later)
    assert expiring.expire_due(rt, later).expired_points == 0  # idempotent
    ids = [u.sub for u in users]
    assert list(verification.verify(rt.db, user_ids=ids, tz=rt.config.tz)) == []
    with rt.db.transaction() as s:
        expired = -int(s.scalar(select(func.sum(LedgerEntry.points)).where(
            LedgerEntry.user_id.in_(ids), LedgerEntry.kind == "expiry")) or 0)
        credited = int(s.scalar(select(func.sum(LedgerEntry.points)).where(
            LedgerEntry.user_id.in_(ids), LedgerEntry.kind == "earn")) or 0)
        left = s.scalars(select(ExpiryState).where(ExpiryState.user_id.in_(ids))).all()
    assert sum(r.expired_points for r in runs) + final.expired_points == expired
    assert 0 < expired <= credited
    # Every lot was due: nothing is left but debts.
    assert all(state.lots["lots"] == {} for state in left) and len(left) == n_users


def test_the_job_during_holds_shipping_cancelling_and_reversals_keeps_every_invariant(
        rt: Runtime, is_postgres: bool) -> None:
    """The job, run again and again with every lot due, while users hold goods' points,
    merchants ship them, users cancel and admins reverse: held points are never expired,
    each is spent or released once, and verify-ledger passes."""
    city = new_city()
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 1,
                                                 "reason": "test"})
    owner = reward_data.merchant()
    good = reward_data.approved(rt, owner, kind="physical", city=city, price_points=15,
                                stock=1000, per_user_limit=1000)
    n_users = 20 if is_postgres else 4
    users = [Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city) for _ in range(n_users)]
    events = {u.sub: [earn(rt, u, 20 + i) for i in range(4)] for u in users}
    later = days_later(2)
    stop = threading.Event()

    def job() -> None:
        while not stop.is_set():
            expiring.expire_due(rt, later, batch=5)

    # Each user holds four goods (60 of their 86 points) before the job starts, so what
    # follows does not depend on how the threads interleave: the first good is cancelled,
    # the second shipped (its reversal leaves 45 held - 21 of debt, which covers 15).
    for who in users:
        for i in range(4):
            reward_redemptions.redeem(rt, who, {"redemption_id": f"g{i}", "reward_id": good,
                                                "quantity": 1})

    def user_side(who: Principal) -> list[str]:
        out = []
        for i, event_id in enumerate(events[who.sub]):
            if i % 2:
                reversals.reverse_event(rt, ADMIN, who.sub, event_id, "test")
            with rt.db.transaction() as s:
                made = s.scalars(select(RewardRedemption.id).join(
                    Redemption, Redemption.id == RewardRedemption.redemption_pk).where(
                    Redemption.user_id == who.sub, Redemption.redemption_id == f"g{i}")).one()
            try:
                if i % 3:
                    reward_redemptions.ship(rt, owner, made, "shipped")
                    out.append("shipped")
                    continue
            except ServiceError as exc:
                assert exc.code == "hold_not_covered"
            reward_redemptions.cancel(rt, who, f"g{i}")
            out.append("cancelled")
        return out

    with ThreadPoolExecutor(max_workers=6) as pool:
        jobs = [pool.submit(job), pool.submit(job)]
        outcomes = [o for chunk in pool.map(user_side, users) for o in chunk]
        stop.set()
        for j in jobs:
            j.result()
    expiring.expire_due(rt, later)
    assert outcomes[:2] == ["cancelled", "shipped"] and len(outcomes) == 4 * n_users
    ids = [u.sub for u in users]
    assert list(verification.verify(rt.db, user_ids=ids, tz=rt.config.tz)) == []
    with rt.db.transaction() as s:
        per_kind = dict(s.execute(select(LedgerEntry.kind, func.count()).where(
            LedgerEntry.user_id.in_(ids)).group_by(LedgerEntry.kind)).all())
        open_holds = s.scalar(select(func.count()).select_from(RewardRedemption).where(
            RewardRedemption.user_id.in_(ids), RewardRedemption.state == "pending"))
    assert open_holds == 0
    assert per_kind["hold"] == outcomes.count("shipped") + outcomes.count("cancelled")
    assert per_kind["redeem"] == outcomes.count("shipped")
    assert per_kind["release"] == outcomes.count("cancelled")


def test_verify_ledger_names_an_expiry_the_policy_does_not_explain(isolated_app: Flask) -> None:
    """An expiry of points not yet due (a job with a wrong clock, a bug) is named, as is
    a stored lot state that differs from the ledger. On a database of its own: the damage
    would be named by every later verify-ledger of the suite's shared database."""
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 30,
                                                 "reason": "test"})
    earn(rt, who, 40)
    expiring.expire_due(rt, days_later(1))  # folds; nothing due
    with rt.db.transaction() as session:
        account = entries.lock_account(session, who.sub, city)
        entries.expire(session, account, points=15, now=utcnow())
        state = session.get(ExpiryState, who.sub)
        assert state is not None
        state.lots = {**state.lots, "lots": {"2099-01-01": 40}}
    problems = [str(p) for p in verification.verify(rt.db, user_ids=[who.sub],
                                                    tz=rt.config.tz)]
    assert any("expiry of 15 points but 0 were due" in p for p in problems), problems
    assert any("expiry state of" in p for p in problems), problems


def test_the_points_export_reports_spent_refunded_and_expired_points_per_period(
        client: FlaskClient, rt: Runtime, token: Any) -> None:
    """Shenzhen's upstream report: what was spent (to cancel there), refunded, expired."""
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 1,
                                                 "reason": "test"})
    earn(rt, who, 50)
    spend(rt, who, 20)
    reward_id = reward_data.approved(rt, city=city, price_points=10)
    reward_redemptions.redeem(rt, who, {"redemption_id": "r-x", "reward_id": reward_id,
                                        "quantity": 1})
    reward_redemptions.cancel(rt, who, "r-x")
    expiring.expire_due(rt, utcnow() + timedelta(days=2))  # the 30 points left
    today = utcnow().astimezone(rt.config.tz).date()
    partner = {"Authorization": f"Bearer {token('bureau', role='partner', city=city)}"}
    r = client.get("/v1/reports/points", headers=partner, query_string={
        "from": (today - timedelta(days=1)).isoformat(),
        "to": (today + timedelta(days=3)).isoformat(), "granularity": "month"})
    assert r.status_code == 200, r.json
    assert r.json["totals"] == {
        "earned": 50, "redeemed": 30, "refunded": 10, "net_spent": 20, "expired": 30,
        "lapsed": 0, "reversed": 0, "entries": 5, "outstanding": 0, "expiring": 0}
    assert sum(item["expired"] for item in r.json["items"]) == 30
    assert [item["outstanding"] for item in r.json["items"]] == [0]  # one month

    csv = client.get("/v1/reports/points", headers=partner, query_string={
        "from": today.isoformat(), "to": today.isoformat(), "format": "csv"})
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert csv.data.decode().splitlines()[0].startswith("period,earned,redeemed,refunded")
    other = client.get("/v1/reports/points", headers=partner, query_string={
        "from": today.isoformat(), "to": today.isoformat(), "city": "shenzhen"})
    assert other.status_code == 403


def test_the_points_export_shows_outstanding_and_expiring_points_per_day(
        client: FlaskClient, rt: Runtime, token: Any) -> None:
    city = new_city()
    who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 3,
                                                 "reason": "test"})
    earn(rt, who, 40)
    spend(rt, who, 15)
    expiring.expire_due(rt, utcnow())  # folds the lots: 25 points due in 3 days
    today = utcnow().astimezone(rt.config.tz).date()
    admin = {"Authorization": f"Bearer {token('ops', role='admin')}"}
    r = client.get("/v1/reports/points", headers=admin, query_string={
        "from": today.isoformat(), "to": (today + timedelta(days=4)).isoformat(),
        "city": city})
    assert r.status_code == 200, r.json
    by_day = {item["period"]: item for item in r.json["items"]}
    assert by_day[today.isoformat()]["outstanding"] == 25
    assert by_day[(today + timedelta(days=3)).isoformat()]["expiring"] == 25
    assert r.json["totals"]["expiring"] == 25 and r.json["totals"]["outstanding"] == 25
