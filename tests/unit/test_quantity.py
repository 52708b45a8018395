from __future__ import annotations

from decimal import Decimal

import pytest

from methodology.quantity import g_to_ug, ug_for_count, ug_for_distance, whole_grams


def test_metro_default_factor_over_8038_m_is_376178400_ug() -> None:
    ug = ug_for_distance(Decimal("46.8"), 8038)
    assert ug == 376_178_400
    assert whole_grams(ug) == 376


def test_bus_default_factor_over_one_km_is_26_9_g() -> None:
    assert ug_for_distance(Decimal("26.9"), 1000) == 26_900_000


def test_distance_quantity_is_floored_not_rounded() -> None:
    # 0.0000019 g/pkm x 1 m = 0.0019 ug: floors to 0, never rounds up to 1.
    assert ug_for_distance(Decimal("0.0000019"), 1) == 0
    # 1.0000009 g/pkm x 1 m = 1000.0009 ug -> 1000.
    assert ug_for_distance(Decimal("1.0000009"), 1) == 1000


def test_zero_distance_avoids_nothing() -> None:
    assert ug_for_distance(Decimal("46.8"), 0) == 0


def test_negative_distance_is_refused() -> None:
    with pytest.raises(ValueError):
        ug_for_distance(Decimal("46.8"), -1)


def test_step_count_quantity_is_exact() -> None:
    assert ug_for_count(Decimal("0.02"), 1) == 20_000
    assert ug_for_count(Decimal("0.02"), 10_000) == 200_000_000
    assert ug_for_count(Decimal("0.0627"), 3) == 188_100


def test_step_count_quantity_floors_below_one_microgram() -> None:
    assert ug_for_count(Decimal("0.0000015"), 1) == 1
    assert ug_for_count(Decimal("0.0000005"), 1) == 0


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        ug_for_count(Decimal("0.02"), -5)


def test_gram_amounts_convert_to_whole_micrograms() -> None:
    assert g_to_ug(Decimal("296")) == 296_000_000
    assert g_to_ug(Decimal("0.0000019")) == 1


def test_whole_grams_rounds_down() -> None:
    assert whole_grams(0) == 0
    assert whole_grams(999_999) == 0
    assert whole_grams(1_000_000) == 1
    assert whole_grams(376_999_999) == 376
