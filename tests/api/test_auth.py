"""Bearer JWT authentication and role checks on the HTTP API, and the `token` CLI."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from jwt.warnings import InsecureKeyLengthWarning
from werkzeug.test import TestResponse

from carbon_credits.runtime import Runtime
from carbon_credits.tokens import LEEWAY_S
from tests import factories
from tests.conftest import JWT_SECRET

ISSUER = "carbon-credits"
AUDIENCE = "carbon-credits-api"
PROTECTED = "/v1/me/account"


def claims(sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"sub": sub, "role": "user", "city": "shenzhen", "iat": now,
                            "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE}
    body.update(overrides)
    return body


def mint(payload: dict[str, Any], key: str = JWT_SECRET, algorithm: str = "HS256",
         headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(r: TestResponse, code: str) -> None:
    assert r.status_code == 401, r.get_data(as_text=True)
    assert r.json is not None
    assert r.json["error"]["code"] == code
    assert isinstance(r.json["error"]["message"], str)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")


# --- no or malformed Authorization header -------------------------------------------------

def test_missing_authorization_header_is_401_missing_token_with_challenge(
        client: FlaskClient) -> None:
    r = client.get(PROTECTED)
    assert_401(r, "missing_token")
    assert 'realm="carbon-credits"' in r.headers["WWW-Authenticate"]


def test_post_event_without_token_is_401_before_the_body_is_read(client: FlaskClient) -> None:
    r = client.post("/v1/events", data="{not json", content_type="application/json")
    assert_401(r, "missing_token")


@pytest.mark.parametrize("header", ["Token abc.def.ghi", "Basic dXNlcjpwYXNz", "Bearer",
                                    "Bearer    ", "abc.def.ghi"])
def test_authorization_header_without_a_bearer_token_is_401_missing_token(
        client: FlaskClient, header: str) -> None:
    assert_401(client.get(PROTECTED, headers={"Authorization": header}), "missing_token")


def test_bearer_scheme_name_is_case_insensitive(client: FlaskClient, user_id: str) -> None:
    r = client.get(PROTECTED, headers={"Authorization": f"bearer {mint(claims(user_id))}"})
    assert r.status_code == 200, r.json
    assert r.json["user_id"] == user_id


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "a.b", "é.é.é", "x" * 5000])
def test_garbage_bearer_token_is_401_invalid_token(client: FlaskClient, garbage: str) -> None:
    assert_401(client.get(PROTECTED, headers=bearer(garbage)), "invalid_token")


# --- expiry, signature, algorithm ---------------------------------------------------------

def test_token_expired_beyond_the_leeway_is_401_token_expired(client: FlaskClient,
                                                             user_id: str) -> None:
    now = int(time.time())
    token = mint(claims(user_id, iat=now - 3600, exp=now - LEEWAY_S - 30))
    assert_401(client.get(PROTECTED, headers=bearer(token)), "token_expired")


def test_token_expired_within_the_leeway_is_still_accepted(client: FlaskClient,
                                                          user_id: str) -> None:
    now = int(time.time())
    token = mint(claims(user_id, iat=now - 3600, exp=now - 5))
    assert client.get(PROTECTED, headers=bearer(token)).status_code == 200


def test_token_signed_with_another_secret_is_401_invalid_token(client: FlaskClient,
                                                              user_id: str) -> None:
    token = mint(claims(user_id), key="another-secret-" + "y" * 32)
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


def test_token_with_tampered_payload_is_401_invalid_token(client: FlaskClient,
                                                         user_id: str) -> None:
    header, _, signature = mint(claims(user_id)).split(".")
    payload = b64(json.dumps(claims(user_id, role="admin")).encode())
    assert_401(client.get(PROTECTED, headers=bearer(f"{header}.{payload}.{signature}")),
               "invalid_token")


@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_token_is_401_invalid_token(client: FlaskClient, user_id: str,
                                             signature: str) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(user_id)).encode())
    assert_401(client.get(PROTECTED, headers=bearer(f"{header}.{payload}.{signature}")),
               "invalid_token")


def test_alg_none_token_made_by_pyjwt_is_401_invalid_token(client: FlaskClient,
                                                          user_id: str) -> None:
    token = jwt.encode(claims(user_id), None, algorithm="none")
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_signed_with_the_right_secret_but_another_hmac_alg_is_401(
        client: FlaskClient, user_id: str, algorithm: str) -> None:
    with warnings.catch_warnings():
        # The test secret is shorter than RFC 7518 asks for these; irrelevant here.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = mint(claims(user_id), algorithm=algorithm)
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


@pytest.mark.parametrize("alg", ["HS512", "RS256", "ES256", "none"])
def test_hs256_token_with_its_alg_header_rewritten_is_401(client: FlaskClient, user_id: str,
                                                         alg: str) -> None:
    _, payload, signature = mint(claims(user_id)).split(".")
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    assert_401(client.get(PROTECTED, headers=bearer(f"{header}.{payload}.{signature}")),
               "invalid_token")


def test_rs256_looking_token_hmac_signed_with_the_secret_is_401(client: FlaskClient,
                                                               user_id: str) -> None:
    """Key confusion: an "RS256" header over an HMAC made with the shared secret."""
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(user_id)).encode())
    mac = hmac.new(JWT_SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    token = f"{header}.{payload}.{b64(mac.digest())}"
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


# --- claims --------------------------------------------------------------------------------

def test_token_from_another_issuer_is_401_invalid_token(client: FlaskClient,
                                                       user_id: str) -> None:
    token = mint(claims(user_id, iss="someone-else"))
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


def test_token_for_another_audience_is_401_invalid_token(client: FlaskClient,
                                                        user_id: str) -> None:
    token = mint(claims(user_id, aud="another-api"))
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "role"])
def test_token_missing_a_required_claim_is_401_invalid_token(client: FlaskClient,
                                                            user_id: str, claim: str) -> None:
    payload = claims(user_id)
    del payload[claim]
    assert_401(client.get(PROTECTED, headers=bearer(mint(payload))), "invalid_token")


@pytest.mark.parametrize("role", ["superuser", "USER", "", None, ["user"], 1])
def test_token_with_an_unknown_role_is_401_invalid_token(client: FlaskClient, user_id: str,
                                                        role: Any) -> None:
    token = mint(claims(user_id, role=role))
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


@pytest.mark.parametrize("sub", ["", "x" * 129])
def test_token_with_an_unusable_sub_is_401_invalid_token(client: FlaskClient,
                                                        sub: str) -> None:
    assert_401(client.get(PROTECTED, headers=bearer(mint(claims(sub)))), "invalid_token")


def test_token_with_a_non_string_city_is_401_invalid_token(client: FlaskClient,
                                                          user_id: str) -> None:
    token = mint(claims(user_id, city=["shenzhen"]))
    assert_401(client.get(PROTECTED, headers=bearer(token)), "invalid_token")


def test_token_minted_directly_with_all_claims_is_accepted(client: FlaskClient,
                                                          user_id: str) -> None:
    """The control for the tests above: the hand-made tokens differ only where they say."""
    r = client.get(PROTECTED, headers=bearer(mint(claims(user_id))))
    assert r.status_code == 200, r.json
    assert r.json["user_id"] == user_id


# --- roles ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["partner", "admin"])
def test_non_user_token_cannot_post_events(client: FlaskClient, token: Callable[..., str],
                                           user_id: str, role: str) -> None:
    event = factories.metro()
    r = client.post("/v1/events", json=event, headers=bearer(token(user_id, role=role)))
    assert r.status_code == 403, r.json
    assert r.json["error"]["code"] == "forbidden"
    assert "WWW-Authenticate" not in r.headers
    # and nothing was applied for that subject
    as_user = bearer(token(user_id))
    assert client.get(f"/v1/events/{event['event_id']}", headers=as_user).status_code == 404
    assert client.get("/v1/me/account", headers=as_user).json["balance"] == 0


@pytest.mark.parametrize("role", ["partner", "admin"])
def test_non_user_token_cannot_read_an_account(client: FlaskClient,
                                               token: Callable[..., str], user_id: str,
                                               role: str) -> None:
    r = client.get("/v1/me/account", headers=bearer(token(user_id, role=role)))
    assert r.status_code == 403, r.json
    assert r.json["error"]["code"] == "forbidden"


def test_a_user_cannot_read_another_users_event(client: FlaskClient,
                                                token: Callable[..., str],
                                                user_id: str) -> None:
    event = factories.metro()
    owner = bearer(token(user_id))
    assert client.post("/v1/events", json=event, headers=owner).status_code == 201
    other = bearer(token(f"{user_id}-other"))
    r = client.get(f"/v1/events/{event['event_id']}", headers=other)
    assert r.status_code == 404, r.json
    assert r.json["error"]["code"] == "not_found"
    assert "explanation" not in r.get_data(as_text=True)
    assert client.get(f"/v1/events/{event['event_id']}", headers=owner).status_code == 200


def test_the_same_event_id_from_two_users_is_two_separate_events(
        client: FlaskClient, token: Callable[..., str], user_id: str) -> None:
    event = factories.steps(1000)
    first = client.post("/v1/events", json=event, headers=bearer(token(user_id)))
    second = client.post("/v1/events", json=event, headers=bearer(token(f"{user_id}-2")))
    assert (first.status_code, second.status_code) == (201, 201)


# --- the `token` CLI -----------------------------------------------------------------------

def test_cli_token_prints_a_token_this_service_accepts(app: Flask, rt: Runtime,
                                                       client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["token", "--sub", "x", "--role", "user"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    principal = rt.codec.decode(token)
    assert (principal.sub, principal.role) == ("x", "user")
    assert principal.city == rt.config.default_city
    assert client.get(PROTECTED, headers=bearer(token)).json["user_id"] == "x"


def test_cli_token_honours_ttl(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["token", "--sub", "x", "--ttl", "120"])
    assert result.exit_code == 0, result.output
    claims_ = jwt.decode(result.output.strip(), JWT_SECRET, algorithms=["HS256"],
                         audience=AUDIENCE, issuer=ISSUER)
    assert claims_["exp"] - claims_["iat"] == 120


def test_cli_partner_token_carries_its_city(app: Flask, rt: Runtime) -> None:
    result = app.test_cli_runner().invoke(
        args=["token", "--sub", "p1", "--role", "partner", "--city", "shenzhen"])
    assert result.exit_code == 0, result.output
    principal = rt.codec.decode(result.output.strip())
    assert (principal.role, principal.city) == ("partner", "shenzhen")


def test_cli_partner_token_without_city_is_a_usage_error(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["token", "--sub", "p", "--role", "partner"])
    assert result.exit_code == 2
    assert "--city" in result.output
    assert "eyJ" not in result.output


def test_cli_token_with_an_unknown_role_is_a_usage_error(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["token", "--sub", "x", "--role", "root"])
    assert result.exit_code == 2
    assert "eyJ" not in result.output


def test_cli_merchant_token_names_the_merchant_and_reaches_merchant_routes(
        app: Flask, rt: Runtime, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["token", "--sub", "shop-1", "--role",
                                                "merchant"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert (rt.codec.decode(token).sub, rt.codec.decode(token).role) == ("shop-1", "merchant")
    assert client.get("/v1/merchant/rewards", headers=bearer(token)).status_code == 200
    assert client.get(PROTECTED, headers=bearer(token)).status_code == 403
