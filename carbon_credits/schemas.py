"""Request and response schemas; the OpenAPI document is generated from these."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from methodology import METHODOLOGIES, Methodology
from methodology.inputs import InputField


class FullMatch(validate.Regexp):
    """A Regexp that must match the whole value: with ``re.match``, ``$`` also matches
    before a trailing newline, so "abc\n" passed. The pattern stays portable for OpenAPI."""

    def __call__(self, value: Any) -> Any:
        regex = cast("re.Pattern[str]", self.regex)
        if not isinstance(value, str) or regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


ID = FullMatch(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$",
               error="1-64 characters: letters, digits and . _ : @ -")
"""Client ids (event_id, redemption_id, city, version). No '/': ids are path segments of
GET /v1/events/{event_id} and the admin routes, and werkzeug decodes %2F before routing, so
an id with a slash could be stored but never addressed again."""


def is_valid_id(value: str) -> bool:
    """Whether a client id (event_id, redemption_id, ...) has the accepted shape."""
    try:
        ID(value)
    except ValidationError:
        return False
    return True


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Bounds on event times: times near year 1 or 9999 overflow in time-zone conversion."""
IN_ERA = validate.Range(min=EARLIEST, max=LATEST, error="must be between 2000 and 2100")
IN_ERA_DATE = validate.Range(min=EARLIEST.date(), max=LATEST.date(),
                             error="must be between 2000 and 2100")


class EventBaseSchema(Schema):
    """Fields every event has; each mode's schema adds the inputs its methodology declares."""

    event_id = fields.String(required=True, validate=ID,
                             metadata={"description": "client id, unique per user"})
    mode = fields.String(required=True)
    city = fields.String(required=True, validate=ID)
    NOT_BEFORE: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(later, earlier) pairs of datetime fields: ``later`` must not precede ``earlier``."""

    @validates_schema
    def _in_order(self, data: Mapping[str, Any], **_: Any) -> None:
        for later, earlier in self.NOT_BEFORE:
            if data.get(later) is not None and data.get(earlier) is not None \
                    and data[later] < data[earlier]:
                raise ValidationError(f"must not be before {earlier}", later)


def input_field(spec: InputField) -> fields.Field[Any]:
    """The marshmallow field for a methodology's declared input."""
    options: dict[str, Any] = {"required": spec.required,
                               "metadata": {"description": spec.description}}
    if not spec.required:
        options["load_default"] = None
    if spec.kind == "id":
        return fields.String(validate=ID, **options)
    if spec.kind == "int":
        return fields.Integer(strict=True, validate=validate.Range(min=spec.minimum,
                                                                   max=spec.maximum),
                              **options)
    if spec.kind == "datetime":
        return fields.AwareDateTime(format="iso", validate=IN_ERA, **options)
    return fields.Date(validate=IN_ERA_DATE, **options)


def event_schema(method: Methodology) -> type[Schema]:
    """A mode's request schema, built from its methodology's declared inputs."""
    attrs: dict[str, Any] = {spec.name: input_field(spec) for spec in method.inputs}
    attrs["mode"] = fields.String(required=True, validate=validate.Equal(method.mode))
    attrs["NOT_BEFORE"] = tuple((spec.name, spec.not_before) for spec in method.inputs
                                if spec.not_before)
    name = f"{method.mode.capitalize()}EventSchema"
    return type(name, (EventBaseSchema,), attrs)


EVENT_SCHEMAS: Mapping[str, Schema] = {
    mode: event_schema(method)() for mode, method in METHODOLOGIES.items()
}


