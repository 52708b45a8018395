"""Partner reports read from a real streaming replica (REPORTS_DATABASE_URL): served from
it, refused with a 503 when it lags or is stopped, or read from the primary when
REPORTS_FALLBACK_PRIMARY is set; never stale figures beyond REPORTS_MAX_LAG_S."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask

from carbon_credits.config import Config
from carbon_credits.factory import create_app
from carbon_credits.runtime import Runtime
from carbon_credits.setup import init_db
from tests.conftest import pinned_clock
from tests.faults.replica import Standby
from tests.faults.servers import PostgresCluster
from tests.integration.test_rollups import TODAY, YESTERDAY, metro, post, seed_city

pytestmark = pytest.mark.slow


class Pair:
    def __init__(self, make_config: Callable[..., Config]) -> None:
        self.make_config = make_config
        self.primary = PostgresCluster()
        self.standby = Standby(self.primary)
        self.apps: list[Flask] = []

    def app(self, **overrides: Any) -> Flask:
        application = create_app(self.make_config(database_url=self.primary.url,
                                                  **overrides))
        application.extensions["carbon_credits"].clock = pinned_clock
        self.apps.append(application)
        return application

    def close(self) -> None:
        for application in self.apps:
            application.extensions["carbon_credits"].db.dispose()
        self.primary.stop()


@pytest.fixture(scope="module")
def pair(make_config: Callable[..., Config]) -> Iterator[Pair]:
    pair = Pair(make_config)
    try:
        pair.primary.init()
        writer = pair.app()
        init_db(writer.extensions["carbon_credits"].db, "shenzhen")
        pair.standby.create()
        yield pair
    finally:
        pair.close()


@pytest.fixture(scope="module")
def city(pair: Pair) -> str:
    rt: Runtime = pair.apps[0].extensions["carbon_credits"]
    name = seed_city(rt, "replica")
    for i in range(4):
        post(rt, name, f"replica-rider-{i}", metro(TODAY, 8, i))
    pair.standby.catch_up()
    return name


def report(app: Flask, city: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    rt: Runtime = app.extensions["carbon_credits"]
    token = rt.codec.encode("auditor", "admin", city, 600)
    response = app.test_client().get(
        f"/v1/reports/reduction?from={YESTERDAY}&to={TODAY}&city={city}&group_by=mode",
        headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json or {}, dict(response.headers)


def test_the_report_is_served_from_the_replica(pair: Pair, city: str) -> None:
    on_primary = report(pair.app(), city)
    before = len(pair.standby.statements())
    status, body, _ = report(pair.app(reports_database_url=pair.standby.url), city)
    assert status == 200, body
    assert body == on_primary[1]
    assert body["totals"]["events"] == 4
    served = pair.standby.statements()[before:]
    assert "report_rollups" in served and "pg_last_wal_replay_lsn" in served


def test_a_lagging_replica_is_a_503_or_the_primary_by_configuration(
        pair: Pair, city: str) -> None:
    rt: Runtime = pair.apps[0].extensions["carbon_credits"]
    strict = pair.app(reports_database_url=pair.standby.url, reports_max_lag_s=0)
    fallback = pair.app(reports_database_url=pair.standby.url, reports_max_lag_s=0,
                        reports_fallback_primary=True)
    with psycopg.connect(pair.standby.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        post(rt, city, "replica-rider-late", metro(TODAY, 9, 30))
        with psycopg.connect(pair.primary.dsn, autocommit=True) as conn:
            lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        # Received but not replayed: the replica knows it is behind.
        pair.standby.wait_for("pg_last_wal_receive_lsn() >= %s::pg_lsn",
                              lsn[0] if lsn else None)
        status, body, headers = report(strict, city)
        assert status == 503, body
        assert body["error"]["code"] == "reports_replica_unavailable"
        assert "behind" in body["error"]["message"]
        assert headers["Retry-After"]
        status, body, _ = report(fallback, city)
        assert status == 200, body
        assert body["totals"]["events"] == 5  # the primary's figures, the late ride in
        ready = pair.app(reports_database_url=pair.standby.url, reports_max_lag_s=0)
        health = ready.test_client().get("/readyz")
        assert health.status_code == 200
        assert health.json["checks"]["reports_database"] == "lagging"
    finally:
        with psycopg.connect(pair.standby.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    pair.standby.catch_up()
    status, body, _ = report(strict, city)
    assert status == 200, body
    assert body["totals"]["events"] == 5


def test_a_stopped_replica_is_a_503_or_the_primary_by_configuration(
        pair: Pair, city: str) -> None:
    strict = pair.app(reports_database_url=pair.standby.url)
    fallback = pair.app(reports_database_url=pair.standby.url,
                        reports_fallback_primary=True)
    expected = report(pair.app(), city)[1]
    pair.standby.stop()
    try:
        status, body, headers = report(strict, city)
        assert status == 503, body
        assert body["error"]["code"] == "reports_replica_unavailable"
        assert "unreachable" in body["error"]["message"]
        assert headers["Retry-After"]
        status, body, _ = report(fallback, city)
        assert (status, body) == (200, expected)
        health = strict.test_client().get("/readyz")
        assert health.status_code == 200
        assert health.json["status"] == "degraded"
        assert health.json["checks"]["reports_database"] == "unavailable"
    finally:
        pair.standby.start()


def test_a_replica_whose_primary_is_gone_is_not_trusted(pair: Pair, city: str) -> None:
    """With no WAL receiver streaming, the replica cannot know what it misses: refused,
    even though it is reachable and caught up with all it received."""
    strict = pair.app(reports_database_url=pair.standby.url)
    pair.standby.catch_up()
    pair.primary._pg_ctl("-m", "fast", "stop")
    try:
        pair.standby.wait_for("NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver "
                              "WHERE status = 'streaming')")
        status, body, _ = report(strict, city)
        assert status == 503, body
        assert "not streaming" in body["error"]["message"]
    finally:
        pair.primary.start()
