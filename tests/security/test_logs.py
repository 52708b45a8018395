"""Refusals and failures are logged without secrets.

Every log record the app writes (any logger, DEBUG and up, tracebacks included) while it
refuses forged, expired and wrongly signed tokens, hits an internal error, and loses its
database or Redis, must not contain: the bearer token (valid or not: an expired token is
still someone's credential), the JWT secret, or the passwords in DATABASE_URL / REDIS_URL.
The responses must not either, and a 500 shows no stack trace. (The real server's access
and error logs are checked the same way by tests/faults.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from carbon_credits.ledger import statements
from carbon_credits.runtime import Runtime
from carbon_credits.tokens import Principal
from tests import factories
from tests.conftest import JWT_SECRET

DB_PASSWORD = "db-pw-" + "s3cr3t" * 3
REDIS_PASSWORD = "redis-pw-" + "s3cr3t" * 3


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def claims(sub: str, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    body: dict[str, object] = {"sub": sub, "role": "user", "iat": now, "exp": now + 600,
                               "iss": "carbon-credits", "aud": "carbon-credits-api"}
    body.update(overrides)
    return body


def test_refused_tokens_are_logged_without_the_token_or_the_secret(
        client: FlaskClient, caplog: pytest.LogCaptureFixture, user_id: str) -> None:
    caplog.set_level(logging.DEBUG)
    now = int(time.time())
    tokens = [
        jwt.encode(claims(user_id), "wrong-" + "k" * 40, algorithm="HS256"),
        jwt.encode(claims(user_id, iat=now - 7200, exp=now - 3600), JWT_SECRET,
                   algorithm="HS256"),
        jwt.encode(claims(user_id, role="admin"), None, algorithm="none"),
        jwt.encode(claims(user_id, aud="elsewhere"), JWT_SECRET, algorithm="HS256"),
        jwt.encode(claims("a\x00b"), JWT_SECRET, algorithm="HS256"),
    ]
    for token in tokens:
        for path in ("/v1/me/account", "/v1/admin/audit"):
            r = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401
            assert token not in r.get_data(as_text=True)
            assert JWT_SECRET not in r.get_data(as_text=True)
    # A valid token on an endpoint of another role: 403.
    valid = jwt.encode(claims(user_id), JWT_SECRET, algorithm="HS256")
    assert client.get("/v1/admin/audit",
                      headers={"Authorization": f"Bearer {valid}"}).status_code == 403
    logged = everything_logged(caplog)
    for secret in [*tokens, valid, JWT_SECRET]:
        assert secret not in logged
        assert secret.split(".")[-1] not in logged or not secret.split(".")[-1]


def test_an_internal_error_is_logged_with_its_traceback_but_no_secret(
        client: FlaskClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        token: Callable[..., str], user_id: str) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug in the account view")

    monkeypatch.setattr(statements, "account_view", broken)
    caplog.set_level(logging.DEBUG)
    bearer = token(user_id)
    r = client.get("/v1/me/account", headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == 500
    assert r.json == {"error": {"code": "internal_error", "message": "internal error"}}
    logged = everything_logged(caplog)
    assert "simulated bug in the account view" in logged and "Traceback" in logged
    assert bearer not in logged and JWT_SECRET not in logged


def test_a_failed_statement_is_logged_without_its_values(
        client: FlaskClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        token: Callable[..., str], user_id: str) -> None:
    """A database error's text names the statement, not the user id or device id bound to
    it: the logs are the operator's, out of erasure's reach (README, Personal data)."""
    device = f"dev-{user_id}"

    def failing(rt: Runtime, principal: Principal, *_: object) -> None:
        with rt.db.transaction() as session:
            session.execute(text("SELECT :u, :d FROM no_such_table"),
                            {"u": principal.sub, "d": device})

    monkeypatch.setattr(statements, "account_view", failing)
    caplog.set_level(logging.DEBUG)
    r = client.get("/v1/me/account", headers={"Authorization": f"Bearer {token(user_id)}"})
    # PostgreSQL's ProgrammingError is a bug: a 500, its traceback logged with the
    # statement; SQLite calls it an OperationalError: a 503, only its type logged.
    assert r.status_code in (500, 503)
    logged = everything_logged(caplog)
    if r.status_code == 500:
        assert "no_such_table" in logged and "Traceback" in logged
    assert user_id not in logged and device not in logged


def test_database_and_redis_outages_are_logged_without_their_passwords(
        make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture,
        token: Callable[..., str], user_id: str) -> None:
    caplog.set_level(logging.DEBUG)
    bearer = token(user_id)
    headers = {"Authorization": f"Bearer {bearer}"}
    db_down = make_app(
        database_url=f"postgresql+psycopg://svc:{DB_PASSWORD}@127.0.0.1:1/none").test_client()
    for r in (db_down.get("/v1/me/account", headers=headers),
              db_down.post("/v1/events", json=factories.metro(), headers=headers),
              db_down.get("/readyz")):
        assert r.status_code == 503, r.get_data(as_text=True)
        assert DB_PASSWORD not in r.get_data(as_text=True)
    redis_down = make_app(redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0").test_client()
    for r in (redis_down.post("/v1/events", json=factories.steps(100), headers=headers),
              redis_down.get("/readyz")):
        assert r.status_code < 500 or r.status_code == 503
        assert REDIS_PASSWORD not in r.get_data(as_text=True)
    logged = everything_logged(caplog)
    assert logged, "the outages were not logged at all"
    for secret in (DB_PASSWORD, REDIS_PASSWORD, bearer, JWT_SECRET):
        assert secret not in logged


def test_only_lone_surrogates_are_blamed_on_the_client(
        client: FlaskClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        token: Callable[..., str], user_id: str) -> None:
    """A UnicodeEncodeError of our own (not a client's lone surrogate) stays a logged 500."""
    def broken(*_: object, **__: object) -> None:
        raise UnicodeEncodeError("ascii", "café", 3, 4, "ordinal not in range(128)")

    monkeypatch.setattr(statements, "account_view", broken)
    caplog.set_level(logging.DEBUG)
    r = client.get("/v1/me/account", headers={"Authorization": f"Bearer {token(user_id)}"})
    assert r.status_code == 500 and r.json["error"]["code"] == "internal_error"
    assert "unhandled error" in everything_logged(caplog)
