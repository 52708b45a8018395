"""POST /v1/events/batch: per-item results, partial success, per-item idempotency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from carbon_credits.ingest import events, intake
from tests import factories


def test_one_bad_item_does_not_sink_the_others(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    good = factories.metro()
    items = [
        good,
        {**factories.metro(), "exit_station_id": "atlantis"},
        {"event_id": "x", "mode": "plane"},
        "not an object",
        good,  # the same event twice in one batch: the second is a replay
        factories.steps(1000),
    ]
    r = client.post("/v1/events/batch", json={"events": items}, headers=auth)
    assert r.status_code == 200, r.json
    results = r.json["results"]
    assert [x["status"] for x in results] == [201, 422, 422, 422, 200, 201]
    assert results[1]["error"]["fields"] == {
        "exit_station_id": ["unknown metro station 'atlantis' in shenzhen network"]}
    assert "mode" in results[2]["error"]["fields"]
    assert results[4]["result"] == results[0]["result"]
    account = client.get("/v1/me/account", headers=auth).json
    assert account["balance"] == results[0]["result"]["points"] + results[5]["result"]["points"]


def test_a_replayed_batch_credits_nothing_more(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    items = [factories.metro(start=factories.today_at(6) + timedelta(minutes=i))
             for i in range(5)]
    first = client.post("/v1/events/batch", json={"events": items}, headers=auth).json
    balance = client.get("/v1/me/account", headers=auth).json["balance"]
    again = client.post("/v1/events/batch", json={"events": items}, headers=auth).json
    assert [x["status"] for x in again["results"]] == [200] * 5
    assert [x["result"] for x in again["results"]] == [x["result"] for x in first["results"]]
    assert client.get("/v1/me/account", headers=auth).json["balance"] == balance


def test_a_full_batch_of_500_is_accepted(lenient_app: Flask, auth: dict[str, str]) -> None:
    # 500 step posts in one instant would be held as too fast: this tests the batch itself.
    client = lenient_app.test_client()
    items = [factories.steps(100 * (i + 1)) for i in range(500)]
    r = client.post("/v1/events/batch", json={"events": items}, headers=auth)
    assert r.status_code == 200
    assert all(x["status"] == 201 for x in r.json["results"])
    # Cumulative steps: 50,000 in all = 1000 g, capped at the 296 g steps cap.
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 296


def test_batches_over_500_or_empty_are_refused_whole(client: FlaskClient,
                                                     auth: dict[str, str]) -> None:
    for items in ([factories.steps(i) for i in range(501)], []):
        r = client.post("/v1/events/batch", json={"events": items}, headers=auth)
        assert r.status_code == 422
        assert "events" in r.json["error"]["fields"]
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 0


def test_a_batch_cut_off_by_a_database_failure_keeps_its_committed_chunks(
        client: FlaskClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Items commit in chunks: a failure in the second chunk leaves the first applied and
    nothing of the second; the client's retry of the whole batch replays the first chunk and
    applies the rest, each event exactly once."""
    monkeypatch.setattr(events, "ITEMS_PER_TRANSACTION", 2)
    items = [factories.metro(start=factories.today_at(6) + timedelta(minutes=40 * i))
             for i in range(4)]
    real = intake._write

    def failing(session: Any, book: Any) -> Any:
        if any(event_id == items[3]["event_id"] for _user, event_id in book.fresh):
            raise OperationalError("INSERT ...", {}, Exception("server closed the connection"))
        return real(session, book)

    monkeypatch.setattr(intake, "_write", failing)
    r = client.post("/v1/events/batch", json={"events": items}, headers=auth)
    assert r.status_code == 503 and "Retry-After" in r.headers
    stored = [client.get(f"/v1/events/{x['event_id']}", headers=auth).status_code
              for x in items]
    assert stored == [200, 200, 404, 404]

    monkeypatch.setattr(intake, "_write", real)
    again = client.post("/v1/events/batch", json={"events": items}, headers=auth)
    assert [x["status"] for x in again.json["results"]] == [200, 200, 201, 201]
    balance = client.get("/v1/me/account", headers=auth).json["balance"]
    assert balance == sum(x["result"]["points"] for x in again.json["results"])
