"""Scenario providers on the real database and Redis: the replay store (both kinds, and a
failing one), resolve() inside another transaction, concurrent binds, sealed keys under
another secret, and the CLI."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from carbon_credits.providers import bindings, nonces
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import ProviderBinding
from tests.api.test_providers import add_hmac, issue, new_id, refusal, register
from tests.signing import Key


@pytest.fixture
def admin(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('ops-admin', 'admin')}"}


@pytest.fixture
def provider(app: Flask, admin: dict[str, str]) -> tuple[str, Key]:
    client = app.test_client()
    provider_id = register(client, admin)["id"]
    return provider_id, add_hmac(client, admin, provider_id)


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, rt: Runtime,
          suite_redis_url: str) -> nonces.NonceStore:
    if request.param == "redis":
        import redis
        return nonces.RedisNonces(redis.Redis.from_url(suite_redis_url))
    return nonces.DatabaseNonces(rt.db)


NOW = datetime.now(UTC)


def test_a_nonce_is_claimed_once_per_provider(store: nonces.NonceStore) -> None:
    nonce = uuid.uuid4().hex
    assert store.claim("p-a", nonce, 300, NOW)
    assert not store.claim("p-a", nonce, 300, NOW)
    assert store.claim("p-b", nonce, 300, NOW)


def test_a_database_nonce_may_come_again_once_expired(rt: Runtime) -> None:
    store = nonces.DatabaseNonces(rt.db)
    nonce = uuid.uuid4().hex
    assert store.claim("p-a", nonce, 300, NOW)
    assert not store.claim("p-a", nonce, 300, NOW + timedelta(seconds=299))
    assert store.claim("p-a", nonce, 300, NOW + timedelta(seconds=301))


def test_a_redis_nonce_expires_with_the_age_limit(suite_redis_url: str) -> None:
    import redis
    client = redis.Redis.from_url(suite_redis_url)
    nonce = uuid.uuid4().hex
    assert nonces.RedisNonces(client).claim("p-a", nonce, 330, NOW)
    assert 0 < client.ttl(f"cc:nonce:p-a:{nonce}") <= 330


def test_a_replay_is_refused_with_redis_as_the_store(make_app: Callable[..., Flask],
                                                     suite_redis_url: str,
                                                     provider: tuple[str, Key]) -> None:
    client = make_app(redis_url=suite_redis_url).test_client()
    nonce = uuid.uuid4().hex
    assert issue(client, provider[1], nonce=nonce).status_code == 201
    assert refusal(issue(client, provider[1], nonce=nonce)) == "nonce_reused"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_replay_store_is_a_503_with_retry_after(make_app: Callable[..., Flask],
                                                          provider: tuple[str, Key]) -> None:
    client = make_app(redis_url=f"redis://127.0.0.1:{closed_port()}/0").test_client()
    r = issue(client, provider[1])
    assert r.status_code == 503, r.json
    assert r.json["error"]["code"] == "nonce_store_unavailable"
    assert int(r.headers["Retry-After"]) > 0


def test_keys_sealed_under_another_secret_do_not_verify(make_app: Callable[..., Flask],
                                                        provider: tuple[str, Key]) -> None:
    client = make_app(provider_key_secret="another secret").test_client()
    assert refusal(issue(client, provider[1])) == "unknown_key"


def test_resolve_is_one_query_inside_the_callers_transaction(rt: Runtime,
                                                             provider: tuple[str, Key]
                                                             ) -> None:
    provider_id = provider[0]
    users = {f"ref-{i}": new_id("u") for i in range(3)}
    with rt.db.transaction() as session:
        for ref, user in users.items():
            session.add(ProviderBinding(provider_id=provider_id, user_ref=ref, user_id=user,
                                        bound_at=NOW))
        session.add(ProviderBinding(provider_id=provider_id, user_ref="ref-gone",
                                    user_id=new_id("u"), bound_at=NOW, revoked_at=NOW))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with rt.db.transaction() as session:
        session.get(ProviderBinding, 1)  # the caller's own work, same transaction
        event.listen(rt.db.engine, "before_cursor_execute", count)
        try:
            found = bindings.resolve(session, provider_id,
                                     [*users, "ref-gone", "ref-unknown", "ref-0"])
        finally:
            event.remove(rt.db.engine, "before_cursor_execute", count)
    assert found == users
    assert len(statements) == 1
    with rt.db.transaction() as session:
        assert bindings.resolve(session, provider_id, []) == {}
        assert bindings.resolve(session, "no-such-provider", list(users)) == {}


def test_concurrent_binds_with_one_code_bind_once(app: Flask, token: Callable[..., str],
                                                  provider: tuple[str, Key],
                                                  rt: Runtime) -> None:
    provider_id, key = provider
    code = issue(app.test_client(), key, "card-race").json["code"]
    users = [new_id("u") for _ in range(6)]
    statuses: list[int] = []
    start = threading.Barrier(len(users))

    def bind(user: str) -> None:
        client = app.test_client()
        start.wait()
        r = client.post("/v1/me/bindings", json={"provider_id": provider_id, "code": code},
                        headers={"Authorization": f"Bearer {token(user)}"})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=bind, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [409] * (len(users) - 1)
    with rt.db.transaction() as session:
        bound = bindings.resolve(session, provider_id, ["card-race"])
    assert list(bound) == ["card-race"] and bound["card-race"] in users


def test_the_cli_manages_providers(app: Flask, rt: Runtime) -> None:
    runner = app.test_cli_runner()
    provider_id = new_id("cli")

    def run(*args: str) -> Any:
        result = runner.invoke(args=["provider", *args])
        return result

    added = run("add", provider_id, "--name", "Bike Co", "--city", "shenzhen",
                "--mode", "bikeshare", "--mode", "steps")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["modes"] == ["bikeshare", "steps"]
    first = json.loads(run("key-add", provider_id).stdout)
    assert first["algorithm"] == "hmac-sha256" and first["secret"]
    key, pem = Key.ed25519(f"{provider_id}-ed")
    second = runner.invoke(args=["provider", "key-add", provider_id, "--algorithm", "ed25519",
                                 "--key-id", key.key_id, "--public-key", "-"], input=pem)
    assert second.exit_code == 0, second.output
    third = run("key-add", provider_id)
    assert third.exit_code != 0 and "revoke one first" in third.output
    client = app.test_client()
    assert issue(client, key).status_code == 201
    assert run("key-revoke", provider_id, first["key_id"], "--reason", "rotated").exit_code == 0
    assert run("disable", provider_id, "--reason", "paused").exit_code == 0
    assert refusal(issue(client, key)) == "provider_disabled"
    assert run("enable", provider_id, "--reason", "resumed").exit_code == 0
    assert issue(client, key).status_code == 201
    listed = [json.loads(line) for line in run("list").stdout.splitlines()]
    mine = next(p for p in listed if p["id"] == provider_id)
    # By key id, not by place: the list orders keys by created_at, then key_id, and both
    # keys were made at the suite's pinned instant, so their order is that of the random
    # HMAC key id against "<provider>-ed" (it failed one run in about 14).
    assert {k["key_id"]: k["revoked_at"] is not None for k in mine["keys"]} == {
        first["key_id"]: True, key.key_id: False}
    assert first["secret"] not in run("list").stdout
    bad = run("add", "bad/id", "--name", "x", "--city", "shenzhen", "--mode", "bus")
    assert bad.exit_code != 0 and "id" in bad.output
    audit = [a for a in rt_audit(rt) if a.target == f"provider:{provider_id}"]
    assert [a.action for a in audit] == ["provider.register", "provider.key_add",
                                         "provider.key_add", "provider.key_revoke",
                                         "provider.disable", "provider.enable"]
    assert all(a.actor == "cli" for a in audit)
    assert first["secret"] not in json.dumps([a.after for a in audit])


def rt_audit(rt: Runtime) -> list[Any]:
    from sqlalchemy import select

    from carbon_credits.storage.models import AuditRecord
    with rt.db.transaction() as session:
        return list(session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


def test_get_provider_is_a_frozen_view(rt: Runtime, app: Flask,
                                       admin: dict[str, str]) -> None:
    from dataclasses import FrozenInstanceError

    from carbon_credits.providers import registry
    provider_id = register(app.test_client(), admin, modes=["bus", "metro"])["id"]
    with rt.db.transaction() as session:
        found = registry.get_provider(session, provider_id)
        assert registry.get_provider(session, "no-such-provider") is None
    assert found == registry.Provider(id=provider_id, name="Test Metro", city="shenzhen",
                                      modes=frozenset({"bus", "metro"}), enabled=True)
    with pytest.raises(FrozenInstanceError):
        found.enabled = False  # type: ignore[misc]
