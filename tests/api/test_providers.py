"""Scenario providers through the HTTP API: registration and keys (admin, audited), signed
requests (RFC 9421) and their refusals, bindings (consent) and resolve()."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from http_message_signatures import ContentDigest

from carbon_credits.providers import bindings
from carbon_credits.runtime import Runtime
from tests.signing import Key, body_of, sign

CODES = "/v1/provider/binding-codes"


def new_id(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('ops-admin', 'admin')}"}


def register(client: FlaskClient, admin: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body = {"id": new_id(), "name": "Test Metro", "city": "shenzhen", "modes": ["metro"]}
    body.update(overrides)
    r = client.post("/v1/admin/providers", json=body, headers=admin)
    assert r.status_code == 201, r.json
    result: dict[str, Any] = r.json
    return result


def add_hmac(client: FlaskClient, admin: dict[str, str], provider_id: str) -> Key:
    r = client.post(f"/v1/admin/providers/{provider_id}/keys",
                    json={"algorithm": "hmac-sha256"}, headers=admin)
    assert r.status_code == 201, r.json
    return Key.hmac(r.json["key_id"], r.json["secret"])


@pytest.fixture
def provider(client: FlaskClient, admin: dict[str, str]) -> tuple[str, Key]:
    """A registered provider with one HMAC key."""
    provider_id = register(client, admin)["id"]
    return provider_id, add_hmac(client, admin, provider_id)


def issue(client: FlaskClient, key: Key, user_ref: str = "card-1", **sign_args: Any) -> Any:
    body = body_of({"user_ref": user_ref})
    return client.post(CODES, data=body, headers=sign(key, "POST", CODES, body, **sign_args))


# ---------------------------------------------------------------- signatures

def test_a_valid_hmac_signature_is_accepted(client: FlaskClient,
                                           provider: tuple[str, Key]) -> None:
    r = issue(client, provider[1])
    assert r.status_code == 201, r.json
    assert r.json["user_ref"] == "card-1" and len(r.json["code"]) == 11


def test_a_valid_ed25519_signature_is_accepted(client: FlaskClient, admin: dict[str, str]
                                               ) -> None:
    provider_id = register(client, admin)["id"]
    key, pem = Key.ed25519(f"{provider_id}-ed")
    r = client.post(f"/v1/admin/providers/{provider_id}/keys", headers=admin,
                    json={"algorithm": "ed25519", "public_key": pem, "key_id": key.key_id})
    assert r.status_code == 201, r.json
    assert "secret" not in r.json
    assert issue(client, key).status_code == 201


def test_a_raw_base64_ed25519_key_is_accepted(client: FlaskClient, admin: dict[str, str]
                                              ) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    provider_id = register(client, admin)["id"]
    key, _ = Key.ed25519(f"{provider_id}-raw")
    raw = key.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
    r = client.post(f"/v1/admin/providers/{provider_id}/keys", headers=admin,
                    json={"algorithm": "ed25519", "key_id": key.key_id,
                          "public_key": base64.b64encode(raw).decode()})
    assert r.status_code == 201, r.json
    assert issue(client, key).status_code == 201


def refusal(r: Any) -> str:
    assert r.status_code == 401, (r.status_code, r.json)
    assert "Accept-Signature" in r.headers
    code: str = r.json["error"]["code"]
    return code


def test_an_unsigned_request_is_refused(client: FlaskClient) -> None:
    r = client.post(CODES, json={"user_ref": "card-1"})
    assert refusal(r) == "signature_missing"


def test_a_created_older_than_the_limit_is_refused(client: FlaskClient,
                                                   provider: tuple[str, Key]) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    assert refusal(issue(client, provider[1], created=old)) == "signature_expired"


def test_a_created_in_the_future_is_refused(client: FlaskClient,
                                            provider: tuple[str, Key]) -> None:
    ahead = datetime.now(UTC) + timedelta(hours=1)
    assert refusal(issue(client, provider[1], created=ahead)) == "signature_in_future"


def test_the_age_limit_is_configurable(make_app: Callable[..., Flask],
                                       provider: tuple[str, Key]) -> None:
    strict = make_app(provider_signature_max_age_s=5).test_client()
    made = datetime.now(UTC) - timedelta(minutes=2)
    assert refusal(issue(strict, provider[1], created=made)) == "signature_expired"


def test_a_replayed_nonce_is_refused(client: FlaskClient, provider: tuple[str, Key]) -> None:
    nonce = uuid.uuid4().hex
    assert issue(client, provider[1], nonce=nonce).status_code == 201
    assert refusal(issue(client, provider[1], nonce=nonce)) == "nonce_reused"


def test_the_same_request_sent_twice_is_refused_the_second_time(
        client: FlaskClient, provider: tuple[str, Key]) -> None:
    body = body_of({"user_ref": "card-9"})
    headers = sign(provider[1], "POST", CODES, body)
    assert client.post(CODES, data=body, headers=headers).status_code == 201
    assert refusal(client.post(CODES, data=body, headers=headers)) == "nonce_reused"


def test_a_nonce_of_another_provider_is_no_replay(client: FlaskClient, admin: dict[str, str],
                                                  provider: tuple[str, Key]) -> None:
    other = register(client, admin)["id"]
    other_key = add_hmac(client, admin, other)
    nonce = uuid.uuid4().hex
    assert issue(client, provider[1], nonce=nonce).status_code == 201
    assert issue(client, other_key, nonce=nonce).status_code == 201


def test_a_tampered_body_is_refused(client: FlaskClient, provider: tuple[str, Key]) -> None:
    body = body_of({"user_ref": "card-1"})
    headers = sign(provider[1], "POST", CODES, body)
    r = client.post(CODES, data=body_of({"user_ref": "card-2"}), headers=headers)
    assert refusal(r) == "digest_mismatch"


def test_a_signed_wrong_digest_is_refused(client: FlaskClient,
                                          provider: tuple[str, Key]) -> None:
    body = body_of({"user_ref": "card-1"})
    wrong = ContentDigest.create(b"something else")
    r = client.post(CODES, data=body, headers=sign(provider[1], "POST", CODES, body,
                                                   digest=wrong))
    assert refusal(r) == "digest_mismatch"


def test_a_sha512_digest_is_accepted(client: FlaskClient, provider: tuple[str, Key]) -> None:
    import base64
    import hashlib
    body = body_of({"user_ref": "card-1"})
    digest = "sha-512=:" + base64.b64encode(hashlib.sha512(body).digest()).decode() + ":"
    r = client.post(CODES, data=body, headers=sign(provider[1], "POST", CODES, body,
                                                   digest=digest))
    assert r.status_code == 201, r.json


def test_a_missing_digest_is_refused(client: FlaskClient, provider: tuple[str, Key]) -> None:
    body = body_of({"user_ref": "card-1"})
    headers = sign(provider[1], "POST", CODES, body)
    del headers["Content-Digest"]
    assert refusal(client.post(CODES, data=body, headers=headers)) == "digest_missing"


@pytest.mark.parametrize("left_out", ["@method", "@target-uri", "content-digest"])
def test_a_required_component_left_out_is_refused(client: FlaskClient,
                                                  provider: tuple[str, Key],
                                                  left_out: str) -> None:
    body = body_of({"user_ref": "card-1"})
    covered = [c for c in ("@method", "@target-uri", "content-digest") if c != left_out]
    headers = sign(provider[1], "POST", CODES, body, covered=covered,
                   digest=ContentDigest.create(body))
    assert refusal(client.post(CODES, data=body, headers=headers)) == "component_not_covered"


def test_a_signature_without_a_nonce_is_refused(client: FlaskClient,
                                                provider: tuple[str, Key]) -> None:
    assert refusal(issue(client, provider[1], omit_nonce=True)) == "signature_param_missing"
    assert refusal(issue(client, provider[1], nonce="")) == "signature_malformed"


def test_an_ed25519_signature_is_not_an_hmac_one(client: FlaskClient, admin: dict[str, str],
                                                 provider: tuple[str, Key]) -> None:
    """The key's algorithm decides, not the signature's claim: an Ed25519 signature under
    an HMAC key id is refused (no algorithm confusion)."""
    forged, _ = Key.ed25519(provider[1].key_id)
    assert refusal(issue(client, forged)) == "bad_signature"
    assert refusal(issue(client, forged, include_alg=False)) == "bad_signature"


def test_a_refusal_carries_a_challenge(client: FlaskClient) -> None:
    r = client.post(CODES, json={"user_ref": "card-1"})
    assert r.headers["WWW-Authenticate"].startswith("Signature")
    assert '"@target-uri"' in r.headers["Accept-Signature"]


def test_an_unknown_key_id_is_refused(client: FlaskClient, provider: tuple[str, Key]) -> None:
    r = issue(client, provider[1], key_id="no-such-key")
    assert refusal(r) == "unknown_key"


def test_a_wrong_secret_is_a_bad_signature(client: FlaskClient,
                                           provider: tuple[str, Key]) -> None:
    forged = Key(provider[1].key_id, "hmac-sha256", b"x" * 32)
    assert refusal(issue(client, forged)) == "bad_signature"


def test_a_signature_for_another_uri_is_refused(client: FlaskClient,
                                                provider: tuple[str, Key]) -> None:
    r = issue(client, provider[1], base="https://api.example.org")
    assert refusal(r) == "bad_signature"


def test_rotation_two_keys_then_the_old_one_revoked(client: FlaskClient,
                                                    admin: dict[str, str],
                                                    provider: tuple[str, Key]) -> None:
    provider_id, old = provider
    new = add_hmac(client, admin, provider_id)
    assert issue(client, old).status_code == 201
    assert issue(client, new).status_code == 201
    third = client.post(f"/v1/admin/providers/{provider_id}/keys",
                        json={"algorithm": "hmac-sha256"}, headers=admin)
    assert third.status_code == 409 and third.json["error"]["code"] == "too_many_keys"
    revoked = client.post(f"/v1/admin/providers/{provider_id}/keys/{old.key_id}/revoke",
                          json={"reason": "rotation done"}, headers=admin)
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    assert refusal(issue(client, old)) == "key_revoked"
    assert issue(client, new).status_code == 201
    assert client.post(f"/v1/admin/providers/{provider_id}/keys",
                       json={"algorithm": "hmac-sha256"}, headers=admin).status_code == 201


def test_a_disabled_provider_is_refused_until_enabled(client: FlaskClient,
                                                      admin: dict[str, str],
                                                      provider: tuple[str, Key]) -> None:
    provider_id, key = provider
    r = client.post(f"/v1/admin/providers/{provider_id}/disable", json={"reason": "audit"},
                    headers=admin)
    assert r.status_code == 200 and r.json["enabled"] is False
    assert refusal(issue(client, key)) == "provider_disabled"
    client.post(f"/v1/admin/providers/{provider_id}/enable", json={"reason": "ok again"},
                headers=admin)
    assert issue(client, key).status_code == 201


def test_a_user_token_does_not_reach_a_provider_route(client: FlaskClient,
                                                      auth: dict[str, str],
                                                      admin: dict[str, str]) -> None:
    for headers in (auth, admin):
        r = client.post(CODES, json={"user_ref": "card-1"}, headers=headers)
        assert refusal(r) == "signature_missing"


@pytest.mark.parametrize("path", ["/v1/admin/providers", "/v1/me/account", "/v1/me/bindings",
                                  "/v1/admin/audit"])
def test_a_signed_provider_request_does_not_reach_other_routes(
        client: FlaskClient, provider: tuple[str, Key], path: str) -> None:
    r = client.get(path, headers=sign(provider[1], "GET", path))
    assert r.status_code == 401 and r.json["error"]["code"] == "missing_token"


def test_target_uri_behind_a_tls_proxy(make_app: Callable[..., Flask],
                                       provider: tuple[str, Key]) -> None:
    """Behind deploy/nginx.conf (TLS at nginx, Host without port, X-Forwarded-Proto and
    -Host as the client sent them), the URI checked is the one the provider signed."""
    public = "https://api.example.org:8443"
    body = body_of({"user_ref": "card-1"})
    forwarded = {"Host": "api.example.org", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "api.example.org:8443", "X-Forwarded-For": "203.0.113.9"}
    proxied = make_app(proxy_fix_x_for=1, proxy_fix_x_proto=1, proxy_fix_x_host=1)
    r = proxied.test_client().post(CODES, data=body, headers={
        **sign(provider[1], "POST", CODES, body, base=public), **forwarded})
    assert r.status_code == 201, r.json
    # Without trusting the proxy, the app sees http://api.example.org: not what was signed.
    plain = make_app()
    r = plain.test_client().post(CODES, data=body, headers={
        **sign(provider[1], "POST", CODES, body, base=public), **forwarded})
    assert refusal(r) == "bad_signature"


def test_a_query_string_is_part_of_the_signed_uri(client: FlaskClient,
                                                  provider: tuple[str, Key]) -> None:
    body = body_of({"user_ref": "card-1"})
    headers = sign(provider[1], "POST", CODES + "?source=batch%201", body)
    assert client.post(CODES + "?source=batch%201", data=body,
                       headers=headers).status_code == 201
    headers = sign(provider[1], "POST", CODES + "?source=a", body)
    assert refusal(client.post(CODES + "?source=b", data=body,
                               headers=headers)) == "bad_signature"


# ---------------------------------------------------------------- admin and audit

def audit_actions(client: FlaskClient, admin: dict[str, str], provider_id: str
                  ) -> list[dict[str, Any]]:
    items = client.get("/v1/admin/audit?limit=200", headers=admin).json["items"]
    return [a for a in items if a["target"] == f"provider:{provider_id}"]


def test_every_admin_change_is_audited_without_secrets(client: FlaskClient,
                                                       admin: dict[str, str]) -> None:
    provider_id = register(client, admin, reason="contract signed")["id"]
    r = client.post(f"/v1/admin/providers/{provider_id}/keys",
                    json={"algorithm": "hmac-sha256", "reason": "first key"}, headers=admin)
    secret, key_id = r.json["secret"], r.json["key_id"]
    client.post(f"/v1/admin/providers/{provider_id}/keys/{key_id}/revoke",
                json={"reason": "leaked"}, headers=admin)
    client.post(f"/v1/admin/providers/{provider_id}/disable", json={"reason": "paused"},
                headers=admin)
    client.post(f"/v1/admin/providers/{provider_id}/enable", json={"reason": "resumed"},
                headers=admin)
    records = audit_actions(client, admin, provider_id)
    assert [a["action"] for a in reversed(records)] == [
        "provider.register", "provider.key_add", "provider.key_revoke", "provider.disable",
        "provider.enable"]
    assert [a["reason"] for a in reversed(records)] == [
        "contract signed", "first key", "leaked", "paused", "resumed"]
    assert all(a["actor"] == "ops-admin" for a in records)
    assert secret not in str(records)
    assert "secret" not in str(records)


def test_the_secret_is_shown_once(client: FlaskClient, admin: dict[str, str],
                                  provider: tuple[str, Key], rt: Runtime) -> None:
    provider_id, key = provider
    shown = client.get(f"/v1/admin/providers/{provider_id}", headers=admin).json
    assert [k["key_id"] for k in shown["keys"]] == [key.key_id]
    assert "secret" not in str(shown)
    listed = client.get("/v1/admin/providers", headers=admin).json
    assert "secret" not in str(listed)


def test_the_stored_hmac_secret_is_sealed(provider: tuple[str, Key], rt: Runtime) -> None:
    from carbon_credits.storage.models import ProviderKey
    with rt.db.transaction() as session:
        row = session.get(ProviderKey, provider[1].key_id)
        assert row is not None and row.secret_sealed is not None
        assert provider[1].private not in row.secret_sealed


@pytest.mark.parametrize(("body", "field"), [
    ({"id": "a/b", "name": "x", "city": "shenzhen", "modes": ["metro"]}, "id"),
    ({"id": "x" * 33, "name": "x", "city": "shenzhen", "modes": ["metro"]}, "id"),
    ({"id": "ok", "name": "x", "city": "shenzhen", "modes": ["plane"]}, "modes"),
    ({"id": "ok", "name": "x", "city": "shenzhen", "modes": []}, "modes"),
])
def test_bad_provider_registrations_name_the_field(client: FlaskClient, admin: dict[str, str],
                                                   body: dict[str, Any], field: str) -> None:
    r = client.post("/v1/admin/providers", json=body, headers=admin)
    assert r.status_code == 422 and field in r.json["error"]["fields"], r.json


def test_a_provider_id_is_registered_once(client: FlaskClient, admin: dict[str, str]) -> None:
    provider_id = register(client, admin)["id"]
    r = client.post("/v1/admin/providers", headers=admin, json={
        "id": provider_id, "name": "again", "city": "shenzhen", "modes": ["bus"]})
    assert r.status_code == 409 and r.json["error"]["code"] == "provider_exists"


def test_a_bad_ed25519_key_is_refused(client: FlaskClient, admin: dict[str, str]) -> None:
    provider_id = register(client, admin)["id"]
    r = client.post(f"/v1/admin/providers/{provider_id}/keys", headers=admin,
                    json={"algorithm": "ed25519", "public_key": "bm90IGEga2V5"})
    assert r.status_code == 422 and "public_key" in r.json["error"]["fields"]


def test_only_admins_manage_providers(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/v1/admin/providers", headers=auth).status_code == 403
    assert client.get("/v1/admin/providers").status_code == 401


# ---------------------------------------------------------------- bindings

def bind(client: FlaskClient, token: Callable[..., str], user: str, provider_id: str,
         code: str) -> Any:
    return client.post("/v1/me/bindings", json={"provider_id": provider_id, "code": code},
                       headers={"Authorization": f"Bearer {token(user)}"})


def test_a_user_binds_lists_and_revokes(client: FlaskClient, token: Callable[..., str],
                                        provider: tuple[str, Key], rt: Runtime) -> None:
    provider_id, key = provider
    user = new_id("u")
    code = issue(client, key, "card-42").json["code"]
    r = bind(client, token, user, provider_id, code)
    assert r.status_code == 201, r.json
    assert (r.json["provider_id"], r.json["user_ref"]) == (provider_id, "card-42")
    headers = {"Authorization": f"Bearer {token(user)}"}
    assert [b["user_ref"] for b in client.get("/v1/me/bindings", headers=headers).json[
        "items"]] == ["card-42"]
    with rt.db.transaction() as session:
        assert bindings.resolve(session, provider_id, ["card-42", "card-0"]) == {
            "card-42": user}
    r = client.delete(f"/v1/me/bindings/{provider_id}", headers=headers)
    assert r.status_code == 200 and r.json["revoked_at"]
    with rt.db.transaction() as session:
        assert bindings.resolve(session, provider_id, ["card-42"]) == {}
    assert client.get("/v1/me/bindings", headers=headers).json["items"] == []
    history = client.get("/v1/me/bindings?include_revoked=true", headers=headers).json
    assert [b["revoked_at"] is not None for b in history["items"]] == [True]
    assert client.delete(f"/v1/me/bindings/{provider_id}",
                         headers=headers).status_code == 404


def test_rebinding_after_revocation_makes_a_new_row(client: FlaskClient,
                                                    token: Callable[..., str],
                                                    provider: tuple[str, Key],
                                                    rt: Runtime) -> None:
    provider_id, key = provider
    user = new_id("u")
    headers = {"Authorization": f"Bearer {token(user)}"}
    assert bind(client, token, user, provider_id,
                issue(client, key, "card-7").json["code"]).status_code == 201
    client.delete(f"/v1/me/bindings/{provider_id}", headers=headers)
    assert bind(client, token, user, provider_id,
                issue(client, key, "card-7").json["code"]).status_code == 201
    history = client.get("/v1/me/bindings?include_revoked=true", headers=headers).json["items"]
    assert [b["revoked_at"] is None for b in history] == [True, False]
    with rt.db.transaction() as session:
        assert bindings.resolve(session, provider_id, {"card-7"}) == {"card-7": user}


def test_a_code_is_single_use(client: FlaskClient, token: Callable[..., str],
                              provider: tuple[str, Key]) -> None:
    provider_id, key = provider
    code = issue(client, key, "card-5").json["code"]
    first = new_id("u")
    assert bind(client, token, first, provider_id, code).status_code == 201
    again = bind(client, token, first, provider_id, code)
    assert again.status_code == 200 and again.json["user_ref"] == "card-5"  # a retry
    other = bind(client, token, new_id("u"), provider_id, code)
    assert other.status_code == 409 and other.json["error"]["code"] == "code_used"


def test_an_expired_code_is_refused(client: FlaskClient, token: Callable[..., str],
                                    provider: tuple[str, Key], rt: Runtime) -> None:
    provider_id, key = provider
    code = issue(client, key, "card-6").json["code"]
    pinned = rt.clock
    later = pinned() + timedelta(seconds=rt.config.binding_code_ttl_s + 1)
    rt.clock = lambda: later
    try:
        r = bind(client, token, new_id("u"), provider_id, code)
    finally:
        rt.clock = pinned
    assert r.status_code == 422 and r.json["error"]["code"] == "code_expired"


def test_a_code_binds_only_to_its_provider(client: FlaskClient, token: Callable[..., str],
                                           admin: dict[str, str],
                                           provider: tuple[str, Key]) -> None:
    provider_id, key = provider
    other = register(client, admin)["id"]
    code = issue(client, key, "card-8").json["code"]
    r = bind(client, token, new_id("u"), other, code)
    assert r.status_code == 422 and r.json["error"]["code"] == "invalid_code"
    assert bind(client, token, new_id("u"), provider_id, code).status_code == 201


def test_one_active_binding_per_ref_and_per_user(client: FlaskClient,
                                                 token: Callable[..., str],
                                                 provider: tuple[str, Key]) -> None:
    provider_id, key = provider
    user = new_id("u")
    assert bind(client, token, user, provider_id,
                issue(client, key, "card-a").json["code"]).status_code == 201
    second = bind(client, token, user, provider_id, issue(client, key, "card-b").json["code"])
    assert second.status_code == 409 and second.json["error"]["code"] == "already_bound"
    taken = bind(client, token, new_id("u"), provider_id,
                 issue(client, key, "card-a").json["code"])
    assert taken.status_code == 409 and taken.json["error"]["code"] == "ref_already_bound"


def test_a_code_typed_loosely_still_binds(client: FlaskClient, token: Callable[..., str],
                                          provider: tuple[str, Key]) -> None:
    provider_id, key = provider
    code = issue(client, key, "card-c").json["code"]
    typed = code.lower().replace("-", " ")
    assert bind(client, token, new_id("u"), provider_id, typed).status_code == 201


def test_bindings_need_a_user_token(client: FlaskClient, provider: tuple[str, Key]) -> None:
    r = client.post("/v1/me/bindings", json={"provider_id": provider[0], "code": "X"},
                    headers=sign(provider[1], "POST", "/v1/me/bindings"))
    assert r.status_code == 401 and r.json["error"]["code"] == "missing_token"


# ---------------------------------------------------------------- hostile bodies, signed

def test_hostile_bodies_signed_are_clean_4xx(client: FlaskClient,
                                            provider: tuple[str, Key]) -> None:
    """tests/security/test_hostile_input.py's bodies, on the provider route and signed, so
    they reach the parser: too large 413, too deep or not UTF-8 a 400/422, never a 500."""
    key = provider[1]
    cases = [
        (json.dumps({"padding": "x" * ((1 << 20) + 1)}).encode(), {413}),
        (("[" * 100_000 + "]" * 100_000).encode(), {400}),
        (('{"a":' * 900 + "1" + "}" * 900).encode(), {400, 422}),
        (json.dumps({"user_ref": "café ÿ"}, ensure_ascii=False).encode("latin-1"), {400}),
        (json.dumps({"user_ref": "card-1"}).encode("utf-16"), {400}),
        (b'{"user_ref": "a", "user_ref": "b"}', {400}),
        (b'{"user_ref": "ref \\ud800"}', {422}),
    ]
    for body, statuses in cases:
        r = client.post(CODES, data=body, headers=sign(key, "POST", CODES, body))
        assert r.status_code in statuses, (body[:40], r.status_code, r.get_data()[:200])
        assert set(r.json) == {"error"}
