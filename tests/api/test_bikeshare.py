"""Bike-share through the API: a mode added as a module plus a factor set."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from tests import factories


def _ride(distance_m: int, minutes: int) -> dict[str, object]:
    start = factories.today_at(12)
    return {"event_id": factories.new_id(), "mode": "bikeshare", "city": "shenzhen",
            "distance_m": distance_m, "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=minutes)).isoformat()}


def test_a_bikeshare_ride_is_credited_through_the_common_ingest_path(
        client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/events", json=_ride(3000, 15), headers=auth)
    assert r.status_code == 201, r.json
    assert (r.json["grams"], r.json["methodology"]["version"]) == (279, "wuhan-2025.1")
    assert r.json["explanation"]["distance_source"] == "operator_record"
    assert client.get("/v1/me/account", headers=auth).json["today"]["bikeshare"]["grams"] == 279


def test_bikeshare_inputs_are_validated_from_the_methodology_declaration(
        client: FlaskClient, auth: dict[str, str]) -> None:
    body = _ride(3000, 15)
    del body["distance_m"]
    r = client.post("/v1/events", json=body, headers=auth)
    assert r.status_code == 422 and "distance_m" in r.json["error"]["fields"]
    r = client.post("/v1/events", json={**_ride(3000, 15), "ended_at":
                                        factories.today_at(11).isoformat()}, headers=auth)
    assert r.status_code == 422 and "ended_at" in r.json["error"]["fields"]


def test_methodologies_list_every_mode_with_units_and_sources(client: FlaskClient) -> None:
    listed = {m["mode"]: m for m in client.get("/v1/methodologies").json["methodologies"]}
    assert set(listed) == {"bus", "metro", "steps", "bikeshare"}
    assert listed["bikeshare"]["net_g_per_pkm"] == "93.3"
    for m in listed.values():
        assert all(f["unit"] and f["source"] for f in m["factors"])
    spec = client.get("/openapi.json").json
    assert "BikeshareEvent" in spec["components"]["schemas"]
