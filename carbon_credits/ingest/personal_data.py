"""A user's events in the export (every stored input, and the result with its explanation
built on read, as ``GET /v1/events/{event_id}`` shows it), and their erasure."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy import select, update
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


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Events stay, under the pseudonym, for what the ledger, the reports and the MRV export
    stand on (city, local day, mode, distance, steps, grams, points, versions, status,
    source); the trip's details go: the client's event id (``x<id>`` instead), stations,
    line, device, the times of day (the local day's start instead), the payload hash (a
    guessed trip could be tested against it) and the notes (they name other trips)."""
    tz = subject.services["config"].tz
    rows = session.execute(select(Event.id, Event.local_date).where(
        Event.user_id == subject.user_id)).all()
    session.execute(update(Event), [
        {"id": event_pk, "user_id": pseudonym, "event_id": f"x{event_pk}",
         "occurred_at": (day := datetime.combine(local_date, time(0), tzinfo=tz)),
         "created_at": day, "ends_at": None, "origin": None, "destination": None,
         "line_id": None, "device_id": None, "payload_hash": bytes(32), "notes": None}
        for event_pk, local_date in rows])


HOLDER = register(Holder("events", ("events",), _export, _erase, order=300))
