"""Admin factor versions: immutable, effective in the future (a city's first for a mode: any
time), previewed, audited."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from carbon_credits.errors import InvalidInput
from carbon_credits.networks import demo_network
from carbon_credits.networks.catalog import store_network
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import FactorVersionInSchema
from carbon_credits.storage.models import Event, FactorVersion
from carbon_credits.tokens import Principal
from carbon_credits.tuning import factor_versions
from methodology.factors import NET_FACTOR, Factor, factor_set
from tests import factories

NOW = factories.NOW


@pytest.fixture
def city(rt: Runtime) -> str:
    """A city of this test's own: v1 of metro factors from 20 days ago, the demo network."""
    name = f"fv-{uuid.uuid4().hex[:10]}"
    fs = factor_set("metro", name, "v1", "net",
                    Factor(NET_FACTOR, Decimal("46.8"), "g CO2/person-km", "test seed"))
    with rt.db.transaction() as s:
        s.add(FactorVersion(city=name, mode="metro", version="v1", kind="net",
                            factors=fs.to_dict(), effective_from=NOW - timedelta(days=20),
                            created_by="test", reason="seed"))
        store_network(s, name, "demo", "test", demo_network.stations(), demo_network.lines())
    return name


@pytest.fixture
def admin(token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('fv-admin', role='admin')}"}


def _version(city: str, **overrides: Any) -> dict[str, Any]:
    body = {"city": city, "mode": "metro", "version": "v2", "kind": "net",
            "factors": [{"name": "net_g_per_pkm", "value": "50", "unit": "g CO2/person-km",
                         "source": "revised methodology, 2026"}],
            "effective_from": (NOW + timedelta(hours=1)).isoformat(),  # tomorrow, 00:30
            "reason": "operator revised the grid factor"}
    body.update(overrides)
    return body


def _trip(client: FlaskClient, auth: dict[str, str], city: str, start: Any) -> Any:
    r = client.post("/v1/events", headers=auth, json=factories.metro(city=city, start=start))
    assert r.status_code == 201, r.json
    return r.json


def test_a_version_effective_tomorrow_changes_nothing_today_and_applies_by_event_time(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str], city: str,
        make_app: Any) -> None:
    created = client.post("/v1/admin/factor-versions", json=_version(city), headers=admin)
    assert created.status_code == 201, created.json
    today = _trip(client, auth, city, NOW - timedelta(hours=1))
    assert (today["methodology"]["version"], today["grams"]) == ("v1", 376)

    later = make_app()  # the same database, two days on
    later.extensions["carbon_credits"].clock = lambda: NOW + timedelta(days=2)
    tomorrow = _trip(later.test_client(), auth, city, NOW + timedelta(hours=9))
    late = _trip(later.test_client(), auth, city, NOW - timedelta(hours=3))
    assert (tomorrow["methodology"]["version"], tomorrow["grams"]) == ("v2", 401)
    assert (late["methodology"]["version"], late["grams"]) == ("v1", 376)
    assert later.test_client().get(f"/v1/events/{today['event_id']}",
                                   headers=auth).json == today


def test_preview_shows_what_would_change_and_writes_nothing(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str], city: str) -> None:
    for hours in (2, 3, 26):
        _trip(client, auth, city, NOW - timedelta(hours=hours))
    before = client.get("/v1/admin/factor-versions", query_string={"city": city},
                        headers=admin).json
    draft = {k: v for k, v in _version(city).items()
             if k in ("city", "mode", "kind", "factors")}
    r = client.post("/v1/admin/factor-versions/preview", headers=admin, json={
        **draft, "from": (NOW - timedelta(days=2)).date().isoformat(),
        "to": NOW.date().isoformat()})
    assert r.status_code == 200, r.json
    preview = r.json
    # 8038 m each: 376,178,400 ug at 46.8 g/pkm, 401,900,000 ug at 50 g/pkm.
    assert [(d["events"], d["before_grams"], d["after_grams"]) for d in preview["days"]] == [
        (1, 376, 401), (2, 752, 803)]
    totals = preview["totals"]
    assert (totals["events"], totals["before_grams"], totals["after_grams"]) == (3, 1128, 1205)
    assert totals["delta_grams"] == 1205 - 1128
    assert totals["before_points"] == 3 * 376 and totals["after_points"] == 3 * 401
    after = client.get("/v1/admin/factor-versions", query_string={"city": city},
                       headers=admin).json
    assert after == before


