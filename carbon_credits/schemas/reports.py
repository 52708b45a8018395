"""Partner report schemas: ranges, groupings, figures, the MRV export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from carbon_credits.schemas import ID, IN_ERA_DATE

REPORT_GROUPS = ("mode", "district", "methodology_version", "source")
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
        "description": "comma-separated, any of mode, district, methodology_version, "
                       "source (client, or the scenario provider that reported the events)"})


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
    source = fields.String(metadata={"description": "client, or a scenario provider's id"})


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


class PointsQuerySchema(ReportRangeQuerySchema):
    granularity = fields.String(load_default="day",
                                validate=validate.OneOf(["day", "week", "month"]),
                                metadata={"example": "month"})


class PointsPeriodSchema(Schema):
    period = fields.Date(metadata={"description": "first local day of the period"})
    earned = fields.Integer(metadata={"description": "points credited"})
    redeemed = fields.Integer(metadata={"description": "points spent on redemptions"})
    refunded = fields.Integer(metadata={"description": "points given back by cancelled "
                                                       "redemptions"})
    net_spent = fields.Integer(metadata={"description": "redeemed - refunded: what the city "
                                                        "platform cancels (注销)"})
    expired = fields.Integer(metadata={"description": "points expired by the city's policy"})
    lapsed = fields.Integer(metadata={"description": "points left unclaimed past the claim "
                                                     "window"})
    reversed = fields.Integer(metadata={"description": "points taken back by reversals"})
    entries = fields.Integer(metadata={"description": "ledger entries counted"})
    outstanding = fields.Integer(metadata={"description": "the city's balances at the "
                                                          "period's end (totals: at to)"})
    expiring = fields.Integer(metadata={"description": "live points whose expiry date is in "
                                                       "the period, as of the expiry job's "
                                                       "last run"})


class PointsTotalsSchema(PointsPeriodSchema):
    class Meta:
        exclude = ("period",)


class PointsReportSchema(Schema):
    city = fields.String()
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    granularity = fields.String()
    items = fields.List(fields.Nested(PointsPeriodSchema))
    totals = fields.Nested(PointsTotalsSchema)
