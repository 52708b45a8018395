"""A user's events in the export (every stored input, and the result with its explanation
built on read, as ``GET /v1/events/{event_id}`` shows it), and their erasure."""

from __future__ import annotations

from datetime import date, datetime, time, tzinfo
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, or_, select, update
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
    guessed trip could be tested against it) and the notes that name other trips."""
    tz = subject.services["config"].tz
    rows = session.execute(select(Event.id, Event.local_date, Event.notes, Event.event_id)
                           .where(Event.user_id == subject.user_id)).all()
    if rows:
        session.execute(_changing(*CLEARED, "user_id", "event_id"), [
            {**_without_details(event_pk, local_date, notes, tz, "erasure"),
             "b_user_id": pseudonym, "b_event_id": f"x{event_pk}"}
            for event_pk, local_date, notes, _ in rows])
        # Their keys in event_keys follow them (a trigger: migration 0009_partition).


def _without_details(event_pk: int, local_date: date, notes: dict[str, Any] | None,
                     tz: tzinfo, why: str) -> dict[str, Any]:
    """An event's trip details cleared: stations, line, device, times of day (the local
    day's start instead), payload hash; its notes reduced (``explain.reduced_notes``)."""
    day = datetime.combine(local_date, time(0), tzinfo=tz)
    return {"b_id": event_pk, "b_occurred_at": day, "b_created_at": day, "b_ends_at": None,
            "b_origin": None, "b_destination": None, "b_line_id": None, "b_device_id": None,
            "b_payload_hash": bytes(32), "b_notes": explain.reduced_notes(notes, why)}


EVENTS = cast(Table, Event.__table__)
CLEARED = ("occurred_at", "created_at", "ends_at", "origin", "destination", "line_id",
           "device_id", "payload_hash", "notes")


def _changing(*names: str) -> Update:
    """An UPDATE of these columns of one event, found by its id alone (whatever the events
    table's primary key becomes), run once per row of values (``b_<column>``)."""
    return update(EVENTS).where(EVENTS.c.id == bindparam("b_id")).values(
        {name: bindparam(f"b_{name}", type_=EVENTS.c[name].type) for name in names})


DETAILED = or_(Event.origin.is_not(None), Event.destination.is_not(None),
               Event.line_id.is_not(None), Event.device_id.is_not(None),
               Event.ends_at.is_not(None))
"""An event that still holds trip details."""


def reduce_old_trips(session: Session, before: date, tz: tzinfo, limit: int) -> int:
    """Retention: clear the trip details of up to ``limit`` events of local days before
    ``before`` (held events wait for their review), keeping what the ledger, the reports
    and the MRV export stand on. Returns how many were reduced (0: none left)."""
    rows = session.execute(select(Event.id, Event.local_date, Event.notes).where(
        Event.local_date < before, Event.status != "held", DETAILED)
        .order_by(Event.local_date, Event.id).limit(limit)).all()
    if rows:
        session.execute(_changing(*CLEARED), [
            _without_details(event_pk, local_date, notes, tz, "retention")
            for event_pk, local_date, notes in rows])
    return len(rows)


HOLDER = register(Holder("events", ("events", "event_keys"), _export, _erase, order=300))