def test_creation_is_audited_with_before_and_after(
        client: FlaskClient, admin: dict[str, str], city: str) -> None:
    client.post("/v1/admin/factor-versions", json=_version(city), headers=admin)
    audit = client.get("/v1/admin/audit", headers=admin).json["items"]
    mine = [a for a in audit if a["target"] == f"factors:{city}/metro/v2"]
    assert len(mine) == 1
    assert mine[0]["actor"] == "fv-admin" and mine[0]["action"] == "factor_version.create"
    assert mine[0]["before"]["version"] == "v1" and mine[0]["after"]["version"] == "v2"
    assert mine[0]["reason"] == "operator revised the grid factor"


@pytest.mark.parametrize("overrides, field, code", [
    ({"factors": [{"name": "net_g_per_pkm", "value": "-1", "unit": "g", "source": "xyz"}]},
     "factors", "invalid_input"),
    ({"effective_from": (NOW - timedelta(minutes=1)).isoformat()}, "effective_from",
     "past_effective_date"),
    ({"effective_from": (NOW - timedelta(days=30)).isoformat()}, "effective_from",
     "past_effective_date"),
    ({"effective_from": (NOW + timedelta(minutes=2)).isoformat()}, "effective_from",
     "effective_date_too_soon"),  # inside clock skew (300 s) + margin (60 s)
    ({"mode": "teleport"}, "mode", "invalid_input"),
    ({"kind": "baseline"}, "factors", "invalid_factors"),
    ({"mode": "bus"}, "factors", "invalid_factors"),  # bus needs default_trip_m too
    ({"factors": [{"name": "net_g_per_pkm", "value": "NaN", "unit": "g", "source": "xyz"}]},
     "factors", "invalid_input"),
    ({"reason": ""}, "reason", "invalid_input"),
])
def test_bad_versions_are_refused_and_nothing_is_stored(
        client: FlaskClient, admin: dict[str, str], city: str, overrides: dict[str, Any],
        field: str, code: str) -> None:
    r = client.post("/v1/admin/factor-versions", json=_version(city, **overrides),
                    headers=admin)
    assert r.status_code == 422, r.json
    assert r.json["error"]["code"] == code and field in r.json["error"]["fields"]
    listed = client.get("/v1/admin/factor-versions", query_string={"city": city},
                        headers=admin).json["items"]
    assert [v["version"] for v in listed] == ["v1"]


def test_an_overlapping_version_is_refused(client: FlaskClient, admin: dict[str, str],
                                           city: str) -> None:
    assert client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        city, effective_from=(NOW + timedelta(days=3)).isoformat())).status_code == 201
    r = client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        city, version="v3", effective_from=(NOW + timedelta(days=2)).isoformat()))
    assert r.status_code == 422 and r.json["error"]["code"] == "overlapping_effective_date"


def test_a_repeated_version_name_is_409(client: FlaskClient, admin: dict[str, str],
                                        city: str) -> None:
    assert client.post("/v1/admin/factor-versions", json=_version(city),
                       headers=admin).status_code == 201
    r = client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        city, effective_from=(NOW + timedelta(days=5)).isoformat()))
    assert r.status_code == 409 and r.json["error"]["code"] == "version_exists"


def test_only_admins_manage_factor_versions(client: FlaskClient, auth: dict[str, str],
                                            token: Any, city: str) -> None:
    partner = {"Authorization": f"Bearer {token('p', role='partner', city=city)}"}
    for headers in (auth, partner):
        assert client.post("/v1/admin/factor-versions", json=_version(city),
                           headers=headers).status_code == 403
        assert client.get("/v1/admin/factor-versions", query_string={"city": city},
                          headers=headers).status_code == 403


def test_a_preview_window_must_run_forward_and_be_bounded(
        client: FlaskClient, admin: dict[str, str], city: str) -> None:
    draft = {k: v for k, v in _version(city).items()
             if k in ("city", "mode", "kind", "factors")}
    for start, end in ((NOW.date(), NOW.date() - timedelta(days=1)),
                       (NOW.date() - timedelta(days=200), NOW.date())):
        r = client.post("/v1/admin/factor-versions/preview", headers=admin, json={
            **draft, "from": start.isoformat(), "to": end.isoformat()})
        assert r.status_code == 422 and "to" in r.json["error"]["fields"]


