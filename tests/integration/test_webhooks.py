"""Webhooks out: an endpoint registered by an admin, deliveries written to the outbox in
the crediting transaction, sent by a Dramatiq worker to a real HTTP receiver that fails
twice then succeeds: one delivery id three times, stored state consistent, the signature
verified on the receiving side with the http-message-signatures library."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from flask import Flask
from sqlalchemy import select, update

from carbon_credits.ingest import events
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import load_event
from carbon_credits.storage.models import (
    AuditRecord,
    Badge,
    BadgeAward,
    WebhookDelivery,
    WebhookEndpoint,
)
from carbon_credits.tokens import Principal
from carbon_credits.webhooks import delivery, outbox
from tests import factories
from tests.integration.test_campaigns import campaign, trips
from tests.integration.test_rollups import seed_city

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_receiver() -> dict[str, Any]:
    """The README's receiver check ("Verifying a delivery"), run as written."""
    text = README.read_text(encoding="utf-8")
    start = text.index("**Verifying a delivery**")
    block = text[text.index("```python\n", start) + len("```python\n"):]
    namespace: dict[str, Any] = {}
    exec(block[:block.index("```")], namespace)  # noqa: S102 (our own README)
    return namespace


verify_delivery = _readme_receiver()["verify_delivery"]

FAILURES = 2
"""Answers of 503 the receiver gives each delivery id before a 200."""


