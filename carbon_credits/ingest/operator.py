"""Scenario providers' records, credited through the same flow as client posts.

A provider's record (a metro tap-in/tap-out, a bus boarding, a bike-share ride, a day's
steps; ``providers.records``) is, for crediting, the event its user would have posted:
the same methodology, rules, caps and ledger, one transaction per chunk
(``events.apply_chunk``). What differs is decided before and in ``decide``:

- the user is the one bound to the provider under the record's ``user_ref``
  (``providers.bindings``); a record of a user not bound, or whose binding was revoked,
  is refused alone (``not_bound``) and credits nothing;
- the provider must be registered for the record's mode and city;
- its event id is ``<provider id>~<record id>`` (a client's ids have no ``~``), so a
  record is idempotent as events are: the same record again is a replay, the same id
  with another payload a conflict (409), decided on the whole record's SHA-256;
- the event's ``source`` is the provider, and the trust policy of its city and mode
  matches it with the client's post of the same trip (``trust``): one trip, one credit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, literal_column, select, update
from sqlalchemy.orm import Session

from carbon_credits.errors import Forbidden, InvalidInput, ServiceError
from carbon_credits.ingest import events, trust
from carbon_credits.ingest.decide import Posted
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Account, Event, TrustPolicy
from carbon_credits.tokens import Principal

SEPARATOR = "~"
"""Between a provider's id and its record's id in the event id: not in a client id's
alphabet (schemas.ID), so the two never meet, and URL-safe (GET /v1/events/{event_id})."""


class Provider(Protocol):
    """What crediting needs of a provider (``providers.registry.Provider``)."""

    @property
    def id(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def modes(self) -> frozenset[str]: ...


class Record(Protocol):
    """A validated record (``providers.records.Record``)."""

    @property
    def record_id(self) -> str: ...
    @property
    def user_ref(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def event_data(self) -> dict[str, Any]: ...
    @property
    def payload_hash(self) -> bytes: ...


Resolve = Callable[[Session, str, Collection[str]], dict[str, str]]
"""``providers.bindings.resolve``: the users bound to a provider under its references."""


def event_id_of(provider_id: str, record_id: str) -> str:
    return f"{provider_id}{SEPARATOR}{record_id}"


def apply_records(rt: Runtime, provider: Provider, records: Sequence[Record],
                  resolve: Resolve, per_transaction: int = events.ITEMS_PER_TRANSACTION
                  ) -> list[ServiceError | events.Ingested]:
    """Credit a provider's records, each exactly once, in order; one result per record:
    what is stored (``Ingested``: ``created`` False for a replay) or why it was refused.
    ``per_transaction`` records are applied per transaction, as a set (``events.
    apply_chunk``): a POST's 100, a record file's whole chunk.

    The bindings are read first, in a transaction of their own: a binding revoked while
    the records are applied may still see them credited, as a record that arrived a
    moment earlier would have been."""
    with rt.db.transaction() as session:
        bound = resolve(session, provider.id, sorted({r.user_ref for r in records}))
    results: list[ServiceError | events.Ingested | None] = [None] * len(records)
    ready: list[tuple[int, Posted]] = []
    for index, record in enumerate(records):
        try:
            ready.append((index, _prepare(rt, provider, record, bound)))
        except ServiceError as exc:
            results[index] = exc
    for start in range(0, len(ready), per_transaction):
        chunk = ready[start:start + per_transaction]
        for (index, _posted), outcome in zip(chunk, events.apply_chunk(
                rt, [posted for _index, posted in chunk]), strict=True):
            results[index] = outcome
    return [r for r in results if r is not None]


def _prepare(rt: Runtime, provider: Provider, record: Record, bound: dict[str, str]
             ) -> Posted:
    if record.mode not in provider.modes:
        raise Forbidden(f"provider {provider.id!r} does not report {record.mode} trips",
                        code="mode_not_allowed")
    if record.city != provider.city:
        raise InvalidInput(f"provider {provider.id!r} reports for {provider.city!r} only",
                           code="city_not_allowed", fields={"city": [provider.city]})
    user_id = bound.get(record.user_ref)
    if user_id is None:
        raise InvalidInput("no user is bound to this provider under this reference",
                           code="not_bound", fields={"user_ref": ["not bound"]})
    data = {**record.event_data, "event_id": event_id_of(provider.id, record.record_id)}
    posted = events.prepare(rt, Principal(user_id, "user", None), data,
                            digest=record.payload_hash)
    return replace(posted, source=provider.id)


EXPIRE_BATCH = 1000
"""Held posts closed per transaction by ``expire_unconfirmed`` (policy, no source): their
users' accounts are locked meanwhile, so ingest of those users waits for it."""


def expire_unconfirmed(rt: Runtime) -> int:
    """Reject (``not_confirmed``) the client posts held for a provider's record longer than
    their city and mode's ``confirm_days`` (a policy since set back to ``client`` keeps
    the default); how many. Run it from cron or a job scheduler (``flask
    expire-unconfirmed``); it is idempotent. Each batch locks its users' accounts first,
    as ingest does, so a record matching a post cannot be credited while it is closed."""
    now = rt.clock()
    closed = 0
    while True:
        with rt.db.transaction() as session:
            days = {(p.city, p.mode): p.confirm_days
                    for p in session.scalars(select(TrustPolicy))}
            # 'held' as a literal: the partial index of held events serves only that text.
            waiting = session.execute(
                select(Event.id, Event.user_id, Event.city, Event.mode, Event.occurred_at)
                .where(Event.status == literal_column("'held'"),
                       Event.reason == trust.AWAITING)
                .order_by(Event.id)).all()
            due = [w for w in waiting if w.occurred_at + timedelta(
                days=days.get((w.city, w.mode), trust.DEFAULT_CONFIRM_DAYS)) <= now
                ][:EXPIRE_BATCH]
            if not due:
                return closed
            session.execute(select(Account.user_id)
                            .where(Account.user_id.in_(sorted({w.user_id for w in due})))
                            .order_by(Account.user_id).with_for_update())
            done = session.execute(
                update(Event).where(Event.id.in_([w.id for w in due]),
                                    Event.status == literal_column("'held'"),
                                    Event.reason == trust.AWAITING)
                .values(status="rejected", reason=trust.NOT_CONFIRMED))
            closed += cast(CursorResult[Any], done).rowcount
        if len(due) < EXPIRE_BATCH:
            return closed