def load_event(body: Any) -> dict[str, Any]:
    """Validate an event body with the schema of its mode; ValidationError names fields."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["expected a JSON object"]})
    mode = body.get("mode")
    if mode is None:
        raise ValidationError({"mode": ["Missing data for required field."]})
    schema = EVENT_SCHEMAS.get(mode) if isinstance(mode, str) else None
    if schema is None:
        raise ValidationError({"mode": [f"unknown mode; one of {sorted(EVENT_SCHEMAS)}"]})
    loaded: dict[str, Any] = schema.load(body)
    return loaded


MAX_BATCH = 500


class BatchSchema(Schema):
    events = fields.List(fields.Raw(), required=True,
                         validate=validate.Length(min=1, max=MAX_BATCH),
                         metadata={"description": f"1-{MAX_BATCH} events, each as for "
                                                  "POST /v1/events"})


class BatchItemSchema(Schema):
    index = fields.Integer()
    status = fields.Integer(metadata={"description": "the HTTP status this item alone "
                                                     "would have had"})
    result = fields.Dict(allow_none=True)
    error = fields.Dict(allow_none=True)


class BatchResultSchema(Schema):
    results = fields.List(fields.Nested(BatchItemSchema))


class RedemptionInSchema(Schema):
    redemption_id = fields.String(required=True, validate=ID)
    points = fields.Integer(strict=True, required=True,
                            validate=validate.Range(min=1, max=10**9))
    description = fields.String(load_default=None, validate=validate.Length(max=200))


class RedemptionSchema(Schema):
    redemption_id = fields.String()
    points = fields.Integer()
    description = fields.String(allow_none=True)
    balance_after = fields.Integer()
    created_at = fields.DateTime()


class ReversalInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class AuditQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    before_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**63 - 1))


class AuditRecordSchema(Schema):
    id = fields.Integer()
    actor = fields.String()
    action = fields.String()
    target = fields.String()
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    reason = fields.String()
    created_at = fields.DateTime()


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditRecordSchema))


class FactorInSchema(Schema):
    name = fields.String(required=True, validate=FullMatch(r"^[a-z][a-z0-9_]{0,63}$",
                                                           error="snake_case, <= 64 chars"))
    value = fields.Decimal(required=True, allow_nan=False, validate=validate.Range(min=0),
                           metadata={"description": "non-negative decimal (string or number)",
                                     # apispec would write the bound as Decimal("0"), which
                                     # JSON renders as the string "0": not JSON Schema.
                                     "minimum": 0})
    unit = fields.String(required=True, validate=validate.Length(min=1, max=64))
    source = fields.String(required=True, validate=validate.Length(min=3, max=2000),
                           metadata={"description": "document or scheme and year; or why it is "
                                                    "an operator policy"})
    policy = fields.Boolean(load_default=False)


class DraftFactorsSchema(Schema):
    city = fields.String(required=True, validate=ID)
    mode = fields.String(required=True, validate=validate.OneOf(sorted(METHODOLOGIES)))
    kind = fields.String(required=True, validate=validate.OneOf(["net", "baseline"]))
    factors = fields.List(fields.Nested(FactorInSchema), required=True,
                          validate=validate.Length(min=1, max=50))


class FactorVersionInSchema(DraftFactorsSchema):
    version = fields.String(required=True, validate=ID)
    effective_from = fields.AwareDateTime(required=True, format="iso", validate=IN_ERA)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class PreviewInSchema(DraftFactorsSchema):
    from_ = fields.Date(required=True, data_key="from", validate=IN_ERA_DATE)
    to = fields.Date(required=True, validate=IN_ERA_DATE)


class FactorVersionSchema(Schema):
    id = fields.Integer()
    city = fields.String()
    mode = fields.String()
    version = fields.String()
    kind = fields.String()
    factors = fields.List(fields.Dict())
    effective_from = fields.DateTime()
    created_by = fields.String()
    reason = fields.String()
    created_at = fields.DateTime()


class FactorVersionListSchema(Schema):
    items = fields.List(fields.Nested(FactorVersionSchema))


class FactorVersionQuerySchema(Schema):
    city = fields.String(required=True, validate=ID, metadata={"example": "shenzhen"})
    mode = fields.String(load_default=None, validate=validate.OneOf(sorted(METHODOLOGIES)),
                         metadata={"example": "bus"})


class PreviewDaySchema(Schema):
    date = fields.Date()
    mode = fields.String()
    events = fields.Integer()
    before_grams = fields.Integer(metadata={"description": "avoided, before daily caps"})
    before_credited_grams = fields.Integer(metadata={"description": "what the ledger holds"})
    before_points = fields.Integer()
    after_grams = fields.Integer(metadata={"description": "avoided under the draft, before caps"})
    after_points = fields.Integer()
    delta_grams = fields.Integer()


class PreviewSchema(Schema):
    city = fields.String()
    mode = fields.String()
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    draft = fields.List(fields.Dict())
    days = fields.List(fields.Nested(PreviewDaySchema))
    totals = fields.Dict(keys=fields.String(), values=fields.Integer())
    note = fields.String()


class ErrorBodySchema(Schema):
    code = fields.String(metadata={"description": "machine-readable error code"})
    message = fields.String()
    fields_ = fields.Dict(data_key="fields", metadata={
        "description": "per-field messages, keyed by the offending field"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)


class MethodologyRefSchema(Schema):
    mode = fields.String()
    version = fields.String()


class EventResultSchema(Schema):
    event_id = fields.String()
    mode = fields.String()
    city = fields.String()
    status = fields.String(
        metadata={"description": "credited | held | rejected | capped | reversed"})
    grams = fields.Integer(metadata={"description": "whole grams CO2 credited for this event"})
    points = fields.Integer()
    reason = fields.String(allow_none=True)
    occurred_at = fields.DateTime()
    local_date = fields.Date()
    created_at = fields.DateTime()
    methodology = fields.Nested(MethodologyRefSchema)
    explanation = fields.Dict()
    reversal = fields.Dict(allow_none=True, metadata={
        "description": "who reversed the credit, when and why; null if never reversed"})


class DayUsageSchema(Schema):
    points = fields.Integer()
    grams = fields.Integer()
    events = fields.Integer()
    cap = fields.Integer(allow_none=True, metadata={"description": "daily cap, grams"})


class AccountDaySchema(Schema):
    local_date = fields.Date(metadata={"description": "the local day asked for with ?date= "
                                                      "(today without it)"})
    usage = fields.Dict(keys=fields.String(), values=fields.Nested(DayUsageSchema),
                        metadata={"description": "that day's use of each mode's daily cap, "
                                                 "and the total, as in `today`"})


class AccountSchema(Schema):
    user_id = fields.String()
    balance = fields.Integer()
    lifetime_points = fields.Integer()
    lifetime_grams = fields.Integer()
    local_date = fields.Date()
    today = fields.Dict(keys=fields.String(), values=fields.Nested(DayUsageSchema))
    day = fields.Nested(AccountDaySchema)


class AccountQuerySchema(Schema):
    date = fields.Date(load_default=None, metadata={
        "description": "a local day within the backfill window (BACKFILL_DAYS), not in the "
                       "future, whose usage `day` shows; default today"})


class LedgerEntrySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    points = fields.Integer()
    grams = fields.Integer()
    ug = fields.Integer(metadata={"description": "exact micrograms CO2 of the entry"})
    balance_after = fields.Integer(metadata={"description": "balance right after this entry"})
    event_id = fields.String(allow_none=True)
    redemption_id = fields.String(allow_none=True)
    mode = fields.String(allow_none=True)
    created_at = fields.DateTime()


class LedgerPageSchema(Schema):
    items = fields.List(fields.Nested(LedgerEntrySchema))
    next_cursor = fields.String(allow_none=True)


class LedgerQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, validate=validate.Length(max=64))


class FactorSchema(Schema):
    name = fields.String()
    value = fields.String()
    unit = fields.String()
    source = fields.String()
    policy = fields.Boolean()


class MethodologySchema(Schema):
    mode = fields.String()
    title = fields.String()
    city = fields.String()
    version = fields.String()
    kind = fields.String()
    effective_from = fields.DateTime()
    net_g_per_pkm = fields.String(allow_none=True)
    factors = fields.List(fields.Nested(FactorSchema))


class MethodologyQuerySchema(Schema):
    city = fields.String(load_default=None, validate=ID)


class MethodologyListSchema(Schema):
    city = fields.String()
    methodologies = fields.List(fields.Nested(MethodologySchema))


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())


class DecisionInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class ReviewQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    after_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**63 - 1))


class HeldEventSchema(EventResultSchema):
    id = fields.Integer(metadata={"description": "queue position; page with after_id"})
    user_id = fields.String()


class ReviewPageSchema(Schema):
    items = fields.List(fields.Nested(HeldEventSchema))


class FrozenSchema(Schema):
    user_id = fields.String()
    frozen = fields.Boolean()


class NetworkImportQuerySchema(Schema):
    version = fields.String(load_default=None, validate=ID, metadata={"example": "2026-12"})
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000),
                           metadata={"example": "December timetable from the operator"})


class NetworkImportSchema(Schema):
    network_id = fields.Integer()
    city = fields.String()
    version = fields.String()
    source = fields.String()
    stations = fields.Integer()
    metro_stations = fields.Integer()
    routes = fields.Integer()
    routes_by_mode = fields.Dict(keys=fields.String(), values=fields.Integer())
    patterns = fields.Integer()
    trips = fields.Integer()
    warnings = fields.List(fields.String())
    timings_ms = fields.Dict(keys=fields.String(), values=fields.Float())


# ---------------------------------------------------------------- reports

REPORT_GROUPS = ("mode", "district", "methodology_version")
REPORT_MAX_DAYS = 3660


class ReportRangeQuerySchema(Schema):
    from_ = fields.Date(required=True, data_key="from", validate=IN_ERA_DATE,
                        metadata={"description": "first local date (city time zone)",
                                  "example": "2026-11-01"})
    to = fields.Date(required=True, validate=IN_ERA_DATE,
                     metadata={"description": "last local date, included",
                               "example": "2026-11-30"})
    city = fields.String(load_default=None, validate=ID, metadata={
        "description": "admins: any city (default: the service's); partners: their own "
                       "only (another is 403)", "example": "shenzhen"})
    format = fields.String(load_default=None, validate=validate.OneOf(["json", "csv"]),
                           metadata={"description": "csv, or send Accept: text/csv"})

    @validates_schema
    def _range(self, data: Mapping[str, Any], **_: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is None or end is None:
            return
        if end < start:
            raise ValidationError("must not be before from", "to")
        if (end - start).days >= REPORT_MAX_DAYS:
            raise ValidationError(f"at most {REPORT_MAX_DAYS} days per request", "to")


class GroupList(fields.Field[list[str]]):
    """Comma-separated group names (``group_by=mode,district``), as a list."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any
                     ) -> list[str]:
        if not isinstance(value, str):
            raise ValidationError("expected comma-separated names")
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = sorted(set(names) - set(REPORT_GROUPS))
        if unknown:
            raise ValidationError(f"unknown group {', '.join(unknown)}; any of "
                                  f"{', '.join(REPORT_GROUPS)}")
        return names


