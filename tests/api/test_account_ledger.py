"""GET /v1/me/account and /v1/me/ledger."""

from __future__ import annotations

from datetime import timedelta

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
