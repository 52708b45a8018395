"""The carbon account's pure parts: streaks, periods, the screen from aggregate rows."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.account import history
from carbon_credits.account.history import Row, Sums

TODAY = date(2026, 12, 7)  # a Monday


def _days(*ago: int) -> set[date]:
    return {TODAY - timedelta(days=n) for n in ago}


def test_a_streak_ends_today_or_yesterday() -> None:
    assert history.streak(_days(0, 1, 2, 4), TODAY).days == 3
    found = history.streak(_days(1, 2, 4), TODAY)
    assert (found.days, found.today_counted, found.last_day) == (2, False,
                                                                TODAY - timedelta(days=1))
    assert history.streak(_days(2, 3), TODAY).days == 0


@given(st.sets(st.integers(min_value=0, max_value=60)))
def test_the_streak_is_the_run_of_green_days_back_from_today_or_yesterday(
        ago: set[int]) -> None:
    green = {TODAY - timedelta(days=n) for n in ago}
    start = 0 if 0 in ago else 1
    expected = 0
    while start + expected in ago:
        expected += 1
    assert history.streak(green, TODAY).days == expected


def test_periods() -> None:
    assert history.week_of(date(2026, 12, 13)) == date(2026, 12, 7)
    assert history.months_back(date(2026, 2, 1), 3) == date(2025, 11, 1)
    assert history.window_start(TODAY) == TODAY - timedelta(weeks=11)


def test_the_screen_sums_month_rows_for_lifetime_and_day_rows_for_trends() -> None:
    months = [Row(date(2024, 1, 1), "metro", Sums(3, 3_000_000, 3, 24_000)),
              Row(date(2026, 12, 1), "steps", Sums(1, 100_000_000, 100, 5000))]
    days = [Row(TODAY, "steps", Sums(1, 100_000_000, 100, 5000))]
    screen = history.screen(TODAY, months, days, {TODAY})
    assert screen["lifetime"]["modes"]["metro"] == {"grams": 3, "points": 3, "events": 3,
                                                    "distance_m": 24_000}
    assert screen["lifetime"]["total"]["grams"] == 103
    assert screen["lifetime"]["total"]["distance_m"] == 24_000
    assert screen["lifetime"]["total"]["steps"] == 5000
    assert screen["trends"]["month"]["total"]["grams"][-1] == 100
    assert screen["trends"]["month"]["start"][0] == "2026-01-01"
    assert screen["trends"]["week"]["modes"]["steps"]["steps"][-1] == 5000
    assert screen["trends"]["week"]["total"]["distance_m"] == [0] * 12
    assert screen["streak"]["days"] == 1
