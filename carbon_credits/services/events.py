"""Ingest events: validation and time checks, then intake (idempotency -> methodology ->
plausibility -> daily caps -> ledger) in one transaction per event or per batch chunk."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from carbon_credits import metrics
from carbon_credits.auth import Principal
from carbon_credits.config import Config
from carbon_credits.errors import RETRY_AFTER_S, InvalidInput, NotFound, ServiceError, Unavailable
from carbon_credits.extensions import Runtime
from carbon_credits.models import Event
from carbon_credits.ratelimit import Check, Decision, refusal
from carbon_credits.schemas import is_valid_id, load_event
from carbon_credits.services import explain, intake
from carbon_credits.services.intake import NewEvent, Posted, time_field
from methodology import get_methodology
from methodology.quantity import whole_grams

IDEMPOTENCY_ATTEMPTS = 3


@dataclass(frozen=True)
class Ingested:
    event: dict[str, Any]
    created: bool
    limit: Decision | None = None
    """The rate-limit decision that admitted the post (its RateLimit-* headers), if any."""


@dataclass(eq=False)
class Post:
    """A post as its request thread hands it to the process's group commit."""

    posted: Posted
    route: str
    limits: Sequence[Check]
    limit: Decision | None = None
    """Set by the group's rate-limit check (``_admit``)."""


def canonical_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The validated payload in a canonical JSON form: instants in UTC, dates ISO."""

    def norm(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return value

    return {k: norm(v) for k, v in sorted(data.items())}


def payload_hash(payload: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical payload, as 32 bytes (stored so, not as 64 hex digits)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def ingest(rt: Runtime, principal: Principal, data: dict[str, Any],
           device_id: str | None = None) -> Ingested:
    """Apply one validated event for a user, exactly once per (user, event_id): alone, or
    with the process's concurrent posts in one transaction (``group_commit``)."""
    return ingest_prepared(rt, prepare(rt, principal, data, device_id))


def ingest_prepared(rt: Runtime, posted: Posted, limits: Sequence[Check] = (),
                    route: str = "events") -> Ingested:
    """``ingest`` of a post ``prepare`` accepted, first counted against its rate limits
    (``limits``: its checks on ``route``) with the posts it is applied with, in one call
    to the limiter: over a limit, the post is refused (429) and not applied."""
    post = Post(posted, route, limits)
    outcome = rt.posts.submit(post, lambda chunk: _apply(rt, [p.posted for p in chunk]),
                              lambda chunk: _admit(rt, chunk))
    if isinstance(outcome, ServiceError):
        raise outcome
    return replace(outcome, limit=post.limit)


def _admit(rt: Runtime, chunk: Sequence[Post]) -> list[ServiceError | None]:
    """The rate limits of a group's posts, decided in one limiter call, in order: None for
    each admitted, a 429 for each refused."""
    asked = [p for p in chunk if p.limits]
    for post, decision in zip(asked, rt.limiter.check_many([(p.limits, 1) for p in asked]),
                              strict=True):
        post.limit = decision
    return [None if p.limit is None or p.limit.allowed else refusal(p.route, p.limit)
            for p in chunk]


