"""GET /v1/me/export (issue 23, PIPL): everything held about the user, and nothing of
anyone else's; rate-limited."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from carbon_credits.antifraud.ratelimit import parse_rate_limits
from carbon_credits.privacy import registry
from tests import factories
from tests.api.test_provider_records import bound, metro, post
from tests.conftest import TEST_RATE_LIMITS


@pytest.fixture
def gated_app(make_app: Callable[..., Flask], tmp_path: Any) -> Flask:
    return make_app(consent_required="all", redis_url=None, upload_dir=tmp_path / "up",
                    rate_limits=parse_rate_limits(TEST_RATE_LIMITS
                                                  + ";exports:user=100/3600"))


@pytest.fixture
def client(gated_app: Flask) -> FlaskClient:
    return gated_app.test_client()


def consent(client: FlaskClient, headers: dict[str, str]) -> None:
    r = client.post("/v1/me/consents", json={"notice_version": "2026-12"}, headers=headers)
    assert r.status_code == 201, r.json


def test_the_export_holds_the_users_data_and_nobody_elses(
        client: FlaskClient, token: Callable[..., str]) -> None:
    admin = {"Authorization": f"Bearer {token('ops-admin', 'admin')}"}
    _provider, key, (alice, bob) = bound(client, admin, token, ["metro"], refs=2)
    mine = {"Authorization": f"Bearer {token(alice)}", "X-Device-Id": "dev-alice-1"}
    theirs = {"Authorization": f"Bearer {token(bob)}", "X-Device-Id": "dev-bob-1"}
    for headers in (mine, theirs):
        consent(client, headers)
    trip, steps = factories.metro(), factories.steps(4000)
    other_trip = factories.metro(start=factories.today_at(12))
    for body, headers in ((trip, mine), (steps, mine), (other_trip, theirs)):
        r = client.post("/v1/events", json=body, headers=headers)
        assert r.status_code == 201, r.json
    assert post(client, key, [metro("rec-a", "card-0", hour=18),
                              metro("rec-b", "card-1", hour=19)]).status_code == 200

    r = client.get("/v1/me/export", headers=mine)
    assert r.status_code == 200, r.json
    body = r.json
    assert body["subject"] == alice
    assert set(body["holders"]) == set(registry.HOLDERS)
    data = body["data"]
    assert data["account"]["user"]["id"] == alice
    assert data["account"]["balance"]["balance_points"] > 0
    events = {e["event_id"]: e for e in data["events"]}
    assert set(events) == {trip["event_id"], steps["event_id"],
                           f"{_provider}~rec-a"}
    assert events[trip["event_id"]]["explanation"]["distance_m"] == 8038
    assert events[trip["event_id"]]["stored"]["origin"] == "luohu"
    assert events[trip["event_id"]]["stored"]["device_id"] == "dev-alice-1"
    assert len(data["ledger"]) == 3 and all(e["user_id"] == alice for e in data["ledger"])
    assert [d["device_id"] for d in data["devices"]] == ["dev-alice-1"]
    assert [b["user_ref"] for b in data["bindings"]["bindings"]] == ["card-0"]
    assert [c["action"] for c in data["consents"]] == ["accept"]
    # Nothing of Bob's: his id, his events, his device, his provider reference.
    text = json.dumps(body)
    for foreign in (bob, other_trip["event_id"], "dev-bob-1", "card-1", "rec-b"):
        assert foreign not in text


def test_the_export_needs_a_users_token(client: FlaskClient,
                                        token: Callable[..., str]) -> None:
    assert client.get("/v1/me/export").status_code == 401
    partner = {"Authorization": f"Bearer {token('bureau', 'partner')}"}
    assert client.get("/v1/me/export", headers=partner).status_code == 403


def test_a_user_with_nothing_stored_gets_an_empty_export(client: FlaskClient,
                                                         auth: dict[str, str]) -> None:
    data = client.get("/v1/me/export", headers=auth).json["data"]
    assert data["account"]["user"] is None and data["events"] == []
    assert data["ledger"] == [] and data["consents"] == []


def test_exports_are_rate_limited(make_app: Callable[..., Flask],
                                  auth: dict[str, str]) -> None:
    client = make_app(rate_limits=parse_rate_limits("exports:user=2/3600")).test_client()
    answers = [client.get("/v1/me/export", headers=auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
    assert answers[2].json["error"]["code"] == "rate_limited"