class ReductionQuerySchema(ReportRangeQuerySchema):
    granularity = fields.String(load_default="day",
                                validate=validate.OneOf(["day", "week", "month"]),
                                metadata={"example": "week"})
    group_by = GroupList(load_default=[], metadata={
        "type": "string", "example": "mode,district",
        "description": "comma-separated, any of mode, district, methodology_version"})


class ReductionFiguresSchema(Schema):
    events = fields.Integer(allow_none=True, metadata={"description": "credited events "
                                                       "(reversed ones excluded)"})
    grams = fields.Integer(allow_none=True, metadata={"description": "floor(ug / 10^6)"})
    tonnes = fields.Float(allow_none=True)
    ug = fields.Integer(allow_none=True, metadata={"description": "exact micrograms CO2"})
    points = fields.Integer(allow_none=True)
    participants = fields.Integer(allow_none=True, metadata={
        "description": "estimated distinct users (HyperLogLog, 1.6 % standard error)"})
    suppressed = fields.Boolean(metadata={
        "description": "partner reports: fewer than k participants, figures blanked"})


class ReductionRowSchema(ReductionFiguresSchema):
    period = fields.Date(metadata={"description": "first day of the day, ISO week or month"})
    period_start = fields.Date(metadata={"description": "the period clipped to the range"})
    period_end = fields.Date()
    mode = fields.String()
    district = fields.String()
    methodology_version = fields.String()


