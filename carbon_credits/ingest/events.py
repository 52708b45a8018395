"""Ingest events: validation and time checks, then intake (idempotency -> methodology ->
plausibility -> daily caps -> ledger) in one transaction per event or per batch chunk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select

from carbon_credits import metrics
from carbon_credits.antifraud.ratelimit import Check, Decision, admit, refusal
from carbon_credits.config import Config
from carbon_credits.errors import (
    InvalidInput,
    NotFound,
    ServiceError,
    error_body,
    invalid_fields,
)
from carbon_credits.ingest import idempotency, intake, retry
from carbon_credits.ingest.decide import Applied, Posted, time_field
from carbon_credits.leaderboards import service as leaderboards
from carbon_credits.ledger import explain
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import is_valid_id, load_event
from carbon_credits.storage.models import Event
from carbon_credits.tokens import Principal
from methodology import get_methodology


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


CREDITED = ("credited", "capped")
"""Statuses of a new event that may carry an earn entry (with ``credited_ug`` > 0)."""

ROUTE = "events"
"""The rate-limited route of posts and batches (``RATE_LIMITS``)."""


def post(rt: Runtime, principal: Principal, body: Any, device_id: str | None,
         limits: Sequence[Check]) -> Ingested:
    """One client post (a JSON body) for a user, applied exactly once per (user, event_id).

    The rate limits (``limits``: the request's checks) are decided here and only here: a
    post that can be applied is counted with the posts it is applied with, in one call to
    the limiter (``_admit``); a post refused before that (invalid, out of the time window)
    still counts, and over the limits it is a 429 first.
    """
    try:
        posted = prepare(rt, principal, load_event(body), device_id)
    except ValidationError as exc:
        refused = invalid_fields(exc.messages)
        count_refused(rt, limits, refused)
        raise refused from None
    except Exception as exc:
        count_refused(rt, limits, exc)
        raise
    return ingest_prepared(rt, posted, limits, ROUTE)


def count_refused(rt: Runtime, limits: Sequence[Check], refused: Exception) -> None:
    """Count a post refused before it could be applied (its body or headers unreadable,
    invalid, out of the time window) against the limits: over them, the 429 is raised
    instead, as a client over its limits is told that first."""
    decision = admit(rt.limiter, ROUTE, limits)
    if isinstance(refused, ServiceError):
        refused.headers = {**decision.headers(), **(refused.headers or {})}


def post_batch(rt: Runtime, principal: Principal, items: list[Any], device_id: str | None,
               limits: Sequence[Check]) -> tuple[list[dict[str, Any]], Decision]:
    """A batch of posts (``ingest_batch``), first counted against the rate limits: a batch
    of k events costs k, decided in one call; over the limits, a 429 and nothing applied."""
    decision = admit(rt.limiter, ROUTE, limits, cost=max(1, len(items)))
    return ingest_batch(rt, principal, items, device_id), decision


def ingest(rt: Runtime, principal: Principal, data: dict[str, Any],
           device_id: str | None = None) -> Ingested:
    """Apply one validated event for a user, exactly once per (user, event_id), with no
    rate limit (tests, tools): alone, or with the process's concurrent posts in one
    transaction (``group_commit``)."""
    return ingest_prepared(rt, prepare(rt, principal, data, device_id))


def ingest_prepared(rt: Runtime, posted: Posted, limits: Sequence[Check] = (),
                    route: str = ROUTE) -> Ingested:
    """``ingest`` of a post ``prepare`` accepted, first counted against its rate limits
    (``limits``: its checks on ``route``) with the posts it is applied with, in one call
    to the limiter: over a limit, the post is refused (429) and not applied."""
    post = Post(posted, route, limits)
    outcome = rt.posts.submit(post, lambda chunk: _apply_group(rt, chunk),
                              lambda chunk: _admit(rt, chunk))
    if isinstance(outcome, Exception):
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


def _apply_group(rt: Runtime, chunk: Sequence[Post]) -> list[Ingested | Exception]:
    """A group of single posts (several users), applied together; if the group fails, each
    post alone (retry.py, rule 2)."""
    return retry.each_alone_on_failure(lambda posts: apply_chunk(rt, [p.posted for p in posts]),
                                       chunk)


def apply_chunk(rt: Runtime, chunk: Sequence[Posted]) -> list[Ingested | ServiceError]:
    """Apply a chunk of events (one user's, or one each of a group of posts) in one
    transaction, tried again on conflicts (retry.py, rule 1); counted once committed."""

    def attempt() -> list[Applied | ServiceError]:
        # The unit of work: opened here, committed here (the writes with the COMMIT), and
        # rolled back here when nothing new is stored or anything raises.
        with rt.db.unit_of_work() as uow:
            results, writes = intake.apply(uow.session, rt.config, rt.catalog, chunk)
            if writes is not None:
                uow.commit(writes)
        return results

    applied = retry.retrying_conflicts(attempt)
    after_commit(rt, [x for x in applied if not isinstance(x, ServiceError)])
    # Views after the writes: a new event's id and created_at are set there.
    outcomes = [x if isinstance(x, ServiceError) else
                Ingested(explain.event_view(x.event, x.event.explanation or {}), x.created)
                for x in applied]
    for outcome in outcomes:
        if isinstance(outcome, Ingested):
            _count(outcome)  # after the commit: only what was applied is counted
    return outcomes


def after_commit(rt: Runtime, applied: Sequence[Applied]) -> None:
    """What follows a committed chunk outside its transaction (views of the ledger kept
    elsewhere): the one place such hooks go. Each must never fail the committed events."""
    leaderboards.record(rt, [(a.event, a.event.credited_ug) for a in applied
                             if a.created and a.event.status in CREDITED])


def prepare(rt: Runtime, principal: Principal, data: dict[str, Any],
            device_id: str | None = None, digest: bytes | None = None) -> Posted:
    """What the transaction needs, derived before it: time checks (a 422 for an event in
    the future or past the backfill window), canonical payload, and its digest (unless
    given: a provider's record is compared on the whole record's, ``ingest.operator``)."""
    method = get_methodology(data["mode"])
    tz = rt.config.tz
    now = rt.clock()
    occurred_at = method.occurred_at(data, tz)
    local_date = occurred_at.astimezone(tz).date()
    _check_time_window(rt.config, data, occurred_at, local_date, now)
    payload = idempotency.canonical_payload(data)
    return Posted(principal, method, data, payload,
                  digest if digest is not None else idempotency.payload_hash(payload),
                  occurred_at,
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
    set (ingest/intake.py): one account lock, a fixed number of statements and one
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
            results[index] = refused_item(
                index, invalid_fields(exc.messages, "the event has invalid fields"))
        except ServiceError as exc:
            results[index] = refused_item(index, exc)
    for start in range(0, len(ready), ITEMS_PER_TRANSACTION):
        chunk = ready[start:start + ITEMS_PER_TRANSACTION]
        outcomes = apply_chunk(rt, [posted for _index, posted in chunk])
        for (index, _prepared), outcome in zip(chunk, outcomes, strict=True):
            results[index] = item_result(index, outcome)
    return [r for r in results if r is not None]


def item_result(index: int, outcome: Ingested | ServiceError) -> dict[str, Any]:
    """One item's answer in a batch (of events, or of a provider's records)."""
    if isinstance(outcome, ServiceError):
        return refused_item(index, outcome)
    return {"index": index, "status": 201 if outcome.created else 200,
            "result": outcome.event, "error": None}


def refused_item(index: int, refused: ServiceError) -> dict[str, Any]:
    return {"index": index, "status": refused.status, "result": None,
            "error": error_body(refused.code, refused.message, refused.fields,
                                refused.params)}


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
                           fields={field: [f"older than {config.backfill_days} days"]},
                           params={"days": config.backfill_days})


def get_event(rt: Runtime, principal: Principal, event_id: str) -> dict[str, Any]:
    if not all(is_valid_id(part) for part in event_id.split("~", 1)):  # a client's or
        # a provider's record's ("<provider>~<record>": ingest/operator.py)
        raise NotFound(f"no event {event_id!r} for this user")  # could never have been stored
    with rt.db.transaction() as session:
        event = session.scalars(
            select(Event).where(Event.user_id == principal.sub, Event.event_id == event_id)
        ).one_or_none()
        if event is None:
            raise NotFound(f"no event {event_id!r} for this user")
        return explain.stored_view(rt.catalog, session, event)


