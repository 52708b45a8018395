"""Bearer tokens an attacker can make, beyond tests/api/test_auth.py.

test_auth.py covers alg none, HS/RS header rewrites, another secret, expiry, iss/aud,
missing claims, unknown roles and the `token` CLI. Here: tokens not yet valid, forged
admin tokens, claims the service cannot store or log (control characters, lone
surrogates), and an app configured for RS256/ES256 (public key only), where the classic key
confusion is to HMAC-sign with the public key itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from carbon_credits.tokens import LEEWAY_S
from tests import factories
from tests.api.test_auth import ISSUER, claims
from tests.conftest import JWT_SECRET


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs256(payload: dict[str, Any], key: str = JWT_SECRET) -> str:
    """Sign any payload by hand (PyJWT's encoder refuses some malformed claims itself)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = (b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
                     + b64(json.dumps(payload).encode()))
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def assert_401(r: TestResponse) -> None:
    assert r.status_code == 401, r.get_data(as_text=True)
    assert r.json is not None and r.json["error"]["code"] in ("invalid_token", "token_expired")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


# --- not yet valid ----------------------------------------------------------------------------

@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_not_yet_valid_beyond_the_leeway_is_401(client: FlaskClient, user_id: str,
                                                      claim: str) -> None:
    future = int(time.time()) + LEEWAY_S + 600
    token = jwt.encode(claims(user_id, **{claim: future}), JWT_SECRET, algorithm="HS256")
    assert_401(client.get("/v1/me/account", headers=bearer(token)))


