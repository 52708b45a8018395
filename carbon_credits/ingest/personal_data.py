"""A user's events in the export: every stored input, and the result with its explanation
built on read (as ``GET /v1/events/{event_id}`` shows it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.ledger import explain
from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import Event


def _export(session: Session, subject: Subject) -> list[dict[str, Any]]:
    catalog = subject.services["catalog"]
    return [{**explain.stored_view(catalog, session, event),
             "stored": columns(event, ("payload_hash",))}
            for event in session.scalars(select(Event).where(Event.user_id == subject.user_id)
                                         .order_by(Event.occurred_at, Event.id))]


HOLDER = register(Holder("events", ("events",), _export, order=300))