def _apply(rt: Runtime, chunk: Sequence[Posted]) -> list[Ingested | ServiceError]:
    """Apply a chunk of events (one user's, or one each of a group of posts) in one
    transaction; counted once committed."""
    for attempt in range(IDEMPOTENCY_ATTEMPTS):
        try:
            with rt.db.transaction_begun_by_reads() as session:
                applied = intake.apply(session, rt.config, rt.catalog, chunk)  # and ends it
            break
        except (IntegrityError, OperationalError) as exc:
            # IntegrityError: the unique (user_id, event_id) constraint caught a concurrent
            # copy that the account lock did not serialise (e.g. the account was being
            # created): the next attempt finds the stored event and answers it as a
            # replay. A deadlock (two first posts of overlapping users locking in
            # different orders, see ledger.open_accounts) is retried the same way; any
            # other OperationalError is an outage (a 503). Should a conflict keep
            # happening, the client is told to retry later, as for an outage: the request
            # changed nothing, and a retry with the same ids is safe.
            if isinstance(exc, OperationalError) and not _is_deadlock(exc):
                raise
            if attempt == IDEMPOTENCY_ATTEMPTS - 1:
                raise Unavailable(
                    "the events met concurrent writes of the same ids; retry with the "
                    "same event_id", code="write_conflict",
                    headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    # Views after the writes: a new event's id and created_at are set there.
    outcomes = [x if isinstance(x, ServiceError) else
                Ingested(event_view(x.event, x.event.explanation or {}), x.created)
                for x in applied]
    for outcome in outcomes:
        if isinstance(outcome, Ingested):
            _count(outcome)  # after the commit: only what was applied is counted
    return outcomes


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def prepare(rt: Runtime, principal: Principal, data: dict[str, Any],
            device_id: str | None = None) -> Posted:
    """What the transaction needs, derived before it: time checks (a 422 for an event in
    the future or past the backfill window), canonical payload."""
    method = get_methodology(data["mode"])
    tz = rt.config.tz
    now = rt.clock()
    occurred_at = method.occurred_at(data, tz)
    local_date = occurred_at.astimezone(tz).date()
    _check_time_window(rt.config, data, occurred_at, local_date, now)
    payload = canonical_payload(data)
    return Posted(principal, method, data, payload, payload_hash(payload), occurred_at,
                  local_date, device_id, now, tz)


def _count(outcome: Ingested) -> None:
    event = outcome.event
    metrics.EVENTS.labels(event["mode"], event["status"] if outcome.created else "replay").inc()
    if outcome.created and event["grams"]:
        metrics.CREDITED_GRAMS.labels(event["mode"]).inc(event["grams"])


ITEMS_PER_TRANSACTION = 100
"""Batch items per transaction (policy, no source): 100 items are about 0.1 s of work on a
2-core machine, so the user's account lock is never held for the length of a 500-event
sync, while the per-chunk reads, commit and rollup upserts are spread over enough events
(in-process, 4,000 events: 4.45 s at 50, 3.46 s at 100, 3.13 s at 250)."""


def ingest_batch(rt: Runtime, principal: Principal, items: list[Any],
                 device_id: str | None = None) -> list[dict[str, Any]]:
    """Apply each item exactly once per (user, event_id); per-item results.

    Items apply in order (a later item sees the caps and trips of earlier ones), up to
    ``ITEMS_PER_TRANSACTION`` per transaction, each chunk read, decided and written as a
    set (services/intake.py): one account lock, a fixed number of statements and one
    durable commit per chunk instead of per event, while a long batch still makes progress
    chunk by chunk (a worker cut off mid-batch keeps what it committed; the retry replays
    that and applies the rest). An item refused (invalid, conflicting, unquantifiable) is
    refused alone and the others stand. If a transaction fails (database unavailable), the
    request is a 503 and its retry is safe.
    """
    results: list[dict[str, Any] | None] = [None] * len(items)
    ready: list[tuple[int, Posted]] = []
    for index, body in enumerate(items):
        try:
            ready.append((index, prepare(rt, principal, load_event(body), device_id)))
        except ValidationError as exc:
            results[index] = _invalid_item(index, exc)
        except ServiceError as exc:
            results[index] = _item_error(index, exc.status, exc.code, exc.message, exc.fields)
    for start in range(0, len(ready), ITEMS_PER_TRANSACTION):
        chunk = ready[start:start + ITEMS_PER_TRANSACTION]
        outcomes = _apply(rt, [posted for _index, posted in chunk])
        for (index, _prepared), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, ServiceError):
                results[index] = _item_error(index, outcome.status, outcome.code,
                                             outcome.message, outcome.fields)
            else:
                results[index] = {"index": index, "status": 201 if outcome.created else 200,
                                  "result": outcome.event, "error": None}
    return [r for r in results if r is not None]


def _invalid_item(index: int, exc: ValidationError) -> dict[str, Any]:
    fields = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return _item_error(index, 422, "invalid_input", "the event has invalid fields", fields)


def _item_error(index: int, status: int, code: str, message: str, fields: dict[str, Any]
                ) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"index": index, "status": status, "result": None, "error": error}


def _check_time_window(config: Config, data: dict[str, Any], occurred_at: datetime,
                       local_date: date, now: datetime) -> None:
    """Refuse events from the future (beyond clock skew) or older than the backfill window.

    A future-dated event would open a fresh day of caps for nobody's real trip.
    """
    field = time_field(data)
    latest = now + timedelta(seconds=config.clock_skew_s)
    instants = [v for v in data.values() if isinstance(v, datetime)]
    future = (local_date > latest.astimezone(config.tz).date() if field == "date"
              else any(t > latest for t in instants))
    if future:
        raise InvalidInput("the event is in the future", code="event_in_future",
                           fields={field: [f"later than now + {config.clock_skew_s} s"]})
    earliest = now - timedelta(days=config.backfill_days)
    if (local_date < earliest.astimezone(config.tz).date() if field == "date"
            else occurred_at < earliest):
        raise InvalidInput(f"the event is older than the {config.backfill_days}-day backfill "
                           "window", code="event_too_old",
                           fields={field: [f"older than {config.backfill_days} days"]})


def event_view(event: Event | NewEvent, explanation: dict[str, Any]) -> dict[str, Any]:
    """The public result of an event; a replay returns exactly this again.
    ``explanation``: as decided, or built from the stored event (``stored_view``)."""
    return {
        "event_id": event.event_id,
        "mode": event.mode,
        "city": event.city,
        "status": event.status,
        "grams": whole_grams(event.credited_ug),
        "points": event.points,
        "reason": event.reason,
        "occurred_at": event.occurred_at.astimezone(UTC),
        "local_date": event.local_date,
        "created_at": event.created_at,
        "methodology": {"mode": event.mode, "version": event.methodology_version},
        "explanation": explanation,
        "reversal": None if event.reversed_at is None else {
            "reversed_at": event.reversed_at, "by": event.reversed_by,
            "reason": event.reversal_reason},
    }


def get_event(rt: Runtime, principal: Principal, event_id: str) -> dict[str, Any]:
    if not is_valid_id(event_id):
        raise NotFound(f"no event {event_id!r} for this user")  # could never have been stored
    with rt.db.transaction() as session:
        event = session.scalars(
            select(Event).where(Event.user_id == principal.sub, Event.event_id == event_id)
        ).one_or_none()
        if event is None:
            raise NotFound(f"no event {event_id!r} for this user")
        return stored_view(rt, session, event)


def stored_view(rt: Runtime, session: Session, event: Event) -> dict[str, Any]:
    """``event_view`` of a stored event, its explanation built from the row."""
    return event_view(event, explain.explain(session, rt.catalog, event))
