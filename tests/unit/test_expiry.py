"""Points expiry decided without a database: expiry dates by policy, oldest-first spending,
refunds, reversals and debts (ledger/expiry.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carbon_credits.ledger.expiry import (
    MAX_DAYS,
    MAX_MONTHS,
    NEVER_KEY,
    Entry,
    Lots,
    Policy,
    add_months,
    expiry_amount,
    fold,
    policy_at,
)
from carbon_credits.schemas import expiry as expiry_schemas

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 1, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, 10 January 2026


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def test_days_months_and_year_end() -> None:
    earned = date(2026, 1, 31)
    assert Policy("days", 30).expires_on(earned) == date(2026, 3, 2)
    assert Policy("months", 1).expires_on(earned) == date(2026, 2, 28)  # the month's last day
    assert Policy("months", 13).expires_on(date(2027, 2, 28)) == date(2028, 3, 28)
    assert Policy("year_end").expires_on(date(2026, 1, 1)) == date(2028, 1, 1)
    assert Policy("year_end").expires_on(date(2026, 12, 31)) == date(2028, 1, 1)
    assert Policy("never").expires_on(earned) is None


def test_never_more_than_ten_years() -> None:
    """Shenzhen's rule: ten years at most, the longest policy included."""
    earned = date(2024, 2, 29)
    assert Policy("months", MAX_MONTHS).expires_on(earned) == date(2034, 2, 28)
    assert Policy("days", MAX_DAYS).expires_on(earned) <= add_months(earned, 120)
    with pytest.raises(ValueError, match="10 years"):
        Policy("days", MAX_DAYS + 1)
    with pytest.raises(ValueError, match="10 years"):
        Policy("months", MAX_MONTHS + 1)
    with pytest.raises(ValueError):
        Policy("weeks", 3)


def test_the_schema_knows_the_same_rules_and_limits() -> None:
    from carbon_credits.ledger import expiry
    assert expiry_schemas.RULES == expiry.RULES
    assert expiry_schemas.LIMITS == {"days": expiry.MAX_DAYS, "months": expiry.MAX_MONTHS}


def test_the_policy_in_force_when_points_were_earned_applies() -> None:
    history = [Policy("days", 10, at(0)), Policy("days", 100, at(5))]
    assert policy_at(history, at(-1)).rule == "never"
    assert policy_at(history, at(1)).amount == 10
    assert policy_at(history, at(6)).amount == 100
    lots = fold(Lots(), [Entry(1, "earn", 5, at(1)), Entry(2, "earn", 7, at(6))], history, TZ)
    assert lots.lots == {"2026-01-21": 5, "2026-04-26": 7}


HISTORY = [Policy("days", 10, at(-100))]


def earned(lots: Lots) -> dict[str, int]:
    return dict(lots.lots)


def test_spending_takes_the_oldest_points_first() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(1)),
                         Entry(3, "earn", 9, at(2)), Entry(4, "redeem", -8, at(3),
                                                           redemption_pk=1)], HISTORY, TZ)
    assert lots.lots == {"2026-01-21": 4, "2026-01-22": 9}
    assert lots.taken == {"1": [["2026-01-20", 5], ["2026-01-21", 3]]}


def test_an_expiry_takes_exactly_the_lots_due() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(1))], HISTORY, TZ)
    assert expiry_amount(lots, date(2026, 1, 19)) == 0
    assert expiry_amount(lots, date(2026, 1, 20)) == 5
    assert expiry_amount(lots, date(2026, 2, 1)) == 12
    problems: list[str] = []
    fold(lots, [Entry(3, "expiry", -5, datetime(2026, 1, 20, 1, tzinfo=UTC))], HISTORY, TZ,
         problems)
    assert problems == [] and lots.lots == {"2026-01-21": 7} and lots.expired_total == 5
    # Again on the same day: nothing is due any more, and an entry saying otherwise is named.
    assert expiry_amount(lots, date(2026, 1, 20)) == 0
    fold(lots, [Entry(4, "expiry", -7, datetime(2026, 1, 20, 2, tzinfo=UTC))], HISTORY, TZ,
         problems)
    assert problems and "0 were due" in problems[0]


def test_a_refund_goes_back_to_the_lots_it_came_from() -> None:
    """Cancelling never makes points live longer: back with their own dates."""
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(1)),
                         Entry(3, "redeem", -6, at(2), redemption_pk=9),
                         Entry(4, "earn", 1, at(3)),
                         Entry(5, "adjustment", 6, at(4), redemption_pk=9)], HISTORY, TZ)
    assert lots.lots == {"2026-01-20": 5, "2026-01-21": 7, "2026-01-23": 1}
    assert lots.taken == {}


def test_a_reversal_takes_its_own_lot_first_then_the_oldest_and_leaves_a_debt() -> None:
    entries = [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(1)),
               Entry(3, "redeem", -3, at(2), redemption_pk=1)]
    lots = fold(Lots(), entries, HISTORY, TZ)
    # The event of entry 2 is reversed: its own lot (7) first.
    fold(lots, [Entry(4, "reversal", -7, at(3), event_pk=2, earned_at=at(1))], HISTORY, TZ)
    assert lots.lots == {"2026-01-20": 2} and lots.debt == 0
    # The event of entry 1 is reversed: its 5 points, of which 3 were spent: a debt of 3.
    fold(lots, [Entry(5, "reversal", -5, at(4), event_pk=1, earned_at=at(0))], HISTORY, TZ)
    assert lots.lots == {} and lots.debt == 3 and lots.balance == -3
    # The next points repay the debt first.
    fold(lots, [Entry(6, "earn", 4, at(5))], HISTORY, TZ)
    assert lots.lots == {"2026-01-25": 1} and lots.debt == 0 and lots.balance == 1


