"""Reverse an event's credit (fraud found later): a new ledger entry, never an edit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from carbon_credits import audit
from carbon_credits.errors import Conflict, NotFound
from carbon_credits.leaderboards import service as leaderboards
from carbon_credits.ledger import entries, explain, hooks
from carbon_credits.reports import rollups
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Event, User, utcnow
from carbon_credits.tokens import Principal


def reverse_event(rt: Runtime, admin: Principal, user_id: str, event_id: str, reason: str
                  ) -> dict[str, Any]:
    """Take back everything an event earned, with a reason; audited. 409 if already done."""
    with rt.db.transaction() as session:
        view, taken = _reverse(rt, session, admin, user_id, event_id, reason)
    # After the commit: the boards take the reversal off (never failing it).
    leaderboards.record(rt, [taken] if taken else [])
    return view


def _reverse(rt: Runtime, session: Any, admin: Principal, user_id: str, event_id: str,
             reason: str) -> tuple[dict[str, Any], tuple[leaderboards.Facts, int] | None]:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    account = entries.lock_account(session, user_id, user.city)
    event = session.scalars(select(Event).where(
        Event.user_id == user_id, Event.event_id == event_id)).one_or_none()
    if event is None:
        raise NotFound(f"no event {event_id!r} for user {user_id!r}")
    if event.reversed_at is not None:
        raise Conflict("event already reversed", code="already_reversed")
    taken = ((leaderboards.facts_of(event), -event.credited_ug) if event.credited_ug > 0
             else None)
    before = {"status": event.status, "credited_ug": event.credited_ug,
              "points": event.points, "balance": account.balance_points}
    if event.credited_ug > 0:
        entries.reverse(session, account, points=event.points, ug=event.credited_ug,
                       event_pk=event.id, mode=event.mode,
                       factor_version_id=event.factor_version_id)
        rollups.reverse(session, event)  # take it out of the report rollups
        session.flush()  # the reversal entry before what the hooks append after it
        hooks.reversed_(session, event, account, utcnow())  # account, badges, campaigns
    event.notes = explain.reversed_notes(event)
    event.status = "reversed"
    event.reason = "reversed"
    event.reversed_at = utcnow()
    event.reversed_by = admin.sub
    event.reversal_reason = reason
    # By surrogate id and audit reference: the append-only log never holds the user's id
    # nor their own event id (an erasure could not remove them).
    audit.record(session, actor=admin.sub, action="event.reverse",
                 target=f"event:{event.id}", reason=reason, before=before,
                 after={"status": event.status, "balance": account.balance_points},
                 subject_ref=audit.subject_ref(session, user_id))
    return explain.stored_view(rt.catalog, session, event), taken
