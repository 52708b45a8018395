"""An event's explanation, built on read from what is stored of it.

The explanation (inputs, distance and its source, network, every factor with its source
text, formula, rounding, plausibility, caps, points rule) is not stored with each event:
at about 2 kB a row it was most of what an event cost to keep. It is deterministic given
what is stored: the methodology module recomputes it from the event's inputs (typed
columns), its factor version and its network version (both immutable, cached per process
by the catalog) and, for cumulative modes, the count it was measured against
(``previous_quantity``). What the decision met that the inputs do not say is kept in the
event's ``notes`` (NULL when it met nothing): the plausibility hits, the daily cap that
cut it, and the status it had before a reversal.

Ingest builds the explanation it answers with from its own decision (``intake._decide``);
tests/integration/test_explain.py proves the one built here from the stored row equals
it, for every mode and outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from carbon_credits.ledger import caps
from carbon_credits.networks.catalog import Catalog, VersionedFactors
from methodology import QuantifyContext, TransitNetwork, get_methodology
from methodology.quantity import whole_grams

INPUT_COLUMNS = {
    "line_id": "line_id",
    "board_stop_id": "origin",
    "entry_station_id": "origin",
    "alight_stop_id": "destination",
    "exit_station_id": "destination",
    "distance_m": "distance_m",
    "steps": "steps",
}
"""The events column each declared input of every mode is stored in (a test checks every
registered methodology's inputs are here or in ``TIME_INPUTS``): one mode never has two
inputs sharing a column."""
TIME_INPUTS = ("started_at", "ended_at", "date")
"""Inputs stored as the event's times: ``occurred_at``, ``ends_at``, ``local_date``."""
CREDIT_STATUSES = ("credited", "capped")
"""Statuses whose decision went through the daily caps (their explanation says so)."""


class Stored(Protocol):
    """What the explanation is built from: an ORM ``Event`` or intake's ``NewEvent``."""

    @property
    def mode(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime | None: ...
    @property
    def local_date(self) -> date: ...
    @property
    def line_id(self) -> str | None: ...
    @property
    def origin(self) -> str | None: ...
    @property
    def destination(self) -> str | None: ...
    @property
    def distance_m(self) -> int | None: ...
    @property
    def steps(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def avoided_ug(self) -> int: ...
    @property
    def credited_ug(self) -> int: ...
    @property
    def points(self) -> int: ...
    @property
    def factor_version_id(self) -> int: ...
    @property
    def network_id(self) -> int | None: ...
    @property
    def previous_quantity(self) -> int | None: ...
    @property
    def notes(self) -> dict[str, Any] | None: ...
    @property
    def activity(self) -> int: ...


def input_columns(data: Mapping[str, Any]) -> dict[str, Any]:
    """The typed input columns of a validated event (``schemas.load_event``): its declared
    inputs other than its times, each in its column; the others None."""
    method = get_methodology(data["mode"])
    columns: dict[str, Any] = dict.fromkeys(sorted(set(INPUT_COLUMNS.values())))
    for field in method.inputs:
        if field.name not in TIME_INPUTS:
            columns[INPUT_COLUMNS[field.name]] = data.get(field.name)
    return columns


def inputs_of(event: Stored) -> dict[str, Any]:
    """The validated event again (as ``schemas.load_event`` gave it, instants in UTC),
    from its columns: what the methodology quantifies. Optional inputs not posted are
    absent."""
    method = get_methodology(event.mode)
    times: dict[str, Any] = {"started_at": event.occurred_at, "ended_at": event.ends_at,
                             "date": event.local_date}
    data: dict[str, Any] = {"mode": event.mode}
    for field in method.inputs:
        value = (times[field.name] if field.name in TIME_INPUTS
                 else getattr(event, INPUT_COLUMNS[field.name]))
        if value is not None:
            data[field.name] = value
    return data


class Noted(Protocol):
    """A plausibility rule's hit (antifraud.plausibility.Hit), as an explanation notes it."""

    def to_dict(self) -> dict[str, str]: ...


def notes_for(hits: Sequence[Noted], cap: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a decision met that its inputs do not say; None when it met nothing (the
    common case: no bytes in the row but the null bitmap's)."""
    notes: dict[str, Any] = {}
    if hits:
        notes["plausibility"] = [hit.to_dict() for hit in hits]
    if cap is not None:
        notes["cap"] = {k: cap[k] for k in ("cap", "cap_g", "used_before_ug")}
    return notes or None


def reversed_notes(event: Stored) -> dict[str, Any]:
    """The notes of an event being reversed: its own, and the status it had (which says
    whether its explanation went through the caps)."""
    return {**(event.notes or {}), "was": event.status}


def build(event: Stored, versioned: VersionedFactors, network: TransitNetwork | None
          ) -> dict[str, Any]:
    """The explanation of a stored event, from its columns and versions."""
    method = get_methodology(event.mode)
    notes = event.notes or {}
    if notes.get("reduced"):
        explanation, avoided_ug = reduced(event, notes["reduced"]), event.avoided_ug
    else:
        result = method.quantify(inputs_of(event), versioned.factors, QuantifyContext(
            network=network, previous_quantity=event.previous_quantity or 0))
        explanation, avoided_ug = dict(result.explanation), result.avoided_ug
    explanation["methodology"] = {"mode": event.mode, "version": versioned.factors.version,
                                  "kind": versioned.factors.kind,
                                  "effective_from": versioned.effective_from.isoformat()}
    explanation["avoided_grams"] = whole_grams(avoided_ug)
    explanation["plausibility"] = list(notes.get("plausibility", ()))
    status = notes.get("was", event.status) if event.status == "reversed" else event.status
    if status in CREDIT_STATUSES:
        cap = notes.get("cap")
        explanation = caps.explain(explanation, caps.Credit(
            event.credited_ug, event.points, status, None, None if cap is None else {
                **cap, "uncapped_ug": event.avoided_ug, "rule": caps.rule_for(cap["cap"])}))
    return explanation


REDUCED_NOTES = ("cap", "was")
"""What a reduced event's notes keep (``reduced_notes``): what its credit's explanation
needs; plausibility hits keep their codes only (their details may name other trips)."""


def reduced_notes(notes: dict[str, Any] | None, why: str) -> dict[str, Any]:
    """The notes of an event whose trip details were deleted (``why``: "retention" or
    "erasure", privacy/), marked so its explanation is built without them."""
    notes = notes or {}
    kept: dict[str, Any] = {k: notes[k] for k in REDUCED_NOTES if k in notes}
    if notes.get("plausibility"):
        kept["plausibility"] = [{"code": hit.get("code"), "outcome": hit.get("outcome"),
                                 "detail": ""} for hit in notes["plausibility"]]
    return {**kept, "reduced": why}


def reduced(event: Stored, why: str) -> dict[str, Any]:
    """The explanation of an event whose trip details were deleted: the stations, line and
    times cannot be quantified again, so it shows the quantities kept (what the MRV export
    stands on) and says why the rest is gone."""
    return {"reduced": why,
            "note": "trip details deleted (" + why + "); the quantities credited stand",
            "activity": event.activity, "activity_unit": "steps" if event.mode == "steps"
            else "m", "distance_m": None if event.mode == "steps" else event.activity}


def explain(session: Session, catalog: Catalog, event: Stored) -> dict[str, Any]:
    """``build`` with the event's factor and network versions from the catalog (parsed
    once per process)."""
    versioned = catalog.factors_by_id(session, event.factor_version_id)
    network = (catalog.network_by_id(session, event.network_id)
               if event.network_id is not None else None)
    return build(event, versioned, network)


class Viewed(Stored, Protocol):
    """What an event's public result shows besides its explanation."""

    @property
    def event_id(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def methodology_version(self) -> str: ...
    @property
    def reversed_at(self) -> datetime | None: ...
    @property
    def reversed_by(self) -> str | None: ...
    @property
    def reversal_reason(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...


def event_view(event: Viewed, explanation: dict[str, Any]) -> dict[str, Any]:
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
        "source": event.source or "client",
        "same_trip": (event.notes or {}).get("same_trip"),
        "confirmed_by": _confirmed_by(event),
        "reversal": None if event.reversed_at is None else {
            "reversed_at": event.reversed_at, "by": event.reversed_by,
            "reason": event.reversal_reason},
    }


def _confirmed_by(event: Viewed) -> str | None:
    """The provider whose record confirmed the trip: the event's own source for a
    provider's record, else the provider noted on a client post it confirmed."""
    if event.source is not None:
        return event.source
    confirmed = (event.notes or {}).get("confirmed_by")
    return confirmed["provider"] if isinstance(confirmed, dict) else None


def stored_view(catalog: Catalog, session: Session, event: Viewed) -> dict[str, Any]:
    """``event_view`` of a stored event, its explanation built from the row."""
    return event_view(event, explain(session, catalog, event))
