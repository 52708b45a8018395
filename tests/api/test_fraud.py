"""Plausibility rules and the review queue through the API, with the production defaults."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests import factories

NOW = factories.NOW


class Clock:
    """A business clock a test can move."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock_app(make_app: Callable[..., Flask]) -> tuple[Flask, Clock]:
    app = make_app()
    clock = Clock(NOW)
    app.extensions["carbon_credits"].clock = clock
    return app, clock


@pytest.fixture
def admin(token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('fraud-admin', role='admin')}"}


def _post(client: FlaskClient, auth: dict[str, str], body: dict[str, Any],
          **headers: str) -> dict[str, Any]:
    r = client.post("/v1/events", json=body, headers={**auth, **headers})
    assert r.status_code == 201, r.json
    return dict(r.json)


def test_a_metro_trip_too_fast_for_its_distance_is_held(client: FlaskClient,
                                                        auth: dict[str, str]) -> None:
    start = factories.today_at(8)
    fast = _post(client, auth, factories.metro(start=start, ended_at=(
        start + timedelta(minutes=2)).isoformat()))  # 8 km in 2 min
    assert (fast["status"], fast["reason"], fast["grams"]) == ("held", "speed_out_of_bounds", 0)
    honest = _post(client, auth, factories.metro(start=factories.today_at(10)))
    assert honest["status"] == "credited" and honest["explanation"]["plausibility"] == []
    assert client.get("/v1/me/account", headers=auth).json["balance"] == honest["points"]


def test_a_trip_overlapping_another_is_rejected(client: FlaskClient,
                                                auth: dict[str, str]) -> None:
    first = _post(client, auth, factories.metro(start=factories.today_at(8)))
    overlap = _post(client, auth, factories.bus(start=factories.today_at(8, 10),
                                                ended_at=factories.today_at(8, 40).isoformat()))
    after = _post(client, auth, factories.bus(start=factories.today_at(8, 30),
                                              ended_at=factories.today_at(8, 50).isoformat()))
    assert first["status"] == "credited"
    assert (overlap["status"], overlap["reason"]) == ("rejected", "overlapping_trip")
    assert first["event_id"] in overlap["explanation"]["plausibility"][0]["detail"]
    assert after["status"] == "credited"


