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


class TeamBoardQuerySchema(Schema):
    period = fields.String(load_default="week", validate=validate.OneOf(PERIODS),
                           metadata={"description": "day, week (ISO, Monday first), month "
                                     "(all in the city's time) or all (all time)",
                                     "example": "month"})
    limit = fields.Integer(load_default=MAX_TOP, validate=validate.Range(min=1, max=MAX_TOP),
                           metadata={"example": 10})


class TeamBoardRowSchema(Schema):
    rank = fields.Integer(required=True, metadata={
        "description": "1-based, among the teams shown"})
    team_id = fields.Integer(required=True)
    name = fields.String(allow_none=True)
    kind = fields.String(allow_none=True, metadata={
        "description": "company, school or organisation"})
    grams = fields.Integer(required=True, metadata={
        "description": "the members' credited grams CO2 over the period"})
    members = fields.Integer(required=True, metadata={
        "description": "members with credited grams in the period (at least min_members)"})
    mine = fields.Boolean(required=True, metadata={"description": "your team"})


class MyTeamPlaceSchema(Schema):
    team_id = fields.Integer(required=True)
    name = fields.String(allow_none=True)
    shown = fields.Boolean(required=True, metadata={
        "description": "false: fewer than min_members members with grams in the period "
                       "(or none), so the team is not on the board"})
    rank = fields.Integer(allow_none=True)
    grams = fields.Integer(allow_none=True)
    members = fields.Integer(allow_none=True)


class TeamBoardSchema(Schema):
    city = fields.String(required=True)
    scope = fields.String(required=True, metadata={"description": "teams"})
    period = fields.String(required=True)
    label = fields.String(required=True, metadata={
        "description": "the period: all, d2026-12-07, w2026-W50 or m2026-12"})
    min_members = fields.Integer(required=True, metadata={
        "description": "k: a team with fewer members with grams in the period is not shown "
                       "(REPORT_MIN_PARTICIPANTS, as in team and partner reports)"})
    size = fields.Integer(required=True, metadata={"description": "teams shown"})
    top = fields.List(fields.Nested(TeamBoardRowSchema), required=True)
    my_team = fields.Nested(MyTeamPlaceSchema, allow_none=True, required=True, metadata={
        "description": "your team in this city; null when you are in none"})
