"""Admin factor versions: immutable, effective in the future, previewed, audited."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient

from carbon_credits.extensions import Runtime
from carbon_credits.networks import demo_network
from carbon_credits.networks.catalog import store_network
from carbon_credits.storage.models import FactorVersion
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