def test_a_trip_across_midnight_overlaps_the_next_days_first_trip(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """Overlap looks back from a trip's start into the previous local day."""
    late = factories.today_at(0) - timedelta(minutes=20)
    first = _post(client, auth, factories.metro(start=late, ended_at=(
        late + timedelta(minutes=35)).isoformat()))
    early = _post(client, auth, factories.bus(start=factories.today_at(0, 5),
                                              ended_at=factories.today_at(0, 25).isoformat()))
    assert first["status"] == "credited"
    assert (early["status"], early["reason"]) == ("rejected", "overlapping_trip")


def test_yesterdays_trips_do_not_count_for_todays_limit(client: FlaskClient,
                                                        auth: dict[str, str]) -> None:
    starts = [factories.today_at(0) - timedelta(hours=24) + timedelta(minutes=80 * i)
              for i in range(16)]
    for s in starts:  # yesterday's full allowance, about 1 km in 8 minutes each
        assert _post(client, auth, factories.metro(
            start=s, ended_at=(s + timedelta(minutes=8)).isoformat(),
            entry_station_id="luohu", exit_station_id="guomao"))["status"] == "credited"
    today = _post(client, auth, factories.metro(start=factories.today_at(6)))
    assert today["status"] == "credited", today["reason"]


def test_too_many_trips_in_a_day_are_held(client: FlaskClient, auth: dict[str, str]) -> None:
    starts = [factories.today_at(0) + timedelta(minutes=80 * i) for i in range(17)]
    answers = [_post(client, auth, factories.metro(  # about 1 km in 8 minutes each
        start=s, ended_at=(s + timedelta(minutes=8)).isoformat(),
        entry_station_id="luohu", exit_station_id="guomao")) for s in starts]
    assert [a["status"] for a in answers[:16]] == ["credited"] * 16
    assert (answers[16]["status"], answers[16]["reason"]) == ("held", "too_many_trips")


def test_steps_posts_are_not_trips(client: FlaskClient, auth: dict[str, str]) -> None:
    """The day's steps post, read with its trips, counts for neither the trips-per-day
    limit nor overlap: the 16th trip after it is still credited."""
    assert _post(client, auth, factories.steps(3000))["status"] == "credited"
    starts = [factories.today_at(0) + timedelta(minutes=80 * i) for i in range(16)]
    answers = [_post(client, auth, factories.metro(
        start=s, ended_at=(s + timedelta(minutes=8)).isoformat(),
        entry_station_id="luohu", exit_station_id="guomao")) for s in starts]
    assert [a["status"] for a in answers] == ["credited"] * 16


def test_steps_gained_faster_than_a_human_walks_are_held(
        clock_app: tuple[Flask, Clock], auth: dict[str, str]) -> None:
    app, clock = clock_app
    client = app.test_client()
    clock.at = NOW - timedelta(hours=3)
    assert _post(client, auth, factories.steps(5000))["status"] == "credited"
    clock.at += timedelta(hours=1)
    assert _post(client, auth, factories.steps(10_000))["status"] == "credited"  # 83/min
    clock.at += timedelta(minutes=2)
    fast = _post(client, auth, factories.steps(16_000))  # 6,000 in 2 min
    assert (fast["status"], fast["reason"]) == ("held", "steps_too_fast")


def test_yesterdays_count_synced_late_is_not_held_as_too_fast(
        clock_app: tuple[Flask, Clock], auth: dict[str, str]) -> None:
    """After midnight, a phone sends yesterday's 5,000 then, a minute later, its full
    8,000: the day is closed, so the gain is judged by the daily ceiling, not by speed."""
    app, clock = clock_app
    client = app.test_client()
    clock.at = NOW + timedelta(hours=1)  # 00:30 local, the next day
    yesterday = NOW.date().isoformat()
    assert _post(client, auth, factories.steps(5000, date=yesterday))["status"] == "credited"
    clock.at += timedelta(minutes=1)
    late = _post(client, auth, factories.steps(8000, date=yesterday))
    assert (late["status"], late["reason"]) == ("credited", None), late
    assert late["points"] > 0
    clock.at += timedelta(minutes=1)
    over = _post(client, auth, factories.steps(70_000, date=yesterday))
    assert (over["status"], over["reason"]) == ("held", "steps_over_daily_ceiling")


def test_steps_above_the_daily_ceiling_are_held(client: FlaskClient,
                                                auth: dict[str, str]) -> None:
    held = _post(client, auth, factories.steps(70_000))
    assert (held["status"], held["reason"]) == ("held", "steps_over_daily_ceiling")
    assert _post(client, auth, factories.steps(60_000))["status"] in ("credited", "capped")


def test_one_device_on_many_accounts_is_held(client: FlaskClient, token: Any) -> None:
    device = f"phone-{uuid.uuid4().hex[:8]}"
    answers = []
    for i in range(4):
        auth = {"Authorization": f"Bearer {token(f'farm-{device}-{i}')}"}
        answers.append(_post(client, auth, factories.metro(), **{"X-Device-Id": device}))
    assert [a["status"] for a in answers[:3]] == ["credited"] * 3
    assert (answers[3]["status"], answers[3]["reason"]) == ("held", "device_on_many_accounts")


def test_a_malformed_device_id_is_422(client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/events", json=factories.metro(), headers={**auth,
                                                                   "X-Device-Id": "a b"})
    assert r.status_code == 422 and "X-Device-Id" in r.json["error"]["fields"]


def test_a_frozen_users_events_are_held_until_unfrozen(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str],
        user_id: str) -> None:
    _post(client, auth, factories.metro(start=factories.today_at(6)))
    r = client.post(f"/v1/admin/users/{user_id}/freeze", json={"reason": "farm suspected"},
                    headers=admin)
    assert r.status_code == 200 and r.json["frozen"] is True
    held = _post(client, auth, factories.metro(start=factories.today_at(9)))
    assert (held["status"], held["reason"]) == ("held", "user_frozen")
    client.post(f"/v1/admin/users/{user_id}/unfreeze", json={"reason": "cleared"},
                headers=admin)
    assert _post(client, auth, factories.metro(start=factories.today_at(12)))["status"] == \
        "credited"
    audit = [a for a in client.get("/v1/admin/audit", headers=admin).json["items"]
             if a["user_id"] == user_id]
    assert [a["action"] for a in audit] == ["user.unfreeze", "user.freeze"]
    # The records name the user by one opaque reference, never by id (erasure: README).
    ref = audit[0]["subject_ref"]
    assert ref.startswith("subj-") and all(a["subject_ref"] == ref for a in audit)
    assert [a["target"] for a in audit] == [f"user:{ref}"] * 2


