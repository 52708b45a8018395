"""The ingest path against the real database: idempotency, caps, carry, versions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Account, Event, FactorVersion, LedgerEntry
from methodology.factors import NET_FACTOR, Factor, factor_set
from tests import factories
from tests.conftest import LENIENT


def _balance(rt: Runtime, user_id: str) -> tuple[int, int, int]:
    """(balance, sum of entry points, number of entries) straight from the tables."""
    with rt.db.transaction() as s:
        acc = s.get(Account, user_id)
        total, n = s.execute(select(func.coalesce(func.sum(LedgerEntry.points), 0),
                                    func.count()).where(LedgerEntry.user_id == user_id)).one()
    return (acc.balance_points if acc else 0), int(total), int(n)


def test_replay_returns_the_original_answer_and_credits_nothing(
        client: FlaskClient, auth: dict[str, str], rt: Runtime, user_id: str) -> None:
    body = factories.metro()
    first = client.post("/v1/events", json=body, headers=auth)
    again = client.post("/v1/events", json=body, headers=auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    balance, total, entries = _balance(rt, user_id)
    assert balance == total == first.json["points"] and entries == 1


def test_same_instant_with_another_offset_is_the_same_payload(
        client: FlaskClient, auth: dict[str, str]) -> None:
    body = factories.metro()
    start = datetime.fromisoformat(body["started_at"])
    utc = {**body, "started_at": start.astimezone(factories.ZoneInfo("UTC")).isoformat(),
           "ended_at": datetime.fromisoformat(body["ended_at"]).astimezone(
               factories.ZoneInfo("UTC")).isoformat()}
    assert client.post("/v1/events", json=body, headers=auth).status_code == 201
    assert client.post("/v1/events", json=utc, headers=auth).status_code == 200


def test_reused_event_id_with_other_payload_is_409_and_changes_nothing(
        client: FlaskClient, auth: dict[str, str], rt: Runtime, user_id: str) -> None:
    body = factories.metro()
    first = client.post("/v1/events", json=body, headers=auth)
    other = client.post("/v1/events", json={**body, "exit_station_id": "laojie"}, headers=auth)
    assert other.status_code == 409
    assert other.json["error"]["code"] == "event_id_conflict"
    assert _balance(rt, user_id)[0] == first.json["points"]


def test_event_ids_are_per_user(client: FlaskClient, token: Any) -> None:
    body = factories.metro()
    for sub in ("pair-a-" + body["event_id"], "pair-b-" + body["event_id"]):
        r = client.post("/v1/events", json=body, headers={"Authorization":
                                                          f"Bearer {token(sub)}"})
        assert r.status_code == 201


def test_concurrent_copies_credit_once_and_all_answers_match(
        lenient_app: Flask, rt: Runtime, token: Any, user_id: str) -> None:
    app = lenient_app
    headers = {"Authorization": f"Bearer {token(user_id)}"}
    bodies = [factories.metro(start=factories.today_at(6) + timedelta(minutes=i))
              for i in range(5)]
    copies = 12

    def post(body: dict[str, Any]) -> tuple[int, Any]:
        r = app.test_client().post("/v1/events", json=body, headers=headers)
        return r.status_code, r.json

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(post, [b for b in bodies for _ in range(copies)]))
    for i, body in enumerate(bodies):
        answers = results[i * copies:(i + 1) * copies]
        assert sorted(status for status, _ in answers) == [200] * (copies - 1) + [201]
        assert all(json == answers[0][1] for _, json in answers)
        assert answers[0][1]["event_id"] == body["event_id"]
    balance, total, entries = _balance(rt, user_id)
    assert entries == len(bodies)
    assert balance == total == sum(r[1]["points"] for r in results[::copies])


def test_concurrent_events_never_exceed_the_daily_total_cap(
        make_app: Any, rt: Runtime, token: Any, user_id: str) -> None:
    headers = {"Authorization": f"Bearer {token(user_id)}"}
    capped_app = make_app(daily_caps_g={"total": Decimal(1000)}, plausibility=LENIENT)
    # 8038 m at 46.8 g/pkm = 376.1784 g each: the third event only partly fits.
    bodies = [factories.metro(start=factories.today_at(7) + timedelta(minutes=i))
              for i in range(10)]

    def post(body: dict[str, Any]) -> Any:
        return capped_app.test_client().post("/v1/events", json=body, headers=headers).json

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, bodies))
    with rt.db.transaction() as s:
        credited = s.scalar(select(func.sum(Event.credited_ug)).where(Event.user_id == user_id))
    assert credited == 1000 * 10**6
    assert sum(a["status"] == "credited" for a in answers) == 2
    assert sum(a["status"] == "capped" for a in answers) == 8
    capped = [a for a in answers if a["status"] == "capped"]
    assert all(a["reason"] == "daily_cap" and a["explanation"]["cap_applied"]["cap"] == "total"
               for a in capped)
    balance, total, _ = _balance(rt, user_id)
    assert balance == total == 1000  # 1,000,000,000 ug -> exactly 1000 points, nothing lost


def test_steps_credit_only_the_increase_and_respect_the_methodology_cap(
        lenient_app: Flask, auth: dict[str, str]) -> None:
    client = lenient_app.test_client()  # four posts in one instant would be held as too fast
    r1 = client.post("/v1/events", json=factories.steps(5000), headers=auth).json
    r2 = client.post("/v1/events", json=factories.steps(4000), headers=auth).json
    r3 = client.post("/v1/events", json=factories.steps(8000), headers=auth).json
    r4 = client.post("/v1/events", json=factories.steps(30000), headers=auth).json
    assert (r1["grams"], r1["status"]) == (100, "credited")
    assert (r2["grams"], r2["explanation"]["increase_steps"]) == (0, 0)
    assert (r3["grams"], r3["explanation"]["previous_steps"]) == (60, 5000)
    # 22,000 more steps = 440 g, but only 296 - 160 = 136 g fit under the daily cap.
    assert (r4["grams"], r4["status"], r4["reason"]) == (136, "capped", "daily_cap")
    assert r4["explanation"]["cap_applied"]["cap_g"] == 296


def test_fractions_of_a_point_are_carried_so_no_gram_is_lost(
        lenient_app: Flask, auth: dict[str, str], rt: Runtime, user_id: str) -> None:
    client = lenient_app.test_client()
    # 37 steps = 0.74 g each time: per-event rounding down would credit 0 points forever.
    answers = [client.post("/v1/events", json=factories.steps(37 * i), headers=auth).json
               for i in range(1, 41)]
    assert all(a["status"] == "credited" for a in answers)
    assert sum(a["points"] for a in answers) == (40 * 37 * 20_000) // 10**6  # 29 points
    balance, total, entries = _balance(rt, user_id)
    assert balance == total == 29 and entries == 40
    with rt.db.transaction() as s:
        acc = s.get_one(Account, user_id)
        assert acc.lifetime_ug == 40 * 37 * 20_000
        assert acc.carry_ug == acc.lifetime_ug - 29 * 10**6


def test_an_event_uses_the_factor_version_in_force_when_it_occurred(
        client: FlaskClient, auth: dict[str, str], rt: Runtime) -> None:
    # A city of its own so this new version cannot affect any other test.
    city = f"testcity-{factories.new_id()[-8:]}"
    t0 = factories.today_at(6) - timedelta(days=20)
    with rt.db.transaction() as s:
        for version, value, start in (("v1", "46.8", t0), ("v2", "50", t0 + timedelta(days=10))):
            fs = factor_set("metro", city, version, "net",
                            Factor(NET_FACTOR, Decimal(value), "g CO2/person-km", "test"))
            s.add(FactorVersion(city=city, mode="metro", version=version, kind="net",
                                factors=fs.to_dict(), effective_from=start, created_by="test",
                                reason="test"))
    with rt.db.transaction() as s:
        from carbon_credits.networks import demo_network
        from carbon_credits.networks.catalog import store_network
        store_network(s, city, "demo", "test", demo_network.stations(), demo_network.lines())
    late = client.post("/v1/events", headers=auth, json=factories.metro(
        city=city, start=t0 + timedelta(days=5))).json  # arrives now, occurred before v2
    new = client.post("/v1/events", headers=auth, json=factories.metro(
        city=city, start=t0 + timedelta(days=15))).json
    before = client.post("/v1/events", headers=auth, json=factories.metro(
        city=city, start=t0 - timedelta(days=1)))
    assert late["methodology"]["version"] == "v1" and late["grams"] == 376
    assert new["methodology"]["version"] == "v2" and new["grams"] == 401  # 50 x 8.038
    assert before.status_code == 422 and "started_at" in before.json["error"]["fields"]


def test_the_ledger_refuses_update_and_delete(rt: Runtime, client: FlaskClient,
                                              auth: dict[str, str], user_id: str) -> None:
    client.post("/v1/events", json=factories.metro(), headers=auth)
    from sqlalchemy import delete, update
    from sqlalchemy.exc import DatabaseError
    for statement in (update(LedgerEntry).where(LedgerEntry.user_id == user_id)
                      .values(points=10**6),
                      delete(LedgerEntry).where(LedgerEntry.user_id == user_id)):
        with pytest.raises(DatabaseError, match="append-only"), rt.db.transaction() as s:
            s.execute(statement)
    assert _balance(rt, user_id)[2] == 1


def test_factor_versions_are_immutable(rt: Runtime) -> None:
    from sqlalchemy import update
    from sqlalchemy.exc import DatabaseError
    with pytest.raises(DatabaseError, match="append-only"), rt.db.transaction() as s:
        s.execute(update(FactorVersion).values(reason="edited"))


def test_events_from_the_future_or_beyond_the_backfill_window_are_refused(
        client: FlaskClient, auth: dict[str, str], rt: Runtime) -> None:
    now = factories.NOW
    skew = timedelta(seconds=rt.config.clock_skew_s)
    cases = [
        (factories.metro(start=now + skew + timedelta(minutes=1)), "event_in_future",
         "started_at"),
        (factories.metro(start=now - timedelta(days=rt.config.backfill_days, hours=1)),
         "event_too_old", "started_at"),
        (factories.steps(100, date=(now + timedelta(days=1)).date().isoformat()),
         "event_in_future", "date"),
        (factories.steps(100, date=(now - timedelta(days=rt.config.backfill_days + 1))
                         .date().isoformat()), "event_too_old", "date"),
    ]
    for body, code, field in cases:
        r = client.post("/v1/events", json=body, headers=auth)
        assert r.status_code == 422, body
        assert r.json["error"]["code"] == code and field in r.json["error"]["fields"]
    ok = client.post("/v1/events", headers=auth,
                     json=factories.metro(start=now - timedelta(days=rt.config.backfill_days - 1)))
    assert ok.status_code == 201
    assert client.get("/v1/me/account", headers=auth).json["balance"] == ok.json["points"]