class _ReportHeadSchema(Schema):
    """What every partner report says about itself: city, local date range, privacy."""

    city = fields.String()
    from_ = fields.Date(data_key="from", attribute="from")
    to = fields.Date()
    timezone = fields.String()
    privacy = fields.Dict()


class ReductionReportSchema(_ReportHeadSchema):
    granularity = fields.String()
    group_by = fields.List(fields.String())
    participants_method = fields.Dict()
    rows = fields.List(fields.Nested(ReductionRowSchema))
    totals = fields.Nested(ReductionFiguresSchema)


class VerificationRowSchema(Schema):
    mode = fields.String()
    methodology_version = fields.String()
    factor_kind = fields.String(allow_none=True)
    factor_name = fields.String(allow_none=True)
    factor_value = fields.String(allow_none=True, metadata={"description": "decimal"})
    factor_unit = fields.String(allow_none=True)
    effective_from = fields.DateTime(allow_none=True)
    factors = fields.List(fields.Dict(), allow_none=True,
                          metadata={"description": "the factor version as published"})
    events = fields.Integer(allow_none=True)
    participants = fields.Integer(allow_none=True)
    activity = fields.String(allow_none=True, metadata={
        "description": "person-km (exact decimal) or steps"})
    activity_unit = fields.String()
    avoided_ug = fields.Integer(allow_none=True)
    avoided_grams = fields.Integer(allow_none=True)
    credited_ug = fields.Integer(allow_none=True)
    credited_grams = fields.Integer(allow_none=True)
    recomputed_ug = fields.Integer(allow_none=True)
    rounding_ug = fields.Integer(allow_none=True)
    check = fields.String(allow_none=True)
    suppressed = fields.Boolean()


