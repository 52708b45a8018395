"""GET /v1/me/account and /v1/me/ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from tests import factories


def test_ledger_pages_newest_first_without_gaps_or_repeats(
        client: FlaskClient, auth: dict[str, str]) -> None:
    posted = []
    for i in range(7):
        body = factories.metro(start=factories.today_at(6) + timedelta(minutes=30 * i))
        client.post("/v1/events", json=body, headers=auth)
        posted.append(body["event_id"])
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get("/v1/me/ledger" + query, headers=auth).json
        seen += [item["event_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(posted))


def test_ledger_shows_redemptions_with_their_id_and_running_balance(
        client: FlaskClient, auth: dict[str, str]) -> None:
    earned = client.post("/v1/events", json=factories.metro(), headers=auth).json["points"]
    client.post("/v1/me/redemptions", json={"redemption_id": "coffee", "points": 50},
                headers=auth)
    items = client.get("/v1/me/ledger", headers=auth).json["items"]
    assert items[0]["kind"] == "redeem" and items[0]["redemption_id"] == "coffee"
    assert items[0]["points"] == -50 and items[0]["balance_after"] == earned - 50
    assert items[1]["balance_after"] == earned


def test_account_shows_todays_use_of_each_cap(client: FlaskClient,
                                              auth: dict[str, str]) -> None:
    client.post("/v1/events", json=factories.metro(), headers=auth)
    client.post("/v1/events", json=factories.steps(5000), headers=auth)
    account = client.get("/v1/me/account", headers=auth).json
    today = account["today"]
    assert today["metro"] == {"points": 376, "grams": 376, "events": 1, "cap": None}
    assert today["steps"] == {"points": 100, "grams": 100, "events": 1, "cap": 296}
    assert today["total"] == {"points": 476, "grams": 476, "events": 2, "cap": 5000}
    assert account["balance"] == account["lifetime_points"] == 476


def test_a_new_user_has_an_empty_account(client: FlaskClient, auth: dict[str, str]) -> None:
    account = client.get("/v1/me/account", headers=auth).json
    assert (account["balance"], account["lifetime_grams"]) == (0, 0)
    assert client.get("/v1/me/ledger", headers=auth).json == {"items": [], "next_cursor": None}


def test_account_shows_a_past_days_use_under_day_with_date(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """Yesterday's trips posted this morning: ``today`` stays today's (zero), ``day`` with
    ``date=`` yesterday shows them."""
    yesterday = factories.NOW.date() - timedelta(days=1)
    client.post("/v1/events", json=factories.metro(start=factories.today_at(8)
                                                    - timedelta(days=1)), headers=auth)
    client.post("/v1/events", json=factories.steps(5000, date=yesterday.isoformat()),
                headers=auth)
    plain = client.get("/v1/me/account", headers=auth).json
    assert plain["local_date"] == factories.NOW.date().isoformat()
    assert plain["today"]["total"] == {"points": 0, "grams": 0, "events": 0, "cap": 5000}
    assert plain["day"] == {"local_date": plain["local_date"], "usage": plain["today"]}

    r = client.get(f"/v1/me/account?date={yesterday.isoformat()}", headers=auth)
    assert r.status_code == 200, r.json
    account = r.json
    assert account["local_date"] == plain["local_date"] and account["today"] == plain["today"]
    day = account["day"]
    assert day["local_date"] == yesterday.isoformat()
    assert day["usage"]["metro"] == {"points": 376, "grams": 376, "events": 1, "cap": None}
    assert day["usage"]["steps"] == {"points": 100, "grams": 100, "events": 1, "cap": 296}
    assert day["usage"]["total"] == {"points": 476, "grams": 476, "events": 2, "cap": 5000}
    assert account["balance"] == 476


def test_date_may_go_back_to_the_edge_of_the_backfill_window(
        client: FlaskClient, auth: dict[str, str]) -> None:
    edge = factories.NOW.date() - timedelta(days=30)  # BACKFILL_DAYS defaults to 30
    r = client.get(f"/v1/me/account?date={edge.isoformat()}", headers=auth)
    assert r.status_code == 200, r.json
    assert r.json["day"]["local_date"] == edge.isoformat()
    assert r.json["day"]["usage"]["total"]["events"] == 0


@pytest.mark.parametrize("value", [
    (factories.NOW.date() + timedelta(days=1)).isoformat(),   # the future
    (factories.NOW.date() - timedelta(days=31)).isoformat(),  # past the backfill window
    "2026-13-01", "yesterday", "",
])
def test_a_date_outside_the_backfill_window_or_malformed_is_422_naming_it(
        client: FlaskClient, auth: dict[str, str], value: str) -> None:
    r = client.get("/v1/me/account", query_string={"date": value}, headers=auth)
    assert r.status_code == 422, r.json
    assert "date" in r.json["error"]["fields"], r.json
