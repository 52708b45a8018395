"""The review queue: held events approved (credited then) or rejected; frozen users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import literal_column, select

from carbon_credits import audit
from carbon_credits.errors import Conflict, NotFound
from carbon_credits.leaderboards import service as leaderboards
from carbon_credits.ledger import caps, entries, explain, hooks
from carbon_credits.privacy import reads
from carbon_credits.reports import rollups
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Account, Event, User, utcnow
from carbon_credits.tokens import Principal
from methodology import QuantifyContext, get_methodology

AWAITING_OPERATOR = "awaiting_operator"
"""ingest.trust.AWAITING (a test keeps them equal)."""


def queue(rt: Runtime, limit: int, before_id: int | None, reader: str = "system"
          ) -> list[dict[str, Any]]:
    """Held events, oldest first within the page, for admins to decide; the read is
    audited (``privacy.reads``): trips are personal data."""
    with rt.db.transaction() as session:
        # 'held' as a literal, not a bound value: the partial index of held events
        # (ix_events_held) serves only a query whose text says status = 'held', also
        # under a prepared statement's generic plan.
        # Posts held for their provider's record (ingest.trust.AWAITING, which this
        # module cannot import: ingest imports antifraud) wait for a machine, not a person.
        query = select(Event).where(Event.status == literal_column("'held'"),
                                    Event.reason.is_distinct_from(AWAITING_OPERATOR))
        if before_id is not None:
            query = query.where(Event.id > before_id)
        rows = list(session.scalars(query.order_by(Event.id).limit(limit)))
        page = [{"id": e.id, "user_id": e.user_id,
                 **explain.stored_view(rt.catalog, session, e)} for e in rows]
        if rows:
            reads.record(session, reader=reader, what="review queue (held events)",
                         event_pks=[e.id for e in rows],
                         users=len({e.user_id for e in rows}), reason="review of held events")
        return page


def decide(rt: Runtime, admin: Principal, user_id: str, event_id: str, approve: bool,
           reason: str) -> dict[str, Any]:
    """Approve (credit through the ordinary path, caps as of now) or reject a held event."""
    with rt.db.transaction() as session:
        view, credited = _decide(rt, session, admin, user_id, event_id, approve, reason)
    # After the commit: an approved credit joins the boards (never failing the approval).
    leaderboards.record(rt, credited)
    return view


def _decide(rt: Runtime, session: Any, admin: Principal, user_id: str, event_id: str,
            approve: bool, reason: str
            ) -> tuple[dict[str, Any], list[tuple[leaderboards.Facts, int]]]:
    account, event = _held_event(session, user_id, event_id)
    before = {"status": event.status, "reason": event.reason}
    now = rt.clock()
    if approve:
        _credit_now(rt, session, account, event, now)
    else:
        event.status = "rejected"
    event.reviewed_at = utcnow()
    event.reviewed_by = admin.sub
    event.review_reason = reason
    # The event by its surrogate id and the user by their audit reference: the log is
    # append-only, so it must hold neither the user's id nor their own event id.
    audit.record(session, actor=admin.sub,
                 action="review.approve" if approve else "review.reject",
                 target=f"event:{event.id}", reason=reason, before=before,
                 after={"status": event.status, "grams": event.credited_ug // 10**6,
                        "points": event.points},
                 subject_ref=audit.subject_ref(session, user_id))
    credited = ([(leaderboards.facts_of(event), event.credited_ug)]
                if approve and event.credited_ug > 0 else [])
    return explain.stored_view(rt.catalog, session, event), credited


def _held_event(session: Any, user_id: str, event_id: str) -> tuple[Account, Event]:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    account = entries.lock_account(session, user_id, user.city)
    event = session.scalars(select(Event).where(Event.user_id == user_id,
                                                Event.event_id == event_id)).one_or_none()
    if event is None:
        raise NotFound(f"no event {event_id!r} for user {user_id!r}")
    if event.status != "held":
        raise Conflict(f"event is {event.status}, not held", code="not_held")
    return account, event


def _credit_now(rt: Runtime, session: Any, account: Account, event: Event,
                now: datetime) -> None:
    """Re-quantify with the event's own factors and network, then credit as at ingest.

    Steps are measured against the day's count as it stands now, so a held post and the
    later posts that were credited meanwhile never count the same steps twice.
    """
    method = get_methodology(event.mode)
    versioned = rt.catalog.factors_by_id(session, event.factor_version_id)
    network = (rt.catalog.network_by_id(session, event.network_id)
               if event.network_id is not None else None)
    usage = caps.day_usage(session, event.user_id, event.local_date)
    previous = (usage[event.mode].max_quantity
                if method.cumulative and event.mode in usage else 0)
    result = method.quantify(explain.inputs_of(event), versioned.factors,
                             QuantifyContext(network=network, previous_quantity=previous))
    year = caps.year_usage(session, event.user_id, event.local_date.year)
    credit = caps.decide(rt.config, method, versioned.factors, account, usage,
                         result.avoided_ug, 0 if year is None else year.credited_ug)
    # The explanation (built on read) is then that of this quantification and credit:
    # the count measured against, the activity, the cap met; the hold's hits stay.
    hits = (event.notes or {}).get("plausibility")
    event.notes = {**({"plausibility": hits} if hits else {}),
                   **(explain.notes_for((), credit.cap) or {})} or None
    event.previous_quantity = previous if method.cumulative else None
    event.activity = rollups.activity_of(result)
    event.avoided_ug = result.avoided_ug
    event.credited_ug = credit.credited_ug
    event.points = credit.points
    event.status = credit.status
    event.reason = credit.reason
    # The hooks read the user's history as it stands before this credit (the usage row
    # caps.apply counts it in is also the account's day row): read now, used if credited.
    hooked = hooks.read(session, [event])
    caps.apply(session, account, event, credit, usage, method, result.quantity, now)
    if event.credited_ug > 0:  # credited now: what other features do with a credit
        session.flush()  # the earn entry before what the hooks append after it
        for writes in hooks.credited(session, [event], {account.user_id: account}, utcnow(),
                                     hooked):
            writes()


def set_frozen(rt: Runtime, admin: Principal, user_id: str, frozen: bool, reason: str
               ) -> dict[str, Any]:
    """Freeze (hold every new event) or unfreeze a user; audited."""
    with rt.db.transaction() as session:
        # Locked: an erasure (which locks it too) is either all before this, or all after,
        # never leaving the user's audit reference made here under their id.
        user = session.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFound(f"no user {user_id!r}")
        before = user.frozen
        user.frozen = frozen
        ref = audit.subject_ref(session, user_id)
        audit.record(session, actor=admin.sub, action="user.freeze" if frozen else
                     "user.unfreeze", target=f"user:{ref}", reason=reason,
                     before={"frozen": before}, after={"frozen": frozen}, subject_ref=ref)
        return {"user_id": user_id, "frozen": frozen}
