"""Operator records: what a scenario provider (transit, bike-share, health platform) sends
for one of its bound users, validated into the event a client would have posted.

Each record kind maps its fields onto a methodology's declared inputs (``KINDS``); the
fields are built by the event schemas' own ``input_field``, so a record is refused for
exactly what the equivalent client event would be refused for, and ``Record.event_data``
is the dict ``schemas.load_event`` returns for that event (without ``event_id``, which the
caller derives from the provider and ``record_id``). Errors name the record's own fields
(``tapped_in_at``), not the event's (``started_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from carbon_credits.ingest import idempotency
from carbon_credits.schemas import ID, input_field
from methodology import METHODOLOGIES

MAX_USER_REF = 128


@dataclass(frozen=True)
class KindSpec:
    """One record kind: its mode, and each record field's event input (or None for a field
    the event does not carry, kept in ``Record.extras``)."""

    kind: str
    mode: str
    fields: Mapping[str, str | None]
    """record field -> event input name (None: kept on the record only)."""
    optional: frozenset[str] = frozenset()
    """Record fields that may be absent, even if the event input is required."""
    not_before: tuple[tuple[str, str], ...] = ()
    """(later, earlier) record fields: ``later`` must not precede ``earlier``."""


KINDS: Mapping[str, KindSpec] = {spec.kind: spec for spec in (
    KindSpec("metro_trip", "metro", {
        "entry_station_id": "entry_station_id", "exit_station_id": "exit_station_id",
        "tapped_in_at": "started_at", "tapped_out_at": "ended_at"},
        not_before=(("tapped_out_at", "tapped_in_at"),)),
    KindSpec("bus_trip", "bus", {
        "line_id": "line_id", "board_stop_id": "board_stop_id",
        "alight_stop_id": "alight_stop_id", "boarded_at": "started_at",
        "alighted_at": "ended_at"},
        not_before=(("alighted_at", "boarded_at"),)),
    KindSpec("bike_ride", "bikeshare", {
        "started_at": "started_at", "ended_at": "ended_at", "distance_m": "distance_m",
        "bike_id": None},
        optional=frozenset({"bike_id"}),
        not_before=(("ended_at", "started_at"),)),
    KindSpec("daily_steps", "steps", {"date": "date", "steps": "steps"}),
)}
COMMON_FIELDS = ("record_id", "user_ref", "kind", "city")
RECORD_FIELDS: frozenset[str] = frozenset(COMMON_FIELDS).union(
    *(spec.fields for spec in KINDS.values()))
"""Every field name any record kind has: the columns a CSV file may have."""


@dataclass(frozen=True)
class Record:
    """One validated operator record."""

    record_id: str
    user_ref: str
    kind: str
    mode: str
    city: str
    event_data: dict[str, Any]
    """What ``schemas.load_event`` returns for the equivalent client event, less event_id."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Record fields the event does not carry (a bike ride's ``bike_id``)."""

    @property
    def payload_hash(self) -> bytes:
        """SHA-256 of the record's canonical form (ingest.idempotency): the same record
        sent again is a replay, the same record_id with another payload a conflict. Instants
        are compared in UTC, so a time written in another offset is the same record."""
        return idempotency.payload_hash(idempotency.canonical_payload(
            {**self.event_data, **self.extras, "record_id": self.record_id,
             "user_ref": self.user_ref, "kind": self.kind}))


def _printable(value: str) -> None:
    if not value.isprintable():
        raise ValidationError("must be printable characters only")


class RecordBaseSchema(Schema):
    record_id = fields.String(required=True, validate=ID,
                              metadata={"description": "the provider's own record id"})
    user_ref = fields.String(required=True,
                             validate=[validate.Length(min=1, max=MAX_USER_REF), _printable],
                             metadata={"description": "the provider's reference of the user"})
    kind = fields.String(required=True)
    city = fields.String(load_default=None, validate=ID,
                         metadata={"description": "default: the provider's city"})
    NOT_BEFORE: ClassVar[tuple[tuple[str, str], ...]] = ()

    @validates_schema
    def _in_order(self, data: Mapping[str, Any], **_: Any) -> None:
        for later, earlier in self.NOT_BEFORE:
            if data.get(later) is not None and data.get(earlier) is not None \
                    and data[later] < data[earlier]:
                raise ValidationError(f"must not be before {earlier}", later)


def _record_schema(spec: KindSpec) -> Schema:
    inputs = {i.name: i for i in METHODOLOGIES[spec.mode].inputs}
    attrs: dict[str, Any] = {}
    for name, target in spec.fields.items():
        if target is None:
            attrs[name] = fields.String(load_default=None, validate=ID)
            continue
        made = input_field(inputs[target])
        if name in spec.optional and made.required:
            made.required = False
            made.load_default = None
        attrs[name] = made
    attrs["kind"] = fields.String(required=True, validate=validate.Equal(spec.kind))
    attrs["NOT_BEFORE"] = spec.not_before
    name = "".join(part.capitalize() for part in spec.kind.split("_")) + "RecordSchema"
    schema: Schema = type(name, (RecordBaseSchema,), attrs)()
    return schema


RECORD_SCHEMAS: Mapping[str, Schema] = {kind: _record_schema(spec) for kind, spec in KINDS.items()}

INTEGER_FIELDS: frozenset[str] = frozenset(
    name for kind, schema in RECORD_SCHEMAS.items() for name, f in schema.fields.items()
    if isinstance(f, fields.Integer))
"""Fields whose values are integers: a CSV cell holds them as text (files.py converts)."""


def load_record(body: Any, default_city: str) -> Record:
    """Validate one record; ValidationError names the record's fields. Unknown fields are
    refused (marshmallow's RAISE); a repeated key is refused by the decoder (files.py)."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["expected an object"]})
    kind = body.get("kind")
    if kind is None:
        raise ValidationError({"kind": ["Missing data for required field."]})
    schema = RECORD_SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise ValidationError({"kind": [f"unknown kind; one of {sorted(RECORD_SCHEMAS)}"]})
    loaded: dict[str, Any] = schema.load(body)
    spec = KINDS[kind]
    city = loaded["city"] or default_city
    event: dict[str, Any] = {"mode": spec.mode, "city": city}
    # Inputs the kind leaves out (a bus record's distance_m) are absent as in load_event:
    # there, a missing optional input loads as None.
    for spec_input in METHODOLOGIES[spec.mode].inputs:
        if not spec_input.required:
            event[spec_input.name] = None
    extras: dict[str, Any] = {}
    for name, target in spec.fields.items():
        if target is None:
            if loaded.get(name) is not None:
                extras[name] = loaded[name]
        else:
            event[target] = loaded[name]
    return Record(record_id=loaded["record_id"], user_ref=loaded["user_ref"], kind=kind,
                  mode=spec.mode, city=city, event_data=event, extras=extras)
