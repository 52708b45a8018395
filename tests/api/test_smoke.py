from __future__ import annotations

from flask.testing import FlaskClient

from tests import factories


def test_metro_trip_is_credited_by_network_distance(client: FlaskClient,
                                                    auth: dict[str, str]) -> None:
    r = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert r.status_code == 201, r.json
    assert r.json["status"] == "credited"
    assert r.json["explanation"]["distance_source"] == "network_shortest_path"
