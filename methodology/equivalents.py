"""Everyday equivalents of avoided CO2 (trees, car-km) for the carbon account screen.

Each equivalent divides grams avoided by one cited factor, in a versioned set like the
methodology's factor sets. These are illustrations for users, not quantification: nothing
credited depends on them. Where no published source gives a value for Chinese conditions,
none is invented: the factors below are the United States EPA's, and say so.

Sources (read December 2026):
- US EPA, *Greenhouse Gas Equivalencies Calculator — Calculations and References*:
  one urban tree seedling grown for 10 years sequesters 0.060 metric ton CO2.
- US EPA, *Tailpipe Greenhouse Gas Emissions from a Typical Passenger Vehicle*,
  EPA-420-F-23-014 (June 2023): the average passenger vehicle emits about 400 grams of CO2
  per mile. Converted here at 1 mile = 1.609344 km (exact, by definition of the mile):
  400 / 1.609344 = 248.55 g CO2/km, rounded to 0.01 g.

Not given, for want of a source found: a Chinese passenger-car g CO2/km, and the green
energy a tree of Ant Forest (蚂蚁森林) needs (widely repeated, but no primary page was at
hand to cite).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from methodology.factors import Factor

VERSION = "equiv-2023.1"
"""The version of the set below: a changed or added factor is a new version."""

TREE_SEEDLING_10Y = Factor(
    "tree_seedling_10y_g",
    Decimal("60000"),
    "g CO2 per urban tree seedling grown for 10 years",
    "US EPA, Greenhouse Gas Equivalencies Calculator, Calculations and References: "
    "0.060 metric ton CO2 per urban tree planted (seedling grown for 10 years)",
)
CAR_KM = Factor(
    "passenger_car_g_per_km",
    Decimal("248.55"),
    "g CO2 per vehicle-km",
    "US EPA, Tailpipe Greenhouse Gas Emissions from a Typical Passenger Vehicle, "
    "EPA-420-F-23-014 (June 2023): about 400 g CO2 per mile; / 1.609344 km per mile",
)


@dataclass(frozen=True)
class Equivalent:
    """What ``grams`` of avoided CO2 amount to in one everyday unit."""

    name: str
    unit: str
    factor: Factor

    def of(self, grams: int) -> Decimal:
        """grams / factor, to one decimal place, rounded down (never overstated)."""
        return (Decimal(grams) / self.factor.value).quantize(Decimal("0.1"),
                                                              rounding=ROUND_DOWN)


EQUIVALENTS: tuple[Equivalent, ...] = (
    Equivalent("trees", "tree seedlings grown for 10 years", TREE_SEEDLING_10Y),
    Equivalent("car_km", "km not driven by a typical passenger car", CAR_KM),
)


def equivalents_of(grams: int) -> list[dict[str, Any]]:
    """Every equivalent of ``grams``, each with its factor, unit, source and set version."""
    return [{"name": e.name, "value": str(e.of(grams)), "unit": e.unit,
             "version": VERSION, "formula": f"{grams} g / {e.factor.value} "
                                            f"({e.factor.unit})",
             "factor": e.factor.to_dict()} for e in EQUIVALENTS]
