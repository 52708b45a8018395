"""Request and response schemas; the OpenAPI document is generated from these.

Events, accounts, ledger and admin here; the partner reports' in ``reports``; the
examples shown in /docs in ``examples``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates_schema

from carbon_credits import messages
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
    result = fields.Dict(allow_none=True, metadata={
        "description": "the event's result as POST /v1/events answers it, with reason_text"})
    error = fields.Dict(allow_none=True)

    @post_dump
    def _describe_reason(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        result = data.get("result")
        if isinstance(result, dict) and "reason" in result:
            data["result"] = {**result, "reason_text": messages.reason_text(result["reason"])}
        return data


class BatchResultSchema(Schema):
    results = fields.List(fields.Nested(BatchItemSchema))


class RedemptionInSchema(Schema):
    """Either points spent against nothing (``points``), or a reward of the catalogue
    (``reward_id`` and ``quantity``): exactly one of ``points`` and ``reward_id``."""

    redemption_id = fields.String(required=True, validate=ID)
    points = fields.Integer(strict=True, validate=validate.Range(min=1, max=10**9),
                            metadata={"description": "points to spend (without reward_id)"})
    description = fields.String(load_default=None, validate=validate.Length(max=200))
    reward_id = fields.Integer(strict=True, validate=validate.Range(min=1, max=2**63 - 1),
                               metadata={"description": "a reward of GET /v1/rewards"})
    quantity = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000),
                              metadata={"description": "units of the reward (default 1)"})

    @validates_schema
    def _points_or_reward(self, data: dict[str, Any], **_: Any) -> None:
        if "points" not in data and "reward_id" not in data:
            raise ValidationError({"points": ["give points or reward_id"],
                                   "reward_id": ["give points or reward_id"]})
        if "points" in data and "reward_id" in data:
            raise ValidationError("give either points or reward_id, not both", "reward_id")
        if "reward_id" in data and data.get("description") is not None:
            raise ValidationError("a reward redemption takes no description", "description")
        if "quantity" in data and "reward_id" not in data:
            raise ValidationError("quantity goes with reward_id", "quantity")


class RedemptionVoucherSchema(Schema):
    code = fields.String()
    state = fields.String()
    issued_at = fields.DateTime(allow_none=True)
    used_at = fields.DateTime(allow_none=True)


class RedemptionSchema(Schema):
    redemption_id = fields.String()
    points = fields.Integer()
    description = fields.String(allow_none=True)
    balance_after = fields.Integer()
    created_at = fields.DateTime()
    reward_id = fields.Integer(metadata={"description": "reward redemptions only"})
    kind = fields.String()
    quantity = fields.Integer()
    state = fields.String(metadata={"description": "issued, used, pending, shipped, delivered, "
                                                   "donated or cancelled"})
    reserved = fields.Boolean(metadata={
        "description": "whether the points are held, not yet spent: a physical good not yet "
                       "shipped (counted against `available`, still in `balance`; shipping "
                       "spends them, cancelling releases them)"})
    vouchers = fields.List(fields.Nested(RedemptionVoucherSchema))
    cancellable_until = fields.DateTime(allow_none=True)
    certificate_hash = fields.String(allow_none=True)


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
    subject_ref = fields.String(allow_none=True, metadata={
        "description": "the user the record is about, by their opaque audit reference"})
    user_id = fields.String(allow_none=True, metadata={
        "description": "whom subject_ref leads to now: the user, or after an erasure "
                       "their pseudonym (erased-...); null for a reference leading to "
                       "nobody (a user erased before audit references existed)"})


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
    reason = fields.String(allow_none=True, metadata={
        "description": "why the event is held, rejected, capped or reversed (a stable "
                       "code), or null"})
    reason_text = fields.Method("_reason_text", metadata={
        "type": "string", "nullable": True,
        "description": "the reason's description in the request's language "
                       "(Accept-Language: zh-CN or en), or null"})
    occurred_at = fields.DateTime()
    local_date = fields.Date()
    created_at = fields.DateTime()
    methodology = fields.Nested(MethodologyRefSchema)
    explanation = fields.Dict()
    source = fields.String(metadata={
        "description": "who reported it: 'client' (the user's app) or a scenario provider's id"})
    same_trip = fields.String(allow_none=True, metadata={
        "description": "the event id of the other report of this trip, credited instead "
                       "(reason same_trip), or null"})
    confirmed_by = fields.String(allow_none=True, metadata={
        "description": "the scenario provider whose record reported or confirmed this "
                       "trip, or null"})
    reversal = fields.Dict(allow_none=True, metadata={
        "description": "who reversed the credit, when and why; null if never reversed"})

    def _reason_text(self, event: Any) -> str | None:
        reason = (event.get("reason") if isinstance(event, Mapping)
                  else getattr(event, "reason", None))
        return messages.reason_text(reason)


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


class ExpiringPointsSchema(Schema):
    expires_on = fields.Date(metadata={"description": "the local day these points expire"})
    last_valid_day = fields.Date(metadata={"description": "the last local day they may be "
                                                          "spent"})
    points = fields.Integer()


class AccountSchema(Schema):
    user_id = fields.String()
    balance = fields.Integer()
    lifetime_points = fields.Integer()
    lifetime_grams = fields.Integer()
    local_date = fields.Date()
    today = fields.Dict(keys=fields.String(), values=fields.Nested(DayUsageSchema))
    day = fields.Nested(AccountDaySchema)
    available = fields.Integer(metadata={
        "description": "what may be spent now: balance - pending - unclaimed - reserved"})
    reserved = fields.Integer(metadata={
        "description": "points held by redemptions not yet fulfilled (a physical good not "
                       "yet shipped): in the balance, not spendable, never expired while "
                       "held"})
    pending = fields.Integer(metadata={
        "description": "credits not yet settled (the city's SETTLEMENT_DAYS): shown, not "
                       "spendable"})
    unclaimed = fields.Integer(metadata={
        "description": "settled credits to claim (POST /v1/me/claims) within the city's "
                       "CLAIM_DAYS, or they lapse"})
    expiring_soon = fields.List(fields.Nested(ExpiringPointsSchema), metadata={
        "description": "points that expire within EXPIRY_NOTICE_DAYS (30) by the city's "
                       "expiry policy, per date, oldest first (spent first); empty where "
                       "points never expire"})


class ClaimSchema(Schema):
    claimed = fields.Integer(metadata={"description": "points claimed now"})
    lapsed = fields.Integer(metadata={"description": "points past the claim window, "
                                                     "lapsed now"})
    pending = fields.Integer(metadata={"description": "points not yet settled, to claim "
                                                      "later"})
    balance = fields.Integer()


class AccountQuerySchema(Schema):
    date = fields.Date(load_default=None, metadata={
        "description": "a local day within the backfill window (BACKFILL_DAYS), not in the "
                       "future, whose usage `day` shows; default today"})


class LedgerEntrySchema(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "earn, redeem, reversal, adjustment, "
                                                  "expiry, lapse, bonus (a campaign's bonus, "
                                                  "or its take-back when negative: never "
                                                  "grams), hold (points reserved for a "
                                                  "redemption: 0 points, the balance stays) "
                                                  "or release (a hold freed by its "
                                                  "cancellation: 0 points)"})
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
