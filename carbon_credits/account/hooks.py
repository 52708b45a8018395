"""The one place the crediting paths call into the account and badges features: after the
crediting decision, inside the same unit of work (ingest, approvals), and on a reversal.

Kept small on purpose: other features hook into the same paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from carbon_credits.account import aggregates
from carbon_credits.storage.models import Event


def credited(session: Session, events: Sequence[aggregates.Credited]) -> Callable[[], None]:
    """Events just credited (each with an earn entry, written in this transaction): what
    must be read is read now; the writes (aggregate rows) are returned, to be run with the
    other writes (on PostgreSQL, sent with the COMMIT: ``sql.committing``)."""
    if not events:
        return _nothing
    days, months = aggregates.deltas(events)

    def write() -> None:
        aggregates.add(session, days, months)

    return write


def reversed_event(session: Session, event: Event) -> None:
    """An event whose credit is being reversed (caller holds the account lock, and calls
    this before changing the event)."""
    aggregates.reverse(session, event)


def _nothing() -> None:
    return None