def _in_review_queue(client: FlaskClient, admin: dict[str, str], user_id: str,
                     event_id: str) -> bool:
    """Whether the review queue holds the event: paged through, since other tests of the
    same database hold events too."""
    after: int | None = None
    while True:
        page = client.get("/v1/admin/reviews?limit=200"
                          + ("" if after is None else f"&after_id={after}"),
                          headers=admin).json["items"]
        if not page:
            return False
        if any(q["event_id"] == event_id and q["user_id"] == user_id for q in page):
            return True
        after = page[-1]["id"]


def test_approving_a_held_event_credits_it_through_the_ledger(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str],
        user_id: str) -> None:
    start = factories.today_at(8)
    held = _post(client, auth, factories.metro(start=start, ended_at=(
        start + timedelta(minutes=2)).isoformat()))
    assert _in_review_queue(client, admin, user_id, held["event_id"])
    r = client.post(f"/v1/admin/reviews/{user_id}/{held['event_id']}/approve",
                    json={"reason": "express train confirmed"}, headers=admin)
    assert r.status_code == 200, r.json
    assert (r.json["status"], r.json["grams"], r.json["points"]) == ("credited", 376, 376)
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 376
    ledger = client.get("/v1/me/ledger", headers=auth).json["items"]
    assert [(e["kind"], e["event_id"]) for e in ledger] == [("earn", held["event_id"])]
    again = client.post(f"/v1/admin/reviews/{user_id}/{held['event_id']}/approve",
                        json={"reason": "twice"}, headers=admin)
    assert again.status_code == 409
    shown = client.get(f"/v1/events/{held['event_id']}", headers=auth).json
    assert shown["status"] == "credited" and shown["explanation"]["credited_ug"] == 376178400


def test_rejecting_a_held_event_credits_nothing(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str],
        user_id: str) -> None:
    held = _post(client, auth, factories.steps(70_000))
    r = client.post(f"/v1/admin/reviews/{user_id}/{held['event_id']}/reject",
                    json={"reason": "step-faking device"}, headers=admin)
    assert r.status_code == 200 and r.json["status"] == "rejected"
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 0
    audit = client.get("/v1/admin/audit", headers=admin).json["items"]
    assert any(a["action"] == "review.reject" and a["reason"] == "step-faking device"
               for a in audit)


def test_an_approved_steps_post_never_counts_steps_twice(
        clock_app: tuple[Flask, Clock], auth: dict[str, str], admin: dict[str, str],
        user_id: str) -> None:
    app, clock = clock_app
    client = app.test_client()
    clock.at = NOW - timedelta(hours=5)
    _post(client, auth, factories.steps(4000))                  # 80 g
    clock.at += timedelta(minutes=1)
    held = _post(client, auth, factories.steps(8000))           # too fast: held
    clock.at += timedelta(hours=2)
    _post(client, auth, factories.steps(10_000))                # +6000 steps: 120 g
    r = client.post(f"/v1/admin/reviews/{user_id}/{held['event_id']}/approve",
                    json={"reason": "watch data checked"}, headers=admin)
    assert r.status_code == 200
    assert r.json["grams"] == 0  # its 8,000 steps are inside the 10,000 already credited
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 200


def test_a_rule_can_be_set_to_reject(make_app: Callable[..., Flask],
                                     auth: dict[str, str]) -> None:
    from dataclasses import replace

    from carbon_credits.antifraud.plausibility import Policy
    policy = Policy()
    strict = make_app(plausibility=replace(policy, outcomes={
        **policy.outcomes, "speed_out_of_bounds": "reject"}))
    start = factories.today_at(8)
    r = _post(strict.test_client(), auth, factories.metro(start=start, ended_at=(
        start + timedelta(minutes=2)).isoformat()))
    assert (r["status"], r["reason"]) == ("rejected", "speed_out_of_bounds")


def test_non_admins_cannot_use_the_review_queue(client: FlaskClient,
                                                auth: dict[str, str]) -> None:
    assert client.get("/v1/admin/reviews", headers=auth).status_code == 403
    assert client.post("/v1/admin/users/x/freeze", json={"reason": "nope"},
                       headers=auth).status_code == 403
