"""Campaigns (活动) through ingest, reversal and the API: progress counted in the crediting
transaction, the bonus as its own ledger kind, never grams, taken back by a reversal, and
a budget never exceeded by concurrent finishers (on PostgreSQL: 50 at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from flask.testing import FlaskClient
from sqlalchemy import func, inspect, select

from carbon_credits.antifraud import reviews
from carbon_credits.campaigns import service
from carbon_credits.ledger import verification
from carbon_credits.runtime import Runtime
from carbon_credits.setup import MIGRATIONS
from carbon_credits.storage.models import (
    Account,
    AuditRecord,
    Campaign,
    CampaignProgress,
    Event,
    LedgerEntry,
)
from carbon_credits.tokens import Principal
from tests.conftest import app_on_own_database
from tests.integration.test_rollups import TODAY, YESTERDAY, metro, post, seed_city

ADMIN = Principal("ops", "admin", None)
Token = Callable[..., str]


def campaign(rt: Runtime, city: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"c-{city}", "city": city, "mode": "metro",
        "starts_on": YESTERDAY, "ends_on": TODAY + timedelta(days=30), "goal_events": 3,
        "bonus_points": 50, "budget_points": 1000, "title_zh": "地铁挑战",
        "title_en": "Metro challenge", "reason": "November campaign"}
    data.update(overrides)
    return service.create(rt, ADMIN, data)


def trips(rt: Runtime, city: str, user: str, n: int, day: date = TODAY,
          first_hour: int = 6) -> list[dict[str, Any]]:
    return [post(rt, city, user, metro(day, first_hour + i)) for i in range(n)]


def progress(rt: Runtime, user: str, campaign_id: str) -> CampaignProgress | None:
    with rt.db.transaction() as s:
        row = s.get(CampaignProgress, (user, campaign_id))
        if row is not None:
            s.expunge(row)
        return row


def bonus_entries(rt: Runtime, user: str) -> list[int]:
    with rt.db.transaction() as s:
        return list(s.scalars(select(LedgerEntry.points).where(
            LedgerEntry.user_id == user, LedgerEntry.kind == "bonus")
            .order_by(LedgerEntry.seq)))


def balance(rt: Runtime, user: str) -> int:
    with rt.db.transaction() as s:
        return int(s.scalar(select(Account.balance_points).where(Account.user_id == user))
                   or 0)


def test_an_admin_runs_a_campaign_and_a_user_completes_it(
        rt: Runtime, client: FlaskClient, token: Token, user_id: str) -> None:
    city = seed_city(rt, "camp")
    admin = {"Authorization": f"Bearer {token('ops', role='admin', city=None)}"}
    body = {"id": f"metro-{city}", "city": city, "mode": "metro",
            "starts_on": YESTERDAY.isoformat(),
            "ends_on": (TODAY + timedelta(days=30)).isoformat(), "goal_events": 3,
            "bonus_points": 50, "budget_points": 1000, "title_zh": "地铁挑战",
            "title_en": "Metro challenge", "reason": "a campaign for this test"}
    r = client.post("/v1/admin/campaigns", json=body, headers=admin)
    assert r.status_code == 201, r.json
    assert r.json["spent_points"] == 0
    with rt.db.transaction() as s:
        audited = s.scalars(select(AuditRecord).where(
            AuditRecord.target == f"campaign:metro-{city}")).one()
        assert audited.action == "campaign.create" and audited.actor == "ops"

    credited = trips(rt, city, user_id, 2)
    me = {"Authorization": f"Bearer {token(user_id, city=city)}"}
    mine = client.get("/v1/me/campaigns", headers=me).json["items"]
    assert [(c["id"], c["events"], c["state"]) for c in mine] == [
        (f"metro-{city}", 2, "open")]
    assert bonus_entries(rt, user_id) == []

    credited += trips(rt, city, user_id, 1, first_hour=12)
    mine = client.get("/v1/me/campaigns", headers=me).json["items"]
    assert mine[0]["state"] == "completed" and mine[0]["bonus_points_held"] == 50
    assert bonus_entries(rt, user_id) == [50]
    earned = sum(e["points"] for e in credited)
    assert balance(rt, user_id) == earned + 50
    ledger = client.get("/v1/me/ledger", headers=me).json["items"]
    assert ledger[0]["kind"] == "bonus" and ledger[0]["points"] == 50
    assert ledger[0]["grams"] == 0
    # More trips count but pay nothing more: one bonus per user per campaign.
    trips(rt, city, user_id, 1, first_hour=17)
    assert bonus_entries(rt, user_id) == [50]
    listed = client.get(f"/v1/admin/campaigns?city={city}", headers=admin).json["items"]
    assert listed[0]["spent_points"] == 50
    assert (listed[0]["completed_users"], listed[0]["unfunded_users"]) == (1, 0)
    assert list(verification.verify(rt.db)) == []


def test_bonus_points_are_never_grams_in_reports_or_the_mrv_export(
        rt: Runtime, client: FlaskClient, token: Token, user_id: str) -> None:
    city = seed_city(rt, "camp")
    campaign(rt, city, goal_events=1, bonus_points=700)
    credited = trips(rt, city, user_id, 2)
    assert bonus_entries(rt, user_id) == [700]
    grams_ug = sum(e["grams"] for e in credited)
    with rt.db.transaction() as s:
        stored_ug = s.scalar(select(func.sum(Event.credited_ug)).where(Event.city == city))
        account = s.get(Account, user_id)
        assert account is not None
        lifetime_ug = account.lifetime_ug
    assert stored_ug is not None and stored_ug // 10**6 == grams_ug
    assert lifetime_ug == stored_ug  # the account's grams are the events', bonus aside
    admin = {"Authorization": f"Bearer {token('ops', role='admin', city=None)}"}
    period = f"from={YESTERDAY}&to={TODAY}&city={city}"
    reduction = client.get(f"/v1/reports/reduction?{period}", headers=admin).json
    assert reduction["totals"]["ug"] == stored_ug
    mrv = client.get(f"/v1/reports/verification?{period}", headers=admin).json
    assert sum(row["credited_ug"] for row in mrv["rows"]) == stored_ug
    account_view = client.get("/v1/me/account", headers={
        "Authorization": f"Bearer {token(user_id, city=city)}"}).json
    assert account_view["lifetime_grams"] == stored_ug // 10**6
    assert account_view["balance"] == sum(e["points"] for e in credited) + 700


def test_reversing_a_counted_event_below_the_goal_takes_the_bonus_back(
        rt: Runtime, client: FlaskClient, token: Token, user_id: str) -> None:
    city = seed_city(rt, "camp")
    made = campaign(rt, city)
    credited = trips(rt, city, user_id, 3)
    before = balance(rt, user_id)
    admin = {"Authorization": f"Bearer {token('ops', role='admin', city=None)}"}
    r = client.post(f"/v1/admin/users/{user_id}/events/{credited[0]['event_id']}/reversal",
                    json={"reason": "fraud found"}, headers=admin)
    assert r.status_code == 201, r.json
    held = progress(rt, user_id, made["id"])
    assert held is not None
    assert (held.events, held.state, held.bonus_points) == (2, "open", 0)
    assert bonus_entries(rt, user_id) == [50, -50]
    assert balance(rt, user_id) == before - credited[0]["points"] - 50
    with rt.db.transaction() as s:
        assert s.get(Campaign, made["id"]).spent_points == 0  # type: ignore[union-attr]
    assert list(verification.verify(rt.db)) == []
    # A later counted event completes it again: one bonus held at a time.
    trips(rt, city, user_id, 1, first_hour=15)
    assert bonus_entries(rt, user_id) == [50, -50, 50]
    assert list(verification.verify(rt.db)) == []


def test_only_events_of_the_mode_city_and_window_count_and_an_ended_campaign_stops(
        rt: Runtime, user_id: str) -> None:
    city = seed_city(rt, "camp")
    later = campaign(rt, city, id=f"later-{city}", starts_on=TODAY + timedelta(days=1),
                     goal_events=1)
    buses = campaign(rt, city, id=f"bus-{city}", mode="bus", goal_events=1)
    ended = campaign(rt, city, id=f"ended-{city}", goal_events=1)
    service.end(rt, ADMIN, ended["id"], "stopped early")
    trips(rt, city, user_id, 2)
    for made in (later, buses, ended):
        assert progress(rt, user_id, made["id"]) is None
    assert bonus_entries(rt, user_id) == []


def test_campaign_input_is_checked_and_admin_only(
        client: FlaskClient, token: Token, rt: Runtime) -> None:
    city = seed_city(rt, "camp")
    admin = {"Authorization": f"Bearer {token('ops', role='admin', city=None)}"}
    body = {"id": f"x-{city}", "city": city, "starts_on": TODAY.isoformat(),
            "ends_on": TODAY.isoformat(), "goal_events": 1, "bonus_points": 10,
            "budget_points": 5, "title_zh": "挑战", "title_en": "Challenge",
            "reason": "checking input"}
    r = client.post("/v1/admin/campaigns", json=body, headers=admin)
    assert r.status_code == 422 and "budget_points" in r.json["error"]["fields"]
    r = client.post("/v1/admin/campaigns", json={**body, "goal_events": 0}, headers=admin)
    assert r.status_code == 422 and "goal_events" in r.json["error"]["fields"]
    user = {"Authorization": f"Bearer {token('someone', city=city)}"}
    assert client.post("/v1/admin/campaigns", json={**body, "budget_points": 50},
                       headers=user).status_code == 403
    assert client.post("/v1/admin/campaigns", json={**body, "budget_points": 50},
                       headers=admin).status_code == 201
    r = client.post("/v1/admin/campaigns", json={**body, "budget_points": 50}, headers=admin)
    assert r.status_code == 409 and r.json["error"]["code"] == "campaign_exists"
    with rt.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)
                        .where(Campaign.city == city)) == 1


def test_a_budget_is_never_exceeded_by_concurrent_finishers(
        lenient_rt: Runtime, is_postgres: bool, user_id: str) -> None:
    rt = lenient_rt
    city = seed_city(rt, "camp")
    finishers, paid = (50, 20) if is_postgres else (12, 5)
    made = campaign(rt, city, goal_events=1, bonus_points=10, budget_points=10 * paid)
    users = [f"{user_id}-{i}" for i in range(finishers)]
    start = threading.Barrier(finishers)

    def finish(user: str) -> dict[str, Any]:
        start.wait()
        return post(rt, city, user, metro(TODAY, 8))

    with ThreadPoolExecutor(max_workers=finishers) as pool:
        answers = list(pool.map(finish, users))
    assert all(a["status"] == "credited" for a in answers)
    with rt.db.transaction() as s:
        spent = s.get(Campaign, made["id"]).spent_points  # type: ignore[union-attr]
        states = {state: n for state, n in s.execute(
            select(CampaignProgress.state, func.count())
            .where(CampaignProgress.campaign_id == made["id"])
            .group_by(CampaignProgress.state))}
        bonus = s.scalar(select(func.sum(LedgerEntry.points)).where(
            LedgerEntry.kind == "bonus", LedgerEntry.user_id.in_(users)))
    assert spent == bonus == 10 * paid
    assert states == {"completed": paid, "unfunded": finishers - paid}
    assert list(verification.verify(rt.db)) == []


def test_a_held_event_counts_when_an_admin_approves_it(rt: Runtime, user_id: str) -> None:
    city = seed_city(rt, "camp")
    made = campaign(rt, city, goal_events=2)
    trips(rt, city, user_id, 1)
    reviews.set_frozen(rt, ADMIN, user_id, True, "hold the next one")
    held = trips(rt, city, user_id, 1, first_hour=12)[0]
    assert held["status"] == "held"
    counted = progress(rt, user_id, made["id"])
    assert counted is not None and counted.events == 1
    reviews.set_frozen(rt, ADMIN, user_id, False, "checked")
    approved = reviews.decide(rt, ADMIN, user_id, held["event_id"], True, "a real trip")
    assert approved["status"] == "credited"
    counted = progress(rt, user_id, made["id"])
    assert counted is not None and (counted.events, counted.state) == (2, "completed")
    assert bonus_entries(rt, user_id) == [50]
    assert list(verification.verify(rt.db)) == []


def test_the_migration_goes_down_and_up_again(make_config: Callable[..., Any],
                                              tmp_path: Path) -> None:
    """0009 down (the ledger's kind CHECK without 'bonus', the tables gone) and up again,
    on a database of its own."""
    with app_on_own_database(make_config, tmp_path) as app:
        db = app.extensions["carbon_credits"].db
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008_keyed_chain")
        with db.engine.connect() as conn:
            assert "campaigns" not in inspect(conn).get_table_names()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        with db.engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
        assert {"campaigns", "campaign_bonuses", "webhook_deliveries"} <= names