def test_points_of_a_city_without_a_policy_never_expire() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0))], [], TZ)
    assert lots.lots == {NEVER_KEY: 5}
    assert expiry_amount(lots, date(2099, 1, 1)) == 0
    assert lots.next_due() is None


def test_an_unknown_crediting_kind_expires_like_earned_points() -> None:
    """A campaign's 'bonus' (another change) is treated as any credit."""
    lots = fold(Lots(), [Entry(1, "bonus", 50, at(0))], HISTORY, TZ)
    assert lots.lots == {"2026-01-20": 50}


def test_the_state_round_trips_as_json() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "redeem", -2, at(1),
                                                           redemption_pk=3)], HISTORY, TZ)
    assert Lots.from_json(lots.to_json()) == lots
    assert Lots.from_json(None) == Lots()


def test_upcoming_lists_the_points_due_by_a_day() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(20))], HISTORY, TZ)
    assert lots.upcoming(date(2026, 1, 25)) == [(date(2026, 1, 20), 5)]
    assert lots.next_due() == date(2026, 1, 20)


def test_settlement_and_claim_days_per_city_from_the_environment(tmp_path: Path) -> None:
    from carbon_credits.config import Config, ConfigError
    from carbon_credits.ledger import settlement

    def from_env(env: dict[str, str]) -> Config:
        return Config.from_env(tmp_path, env)

    config = from_env({"SETTLEMENT_DAYS": "beijing=2", "CLAIM_DAYS": "beijing=7"})
    assert settlement.rule_for(config, "beijing") == settlement.Rule(timedelta(days=2),
                                                                     timedelta(days=7))
    assert settlement.rule_for(config, "shenzhen") is None  # the default: no delay, no claim
    assert settlement.rule_for(from_env({}), "beijing") is None
    for bad in ("beijing", "beijing=0", "beijing=x", "beijing=400"):
        with pytest.raises(ConfigError, match="SETTLEMENT_DAYS"):
            from_env({"SETTLEMENT_DAYS": bad})


def test_a_hold_takes_the_oldest_points_out_of_the_lots_and_they_never_expire_while_held(
        ) -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(1)),
                         Entry(3, "hold", 0, at(2), redemption_pk=4, held=8)], HISTORY, TZ)
    assert lots.lots == {"2026-01-21": 4} and lots.held == {"4": 8}
    assert lots.reserved == 8 and lots.balance == 12  # held points are still the user's
    # Past both lots' dates: only what is not held is due.
    assert expiry_amount(lots, date(2026, 2, 1)) == 4
    problems: list[str] = []
    fold(lots, [Entry(4, "expiry", -4, datetime(2026, 2, 1, 1, tzinfo=UTC))], HISTORY, TZ,
         problems)
    assert problems == [] and lots.lots == {} and lots.reserved == 8 and lots.balance == 8


def test_fulfilling_a_hold_spends_the_reserved_points_and_no_lot() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(1)),
                         Entry(3, "hold", 0, at(2), redemption_pk=4, held=8)], HISTORY, TZ)
    problems: list[str] = []
    fold(lots, [Entry(4, "redeem", -8, at(3), redemption_pk=4)], HISTORY, TZ, problems)
    assert problems == [] and lots.lots == {"2026-01-21": 4}
    assert (lots.held, lots.taken, lots.balance) == ({}, {}, 4)
    # Spent once: the same redemption's points are not held any more, so a second
    # 'redeem' naming it takes live points as any redemption would, and a release of it
    # is named.
    fold(lots, [Entry(5, "release", 0, at(4), redemption_pk=4, held=8)], HISTORY, TZ,
         problems)
    assert problems and "which holds 0" in problems[0]


def test_a_release_gives_the_points_back_to_their_lots_and_a_passed_date_expires_next() -> None:
    """Holding never makes points live longer: released with their own dates."""
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)), Entry(2, "earn", 7, at(1)),
                         Entry(3, "hold", 0, at(2), redemption_pk=4, held=8)], HISTORY, TZ)
    fold(lots, [Entry(4, "release", 0, at(15), redemption_pk=4, held=8)], HISTORY, TZ)
    assert lots.lots == {"2026-01-20": 5, "2026-01-21": 7} and lots.held == {}
    assert lots.taken == {} and lots.balance == 12
    assert expiry_amount(lots, at(15).astimezone(TZ).date()) == 12


def test_a_reversal_after_a_hold_leaves_a_debt_not_touching_the_held_points() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 10, at(0)),
                         Entry(2, "hold", 0, at(1), redemption_pk=4, held=8),
                         Entry(3, "reversal", -10, at(2), event_pk=1, earned_at=at(0))],
                HISTORY, TZ)
    assert (lots.lots, lots.reserved, lots.debt, lots.balance) == ({}, 8, 8, 0)


def test_a_hold_beyond_the_live_points_is_named() -> None:
    problems: list[str] = []
    fold(Lots(), [Entry(1, "earn", 5, at(0)),
                  Entry(2, "hold", 0, at(1), redemption_pk=4, held=8)], HISTORY, TZ, problems)
    assert problems == ["hold of 8 points but only 5 were live"]


def test_the_state_with_holds_round_trips_as_json_and_old_states_have_none() -> None:
    lots = fold(Lots(), [Entry(1, "earn", 5, at(0)),
                         Entry(2, "hold", 0, at(1), redemption_pk=3, held=2)], HISTORY, TZ)
    assert Lots.from_json(lots.to_json()) == lots
    old = lots.to_json()
    del old["held"]
    assert Lots.from_json(old).held == {}
