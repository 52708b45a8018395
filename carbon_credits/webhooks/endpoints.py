"""Client platforms' webhook endpoints (admin, audited) and their deliveries: list and
replay. The signing key is an HMAC-SHA256 secret made here, shown once at registration,
kept sealed as a provider's HMAC secret is (providers/registry.py: AES-GCM under a key
derived from PROVIDER_KEY_SECRET), so a database dump alone cannot forge a delivery."""

from __future__ import annotations

import base64
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update

from carbon_credits import audit
from carbon_credits.errors import Conflict, InvalidInput, NotFound
from carbon_credits.providers.registry import seal
from carbon_credits.runtime import Runtime
from carbon_credits.schemas.webhooks import KINDS
from carbon_credits.storage.models import WebhookDelivery, WebhookEndpoint
from carbon_credits.tokens import Principal
from carbon_credits.webhooks import delivery


def view(e: WebhookEndpoint) -> dict[str, Any]:
    return {"id": e.id, "url": e.url, "kinds": list(e.kinds), "key_id": e.key_id,
            "enabled": e.enabled, "created_at": e.created_at}


def delivery_view(d: WebhookDelivery) -> dict[str, Any]:
    return {"id": d.id, "endpoint_id": d.endpoint_id, "kind": d.kind, "payload": d.payload,
            "state": d.state, "attempts": d.attempts, "last_status": d.last_status,
            "last_error": d.last_error, "created_at": d.created_at,
            "last_attempt_at": d.last_attempt_at, "delivered_at": d.delivered_at}


def register(rt: Runtime, admin: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """A new endpoint and its signing secret (returned once, base64). 409 if the id is
    taken."""
    url = urlsplit(data["url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        raise InvalidInput("the URL must be http(s) with a host", code="invalid_input",
                           fields={"url": ["an http or https URL with a host"]})
    unknown = sorted(set(data["kinds"]) - set(KINDS))
    if unknown:
        raise InvalidInput("unknown notification kinds", code="invalid_input",
                           fields={"kinds": [f"unknown: {', '.join(unknown)}"]})
    secret = secrets.token_bytes(32)
    key_id = f"{data['id']}-{secrets.token_hex(4)}"
    with rt.db.transaction() as session:
        if session.get(WebhookEndpoint, data["id"]) is not None:
            raise Conflict(f"webhook endpoint {data['id']!r} exists already",
                           code="webhook_exists")
        endpoint = WebhookEndpoint(
            id=data["id"], url=data["url"], kinds=sorted(set(data["kinds"])), key_id=key_id,
            secret_sealed=seal(secret, key_id, rt.config.provider_key_material()),
            enabled=True)
        session.add(endpoint)
        session.flush()
        shown = view(endpoint)
        audit.record(session, actor=admin.sub, action="webhook.register",
                     target=f"webhook:{endpoint.id}", reason=data["reason"], before=None,
                     after={**shown, "created_at": shown["created_at"].isoformat()})
    return {**shown, "secret": base64.b64encode(secret).decode()}


def list_all(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        return [view(e) for e in session.scalars(select(WebhookEndpoint)
                                                 .order_by(WebhookEndpoint.id))]


def deliveries(rt: Runtime, endpoint_id: str | None, state: str | None, limit: int
               ) -> list[dict[str, Any]]:
    """Deliveries, newest first."""
    with rt.db.transaction() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc(),
                                                 WebhookDelivery.id).limit(limit)
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        if state is not None:
            query = query.where(WebhookDelivery.state == state)
        return [delivery_view(d) for d in session.scalars(query)]


def replay(rt: Runtime, admin: Principal, endpoint_id: str, delivery_id: str, reason: str
           ) -> dict[str, Any]:
    """Send a delivery again, with the same id (the receiver dedupes by it): back to
    pending, its attempts counted on; audited."""
    with rt.db.transaction() as session:
        found = session.get(WebhookDelivery, (endpoint_id, delivery_id), with_for_update=True)
        if found is None:
            raise NotFound(f"no delivery {delivery_id!r} to {endpoint_id!r}")
        before = {"state": found.state, "attempts": found.attempts}
        session.execute(update(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.id == delivery_id)
            .values(state="pending"))
        audit.record(session, actor=admin.sub, action="webhook.replay",
                     target=f"webhook:{endpoint_id}/{delivery_id}", reason=reason,
                     before=before, after={"state": "pending"})
    delivery.dispatch(rt, [(endpoint_id, delivery_id)])
    with rt.db.transaction() as session:
        again = session.get(WebhookDelivery, (endpoint_id, delivery_id))
        assert again is not None
        return delivery_view(again)
