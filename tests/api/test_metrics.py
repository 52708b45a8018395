"""GET /metrics in one process: what is counted, and with which labels."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from carbon_credits.antifraud.ratelimit import parse_rate_limits
from tests import factories


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.get_data(as_text=True))
            for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_events_are_counted_by_mode_and_outcome(client: FlaskClient,
                                                 token: Callable[..., str]) -> None:
    auth = {"Authorization": f"Bearer {token('metrics-' + uuid.uuid4().hex)}"}
    before = scrape(client)
    trip = factories.metro()
    first = client.post("/v1/events", json=trip, headers=auth)
    again = client.post("/v1/events", json=trip, headers=auth)
    assert (first.status_code, again.status_code) == (201, 200)
    after = scrape(client)
    for outcome, added in (("credited", 1), ("replay", 1)):
        assert (value(after, "cc_events_total", mode="metro", outcome=outcome)
                - value(before, "cc_events_total", mode="metro", outcome=outcome)) == added
    assert (value(after, "cc_credited_grams_total", mode="metro")
            - value(before, "cc_credited_grams_total", mode="metro")) == first.json["grams"]


def test_requests_are_labelled_by_route_template_never_by_raw_path(
        client: FlaskClient, token: Callable[..., str]) -> None:
    auth = {"Authorization": f"Bearer {token('metrics-' + uuid.uuid4().hex)}"}
    secret_id = "private-" + uuid.uuid4().hex
    assert client.get(f"/v1/events/{secret_id}", headers=auth).status_code == 404
    assert client.get(f"/nowhere/{secret_id}").status_code == 404
    body = client.get("/metrics").get_data(as_text=True)
    assert secret_id not in body
    samples = scrape(client)
    assert value(samples, "cc_http_requests_total", method="GET",
                 route="/v1/events/<string:event_id>", status="404") >= 1
    assert value(samples, "cc_http_requests_total", method="GET", route="unmatched",
                 status="404") >= 1


def test_rate_limit_refusals_are_counted_by_route_and_dimension(
        make_app: Callable[..., Flask], token: Callable[..., str]) -> None:
    client = make_app(rate_limits=parse_rate_limits("events:user=1/60")).test_client()
    auth = {"Authorization": f"Bearer {token('metrics-' + uuid.uuid4().hex)}"}
    before = scrape(client)
    assert client.post("/v1/events", json=factories.metro(), headers=auth).status_code == 201
    assert client.post("/v1/events", json=factories.metro(), headers=auth).status_code == 429
    after = scrape(client)
    assert (value(after, "cc_rate_limited_total", route="events", dimension="user")
            - value(before, "cc_rate_limited_total", route="events", dimension="user")) == 1
