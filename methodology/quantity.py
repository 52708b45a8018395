"""Exact integer arithmetic from factors to micrograms of CO2.

Factors are decimals in grams; distances are integer metres; step counts are integers.
The product is computed exactly (``Fraction``) and only then floored to whole micrograms,
so with factors of at most six decimals per step or three per person-km nothing is rounded
at all. Flooring (never rounding up) keeps every credit conservative: a reduction is never
over-stated.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

UG_PER_G = 1_000_000
M_PER_KM = 1000


def ug_for_distance(g_per_pkm: Decimal, distance_m: int) -> int:
    """Micrograms avoided over ``distance_m`` metres at ``g_per_pkm`` g CO2 per person-km."""
    if distance_m < 0:
        raise ValueError("distance must not be negative")
    exact = Fraction(g_per_pkm) * UG_PER_G * distance_m / M_PER_KM
    return int(exact)  # int() of a non-negative Fraction floors


def ug_for_count(g_per_unit: Decimal, count: int) -> int:
    """Micrograms avoided by ``count`` units (e.g. steps) at ``g_per_unit`` g CO2 each."""
    if count < 0:
        raise ValueError("count must not be negative")
    return int(Fraction(g_per_unit) * UG_PER_G * count)


def g_to_ug(grams: Decimal) -> int:
    """A gram amount (e.g. a cap) as whole micrograms, floored."""
    return int(Fraction(grams) * UG_PER_G)


def whole_grams(ug: int) -> int:
    """Whole grams in a microgram amount, rounded down."""
    return ug // UG_PER_G
