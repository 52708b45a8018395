"""Leaderboard periods and keys (pure)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.leaderboards import keys
from carbon_credits.leaderboards.periods import kept_periods, period_of, periods_of
from carbon_credits.leaderboards.store import Credit, MemoryStore

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_an_event_counts_in_its_day_iso_week_month_and_all_time() -> None:
    labels = [p.label for p in periods_of(date(2026, 12, 31))]
    assert labels == ["d2026-12-31", "w2026-W53", "m2026-12", "all"]
    assert period_of("week", date(2027, 1, 1)).label == "w2026-W53"  # ISO year


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))
def test_a_period_holds_its_day(day: date) -> None:
    for period in periods_of(day)[:3]:
        assert period.first is not None and period.last is not None
        assert period.first <= day <= period.last


def test_boards_are_dropped_keep_days_after_their_period_ends_in_city_time() -> None:
    day = period_of("day", date(2026, 12, 7))
    assert day.expire_at(SHANGHAI, 40) == int(
        datetime(2027, 1, 17, tzinfo=SHANGHAI).timestamp())
    assert period_of("all", date(2026, 12, 7)).expire_at(SHANGHAI, 40) == 0


def test_kept_periods_are_every_board_that_may_still_exist() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=SHANGHAI)
    labels = {p.label for p in kept_periods(SHANGHAI, 40, now)}
    assert {"all", "d2026-12-07", "d2026-10-28", "w2026-W50", "m2026-10"} <= labels
    assert "d2026-10-27" not in labels and "m2026-09" not in labels


def test_keys_of_a_city_share_one_hash_tag_that_no_city_name_can_break() -> None:
    assert keys.board("shenzhen", "city", "all") == "lb:{shenzhen}:city:all"
    odd = keys.board("a}b{c", "city", "all")
    assert odd.count("{") == 1 and odd.count("}") == 1


def test_the_stand_in_never_revives_a_dropped_board_with_a_reversal() -> None:
    now = [1_000.0]
    store = MemoryStore(clock=lambda: now[0])
    store.credit("x", [Credit("u", 5, None, (("d1", 2_000),))])
    assert store.snapshot("x") == {"lb:{x}:city:d1": {"u": 5}}
    now[0] = 3_000.0
    store.credit("x", [Credit("u", -5, None, (("d1", 2_000),))])
    assert store.snapshot("x") == {}
