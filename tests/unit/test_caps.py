"""Daily caps decided in memory (carbon_credits/ledger/caps.py): what fits under the mode's
and the day's cap, which cap applied and how the explanation says so, and the usage row an
event adds to. Pure: no database (the rows are plain values, the methodology a fake).

Written for the survivors of mutation testing (docs/MUTATION.md): the boundaries (a credit
that exactly reaches a cap is not capped), which cap is named, the explanation's keys, and
the usage counters, which the integration tests only ever saw at their first event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from carbon_credits.config import Config
from carbon_credits.ledger import caps
from carbon_credits.ledger.entries import UG_PER_POINT
from methodology import FactorSet, Methodology

G = 1_000_000
"""Micrograms in a gram (and in a point)."""
assert G == UG_PER_POINT


@dataclass
class Method:
    """The part of a methodology the caps read."""

    mode: str = "metro"
    cumulative: bool = False
    own_cap_ug: int | None = None

    def daily_cap_ug(self, factors: FactorSet) -> int | None:
        return self.own_cap_ug


@dataclass
class Row:
    """A usage row (``caps.Usage``) as plain values."""

    events: int = 0
    credited_ug: int = 0
    points: int = 0
    max_quantity: int = 0
    last_post_at: datetime | None = None
    live_events: int = 0
    live_ug: int = 0
    live_points: int = 0
    activity: int = 0


@dataclass
class Account:
    carry_ug: int = 0


def decide(method: Method, usage: dict[str, Row], avoided_ug: int,
           caps_g: dict[str, int], carry_ug: int = 0) -> caps.Credit:
    config = Config(instance_path=Path("."),
                    daily_caps_g={k: Decimal(v) for k, v in caps_g.items()})
    return caps.decide(config, cast(Methodology, method), cast(FactorSet, None),
                       cast(Any, Account(carry_ug)), usage, avoided_ug)


def test_a_credit_that_exactly_reaches_the_day_cap_is_not_capped() -> None:
    credit = decide(Method(), {"bus": Row(credited_ug=600 * G)}, 400 * G, {"total": 1000})
    assert (credit.credited_ug, credit.status, credit.cap) == (400 * G, "credited", None)


def test_a_credit_that_exactly_reaches_the_mode_cap_is_not_capped() -> None:
    credit = decide(Method(own_cap_ug=500 * G), {"metro": Row(credited_ug=200 * G)}, 300 * G,
                    {})
    assert (credit.credited_ug, credit.status, credit.cap) == (300 * G, "credited", None)


def test_a_first_event_of_the_mode_has_used_nothing_of_its_mode_cap() -> None:
    """No usage row of the mode yet: the whole mode cap is left, to the microgram."""
    credit = decide(Method(own_cap_ug=500 * G), {"bus": Row(credited_ug=100 * G)}, 500 * G, {})
    assert (credit.credited_ug, credit.status) == (500 * G, "credited")


def test_the_mode_cap_credits_what_is_left_and_says_so() -> None:
    credit = decide(Method(own_cap_ug=500 * G), {"metro": Row(credited_ug=450 * G)}, 80 * G,
                    {"total": 5000})
    assert (credit.credited_ug, credit.points, credit.status, credit.reason) == (
        50 * G, 50, "capped", "daily_cap")
    assert credit.cap == {
        "cap": "mode", "cap_g": 500, "used_before_ug": 450 * G, "uncapped_ug": 80 * G,
        "rule": "credited = min(avoided, cap - already credited today), per local day in "
                "the city time zone"}


def test_the_tighter_of_the_methodologys_and_the_operators_mode_cap_applies() -> None:
    credit = decide(Method(own_cap_ug=500 * G), {}, 400 * G, {"metro": 300})
    assert credit.credited_ug == 300 * G and credit.cap is not None
    assert (credit.cap["cap"], credit.cap["cap_g"]) == ("mode", 300)


def test_the_day_cap_counts_every_mode_and_names_itself() -> None:
    usage = {"metro": Row(credited_ug=700 * G), "bus": Row(credited_ug=250 * G)}
    credit = decide(Method(), usage, 100 * G, {"total": 1000})
    assert (credit.credited_ug, credit.points, credit.status) == (50 * G, 50, "capped")
    assert credit.cap is not None
    assert (credit.cap["cap"], credit.cap["cap_g"], credit.cap["used_before_ug"],
            credit.cap["uncapped_ug"]) == ("total", 1000, 950 * G, 100 * G)


def test_a_day_already_past_its_cap_credits_nothing_not_less_than_nothing() -> None:
    """The cap may have been lowered since: what was credited stays, nothing more is."""
    credit = decide(Method(own_cap_ug=100 * G), {"metro": Row(credited_ug=300 * G)}, 10 * G, {})
    assert (credit.credited_ug, credit.points, credit.status) == (0, 0, "capped")
    credit = decide(Method(), {"metro": Row(credited_ug=1200 * G)}, 10 * G, {"total": 1000})
    assert (credit.credited_ug, credit.points, credit.status) == (0, 0, "capped")


def test_points_take_the_carried_remainder() -> None:
    credit = decide(Method(), {}, G // 2, {}, carry_ug=G // 2)
    assert (credit.credited_ug, credit.points) == (G // 2, 1)


def test_the_explanation_gets_the_credit_and_the_points_rule() -> None:
    credit = decide(Method(own_cap_ug=G), {}, 2 * G, {})
    explained = caps.explain({"avoided_ug": 2 * G}, credit)
    assert explained == {"avoided_ug": 2 * G, "credited_ug": G, "cap_applied": credit.cap,
                         "points_rule": caps.POINTS_RULE}


def test_each_event_adds_to_its_days_usage_row() -> None:
    row = Row(events=2, credited_ug=5 * G, points=5)
    caps.count_usage(row, cast(Methodology, Method()), caps.Credit(3 * G, 3, "credited", None,
                                                                   None), 0, datetime.now(UTC),
                     2400)
    assert (row.events, row.credited_ug, row.points) == (3, 8 * G, 8)
    assert (row.max_quantity, row.last_post_at) == (0, None)  # not a cumulative mode
    assert (row.live_events, row.live_ug, row.live_points, row.activity) == (1, 3 * G, 3, 2400)


def test_a_credit_capped_to_nothing_uses_the_cap_but_is_no_green_day() -> None:
    """The caps' counters count every credit; the account's (live) only those with grams,
    the events an earn entry is written for."""
    row = Row()
    method = cast(Methodology, Method())
    caps.count_usage(row, method, caps.Credit(0, 0, "capped", "daily_cap", None), 0,
                     datetime.now(UTC), 1800)
    assert (row.events, row.credited_ug) == (1, 0)
    assert (row.live_events, row.live_ug, row.live_points, row.activity) == (0, 0, 0, 0)
    caps.count_usage(row, method, caps.Credit(G // 2, 0, "capped", "daily_cap", None), 0,
                     datetime.now(UTC), 900)
    assert (row.events, row.live_events, row.live_ug, row.activity) == (2, 1, G // 2, 900)


def test_a_cumulative_modes_row_keeps_its_highest_count_and_last_post() -> None:
    steps = cast(Methodology, Method(mode="steps", cumulative=True))
    row = Row(events=1, max_quantity=8000)
    first, second = datetime(2026, 12, 6, 9, tzinfo=UTC), datetime(2026, 12, 6, 10, tzinfo=UTC)
    caps.count_usage(row, steps, caps.Credit(0, 0, "credited", None, None), 6000, first, 0)
    assert (row.max_quantity, row.last_post_at) == (8000, first)
    caps.count_usage(row, steps, caps.Credit(G, 1, "credited", None, None), 9000, second,
                     1000)
    assert (row.events, row.max_quantity, row.last_post_at) == (3, 9000, second)


def decide_annual(usage: dict[str, Row], avoided_ug: int, caps_g: dict[str, int],
                  annual_g: int | None, year_used_ug: int) -> caps.Credit:
    config = Config(instance_path=Path("."),
                    daily_caps_g={k: Decimal(v) for k, v in caps_g.items()},
                    annual_cap_g=None if annual_g is None else Decimal(annual_g))
    return caps.decide(config, cast(Methodology, Method()), cast(FactorSet, None),
                       cast(Any, Account()), usage, avoided_ug, year_used_ug)


def test_the_annual_cap_credits_what_is_left_of_the_year_and_says_so() -> None:
    credit = decide_annual({}, 300 * G, {"total": 5000}, 10_000, 9_800 * G)
    assert (credit.credited_ug, credit.points, credit.status, credit.reason) == (
        200 * G, 200, "capped", "annual_cap")
    assert credit.cap == {"cap": "annual", "cap_g": 10_000, "used_before_ug": 9_800 * G,
                          "uncapped_ug": 300 * G, "rule": caps.ANNUAL_CAP_RULE}


def test_a_credit_that_exactly_reaches_the_annual_cap_is_not_capped() -> None:
    credit = decide_annual({}, 200 * G, {}, 10_000, 9_800 * G)
    assert (credit.credited_ug, credit.status) == (200 * G, "credited")


def test_the_annual_cap_applies_after_the_days_and_a_full_year_credits_nothing() -> None:
    """The day's cap first cuts 300 g to 100 g; the year has 50 g left: 50 g, annual named."""
    credit = decide_annual({"bus": Row(credited_ug=900 * G)}, 300 * G, {"total": 1000},
                           1_000, 950 * G)
    assert credit.credited_ug == 50 * G and credit.cap is not None
    assert credit.cap["cap"] == "annual"
    full = decide_annual({}, 300 * G, {}, 1_000, 1_000 * G)
    assert (full.credited_ug, full.points, full.status) == (0, 0, "capped")


def test_no_annual_cap_by_default() -> None:
    credit = decide_annual({}, 300 * G, {}, None, 10**9 * G)
    assert (credit.credited_ug, credit.status) == (300 * G, "credited")


def test_a_year_row_counts_each_credit() -> None:
    @dataclass
    class Year:
        credited_ug: int = 0
        points: int = 0

    year = Year()
    caps.count_year(year, caps.Credit(5 * G, 5, "credited", None, None))
    caps.count_year(year, caps.Credit(2 * G, 2, "capped", "annual_cap", None))
    assert (year.credited_ug, year.points) == (7 * G, 7)