class VerificationReportSchema(_ReportHeadSchema):
    rule = fields.String()
    rows = fields.List(fields.Nested(VerificationRowSchema))


# ---------------------------------------------------------------- examples shown in /docs
# Every one is posted by tests/api/test_doc_examples.py and must be accepted, so a stale
# example fails a test. Event examples use the demo network's ids (carbon_credits/
# demo_network.py); the test moves EXAMPLE_DAY to its own "today", as events must be
# recent (BACKFILL_DAYS) and not in the future.

EXAMPLE_CITY = "shenzhen"
EXAMPLE_DAY = "2026-12-01"
"""The local date of the event examples."""
EXAMPLE_EFFECTIVE_FROM = "2099-01-01T00:00:00+08:00"
"""Factor versions must start in the future, after every existing one: far ahead, so the
example stays valid (the era ends at 2100)."""


def example(summary: str, value: Any) -> dict[str, Any]:
    """One named OpenAPI example object."""
    return {"summary": summary, "value": value}


EVENT_EXAMPLES: dict[str, dict[str, Any]] = {
    "metro": example("metro trip, entry and exit station", {
        "event_id": "trip-0001", "mode": "metro", "city": EXAMPLE_CITY,
        "entry_station_id": "luohu", "exit_station_id": "shaoniangong",
        "started_at": f"{EXAMPLE_DAY}T08:00:00+08:00",
        "ended_at": f"{EXAMPLE_DAY}T08:25:00+08:00"}),
    "bus": example("bus ride with tap-off (alight stop) and end time", {
        "event_id": "trip-0002", "mode": "bus", "city": EXAMPLE_CITY, "line_id": "bus-1",
        "board_stop_id": "b-luohu", "alight_stop_id": "b-gangxia",
        "started_at": f"{EXAMPLE_DAY}T12:10:00+08:00",
        "ended_at": f"{EXAMPLE_DAY}T12:40:00+08:00"}),
    "bikeshare": example("bike-share ride, distance from the operator's order record", {
        "event_id": "trip-0003", "mode": "bikeshare", "city": EXAMPLE_CITY,
        "distance_m": 2400, "started_at": f"{EXAMPLE_DAY}T17:30:00+08:00",
        "ended_at": f"{EXAMPLE_DAY}T17:45:00+08:00"}),
    "steps": example("the day's cumulative step count so far", {
        "event_id": "steps-0001", "mode": "steps", "city": EXAMPLE_CITY,
        "date": EXAMPLE_DAY, "steps": 8000}),
}
"""POST /v1/events: one per mode."""

