"""Schemas of the leaderboards and the leaderboard privacy choice."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

PERIODS = ("day", "week", "month", "all")
"""``leaderboards.periods.PERIODS`` (a test keeps them equal: schemas import no feature)."""
MAX_TOP = 100
"""``leaderboards.service.MAX_TOP``."""


class LeaderboardQuerySchema(Schema):
    period = fields.String(load_default="week", validate=validate.OneOf(PERIODS),
                           metadata={"description": "day, week (ISO, Monday first), month "
                                     "(all in the city's time) or all (all time)"})
    limit = fields.Integer(load_default=MAX_TOP, validate=validate.Range(min=1, max=MAX_TOP))
    district = fields.String(load_default=None, validate=validate.Length(min=1, max=64),
                             metadata={"description": "the district (scope `district`)"})


class LeaderboardRowSchema(Schema):
    rank = fields.Integer(required=True, metadata={"description": "1-based standing"})
    user_id = fields.String(allow_none=True, metadata={
        "description": "null for a user who opted out (LEADERBOARD_HIDDEN_AS=anonymous)"})
    grams = fields.Integer(required=True, metadata={"description": "credited grams CO2"})
    anonymous = fields.Boolean(required=True)
    me = fields.Boolean(required=True)


class LeaderboardMeSchema(Schema):
    rank = fields.Integer(required=True)
    grams = fields.Integer(required=True)


class MyPlaceSchema(Schema):
    city = fields.String(required=True)
    scope = fields.String(required=True)
    board = fields.String(required=True, metadata={
        "description": "city, district:<name>, team:<id> or friends"})
    period = fields.String(required=True)
    label = fields.String(required=True, metadata={
        "description": "the period: all, d2026-12-07, w2026-W50 or m2026-12"})
    size = fields.Integer(required=True, metadata={"description": "people on the board"})
    me = fields.Nested(LeaderboardMeSchema, allow_none=True, required=True)


class LeaderboardSchema(MyPlaceSchema):
    top = fields.List(fields.Nested(LeaderboardRowSchema), required=True)


class PrivacySchema(Schema):
    hidden = fields.Boolean(required=True, metadata={
        "description": "true: others do not see you on leaderboards"})
    hidden_as = fields.String(dump_only=True, metadata={
        "description": "how you then appear to others: anonymous or omitted"})
