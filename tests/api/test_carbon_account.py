"""GET /v1/me/carbon-account: the carbon account's first screen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from carbon_credits.runtime import Runtime
from tests import factories


@pytest.fixture
def admin(token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('account-admin', role='admin')}"}


def _post(client: FlaskClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/events", json=body, headers=auth)
    assert r.status_code == 201, r.json
    return dict(r.json)


def test_a_new_user_sees_an_empty_account_with_full_trends(
        client: FlaskClient, auth: dict[str, str]) -> None:
    screen = client.get("/v1/me/carbon-account", headers=auth).json
    assert screen["lifetime"]["total"] == {"grams": 0, "points": 0, "events": 0,
                                           "distance_m": 0, "steps": 0}
    assert [len(screen["trends"][k]["start"]) for k in ("day", "week", "month")] == [30, 12, 12]
    assert screen["trends"]["day"]["start"][-1] == factories.NOW.date().isoformat()
    assert screen["trends"]["month"]["modes"]["metro"]["grams"] == [0] * 12
    assert screen["streak"] == {"days": 0, "first_day": None, "last_day": None,
                                "today_counted": False}
    assert {e["name"]: e["value"] for e in screen["equivalents"]} == {"trees": "0.0",
                                                                      "car_km": "0.0"}


def test_totals_trends_and_streak_follow_credited_events(
        client: FlaskClient, auth: dict[str, str]) -> None:
    today = factories.NOW.date()
    for days_ago in (0, 1, 2, 4):
        _post(client, auth, factories.metro(start=factories.today_at(8)
                                            - timedelta(days=days_ago)))
    _post(client, auth, factories.steps(5000))
    screen = client.get("/v1/me/carbon-account", headers=auth).json
    metro = screen["lifetime"]["modes"]["metro"]
    assert metro == {"grams": 4 * 376, "points": 4 * 376, "events": 4,
                     "distance_m": 4 * 8038}
    assert screen["lifetime"]["modes"]["steps"]["steps"] == 5000
    assert screen["lifetime"]["total"]["grams"] == 4 * 376 + 100
    assert screen["streak"] == {"days": 3, "first_day": (today - timedelta(days=2)).isoformat(),
                                "last_day": today.isoformat(), "today_counted": True}
    day = screen["trends"]["day"]
    assert day["modes"]["metro"]["events"][-1] == 1 and day["total"]["grams"][-1] == 476
    assert day["total"]["events"][-4] == 0  # three days ago: no trip
    assert day["modes"]["steps"]["steps"][-1] == 5000
    assert "steps" not in day["modes"]["metro"]
    assert sum(screen["trends"]["week"]["total"]["events"]) == 5
    assert sum(screen["trends"]["month"]["total"]["grams"]) == 4 * 376 + 100
    trees = next(e for e in screen["equivalents"] if e["name"] == "trees")
    assert trees["factor"]["unit"].startswith("g CO2") and "EPA" in trees["factor"]["source"]
    assert screen["balance"] == screen["lifetime_points"] == 4 * 376 + 100
    rank = screen["rank"]  # the city's boards, read with the screen
    assert rank["city"] == "shenzhen"
    assert rank["all"]["grams"] == 4 * 376 + 100 and 1 <= rank["all"]["rank"] <= rank["all"]["of"]
    assert rank["month"]["grams"] >= 376 and rank["month"]["rank"] >= 1
    # The district's boards too: the trips began at 罗湖 Luohu (steps have no district).
    assert rank["district"]["name"] == "luohu"
    assert rank["district"]["all"]["grams"] == 4 * 376
    assert 1 <= rank["district"]["month"]["rank"] <= rank["district"]["month"]["of"]


def test_the_screen_answers_without_rank_when_the_boards_cannot_be_read(
        client: FlaskClient, auth: dict[str, str], rt: Runtime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _post(client, auth, factories.metro(start=factories.today_at(8)))

    def down(*_args: Any) -> None:
        raise redis.exceptions.ConnectionError("the boards' Redis is down")

    monkeypatch.setattr(rt.leaderboards, "ranks", down)
    r = client.get("/v1/me/carbon-account", headers=auth)
    assert r.status_code == 200 and r.json["rank"] is None
    assert r.json["lifetime"]["modes"]["metro"]["events"] == 1


def test_a_reversal_takes_the_event_out_and_breaks_the_streak(
        client: FlaskClient, auth: dict[str, str], user_id: str,
        admin: dict[str, str]) -> None:
    bodies = [factories.metro(start=factories.today_at(8) - timedelta(days=d))
              for d in (0, 1, 2)]
    for body in bodies:
        _post(client, auth, body)
    r = client.post(f"/v1/admin/users/{user_id}/events/{bodies[1]['event_id']}/reversal",
                    json={"reason": "fraud"}, headers=admin)
    assert r.status_code == 201, r.json
    screen = client.get("/v1/me/carbon-account", headers=auth).json
    assert screen["lifetime"]["modes"]["metro"]["events"] == 2
    assert screen["streak"]["days"] == 1
    day = screen["trends"]["day"]["total"]
    assert [day[name][-2] for name in ("grams", "points", "events", "distance_m")] == [0] * 4


def test_the_screen_needs_a_user_token(client: FlaskClient) -> None:
    assert client.get("/v1/me/carbon-account").status_code == 401