BATCH_EXAMPLE = {"events": [
    {"event_id": "trip-0004", "mode": "metro", "city": EXAMPLE_CITY,
     "entry_station_id": "shaoniangong", "exit_station_id": "luohu",
     "started_at": f"{EXAMPLE_DAY}T19:00:00+08:00",
     "ended_at": f"{EXAMPLE_DAY}T19:25:00+08:00"},
    {"event_id": "steps-0002", "mode": "steps", "city": EXAMPLE_CITY,
     "date": EXAMPLE_DAY, "steps": 11500},
]}
"""POST /v1/events/batch: items as for POST /v1/events (a phone syncing after a day
offline)."""

REDEMPTION_EXAMPLE = {"redemption_id": "redeem-0001", "points": 50,
                      "description": "metro ride voucher"}

REVERSAL_EXAMPLE = {"reason": "fraud found later: the same card's ride was also claimed by "
                              "another account"}

REVIEW_EXAMPLES = {
    "approve": example("approve (credit it now)",
                       {"reason": "checked against the operator's tap records"}),
    "reject": example("reject (credit nothing)",
                      {"reason": "no matching tap at the entry station"}),
}
"""POST /v1/admin/reviews/{user_id}/{event_id}/{decision}: keyed by decision."""

FREEZE_EXAMPLES = {
    "freeze": example("freeze (hold their new events)",
                      {"reason": "one device posting for 40 accounts"}),
    "unfreeze": example("unfreeze", {"reason": "investigation closed: a family's phones"}),
}
"""POST /v1/admin/users/{user_id}/{action}: keyed by action."""


def _draft(mode: str) -> dict[str, Any] | None:
    """A mode's shipped Shenzhen factor set as admin input (the set each mode's
    ``check_factors`` accepts), or None if the mode ships none for the city."""
    try:
        shipped = METHODOLOGIES[mode].default_factors(EXAMPLE_CITY)
    except KeyError:
        return None
    return {"city": EXAMPLE_CITY, "mode": mode, "kind": shipped.kind,
            "factors": [f.to_dict() for f in shipped.factors.values()]}


def factor_version_examples() -> dict[str, dict[str, Any]]:
    """POST /v1/admin/factor-versions: one per mode, each with the factors its methodology
    reads (bus also ``default_trip_m``, bike-share its speed and length bounds, steps grams
    per step), as shipped for Shenzhen."""
    found = {}
    for mode in sorted(METHODOLOGIES):
        draft = _draft(mode)
        if draft is not None:
            found[mode] = example(
                f"{mode}: the shipped factors re-issued as a new version", {
                    **draft, "version": "sz-2099.1",
                    "effective_from": EXAMPLE_EFFECTIVE_FROM,
                    "reason": "annual review: factors confirmed against the 2021 "
                              "methodology"})
    return found


def preview_examples() -> dict[str, dict[str, Any]]:
    """POST /v1/admin/factor-versions/preview: a draft per mode over a past month."""
    found = {}
    for mode in sorted(METHODOLOGIES):
        draft = _draft(mode)
        if draft is not None:
            found[mode] = example(f"{mode}: the shipped factors over November 2026",
                                  {**draft, "from": "2026-11-01", "to": "2026-11-30"})
    return found
