"""Badges: awarded on ingest with the event that earned them, revoked by its reversal,
defined by admins (audited)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests import factories


@pytest.fixture
def admin(token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('badge-admin', role='admin')}"}


def _post(client: FlaskClient, auth: dict[str, str], body: dict[str, Any]) -> None:
    r = client.post("/v1/events", json=body, headers=auth)
    assert r.status_code == 201, r.json


def _earned(client: FlaskClient, auth: dict[str, str]) -> dict[str, str]:
    mine = client.get("/v1/me/badges", headers=auth).json
    return {b["code"]: b["event_id"] for b in mine["earned"]}


def test_the_first_metro_trip_earns_its_badge_once(client: FlaskClient,
                                                   auth: dict[str, str]) -> None:
    first, second = factories.metro(), factories.metro(start=factories.today_at(12))
    _post(client, auth, first)
    _post(client, auth, second)
    earned = _earned(client, auth)
    assert earned["first-metro"] == first["event_id"]
    assert "first-bus" not in earned
    mine = client.get("/v1/me/badges", headers=auth).json
    assert {"code", "name", "rule"} <= set(mine["not_earned"][0])
    assert next(b for b in mine["earned"] if b["code"] == "first-metro")["name"] == {
        "zh": "首次地铁出行", "en": "First metro trip"}
    zh = client.get("/v1/me/badges", headers={**auth, "Accept-Language": "zh-CN"}).json
    assert next(b for b in zh["earned"] if b["code"] == "first-metro")["name_text"] == \
        "首次地铁出行"


def test_three_modes_in_one_week_and_a_streak(client: FlaskClient,
                                              auth: dict[str, str]) -> None:
    _post(client, auth, factories.metro())
    _post(client, auth, factories.bus())
    assert "three-modes-week" not in _earned(client, auth)
    steps = factories.steps(3000)
    _post(client, auth, steps)
    assert _earned(client, auth)["three-modes-week"] == steps["event_id"]


def test_a_reversal_revokes_the_badge_its_event_earned(
        client: FlaskClient, auth: dict[str, str], user_id: str,
        admin: dict[str, str]) -> None:
    first = factories.metro()
    _post(client, auth, first)
    assert "first-metro" in _earned(client, auth)
    r = client.post(f"/v1/admin/users/{user_id}/events/{first['event_id']}/reversal",
                    json={"reason": "fraud"}, headers=admin)
    assert r.status_code == 201, r.json
    assert "first-metro" not in _earned(client, auth)
    # Earned again by the next credited metro trip, which then holds it.
    again = factories.metro(start=factories.today_at(14))
    _post(client, auth, again)
    assert _earned(client, auth)["first-metro"] == again["event_id"]


def test_an_admin_badge_is_awarded_and_every_change_audited(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str]) -> None:
    code = f"two-metro-{factories.new_id()[-6:]}"
    made = client.post("/v1/admin/badges", headers=admin, json={
        "code": code, "name": {"zh": "两次地铁", "en": "Two metro trips"},
        "rule": {"kind": "trips", "mode": "metro", "count": 2, "period": "day"}})
    assert made.status_code == 201, made.json
    assert made.json["version"] == 1 and made.json["status"] == "active"
    _post(client, auth, factories.metro())
    assert code not in _earned(client, auth)
    second = factories.metro(start=factories.today_at(12))
    _post(client, auth, second)
    assert _earned(client, auth)[code] == second["event_id"]

    edited = client.patch(f"/v1/admin/badges/{code}", headers=admin,
                          json={"name": {"zh": "两次", "en": "Twice"}, "reason": "copy"})
    assert edited.status_code == 200 and edited.json["version"] == 2
    retired = client.post(f"/v1/admin/badges/{code}/retirement", headers=admin,
                          json={"reason": "over"})
    assert retired.status_code == 200 and retired.json["status"] == "retired"
    assert client.post(f"/v1/admin/badges/{code}/retirement", headers=admin,
                       json={"reason": "over"}).status_code == 409
    assert _earned(client, auth)[code] == second["event_id"]  # awards stand
    audit = client.get("/v1/admin/audit?limit=50", headers=admin).json["items"]
    actions = [a["action"] for a in audit if a["target"] == f"badge:{code}"]
    assert sorted(actions) == ["badge.create", "badge.edit", "badge.retire"]


@pytest.mark.parametrize(("rule", "field"), [
    ({"kind": "streak"}, "rule.days"),
    ({"kind": "teleport"}, "rule.kind"),
    ({"all": [{"kind": "trips", "count": 2, "period": "decade"}]}, "rule.all[0].period"),
    ({"kind": "first_trip", "mode": "rocket"}, "rule.mode"),
])
def test_a_bad_rule_is_a_422_naming_where(client: FlaskClient, admin: dict[str, str],
                                          rule: dict[str, Any], field: str) -> None:
    r = client.post("/v1/admin/badges", headers=admin, json={
        "code": "bad-rule", "name": {"zh": "坏", "en": "Bad"}, "rule": rule})
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["fields"]


def test_a_duplicate_code_is_a_409(client: FlaskClient, admin: dict[str, str]) -> None:
    r = client.post("/v1/admin/badges", headers=admin, json={
        "code": "first-metro", "name": {"zh": "重复", "en": "Again"},
        "rule": {"kind": "first_trip", "mode": "metro"}})
    assert r.status_code == 409, r.json


def test_unknown_badge_is_a_404(client: FlaskClient, admin: dict[str, str]) -> None:
    assert client.patch("/v1/admin/badges/nope", headers=admin,
                        json={"reason": "x"}).status_code == 404


def test_badges_need_their_roles(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/v1/me/badges").status_code == 401
    assert client.get("/v1/admin/badges", headers=auth).status_code == 403


def test_yesterdays_trip_counts_for_the_streak(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    for days_ago in range(6, -1, -1):
        _post(client, auth, factories.metro(start=factories.today_at(8)
                                            - timedelta(days=days_ago)))
    assert "streak-7" in _earned(client, auth)
