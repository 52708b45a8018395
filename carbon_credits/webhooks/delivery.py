"""Sending webhook deliveries: signed (RFC 9421), from the job queue, retried with
exponential backoff, idempotent for the receiver by the delivery id.

A delivery is a POST of ``{"id", "kind", "created_at", "data"}`` (JSON) to the endpoint's
URL, with ``Webhook-Delivery-Id`` (the same on every attempt and replay: the receiver's
idempotency key) and ``Content-Digest`` (RFC 9530, sha-256), signed with HTTP Message
Signatures (RFC 9421) by the ``http-message-signatures`` library, as providers sign to us:
``("@method" "@target-uri" "content-digest" "webhook-delivery-id");created;keyid;nonce;
alg="hmac-sha256"`` under the endpoint's secret. The README shows a receiver's check.

Queue: Dramatiq on the service's Redis, one node or a Redis Cluster (the ``webhooks``
queue, its keys in one slot; ``flask webhook-worker``),
its ``Retries`` middleware doubling the delay from WEBHOOK_MIN_BACKOFF_MS (with jitter) up
to WEBHOOK_MAX_BACKOFF_MS, for WEBHOOK_MAX_ATTEMPTS attempts in all, then the delivery is
``failed`` (an admin may replay it). Without REDIS_URL (the one-process default) a thread
of the web process sends it, with the same backoff. A delivery whose enqueueing failed
(Redis down) stays ``pending`` in the outbox; ``flask webhook-sweep`` queues those again.
2xx is delivered; anything else (or no answer) is an attempt that failed.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import redis
import requests
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    MappingKeyResolver,
    algorithms,
)
from redis.cluster import RedisCluster
from sqlalchemy import select, update

from carbon_credits.config import Config
from carbon_credits.providers.registry import unseal
from carbon_credits.runtime import Runtime
from carbon_credits.storage import redis_nodes
from carbon_credits.storage.models import WebhookDelivery, WebhookEndpoint, utcnow

log = logging.getLogger(__name__)

QUEUE_NAME = "webhooks"
ACTOR_NAME = "deliver_webhook"
COVERED = ("@method", "@target-uri", "content-digest", "webhook-delivery-id")
DELIVERY_HEADER = "Webhook-Delivery-Id"
MAX_ERROR = 300


class AttemptFailed(Exception):
    """A delivery's attempt failed; the queue tries it again after its backoff."""


class _Request:
    """The outgoing request as the signer sees it (method, url, headers)."""

    def __init__(self, method: str, url: str, headers: dict[str, str]) -> None:
        self.method, self.url, self.headers = method, url, headers


def signed_request(url: str, key_id: str, secret: bytes, delivery_id: str, body: bytes,
                   now: datetime | None = None) -> dict[str, str]:
    """The headers of a delivery's POST: Content-Digest, the delivery id, the signature."""
    message = _Request("POST", url, {"Content-Type": "application/json",
                                     "Content-Digest": ContentDigest.create(body),
                                     DELIVERY_HEADER: delivery_id})
    signer = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256,
                               key_resolver=MappingKeyResolver(public_keys={},
                                                               private_keys={key_id: secret}))
    signer.sign(message, key_id=key_id, created=now or datetime.now(UTC),
                nonce=uuid.uuid4().hex, covered_component_ids=COVERED, include_alg=True,
                use_existing_digest=True, label="sig1")
    return message.headers


def body_of(d: WebhookDelivery) -> bytes:
    return json.dumps({"id": d.id, "kind": d.kind, "created_at": d.created_at.isoformat(),
                       "data": d.payload}, ensure_ascii=False, sort_keys=True).encode()


def attempt(rt: Runtime, endpoint_id: str, delivery_id: str) -> str:
    """One attempt at a delivery; its state after it: 'delivered', 'pending' (to be tried
    again) or 'failed' (out of attempts, or its endpoint gone or disabled). A delivered
    one is not sent again (a duplicate message of the queue)."""
    with rt.db.transaction() as session:
        found = session.get(WebhookDelivery, (endpoint_id, delivery_id))
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if found is None or found.state != "pending":
            return "delivered" if found is None else found.state
        if endpoint is None or not endpoint.enabled:
            _record(session, found, None, "endpoint disabled", final=True)
            return "failed"
        url, key_id, sealed = endpoint.url, endpoint.key_id, endpoint.secret_sealed
        body = body_of(found)
    secret = unseal(sealed, key_id, rt.config.provider_key_material())
    status: int | None = None
    error: str | None = None
    try:
        answer = requests.post(url, data=body, timeout=rt.config.webhook_timeout_s,
                               headers=signed_request(url, key_id, secret, delivery_id, body),
                               allow_redirects=False)
        status = answer.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
    with rt.db.transaction() as session:
        found = session.get(WebhookDelivery, (endpoint_id, delivery_id), with_for_update=True)
        assert found is not None
        if found.state != "pending":  # delivered by a concurrent attempt meanwhile
            return found.state
        return _record(session, found, status, error,
                       final=found.attempts + 1 >= rt.config.webhook_max_attempts)


def _record(session: Any, d: WebhookDelivery, status: int | None, error: str | None,
            final: bool) -> str:
    now = utcnow()
    state = "delivered" if error is None else "failed" if final else "pending"
    session.execute(update(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == d.endpoint_id, WebhookDelivery.id == d.id).values(
        attempts=WebhookDelivery.attempts + 1, last_status=status, last_error=error,
        last_attempt_at=now, state=state, delivered_at=now if error is None else None))
    return state