def test_a_version_cannot_start_before_an_event_already_dated_after_it(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str], city: str) -> None:
    """Events may be dated up to the clock skew ahead: such an event, applied now with v1,
    must not end up dated after the start of a v2 created a moment later."""
    start = NOW + timedelta(seconds=200)  # a short hop, ending within the skew
    r = client.post("/v1/events", headers=auth, json=factories.metro(
        city=city, start=start, ended_at=(start + timedelta(seconds=90)).isoformat(),
        entry_station_id="luohu", exit_station_id="guomao"))
    assert r.status_code == 201, r.json
    assert r.json["methodology"]["version"] == "v1"
    r = client.post("/v1/admin/factor-versions", headers=admin,
                    json=_version(city, effective_from=(NOW + timedelta(seconds=120))
                                  .isoformat()))
    assert r.status_code == 422 and r.json["error"]["code"] == "effective_date_too_soon"
    ok = client.post("/v1/admin/factor-versions", headers=admin,
                     json=_version(city, effective_from=(NOW + timedelta(seconds=361))
                                   .isoformat()))
    assert ok.status_code == 201, ok.json


# ---------------------------------------------------------------- onboarding a city

@pytest.fixture
def new_city(rt: Runtime) -> str:
    """A city with a network and no factor version yet: onboarding day."""
    name = f"testcity-{uuid.uuid4().hex[:10]}"
    with rt.db.transaction() as s:
        store_network(s, name, "demo", "test", demo_network.stations(), demo_network.lines())
    return name


MIDNIGHT = NOW.replace(hour=0, minute=0)
"""The start of today, local: the launch day's first instant, 23.5 hours ago."""


def _audited(client: FlaskClient, admin: dict[str, str], target: str) -> list[Any]:
    items = client.get("/v1/admin/audit", headers=admin).json["items"]
    return [a for a in items if a["target"] == target]


def test_a_new_citys_first_version_may_start_in_the_past_and_credits_that_morning(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str],
        new_city: str) -> None:
    body = factories.metro(city=new_city, start=factories.today_at(8))
    early = client.post("/v1/events", headers=auth, json=body)
    assert early.status_code == 422 and early.json["error"]["code"] == "no_methodology"
    assert "city" in early.json["error"]["fields"]  # not stored: it may be posted again

    r = client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        new_city, version="v1", effective_from=MIDNIGHT.isoformat(),
        reason="launch on the 1st"))
    assert r.status_code == 201, r.json
    assert r.json["effective_from"] == MIDNIGHT.isoformat()

    again = client.post("/v1/events", headers=auth, json=body)  # the same event, again
    assert again.status_code == 201, again.json
    assert (again.json["status"], again.json["methodology"]["version"]) == ("credited", "v1")
    assert again.json["grams"] == 401  # 8038 m at 50 g/pkm, the new city's own factor
    before = client.post("/v1/events", headers=auth, json=factories.metro(
        city=new_city, start=MIDNIGHT - timedelta(hours=2)))
    assert before.status_code == 422 and before.json["error"]["code"] == "no_methodology"
    assert "started_at" in before.json["error"]["fields"]

    [entry] = _audited(client, admin, f"factors:{new_city}/metro/v1")
    assert entry["action"] == "factor_version.create" and entry["before"] is None
    assert entry["after"]["start_rule"] == "first_version_any_start"
    assert entry["after"]["started_in_past"] is True
    assert entry["reason"] == "launch on the 1st"


def test_a_second_version_may_not_start_in_the_past(
        client: FlaskClient, admin: dict[str, str], new_city: str) -> None:
    assert client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        new_city, version="v1", effective_from=MIDNIGHT.isoformat())).status_code == 201
    for start in (NOW - timedelta(hours=1), MIDNIGHT - timedelta(days=1)):
        r = client.post("/v1/admin/factor-versions", headers=admin,
                        json=_version(new_city, effective_from=start.isoformat()))
        assert r.status_code == 422, r.json
        assert r.json["error"]["code"] == "past_effective_date"
        assert "effective_from" in r.json["error"]["fields"]
    later = client.post("/v1/admin/factor-versions", headers=admin, json=_version(new_city))
    assert later.status_code == 201, later.json
    [entry] = _audited(client, admin, f"factors:{new_city}/metro/v2")
    assert entry["after"]["start_rule"] == "later_version_future_start"
    assert entry["after"]["started_in_past"] is False
    listed = client.get("/v1/admin/factor-versions", query_string={"city": new_city},
                        headers=admin).json["items"]
    assert [v["version"] for v in listed] == ["v1", "v2"]


def test_a_first_version_may_also_start_at_once(
        client: FlaskClient, admin: dict[str, str], new_city: str) -> None:
    """Within the clock skew and margin, which only a later version must keep clear of."""
    r = client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        new_city, version="v1", effective_from=(NOW + timedelta(seconds=30)).isoformat()))
    assert r.status_code == 201, r.json


