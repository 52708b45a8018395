"""The outbox: ``publish(session, kind, payload)`` writes one delivery row per subscribed
endpoint in the caller's unit of work, so a notification exists exactly when what it
tells was committed, and nothing is lost if the job queue (Redis) is down: the rows wait,
``pending``, until a sender takes them (``delivery``). After the commit the new delivery
ids are handed to the process's sender (``use_sender``: the job queue), never before
(a job must not run before its row is visible).

Kinds: ``event.credited``, ``challenge.completed``, ``badge.earned`` (account/hooks.py),
``points.expiring`` (``webhooks.expiring``, from the daily expiry job). A feature
publishes its own with the same call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, insert, select
from sqlalchemy.orm import Session

from carbon_credits.ledger.entries import Balance
from carbon_credits.ledger.hooks import CreditedEvent, Rows, Scope, Writes
from carbon_credits.schemas.webhooks import KINDS
from carbon_credits.storage.cached import Cached
from carbon_credits.storage.models import WebhookDelivery, WebhookEndpoint, utcnow
from carbon_credits.storage.sql import Prebuilt, Read

DELIVERIES = cast(Table, WebhookDelivery.__table__)
_QUEUED = "webhooks.queued"

Sender = Callable[[Sequence[tuple[str, str]]], None]
"""Hands (endpoint id, delivery id) pairs to the job queue."""
_sender: Sender | None = None


def use_sender(sender: Sender | None) -> Sender | None:
    """Install the process's sender (``create_app``); returns the one it replaces."""
    global _sender
    previous, _sender = _sender, sender
    return previous


def publish(session: Session, kind: str, payload: dict[str, Any],
            now: datetime | None = None) -> list[str]:
    """One delivery per enabled endpoint subscribed to ``kind``, in the caller's unit of
    work; their ids (one per endpoint: each endpoint's receiver dedupes by it)."""
    return publish_many(session, kind, [payload], now)


def _enabled(session: Session) -> list[tuple[str, list[str]]]:
    return [(endpoint_id, list(kinds)) for endpoint_id, kinds in session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.kinds)
        .where(WebhookEndpoint.enabled).order_by(WebhookEndpoint.id))]


def subscribers(session: Session, kind: str) -> list[str]:
    """The enabled endpoints subscribed to ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown webhook kind {kind!r}")
    return [endpoint_id for endpoint_id, kinds in _enabled(session) if kind in kinds]


def publish_many(session: Session, kind: str, payloads: Sequence[dict[str, Any]],
                 now: datetime | None = None) -> list[str]:
    """``publish`` for several notifications of one kind: the endpoints read once, the
    rows written in one statement (a job's batch)."""
    endpoints = subscribers(session, kind)
    if not endpoints or not payloads:
        return []
    at = now or utcnow()
    rows = [row for payload in payloads for row in _rows(endpoints, kind, payload, at)]
    session.execute(insert(DELIVERIES), rows)
    session.info.setdefault(_QUEUED, []).extend((r["endpoint_id"], r["id"]) for r in rows)
    return [str(r["id"]) for r in rows]


def publish_later(session: Session, kind: str, payloads: Sequence[dict[str, Any]],
                  now: datetime) -> Writes | None:
    """``publish_many`` for a crediting hook: the endpoints are the process's copy
    (``ENDPOINTS``, brought up to date for this transaction by ``ledger.hooks``), and the
    rows are written by the writes returned (sent with the COMMIT); None: no endpoint
    subscribed."""
    endpoints = [endpoint_id for endpoint_id, kinds in ENDPOINTS.get(session)
                 if kind in kinds]
    if not endpoints or not payloads:
        return None
    rows = [row for payload in payloads for row in _rows(endpoints, kind, payload, now)]
    session.info.setdefault(_QUEUED, []).extend((r["endpoint_id"], r["id"]) for r in rows)
    return lambda: _ADD.run(session, rows)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    queued = session.info.pop(_QUEUED, None)
    if queued and _sender is not None:
        _sender(queued)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_QUEUED, None)


ENDPOINTS = Cached("webhook_endpoints", _enabled)
"""The enabled endpoints and their kinds, kept in the process (``storage.cached``): read
on every credit."""
_ADD = Prebuilt(lambda _: insert(DELIVERIES).values(
    {c: bindparam(c) for c in ("endpoint_id", "id", "kind", "payload", "state", "attempts",
                               "created_at")}), json=("payload",))


def _rows(endpoints: Sequence[str], kind: str, payload: dict[str, Any], now: datetime
          ) -> list[dict[str, Any]]:
    return [{"endpoint_id": endpoint_id, "id": str(uuid.uuid4()), "kind": kind,
             "payload": payload, "state": "pending", "attempts": 0, "created_at": now}
            for endpoint_id in endpoints]


class OutboxHook:
    """``ledger.hooks.Hook``: an ``event.credited`` notification per credited event and
    subscribed endpoint. The endpoints are kept in the process (``ENDPOINTS``) and the rows
    written with ingest's COMMIT: no read and no round trip of its own."""

    def read(self, session: Session, scope: Scope) -> Sequence[Read]:
        return []  # the endpoints: the cached copy, brought up to date by ``ledger.hooks``

    def credited(self, session: Session, events: Sequence[CreditedEvent],
                 accounts: Any, now: datetime, rows: Rows) -> Writes | None:
        endpoints = [endpoint_id for endpoint_id, kinds in ENDPOINTS.get(session)
                     if "event.credited" in kinds]
        if not endpoints:
            return None
        deliveries = [row for e in events for row in _rows(endpoints, "event.credited", {
            "user_id": e.user_id, "event_id": e.event_id, "mode": e.mode, "city": e.city,
            "local_date": e.local_date.isoformat(), "grams": e.credited_ug // 10**6,
            "points": e.points}, now)]
        session.info.setdefault(_QUEUED, []).extend(
            (r["endpoint_id"], r["id"]) for r in deliveries)
        return lambda: _ADD.run(session, deliveries)

    def reversed(self, session: Session, event: CreditedEvent, account: Balance,
                 now: datetime) -> None:
        return None


HOOK = OutboxHook()