class Receiver:
    """A client platform's endpoint: records every request; fails each delivery id's
    first ``FAILURES`` attempts."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    seen = dict(self.headers.items())
                    delivery_id = seen.get("Webhook-Delivery-Id", "")
                    before = sum(r["id"] == delivery_id for r in receiver.requests)
                    receiver.requests.append({"id": delivery_id, "headers": seen,
                                              "body": body, "path": self.path})
                self.send_response(503 if before < FAILURES else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/carbon"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, delivery_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["id"] == delivery_id]


def wait_for(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def queued(make_app: Callable[..., Flask], suite_redis_url: str) -> Iterator[Flask]:
    """An app on the suite's Redis with short backoffs, and a Dramatiq worker of its
    webhook queue in this process."""
    before = outbox.use_sender(None)
    outbox.use_sender(before)
    app = make_app(redis_url=suite_redis_url, webhook_min_backoff_ms=50,
                   webhook_max_backoff_ms=200, webhook_max_attempts=5)
    rt: Runtime = app.extensions["carbon_credits"]
    queue = delivery.queue(rt.config)
    assert queue is not None
    queue.broker.flush_all()
    queue.serve(rt)
    worker = dramatiq.Worker(queue.broker, queues={delivery.QUEUE_NAME}, worker_threads=2)
    worker.start()
    yield app
    worker.stop(timeout=10_000)
    queue.broker.flush_all()
    with rt.db.transaction() as s:  # no later test's credits are to be sent anywhere
        s.execute(update(WebhookEndpoint).values(enabled=False))
    outbox.use_sender(before)


def admin(app: Flask) -> dict[str, str]:
    rt: Runtime = app.extensions["carbon_credits"]
    return {"Authorization": f"Bearer {rt.codec.encode('ops', 'admin', None, 600)}"}


def stored(rt: Runtime, delivery_id: str) -> WebhookDelivery:
    with rt.db.transaction() as s:
        row = s.scalars(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)).one()
        s.expunge(row)
        return row


def test_a_receiver_failing_twice_gets_one_delivery_id_three_times(
        queued: Flask, receiver: Receiver, user_id: str) -> None:
    rt: Runtime = queued.extensions["carbon_credits"]
    client = queued.test_client()
    city = seed_city(rt, "hook")
    endpoint_id = f"platform-{city}"
    r = client.post("/v1/admin/webhooks", headers=admin(queued), json={
        "id": endpoint_id, "url": receiver.url,
        "kinds": ["event.credited", "challenge.completed"], "reason": "the mini-program"})
    assert r.status_code == 201, r.json
    registered = r.json
    assert registered["secret"] and registered["key_id"]
    campaign(rt, city, goal_events=1, bonus_points=30)

    credited = trips(rt, city, user_id, 1)[0]
    with rt.db.transaction() as s:
        made = {d.kind: d.id for d in s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id))}
    assert set(made) == {"event.credited", "challenge.completed"}
    for kind, delivery_id in made.items():
        wait_for(lambda d=delivery_id: stored(rt, d).state == "delivered",  # type: ignore[misc]
                 f"the {kind} delivery")
        seen = receiver.of(delivery_id)
        assert len(seen) == FAILURES + 1
        assert len({r["body"] for r in seen}) == 1  # the same notification every time
        row = stored(rt, delivery_id)
        assert (row.attempts, row.last_status, row.last_error) == (FAILURES + 1, 200, None)
        assert row.delivered_at is not None
        for request in seen:  # each attempt signed anew (own nonce), each verifies
            results = verify_delivery("POST", receiver.url, request["headers"],
                                      request["body"], registered["key_id"],
                                      registered["secret"])
            assert results[0].parameters["keyid"] == registered["key_id"]
        assert len({r["headers"]["Signature"] for r in seen}) == FAILURES + 1
    body = receiver.of(made["event.credited"])[0]["body"]
    assert credited["event_id"].encode() in body

    listed = client.get(f"/v1/admin/webhooks/deliveries?endpoint_id={endpoint_id}",
                        headers=admin(queued)).json["items"]
    assert {d["id"] for d in listed} == set(made.values())
    assert all(d["state"] == "delivered" and d["attempts"] == 3 for d in listed)

    # A replay sends the same delivery id again (the receiver dedupes by it); audited.
    replayed = made["event.credited"]
    r = client.post(f"/v1/admin/webhooks/{endpoint_id}/deliveries/{replayed}/replay",
                    json={"reason": "the platform lost it"}, headers=admin(queued))
    assert r.status_code == 200, r.json
    wait_for(lambda: stored(rt, replayed).state == "delivered"
             and stored(rt, replayed).attempts == FAILURES + 2, "the replay")
    assert len(receiver.of(replayed)) == FAILURES + 2
    with rt.db.transaction() as s:
        assert s.scalars(select(AuditRecord.action).where(
            AuditRecord.target == f"webhook:{endpoint_id}/{replayed}")).all() == [
            "webhook.replay"]


def test_a_delivery_waits_in_the_outbox_when_the_queue_is_down(
        make_app: Callable[..., Flask], receiver: Receiver, user_id: str) -> None:
    """Redis unreachable when the credit commits: the credit stands, its delivery stays
    pending in the outbox, and a sweep queues it once the queue is back."""
    before = outbox.use_sender(None)
    outbox.use_sender(before)
    app = make_app(redis_url="redis://127.0.0.1:9/0")  # nothing listens on port 9
    rt: Runtime = app.extensions["carbon_credits"]
    city = seed_city(rt, "hook")
    endpoint_id = f"down-{city}"
    try:
        r = app.test_client().post("/v1/admin/webhooks", headers=admin(app), json={
            "id": endpoint_id, "url": receiver.url, "kinds": ["event.credited"],
            "reason": "the queue is down"})
        assert r.status_code == 201, r.json
        credited = trips(rt, city, user_id, 1)[0]
        assert credited["status"] == "credited"
        with rt.db.transaction() as s:
            rows = s.scalars(select(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint_id)).all()
            assert [(d.state, d.attempts, d.payload["event_id"]) for d in rows] == [
                ("pending", 0, credited["event_id"])]
        assert receiver.requests == []
        pending = rows[0].id
        # The queue is back: here the process's own sender (no Redis) sends it.
        local = make_app(redis_url=None,  # whatever REDIS_URL the suite runs with
                         webhook_min_backoff_ms=50, webhook_max_backoff_ms=200)
        assert delivery.sweep(local.extensions["carbon_credits"], older_than_s=0) >= 1
        wait_for(lambda: stored(rt, pending).state == "delivered", "the swept delivery")
        assert len(receiver.of(pending)) == FAILURES + 1
    finally:
        with rt.db.transaction() as s:
            s.execute(update(WebhookEndpoint).values(enabled=False))
        outbox.use_sender(before)


def test_webhook_registration_is_checked_and_admin_only(app: Flask) -> None:
    client = app.test_client()
    rt: Runtime = app.extensions["carbon_credits"]
    name = f"check-{uuid.uuid4().hex[:8]}"
    body = {"id": name, "url": "http://127.0.0.1:9/hooks", "kinds": ["event.credited"],
            "reason": "checking input"}
    for wrong, field in (({"url": "ftp://example.com/x"}, "url"),
                         ({"url": "not a url"}, "url"),
                         ({"kinds": ["event.deleted"]}, "kinds"),
                         ({"kinds": []}, "kinds")):
        r = client.post("/v1/admin/webhooks", json={**body, **wrong}, headers=admin(app))
        assert r.status_code == 422 and field in r.json["error"]["fields"], (wrong, r.json)
    user = {"Authorization": f"Bearer {rt.codec.encode('someone', 'user', 'shenzhen', 600)}"}
    assert client.post("/v1/admin/webhooks", json=body, headers=user).status_code == 403
    try:
        first = client.post("/v1/admin/webhooks", json=body, headers=admin(app))
        assert first.status_code == 201 and first.json["secret"]
        again = client.post("/v1/admin/webhooks", json=body, headers=admin(app))
        assert again.status_code == 409 and again.json["error"]["code"] == "webhook_exists"
        listed = client.get("/v1/admin/webhooks", headers=admin(app)).json["items"]
        assert all("secret" not in e for e in listed)
        with rt.db.transaction() as s:
            stored = s.get(WebhookEndpoint, name)
            assert stored is not None
            assert base64.b64decode(first.json["secret"]) not in stored.secret_sealed
    finally:
        with rt.db.transaction() as s:
            s.execute(update(WebhookEndpoint).values(enabled=False))


def test_a_badge_earned_is_announced_once_to_subscribed_endpoints(
        app: Flask, user_id: str) -> None:
    """Each award of a badge writes one ``badge.earned`` delivery per subscribed endpoint,
    in the crediting transaction (account/hooks.py), naming the badge and the event that
    earned it; a later credit that earns nothing new announces nothing."""
    rt: Runtime = app.extensions["carbon_credits"]
    endpoint_id = f"badges-{uuid.uuid4().hex[:8]}"
    r = app.test_client().post("/v1/admin/webhooks", headers=admin(app), json={
        "id": endpoint_id, "url": "http://127.0.0.1:9/hooks", "kinds": ["badge.earned"],
        "reason": "badge announcements"})
    assert r.status_code == 201, r.json
    rider = Principal(user_id, "user", "shenzhen")
    try:
        first = events.ingest(rt, rider, load_event(
            factories.metro(start=factories.today_at(6)))).event
        events.ingest(rt, rider, load_event(factories.metro(start=factories.today_at(9))))
        with rt.db.transaction() as s:
            rows = s.scalars(select(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint_id)).all()
            won = list(s.scalars(select(Badge.code).join(
                BadgeAward, BadgeAward.badge_id == Badge.id).where(
                BadgeAward.user_id == user_id)))
        announced = [(d.kind, d.payload["badge"], d.payload["event_id"]) for d in rows
                     if d.payload["user_id"] == user_id]
    finally:
        with rt.db.transaction() as s:
            s.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                      .values(enabled=False))
    assert "first-metro" in won
    assert sorted(badge for _, badge, _ in announced) == sorted(won)  # each award once
    assert {kind for kind, _, _ in announced} == {"badge.earned"}
    assert ("badge.earned", "first-metro", first["event_id"]) in announced