def test_a_first_version_for_a_mode_with_stored_events_may_not_start_in_the_past(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str], rt: Runtime,
        city: str, new_city: str) -> None:
    """No API path stores an event without a version of its city and mode, so such events
    come from elsewhere (an import, a repair by hand); any stored event counts, whatever
    its status. Here a stored event of ``city`` is copied to ``new_city``."""
    trip = _trip(client, auth, city, NOW - timedelta(hours=2))
    with rt.db.transaction() as s:
        stored = s.scalars(select(Event).where(Event.event_id == trip["event_id"])).one()
        copy = {c.key: getattr(stored, c.key) for c in Event.__table__.columns
                if c.key != "id"}
        s.add(Event(**{**copy, "city": new_city, "event_id": factories.new_id(),
                       "status": "rejected", "credited_ug": 0, "points": 0}))
    r = client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        new_city, version="v1", effective_from=MIDNIGHT.isoformat()))
    assert r.status_code == 422, r.json
    assert r.json["error"]["code"] == "past_effective_date"
    assert "events of this city and mode are stored" in r.json["error"]["message"]
    assert client.get("/v1/admin/factor-versions", query_string={"city": new_city},
                      headers=admin).json["items"] == []
    # The future rule still admits it.
    ok = client.post("/v1/admin/factor-versions", headers=admin,
                     json=_version(new_city, version="v1"))
    assert ok.status_code == 201, ok.json


def test_another_modes_events_do_not_stop_a_first_version_in_the_past(
        client: FlaskClient, auth: dict[str, str], admin: dict[str, str], city: str) -> None:
    """``city`` has metro events; its first steps version may still start this morning."""
    _trip(client, auth, city, NOW - timedelta(hours=2))
    r = client.post("/v1/admin/factor-versions", headers=admin, json=_version(
        city, mode="steps", version="s1", effective_from=MIDNIGHT.isoformat(),
        factors=[{"name": "g_per_step", "value": "0.02", "unit": "g CO2/step",
                  "source": "city launch"}]))
    assert r.status_code == 201, r.json
    steps = client.post("/v1/events", headers=auth,
                        json=factories.steps(5000, city=city))
    assert steps.status_code == 201, steps.json
    assert (steps.json["status"], steps.json["methodology"]["version"]) == ("credited", "s1")


def test_two_first_versions_created_at_once_are_admitted_one_after_the_other(
        make_app: Callable[..., Flask], new_city: str, is_postgres: bool) -> None:
    """Two admins onboard the same city at once. Without a lock both would find no version
    and both start in the past, the second repricing the first's window once both commit.
    The first holds the city and mode's lock until it commits; the second, waiting on it,
    then finds the first's version and is held to the future rule. (On SQLite every
    transaction holds the database lock from BEGIN IMMEDIATE: nothing to observe.)"""
    if not is_postgres:
        pytest.skip("PostgreSQL's advisory lock; SQLite serialises every transaction")
    rt = make_app().extensions["carbon_credits"]
    inside, release = threading.Event(), threading.Event()
    calls = itertools.count()

    def clock() -> datetime:
        # Read inside the transaction, after the lock: the first caller stops there.
        if next(calls) == 0:
            inside.set()
            assert release.wait(60)
        return NOW

    rt.clock = clock
    admin = Principal("fv-admin", "admin", None)
    results: dict[str, Any] = {}

    def create(version: str, start: datetime) -> None:
        data = FactorVersionInSchema().load(_version(
            new_city, version=version, effective_from=start.isoformat()))
        try:
            results[version] = factor_versions.create_version(rt, admin, data)
        except InvalidInput as exc:
            results[version] = exc

    first = threading.Thread(target=create, args=("v1", MIDNIGHT))
    first.start()
    assert inside.wait(60)
    second = threading.Thread(target=create, args=("v1b", MIDNIGHT + timedelta(hours=1)))
    second.start()
    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                   "AND NOT granted AND database = "
                   "(SELECT oid FROM pg_database WHERE datname = current_database())")
    deadline = time.monotonic() + 60
    with rt.db.engine.connect() as conn:
        while second.is_alive() and not conn.scalar(waiting) and time.monotonic() < deadline:
            time.sleep(0.01)
        blocked = second.is_alive() and bool(conn.scalar(waiting))
    release.set()
    first.join(60)
    second.join(60)
    assert blocked, f"the second creation did not wait for the first: {results}"
    assert results["v1"]["version"] == "v1"
    refused = results["v1b"]
    assert isinstance(refused, InvalidInput) and refused.code == "past_effective_date"
