"""Webhook deliveries that name a user (``event.credited``, ``challenge.completed``,
``badge.earned``, ``points.expiring``): in the user's export, and in erasure, where their
payloads lose the user's ids (``privacy.registry``). The table is keyed by endpoint, not by
user, so that holder covers no user-keyed table; it is registered so that erasure reaches
the payloads. The ``points.expiring`` notices announced (``expiry_notices``, keyed by
user) have a holder of their own: exported, and deleted by erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, delete, select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import ExpiryNotice, WebhookDelivery


def _naming(session: Session, user_id: str) -> list[WebhookDelivery]:
    escaped = user_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    candidates = session.scalars(select(WebhookDelivery).where(
        cast(WebhookDelivery.payload, String).like(f"%{escaped}%", escape="\\")))
    return [d for d in candidates if (d.payload or {}).get("user_id") == user_id]


def _export(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return [columns(d) for d in _naming(session, subject.user_id)]


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """The payload keeps what the client platform was told in aggregate (kind, mode, city,
    grams, points), under the pseudonym and without the client's event id; a delivery
    still pending is sent so."""
    for delivery in _naming(session, subject.user_id):
        payload = {k: v for k, v in delivery.payload.items() if k != "event_id"}
        delivery.payload = {**payload, "user_id": pseudonym}


HOLDER = register(Holder("webhook_deliveries", (), _export, _erase, order=200))


def _export_notices(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return [columns(n) for n in session.scalars(
        select(ExpiryNotice).where(ExpiryNotice.user_id == subject.user_id)
        .order_by(ExpiryNotice.expires_on))]


def _erase_notices(session: Session, subject: Subject, pseudonym: str) -> None:
    """Deleted: they exist only so the person is not told twice (the deliveries that told
    them are pseudonymised above). Before the user row goes (their foreign key)."""
    session.execute(delete(ExpiryNotice).where(ExpiryNotice.user_id == subject.user_id))


NOTICES = register(Holder("expiry_notices", ("expiry_notices",), _export_notices,
                          _erase_notices, order=200))
