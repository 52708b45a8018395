"""Retention (issue 23, PIPL): events older than TRIP_DETAIL_RETENTION_DAYS lose their trip
details (stations, line, device id, times of day); the ledger, the partner report and the
MRV export keep their totals, verify-ledger passes, and the event still explains itself
from what is kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from carbon_credits.config import Config, ConfigError
from tests import factories
from tests.conftest import app_on_own_database, pinned_clock
from tests.security.test_erasure import every_value, totals, verify

DEVICE = "dev-retained-91c2"


@pytest.fixture
def own(make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Flask]:
    with app_on_own_database(make_config, tmp_path) as application:
        yield application


def reduce(app: Flask, days_later: int) -> str:
    rt = app.extensions["carbon_credits"]
    rt.clock = lambda: pinned_clock() + timedelta(days=days_later)
    try:
        result = app.test_cli_runner().invoke(args=["reduce-trip-details"])
    finally:
        rt.clock = pinned_clock
    assert result.exit_code == 0, result.output
    return result.output


def test_old_trips_are_reduced_to_what_the_mrv_export_needs(
        own: Flask, token: Callable[..., str], user_id: str) -> None:
    client: FlaskClient = own.test_client()
    mine = {"Authorization": f"Bearer {token(user_id)}", "X-Device-Id": DEVICE}
    admin = {"Authorization": f"Bearer {token('ops-admin', 'admin')}"}
    trips: list[dict[str, Any]] = [factories.metro(), factories.bus(), factories.steps(6000)]
    for body in trips:
        assert client.post("/v1/events", json=body, headers=mine).status_code == 201
    before = every_value(own)
    assert "luohu" in before and DEVICE in before
    report, mrv = totals(client, admin)

    assert "reduced 0 events" in reduce(own, 100)  # within the period: nothing
    assert "reduced 3 events" in reduce(own, 181)
    assert "reduced 0 events" in reduce(own, 181)  # again: nothing left to reduce

    after = every_value(own)
    assert DEVICE not in after
    events = [line for line in after.splitlines() if line.startswith("events: ")]
    assert len(events) == 3
    for station in ("luohu", "shaoniangong", "b-luohu", "b-gangxia", "bus-1"):
        assert not [line for line in events if f"| {station} |" in line]  # the network's
        # own tables and the rollups' districts still name stations: not the user's data
    assert totals(client, admin) == (report, mrv)
    verify(own)
    metro = client.get(f"/v1/events/{trips[0]['event_id']}", headers=mine)
    assert metro.status_code == 200, metro.json
    assert metro.json["status"] == "credited" and metro.json["grams"] == 376
    explanation = metro.json["explanation"]
    assert explanation["reduced"] == "retention" and explanation["distance_m"] == 8038
    assert explanation["methodology"]["version"] == "sz-2021.1"
    exported = client.get("/v1/me/export", headers=mine).json["data"]["events"]
    stored = {e["event_id"]: e["stored"] for e in exported}
    assert stored[trips[0]["event_id"]]["origin"] is None
    assert stored[trips[0]["event_id"]]["device_id"] is None
    assert stored[trips[0]["event_id"]]["occurred_at"].endswith("T16:00:00+00:00")


def test_the_period_must_exceed_the_backfill_window(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRIP_DETAIL_RETENTION_DAYS"):
        Config.from_env(tmp_path, {"TRIP_DETAIL_RETENTION_DAYS": "30"})
    assert Config.from_env(tmp_path, {}).trip_detail_retention_days == 180
