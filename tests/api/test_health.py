"""Liveness, readiness, and what clients see when a dependency is down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests import factories

UNREACHABLE_DB = "postgresql+psycopg://postgres@127.0.0.1:1/none"
"""Port 1: nothing listens, the connection is refused at once."""
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def assert_retry_later(r: TestResponse) -> None:
    assert r.status_code == 503, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    assert int(r.headers["Retry-After"]) > 0


@pytest.fixture
def db_down(make_app: Callable[..., Flask]) -> Flask:
    # create_app must not connect at start (make_config leaves auto_init_db False).
    return make_app(database_url=UNREACHABLE_DB)


def bearer(token: Callable[..., str], sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


# --- healthy ---------------------------------------------------------------------------------

def test_healthz_is_200_ok(client: FlaskClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json == {"status": "ok", "checks": {}}


def test_readyz_is_200_with_the_database_check_ok(client: FlaskClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.json
    assert r.json["status"] == "ok"
    assert r.json["checks"]["database"] == "ok"
    assert "Retry-After" not in r.headers


def test_readyz_checks_redis_when_configured(make_app: Callable[..., Flask],
                                            suite_redis_url: str) -> None:
    # The suite's Redis (as the rate limiter tests use it), also in the SQLite phase.
    r = make_app(redis_url=suite_redis_url).test_client().get("/readyz")
    assert r.status_code == 200, r.json
    assert r.json["checks"]["redis"] == "ok"


def test_readyz_has_no_redis_check_without_redis(make_app: Callable[..., Flask]) -> None:
    r = make_app(redis_url=None).test_client().get("/readyz")
    assert r.status_code == 200 and "redis" not in r.json["checks"]


def test_readyz_is_503_with_retry_after_when_redis_is_unreachable(
        make_app: Callable[..., Flask]) -> None:
    r = make_app(redis_url="redis://127.0.0.1:9/0").test_client().get("/readyz")
    assert r.status_code == 503, r.json
    assert r.json["checks"]["database"] == "ok" and r.json["checks"]["redis"] != "ok"
    assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_need_no_token(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 200


# --- database unreachable --------------------------------------------------------------------

def test_app_starts_without_reaching_the_database(db_down: Flask) -> None:
    assert db_down.extensions["carbon_credits"].config.database_url == UNREACHABLE_DB


def test_healthz_stays_200_when_the_database_is_down(db_down: Flask) -> None:
    assert db_down.test_client().get("/healthz").status_code == 200


def test_readyz_is_503_with_retry_after_when_the_database_is_down(db_down: Flask) -> None:
    r = db_down.test_client().get("/readyz")
    assert_retry_later(r)
    assert r.json["status"] == "unavailable"
    assert r.json["checks"]["database"] == "unavailable"


def test_post_event_is_503_with_retry_after_when_the_database_is_down(
        db_down: Flask, token: Callable[..., str], user_id: str) -> None:
    r = db_down.test_client().post("/v1/events", json=factories.metro(),
                                   headers=bearer(token, user_id))
    assert_retry_later(r)
    assert r.json["error"]["code"] == "database_unavailable"
    assert "Traceback" not in r.get_data(as_text=True)


def test_event_rejected_during_the_outage_is_not_applied_and_can_be_retried(
        db_down: Flask, client: FlaskClient, token: Callable[..., str],
        user_id: str) -> None:
    headers = bearer(token, user_id)
    event = factories.metro()
    assert_retry_later(db_down.test_client().post("/v1/events", json=event, headers=headers))
    assert client.get(f"/v1/events/{event['event_id']}", headers=headers).status_code == 404
    retried = client.post("/v1/events", json=event, headers=headers)
    assert retried.status_code == 201, retried.json
    assert client.get("/v1/me/account", headers=headers).json["balance"] == retried.json[
        "points"]


@pytest.mark.parametrize("path", ["/v1/me/account", "/v1/me/ledger", "/v1/events/e-1"])
def test_reads_are_503_with_retry_after_when_the_database_is_down(
        db_down: Flask, token: Callable[..., str], user_id: str, path: str) -> None:
    r = db_down.test_client().get(path, headers=bearer(token, user_id))
    assert_retry_later(r)
    assert r.json["error"]["code"] == "database_unavailable"


def test_bad_input_is_still_422_when_the_database_is_down(
        db_down: Flask, token: Callable[..., str], user_id: str) -> None:
    """Validation needs no database: a client learns of its own mistake first."""
    r = db_down.test_client().post("/v1/events", json=factories.steps(-1),
                                   headers=bearer(token, user_id))
    assert r.status_code == 422
    assert list(r.json["error"]["fields"]) == ["steps"]


def test_bad_token_is_still_401_when_the_database_is_down(db_down: Flask) -> None:
    r = db_down.test_client().post("/v1/events", json=factories.metro(),
                                   headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json["error"]["code"] == "invalid_token"


# --- Redis unreachable -----------------------------------------------------------------------

@pytest.fixture
def redis_down(app: Flask, make_app: Callable[..., Flask]) -> Flask:
    # ``app`` first: the shared database is initialised before this second app uses it.
    return make_app(redis_url=UNREACHABLE_REDIS)


def test_readyz_is_503_when_redis_is_configured_but_down(redis_down: Flask) -> None:
    r = redis_down.test_client().get("/readyz")
    assert_retry_later(r)
    assert r.json["checks"] == {"database": "ok", "redis": "unavailable"}


def test_events_are_still_credited_when_redis_is_down(redis_down: Flask,
                                                      token: Callable[..., str],
                                                      user_id: str) -> None:
    """Caps and idempotency live in the database; the limiter falls back in-process."""
    client = redis_down.test_client()
    headers = bearer(token, user_id)
    event = factories.metro()
    first = client.post("/v1/events", json=event, headers=headers)
    assert first.status_code == 201, first.json
    assert first.json["status"] == "credited"
    replay: Any = client.post("/v1/events", json=event, headers=headers)
    assert replay.status_code == 200
    assert replay.json["points"] == first.json["points"]


def test_a_programming_error_is_a_500_not_a_retryable_503(
        client: FlaskClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A schema bug (e.g. a missing column) cannot succeed on retry: no Retry-After invitation.
    from sqlalchemy.exc import ProgrammingError


    def broken(*_: object) -> None:
        raise ProgrammingError("SELECT missing", {}, Exception("UndefinedColumn"))

    from carbon_credits.ledger import statements

    monkeypatch.setattr(statements, "account_view", broken)
    r = client.get("/v1/me/account", headers=auth)
    assert r.status_code == 500
    assert r.json["error"]["code"] == "internal_error"
    assert "Retry-After" not in r.headers
