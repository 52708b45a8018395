"""Providers' records credited: a POST of records answered item by item, and the crediting
of record files' chunks (``jobs.ApplyChunk``), both through ``ingest.operator`` (the same
flow as client posts: idempotency, trust policies and matching, rules, caps, ledger)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from marshmallow import ValidationError

from carbon_credits.errors import ServiceError, invalid_fields
from carbon_credits.ingest import events, operator
from carbon_credits.providers import bindings, registry
from carbon_credits.providers.jobs import ApplyChunk, RowOutcome
from carbon_credits.providers.records import Record, load_record
from carbon_credits.runtime import Runtime

MAX_RECORDS = 1000
"""Records in one signed POST (issue 21); a larger set is a file."""


def post_records(rt: Runtime, provider: registry.Provider, bodies: Sequence[Any]
                 ) -> list[dict[str, Any]]:
    """Each record validated, then credited exactly once (by provider and record id), in
    order; one answer per record, in a batch item's shape (``events.item_result``): an
    invalid record, one of a user not bound, or a conflicting reuse of a record id is
    refused alone and the others stand."""
    answers: dict[int, dict[str, Any]] = {}
    valid: list[tuple[int, Record]] = []
    for index, body in enumerate(bodies):
        try:
            valid.append((index, load_record(body, provider.city)))
        except ValidationError as exc:
            answers[index] = events.refused_item(
                index, invalid_fields(exc.messages, "the record has invalid fields"))
    outcomes = operator.apply_records(rt, provider, [r for _, r in valid], bindings.resolve)
    for (index, _record), outcome in zip(valid, outcomes, strict=True):
        answers[index] = events.item_result(index, outcome)
    return [answers[i] for i in range(len(bodies))]


def make_apply_chunk(rt: Runtime) -> ApplyChunk:
    """The crediting of record files (``RECORD_APPLIER``'s default): a chunk of the file
    (``RECORD_CHUNK_ROWS``) in one transaction, read and written as a set whatever its
    number of users (ingest/intake.py), its accounts locked meanwhile (a post of one of
    its users waits for that transaction, a fraction of a second)."""

    def apply_chunk(provider_id: str, rows: list[tuple[int, Record]]) -> list[RowOutcome]:
        with rt.db.transaction() as session:
            provider = registry.get_provider(session, provider_id)
        if provider is None or not provider.enabled:  # disabled since the upload
            return [RowOutcome(line, "refused", "provider_disabled", None,
                               f"provider {provider_id!r} is disabled") for line, _ in rows]
        outcomes = operator.apply_records(rt, provider, [r for _, r in rows],
                                          bindings.resolve, per_transaction=len(rows))
        return [row_outcome(line, o) for (line, _), o in zip(rows, outcomes, strict=True)]

    return apply_chunk


def row_outcome(line: int, outcome: ServiceError | events.Ingested) -> RowOutcome:
    """A record's result as a file row's: refused (with its code and field), replayed,
    held, or credited (capped at zero included). A record stored but not credited, since
    its trip was credited already (``same_trip``) or a rule rejected it, is counted as
    refused with that reason, so the provider's error report lists it."""
    if isinstance(outcome, ServiceError):
        field = next(iter(outcome.fields), None)
        return RowOutcome(line, "refused", outcome.code, field, outcome.message)
    event = outcome.event
    if not outcome.created:
        return RowOutcome(line, "replayed")
    if event["status"] == "held":
        return RowOutcome(line, "held")
    if event["status"] == "rejected":
        return RowOutcome(line, "refused", str(event["reason"]), None,
                          f"stored, not credited: {event['reason']}")
    return RowOutcome(line, "credited")
