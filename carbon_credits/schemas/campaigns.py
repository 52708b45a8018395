"""Schemas of campaigns (/v1/admin/campaigns, /v1/me/campaigns)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from carbon_credits.schemas import ID, IN_ERA_DATE
from methodology import METHODOLOGIES

POSITIVE = validate.Range(min=1, max=2**31 - 1)


class CampaignInSchema(Schema):
    id = fields.String(required=True, validate=ID, metadata={"example": "metro-nov"})
    city = fields.String(required=True, validate=ID, metadata={"example": "shenzhen"})
    mode = fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf(sorted(METHODOLOGIES)),
                         metadata={"description": "the mode whose events count; none: any"})
    starts_on = fields.Date(required=True, validate=IN_ERA_DATE,
                            metadata={"description": "first local day (city time)"})
    ends_on = fields.Date(required=True, validate=IN_ERA_DATE,
                          metadata={"description": "last local day, inclusive"})
    goal_events = fields.Integer(required=True, validate=validate.Range(min=1, max=100_000))
    bonus_points = fields.Integer(required=True, validate=POSITIVE)
    budget_points = fields.Integer(required=True, validate=validate.Range(min=1, max=2**62))
    title_zh = fields.String(required=True, validate=validate.Length(min=1, max=200))
    title_en = fields.String(required=True, validate=validate.Length(min=1, max=200))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class CampaignEndInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class CampaignQuerySchema(Schema):
    city = fields.String(load_default=None, validate=ID)


class CampaignSchema(Schema):
    id = fields.String()
    city = fields.String()
    mode = fields.String(allow_none=True)
    starts_on = fields.Date()
    ends_on = fields.Date()
    goal_events = fields.Integer()
    bonus_points = fields.Integer()
    budget_points = fields.Integer()
    spent_points = fields.Integer()
    title_zh = fields.String()
    title_en = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)


class CampaignReportSchema(CampaignSchema):
    completed_users = fields.Integer(metadata={"description": "users holding the bonus"})
    unfunded_users = fields.Integer(metadata={"description": "users who met the goal once "
                                                             "the budget was spent"})
    open_users = fields.Integer(metadata={"description": "users counted, goal not met"})


class CampaignListSchema(Schema):
    items = fields.List(fields.Nested(CampaignReportSchema))


class MyCampaignSchema(Schema):
    id = fields.String()
    title_zh = fields.String()
    title_en = fields.String()
    mode = fields.String(allow_none=True)
    starts_on = fields.Date()
    ends_on = fields.Date()
    goal_events = fields.Integer()
    bonus_points = fields.Integer()
    running = fields.Boolean()
    budget_left = fields.Boolean(metadata={"description": "whether the budget can still "
                                                          "pay a bonus"})
    events = fields.Integer(metadata={"description": "your events counted so far"})
    state = fields.String(metadata={"description": "open, completed (bonus held), or "
                                                   "unfunded (goal met, budget spent)"})
    bonus_points_held = fields.Integer()


class MyCampaignListSchema(Schema):
    items = fields.List(fields.Nested(MyCampaignSchema))