def backoff_ms(config: Config, attempts: int) -> int:
    """The delay after ``attempts`` failed attempts: doubling from the minimum, capped,
    with up to half of it as jitter (as Dramatiq's Retries)."""
    delay = min(config.webhook_min_backoff_ms * 2 ** max(0, attempts - 1),
                config.webhook_max_backoff_ms)
    return int(delay // 2 + _JITTER.randint(0, delay // 2))


_JITTER = random.Random()
"""The jitter's own generator: the module-level one is the process's (a test's seeds,
Hypothesis's checks of it) and sending threads must not draw from it."""


# -- queue -----------------------------------------------------------------------------


QUEUE_NAMESPACE = "carbon-credits-webhooks"
CLUSTER_QUEUE_NAMESPACE = "{carbon-credits-webhooks}"
"""On a Redis Cluster every key of the queue shares this hash tag: one slot, one node, as
the record-file queue's (storage/redis_nodes.py says why Dramatiq needs it)."""
CONNECT_TIMEOUT_S = 1
"""Deliveries are queued right after a credit's commit, in its request: an unreachable
Redis must cost it a second at most (they wait in the outbox for the sweep)."""


class WebhookQueue:
    """The Dramatiq broker and actor of deliveries on one Redis, or on a Redis Cluster
    (``REDIS_URL`` naming any node; all the queue's keys in one slot)."""

    def __init__(self, config: Config) -> None:
        assert config.redis_url is not None
        # Asks the node whether it is in a cluster: a RedisError here is the caller's
        # (``dispatch`` leaves the deliveries pending; the worker's start fails).
        backend = redis_nodes.resolve(redis.Redis.from_url(
            config.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S))
        on_cluster = isinstance(backend, RedisCluster)
        self.broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=backend if on_cluster else None,
            url=None if on_cluster else config.redis_url,
            namespace=CLUSTER_QUEUE_NAMESPACE if on_cluster else QUEUE_NAMESPACE,
            heartbeat_timeout=config.worker_heartbeat_timeout_ms,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            middleware=[Retries(max_retries=config.webhook_max_attempts,
                                min_backoff=config.webhook_min_backoff_ms,
                                max_backoff=config.webhook_max_backoff_ms)])
        self._rt: Runtime | None = None
        self.actor: dramatiq.Actor[[str, str], None] = dramatiq.Actor(
            self._run, broker=self.broker, actor_name=ACTOR_NAME, queue_name=QUEUE_NAME,
            priority=0, options={})

    def enqueue(self, endpoint_id: str, delivery_id: str) -> None:
        self.actor.send(endpoint_id, delivery_id)

    def serve(self, rt: Runtime) -> None:
        """Make this process's worker send deliveries with ``rt``."""
        self._rt = rt

    def _run(self, endpoint_id: str, delivery_id: str) -> None:
        if self._rt is None:
            raise RuntimeError("this process does not send webhooks")
        if attempt(self._rt, endpoint_id, delivery_id) == "pending":
            raise AttemptFailed(f"delivery {delivery_id} to {endpoint_id}")  # Retries


_queues: dict[tuple[Any, ...], WebhookQueue] = {}
_queues_lock = threading.Lock()


def queue(config: Config) -> WebhookQueue | None:
    """The deliveries' queue of this configuration's Redis (one per process), or None."""
    if config.redis_url is None:
        return None
    key = (config.redis_url, config.webhook_max_attempts, config.webhook_min_backoff_ms,
           config.webhook_max_backoff_ms, config.worker_heartbeat_timeout_ms)
    with _queues_lock:
        if key not in _queues:
            _queues[key] = WebhookQueue(config)
        return _queues[key]


def dispatch(rt: Runtime, pairs: Sequence[tuple[str, str]]) -> None:
    """Queue deliveries (after their commit). Redis down: they stay pending in the outbox
    for ``sweep``; never an error for the request that made them."""
    try:
        q = queue(rt.config)  # (its first use asks Redis whether it is a cluster)
        if q is None:
            for endpoint_id, delivery_id in pairs:
                threading.Thread(target=_send_here, args=(rt, endpoint_id, delivery_id),
                                 daemon=True, name=f"webhook-{delivery_id}").start()
            return
        for endpoint_id, delivery_id in pairs:
            q.enqueue(endpoint_id, delivery_id)
    except redis.RedisError:
        log.warning("webhook queue unavailable: %d deliveries stay pending", len(pairs))


def sender(rt: Runtime) -> Callable[[Sequence[tuple[str, str]]], None]:
    return lambda pairs: dispatch(rt, pairs)


def _send_here(rt: Runtime, endpoint_id: str, delivery_id: str) -> None:
    """Without Redis: attempts in this thread, with the queue's backoff."""
    try:
        for tried in range(1, rt.config.webhook_max_attempts + 1):
            if attempt(rt, endpoint_id, delivery_id) != "pending":
                return
            time.sleep(backoff_ms(rt.config, tried) / 1000)
    except Exception:
        log.exception("webhook delivery %s stopped (left pending)", delivery_id)


def sweep(rt: Runtime, older_than_s: int = 60) -> int:
    """Queue again the deliveries pending for longer than ``older_than_s`` (their queueing
    failed, or their worker died); the count."""
    since = utcnow() - timedelta(seconds=older_than_s)
    with rt.db.transaction() as session:
        pairs = [(e, d) for e, d in session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.id).where(
                WebhookDelivery.state == "pending",
                WebhookDelivery.created_at < since))]
    dispatch(rt, pairs)
    return len(pairs)
