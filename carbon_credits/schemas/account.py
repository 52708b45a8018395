"""Schemas of the carbon account screen (碳账户)."""

from __future__ import annotations

from marshmallow import Schema, fields


class AccountSumsSchema(Schema):
    grams = fields.Integer(metadata={"description": "grams CO2 avoided and credited"})
    points = fields.Integer()
    events = fields.Integer(metadata={"description": "credited events: trips, or a steps "
                                                     "day's credited posts"})
    distance_m = fields.Integer(metadata={"description": "metres travelled (trip modes; in "
                                                         "a total: all trip modes)"})
    steps = fields.Integer(metadata={"description": "steps credited (steps mode; in a "
                                                    "total: the steps mode's)"})


class ModeSumsSchema(Schema):
    total = fields.Nested(AccountSumsSchema)
    modes = fields.Dict(keys=fields.String(), values=fields.Nested(AccountSumsSchema))


def _series(description: str) -> fields.Raw:
    # Raw, documented as an array of integers: a trend is ~1,000 numbers, and marshmallow
    # serialising them one by one cost more than reading them (bench/account_bench.py).
    return fields.Raw(metadata={"type": "array", "items": {"type": "integer"},
                                "description": description})


class SeriesSchema(Schema):
    """One value per period of the trend, in its order."""

    grams = _series("grams CO2 avoided and credited")
    points = _series("points")
    events = _series("credited events")
    distance_m = _series("metres travelled (trip modes, and the total)")
    steps = _series("steps credited (steps mode, and the total)")


class TrendSchema(Schema):
    start = fields.Raw(metadata={"type": "array", "items": {"type": "string",
                                                             "format": "date"},
                                 "description": "first local day of each period (a day, "
                                                "an ISO week's Monday, a month's first day)"})
    total = fields.Nested(SeriesSchema)
    modes = fields.Dict(keys=fields.String(), values=fields.Nested(SeriesSchema))


class TrendsSchema(Schema):
    day = fields.Nested(TrendSchema, metadata={
        "description": "the last 30 local days, oldest first, today last"})
    week = fields.Nested(TrendSchema, metadata={
        "description": "the last 12 ISO weeks (Monday to Sunday), this one last"})
    month = fields.Nested(TrendSchema, metadata={
        "description": "the last 12 calendar months, this one last"})


class StandingSchema(Schema):
    rank = fields.Integer(metadata={"description": "1 for the first place"})
    grams = fields.Integer(metadata={"description": "credited avoided CO2 on the board"})
    of = fields.Integer(metadata={"description": "people on the board"})


class DistrictRankSchema(Schema):
    name = fields.String(metadata={
        "description": "your district: the one whose all-time board holds most of your "
                       "grams (where the trips that avoided most of your CO2 began; ties: "
                       "the first name)"})
    all = fields.Nested(StandingSchema, allow_none=True, metadata={
        "description": "all time on the district's board"})
    month = fields.Nested(StandingSchema, allow_none=True, metadata={
        "description": "this calendar month on the district's board; null when none yet"})


class RankSchema(Schema):
    city = fields.String()
    all = fields.Nested(StandingSchema, allow_none=True, metadata={
        "description": "all time; null when not on the board yet"})
    month = fields.Nested(StandingSchema, allow_none=True, metadata={
        "description": "this calendar month in the city's time"})
    district = fields.Nested(DistrictRankSchema, allow_none=True, metadata={
        "description": "the same in your district (GET /v1/leaderboards/district); null "
                       "when you are on no district board (e.g. steps only)"})


class StreakSchema(Schema):
    days = fields.Integer(metadata={"description": "green-travel days in a row (a day with "
                                                   "a credited event of any mode), ending "
                                                   "today, or yesterday while today has none "
                                                   "yet; 0 when neither"})
    first_day = fields.Date(allow_none=True)
    last_day = fields.Date(allow_none=True)
    today_counted = fields.Boolean(metadata={"description": "whether today is a green day "
                                                            "already"})


class EquivalentFactorSchema(Schema):
    name = fields.String()
    value = fields.String()
    unit = fields.String()
    source = fields.String()
    policy = fields.Boolean()


class EquivalentSchema(Schema):
    name = fields.String(metadata={"description": "trees, car_km"})
    value = fields.String(metadata={"description": "lifetime grams / factor, one decimal, "
                                                   "rounded down"})
    unit = fields.String()
    version = fields.String(metadata={"description": "version of the equivalents' factor set"})
    formula = fields.String()
    factor = fields.Nested(EquivalentFactorSchema)


class CarbonAccountSchema(Schema):
    user_id = fields.String()
    local_date = fields.Date(metadata={"description": "today, in the city's time zone"})
    balance = fields.Integer()
    reserved = fields.Integer(metadata={
        "description": "of the balance, points held for redemptions not yet fulfilled (a "
                       "physical good not yet shipped): not spendable; GET /v1/me/account "
                       "splits the balance into available, pending, unclaimed and reserved"})
    lifetime_points = fields.Integer()
    lifetime = fields.Nested(ModeSumsSchema, metadata={
        "description": "credited events since the first, per mode and in total"})
    trends = fields.Nested(TrendsSchema)
    equivalents = fields.List(fields.Nested(EquivalentSchema), metadata={
        "description": "lifetime grams in everyday terms, each from a cited factor"})
    streak = fields.Nested(StreakSchema)
    rank = fields.Nested(RankSchema, allow_none=True, metadata={
        "description": "standing on the city's and your district's leaderboards (GET "
                       "/v1/leaderboards/city, /district); null when the boards cannot be "
                       "read just now"})
