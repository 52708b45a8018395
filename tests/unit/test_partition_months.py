"""Month arithmetic of the events' partitions (storage/partitions.py): names and bounds."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.storage import partitions

months = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)).map(
    partitions.month_start)


@given(months, st.integers(min_value=-240, max_value=240))
def test_adding_months_and_taking_them_away_is_the_same_month(month: date, n: int) -> None:
    assert partitions.add_months(partitions.add_months(month, n), -n) == month


@given(months, st.integers(min_value=0, max_value=60))
def test_months_between_counts_both_ends_and_each_follows_the_last(month: date, n: int
                                                                   ) -> None:
    span = partitions.months_between(month, partitions.add_months(month, n))
    assert len(span) == n + 1 and span[0] == month
    assert all(partitions.next_month(a) == b for a, b in zip(span, span[1:], strict=False))


@given(months)
def test_a_months_name_is_pg_partmans_and_reads_back(month: date) -> None:
    name = partitions.partition_name(month)
    assert name == f"events_p{month.year:04d}_{month.month:02d}"
    assert partitions.parse_month(f"{month:%Y-%m}") == month


def test_december_is_followed_by_january() -> None:
    assert partitions.next_month(date(2026, 12, 1)) == date(2027, 1, 1)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-01", "2026-1", "2026-01-01", ""])
def test_a_month_that_is_not_yyyy_mm_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        partitions.parse_month(text)