def test_token_valid_from_within_the_leeway_is_accepted(client: FlaskClient,
                                                        user_id: str) -> None:
    """Clock skew between the identity service and this one is tolerated (LEEWAY_S)."""
    soon = int(time.time()) + LEEWAY_S // 2
    token = jwt.encode(claims(user_id, nbf=soon, iat=soon), JWT_SECRET, algorithm="HS256")
    assert client.get("/v1/me/account", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(("claim", "value"), [("exp", "tomorrow"), ("iat", "now"),
                                              ("nbf", "x"), ("exp", None), ("iat", [1])])
def test_time_claims_of_the_wrong_type_are_401(client: FlaskClient, user_id: str,
                                               claim: str, value: Any) -> None:
    token = jwt.encode(claims(user_id, **{claim: value}), JWT_SECRET, algorithm="HS256")
    assert_401(client.get("/v1/me/account", headers=bearer(token)))


@pytest.mark.parametrize(("claim", "value"), [("iss", [ISSUER]), ("iss", ""),
                                              ("aud", ["another-api"]), ("aud", "")])
def test_issuer_or_audience_not_ours_is_401(client: FlaskClient, user_id: str, claim: str,
                                            value: Any) -> None:
    assert_401(client.get("/v1/me/account",
                          headers=bearer(hs256(claims(user_id, **{claim: value})))))


# --- forged privileges --------------------------------------------------------------------------

ADMIN_CALLS = [("get", "/v1/admin/audit", None),
               ("post", "/v1/admin/users/victim/freeze", {"reason": "forged admin"}),
               ("get", "/v1/admin/reviews", None)]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_role_claim_signed_with_a_wrong_key_is_401_and_does_nothing(
        client: FlaskClient, token: Callable[..., str], method: str, path: str,
        body: Any) -> None:
    forged = jwt.encode(claims("mallory", role="admin", city=None),
                        "guessed-secret-" + "z" * 32, algorithm="HS256")
    r = getattr(client, method)(path, json=body, headers=bearer(forged))
    assert_401(r)
    audit = client.get("/v1/admin/audit", headers=bearer(token("ops", role="admin"))).json
    assert not [x for x in audit["items"] if x["actor"] == "mallory"]


def test_admin_token_with_its_payload_swapped_into_a_user_token_is_401(
        client: FlaskClient, token: Callable[..., str]) -> None:
    """Splice: a genuine user token's signature under an admin payload."""
    user = token("mallory").split(".")
    admin = token("ops", role="admin").split(".")
    spliced = f"{user[0]}.{admin[1]}.{user[2]}"
    assert_401(client.get("/v1/admin/audit", headers=bearer(spliced)))


def test_token_with_an_empty_signature_is_401(client: FlaskClient,
                                              token: Callable[..., str]) -> None:
    header, payload, _ = token("ops", role="admin").split(".")
    assert_401(client.get("/v1/admin/audit", headers=bearer(f"{header}.{payload}.")))


# --- claims that cannot be stored or logged (regression: these were 500s) ---------------------

@pytest.mark.parametrize("sub", ["a\ud800b", "a\x00b", "line\nbreak", "bell\x07", "\x7f",
                                 "del\x85c1"])
def test_sub_with_control_characters_or_a_lone_surrogate_is_401(client: FlaskClient,
                                                               sub: str) -> None:
    """A lone surrogate in ``sub`` was a 500 on PostgreSQL and SQLite (UnicodeEncodeError),
    a NUL byte a 422 "cannot be stored"; a newline would forge lines in logs."""
    token = jwt.encode(claims(sub), JWT_SECRET, algorithm="HS256")
    for path in ("/v1/me/account", "/v1/me/ledger"):
        assert_401(client.get(path, headers=bearer(token)))
    r = client.post("/v1/events", json=factories.metro(), headers=bearer(token))
    assert_401(r)


@pytest.mark.parametrize("city", ["sz\ud800", "sz\x00", "sz\r\n"])
@pytest.mark.parametrize("role", ["user", "partner"])
def test_city_with_control_characters_or_a_lone_surrogate_is_401(client: FlaskClient,
                                                                 city: str,
                                                                 role: str) -> None:
    token = jwt.encode(claims("p-1", role=role, city=city), JWT_SECRET, algorithm="HS256")
    path = ("/v1/me/account" if role == "user"
            else "/v1/reports/reduction?from=2026-01-01&to=2026-01-02")
    assert_401(client.get(path, headers=bearer(token)))


@pytest.mark.parametrize("sub", ["'; DROP TABLE accounts; --", "a' OR '1'='1", "用户-42",
                                 "x" * 128, "user@example.com", "🚇"])
def test_sub_is_an_opaque_id_whatever_it_looks_like(client: FlaskClient, sub: str) -> None:
    """Printable subs of up to 128 characters are the identity service's business: they
    work as ordinary, separate accounts (and go to the database only as bound parameters)."""
    token = jwt.encode(claims(sub), JWT_SECRET, algorithm="HS256")
    event = factories.steps(2000)
    assert client.post("/v1/events", json=event, headers=bearer(token)).status_code in (200,
                                                                                       201)
    account = client.get("/v1/me/account", headers=bearer(token)).json
    assert account["user_id"] == sub and account["balance"] > 0


# --- an app verifying RS256 / ES256 with a public key -------------------------------------------

def _pem_public(key: Any) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rs_client(make_app: Callable[..., Flask], rsa_key: rsa.RSAPrivateKey) -> FlaskClient:
    return make_app(jwt_public_key=_pem_public(rsa_key), jwt_algorithm="RS256").test_client()


def test_rs256_app_accepts_a_token_signed_with_the_identity_services_key(
        rs_client: FlaskClient, rsa_key: rsa.RSAPrivateKey, user_id: str) -> None:
    """The control for the tests below."""
    token = jwt.encode(claims(user_id), rsa_key, algorithm="RS256")
    r = rs_client.get("/v1/me/account", headers=bearer(token))
    assert r.status_code == 200 and r.json["user_id"] == user_id


def test_rs256_app_refuses_an_hmac_token_keyed_with_its_public_key(
        rs_client: FlaskClient, rsa_key: rsa.RSAPrivateKey, user_id: str) -> None:
    """HS/RS key confusion: the public key is public, so an HS256 token "signed" with it
    must not verify (the algorithm is pinned by configuration, never read from the token)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    public = _pem_public(rsa_key).encode()
    for alg in ("HS256", "RS256"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims(user_id, role="admin")).encode())
        mac = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert_401(rs_client.get("/v1/admin/audit",
                                 headers=bearer(f"{header}.{payload}.{b64(mac)}")))


def test_rs256_app_refuses_the_shared_secret_and_alg_none(rs_client: FlaskClient,
                                                          user_id: str) -> None:
    hs = jwt.encode(claims(user_id), JWT_SECRET, algorithm="HS256")
    none = jwt.encode(claims(user_id), None, algorithm="none")
    for token in (hs, none):
        assert_401(rs_client.get("/v1/me/account", headers=bearer(token)))


def test_rs256_app_refuses_a_token_signed_with_another_key(
        rs_client: FlaskClient, other_rsa_key: rsa.RSAPrivateKey, user_id: str) -> None:
    token = jwt.encode(claims(user_id, role="admin"), other_rsa_key, algorithm="RS256")
    assert_401(rs_client.get("/v1/admin/audit", headers=bearer(token)))


def test_rs256_app_ignores_a_key_embedded_in_the_token_header(
        rs_client: FlaskClient, other_rsa_key: rsa.RSAPrivateKey, user_id: str) -> None:
    """jwk/jku/x5u header injection: the attacker ships their own key with the token."""
    numbers = other_rsa_key.public_key().public_numbers()

    def b64int(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    jwk = {"kty": "RSA", "n": b64int(numbers.n), "e": b64int(numbers.e)}
    token = jwt.encode(claims(user_id, role="admin"), other_rsa_key, algorithm="RS256",
                       headers={"jwk": jwk, "jku": "http://127.0.0.1:1/keys.json",
                                "kid": "attacker"})
    assert_401(rs_client.get("/v1/admin/audit", headers=bearer(token)))


def test_es256_app_accepts_its_key_and_refuses_another(make_app: Callable[..., Flask],
                                                       user_id: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    client = make_app(jwt_public_key=_pem_public(key), jwt_algorithm="ES256").test_client()
    good = jwt.encode(claims(user_id), key, algorithm="ES256")
    assert client.get("/v1/me/account", headers=bearer(good)).status_code == 200
    assert_401(client.get("/v1/me/account",
                          headers=bearer(jwt.encode(claims(user_id), other, algorithm="ES256"))))
    # An RS256-headed token against an ES256 app, even one validly signed by some RSA key.
    rsa_token = jwt.encode(claims(user_id), rsa.generate_private_key(65537, 2048),
                           algorithm="RS256")
    assert_401(client.get("/v1/me/account", headers=bearer(rsa_token)))
