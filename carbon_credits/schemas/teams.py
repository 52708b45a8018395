"""Schemas of teams, team reports and friend links."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from carbon_credits.schemas import ID, IN_ERA_DATE

KINDS = ("company", "school", "organisation")
"""``teams.service.KINDS`` (a test keeps them equal: schemas import no feature)."""


class TeamCreateSchema(Schema):
    city = fields.String(required=True, validate=ID)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class TeamSchema(Schema):
    id = fields.Integer(required=True)
    city = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    invite_code = fields.String(required=True, metadata={
        "description": "what members join with (POST /v1/me/teams)"})
    created_at = fields.DateTime(required=True)


class TeamQuerySchema(Schema):
    city = fields.String(load_default=None, validate=ID)


class JoinSchema(Schema):
    invite_code = fields.String(required=True, validate=validate.Length(min=4, max=32))


class MembershipSchema(Schema):
    team_id = fields.Integer(required=True)
    city = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    joined_at = fields.DateTime(required=True)


class TeamReportQuerySchema(Schema):
    from_ = fields.Date(required=True, data_key="from", validate=IN_ERA_DATE,
                        metadata={"example": "2026-11-01"})
    to = fields.Date(required=True, validate=IN_ERA_DATE, metadata={"example": "2026-11-30"})


class TeamFiguresSchema(Schema):
    grams = fields.Integer(allow_none=True)
    participants = fields.Integer(allow_none=True, metadata={
        "description": "distinct members credited"})
    suppressed = fields.Boolean(required=True, metadata={
        "description": "fewer than k participants (REPORT_MIN_PARTICIPANTS): blanked"})


class TeamModeFiguresSchema(TeamFiguresSchema):
    mode = fields.String(required=True)


class TeamReportSchema(Schema):
    team = fields.Dict(required=True)
    from_ = fields.Date(data_key="from", attribute="from")
    to = fields.Date()
    by_mode = fields.List(fields.Nested(TeamModeFiguresSchema))
    total = fields.Nested(TeamFiguresSchema)
    privacy = fields.Dict()


class FriendRequestSchema(Schema):
    user_id = fields.String(required=True, validate=validate.Length(min=1, max=128))


class FriendSchema(Schema):
    user_id = fields.String(required=True)
    state = fields.String(required=True, metadata={
        "description": "requested (you asked), invited (they asked you) or accepted"})
    since = fields.DateTime(required=True)
