"""Tokens verified against the identity provider's JWK Set (JWT_JWKS_URL), served by a
real HTTP server: the key a token's ``kid`` names, rotation without a restart, unknown
keys refused, and the set unreachable answered 503 with Retry-After, never 401 or 500."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient

from tests.api.test_auth import claims


class JwksServer:
    """An identity provider's JWKS endpoint whose keys a test sets, counting fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.fetches += 1
                body = json.dumps({"keys": [
                    {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                     "kid": kid, "use": "sig", "alg": "RS256"}
                    for kid, k in owner.keys.items()]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, kid: str) -> rsa.RSAPrivateKey:
        key = self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key

    def token(self, kid: str, sub: str) -> str:
        return jwt.encode(claims(sub), self.keys[kid], algorithm="RS256",
                          headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


@pytest.fixture
def jwks_client(make_app: Callable[..., Flask], idp: JwksServer) -> FlaskClient:
    return make_app(jwt_jwks_url=idp.url, jwt_jwks_cooldown_s=0).test_client()


def me(client: FlaskClient, token: str) -> Any:
    return client.get("/v1/me/account", headers={"Authorization": f"Bearer {token}"})


def test_a_token_is_verified_with_the_key_its_kid_names_and_the_set_is_cached(
        jwks_client: FlaskClient, idp: JwksServer, user_id: str) -> None:
    idp.add("k1")
    idp.add("k2")
    assert me(jwks_client, idp.token("k1", user_id)).status_code == 200
    assert me(jwks_client, idp.token("k2", user_id)).status_code == 200
    assert idp.fetches == 1  # one fetch serves both keys until the cache's lifespan


def test_a_rotated_key_is_fetched_and_a_removed_one_refused(
        jwks_client: FlaskClient, idp: JwksServer, user_id: str) -> None:
    idp.add("old")
    old = idp.token("old", user_id)
    assert me(jwks_client, old).status_code == 200
    idp.add("new")
    assert me(jwks_client, idp.token("new", user_id)).status_code == 200  # unknown kid: refetch
    del idp.keys["old"]
    forged = jwt.encode(claims(user_id, role="admin"),
                        rsa.generate_private_key(public_exponent=65537, key_size=2048),
                        algorithm="RS256", headers={"kid": "new"})
    r = me(jwks_client, forged)
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_token"
    r = me(jwks_client, jwt.encode(claims(user_id), idp.keys["new"], algorithm="RS256",
                                   headers={"kid": "nobody"}))
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_token"


def test_the_shared_secret_and_tokens_without_kid_are_refused(
        jwks_client: FlaskClient, idp: JwksServer, user_id: str) -> None:
    idp.add("k1")
    no_kid = jwt.encode(claims(user_id), idp.keys["k1"], algorithm="RS256")
    assert me(jwks_client, no_kid).status_code == 401
    hmac_token = jwt.encode(claims(user_id), "test-secret-" + "x" * 32, algorithm="HS256",
                            headers={"kid": "k1"})
    assert me(jwks_client, hmac_token).status_code == 401


def test_the_set_unreachable_is_a_503_with_retry_after(
        make_app: Callable[..., Flask], idp: JwksServer, user_id: str) -> None:
    idp.add("k1")
    token = idp.token("k1", user_id)
    url = idp.url
    idp.stop()
    client = make_app(jwt_jwks_url=url, jwt_jwks_cooldown_s=0).test_client()
    r = me(client, token)
    assert r.status_code == 503 and r.headers["Retry-After"], r.json
    assert r.json["error"]["code"] == "jwks_unavailable"
