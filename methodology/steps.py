"""Steps: grams per step on the day's increase in the cumulative count, capped per day."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any

from methodology.base import Quantification, QuantifyContext
from methodology.factors import Factor, FactorSet, factor_set
from methodology.inputs import InputField
from methodology.quantity import g_to_ug, ug_for_count, whole_grams

G_PER_STEP = "g_per_step"
DAILY_CAP_G = "daily_cap_g"

SHENZHEN_2021 = factor_set(
    "steps",
    "shenzhen",
    "sz-2021.1",
    "net",
    Factor(
        G_PER_STEP,
        Decimal("0.02"),
        "g CO2/step",
        "operator policy after Ant Forest (about 200 g green energy per 10,000 steps, CGTN "
        "2019) and Wuhan 碳碳星球 (0.02 points per step, 1 point = 1 g; 湖北日报 2022); no "
        "methodology publishes a stride length",
        policy=True,
    ),
    Factor(
        DAILY_CAP_G,
        Decimal("296"),
        "g CO2/day",
        "operator policy after the Ant Forest daily walking cap of 296 g reported by a user",
        policy=True,
    ),
)


class StepsMethodology:
    mode = "steps"
    title = "Daily steps: grams per step on the increase of the day's cumulative count"
    network_mode: str | None = None
    cumulative = True
    inputs: tuple[InputField, ...] = (
        InputField("date", "date", description="local date in the city's time zone"),
        InputField("steps", "int", minimum=0, maximum=1_000_000,
                   description="cumulative step count for that day so far"),
    )

    def check_factors(self, factors: FactorSet) -> None:
        factors.value(G_PER_STEP)

    def default_factors(self, city: str) -> FactorSet:
        if city != "shenzhen":
            raise KeyError(city)
        return SHENZHEN_2021

    def occurred_at(self, event: Mapping[str, Any], tz: tzinfo) -> datetime:
        # A day's count belongs to the start of that local day for versioning purposes.
        day: date = event["date"]
        return datetime.combine(day, time(0), tzinfo=tz)

    def quantify(
        self, event: Mapping[str, Any], factors: FactorSet, ctx: QuantifyContext
    ) -> Quantification:
        steps: int = event["steps"]
        previous = ctx.previous_quantity
        increase = max(0, steps - previous)  # a lower count never debits
        g_per_step = factors.value(G_PER_STEP)
        ug = ug_for_count(g_per_step, increase)
        explanation = {
            "inputs": {"date": event["date"].isoformat(), "steps": steps},
            "previous_steps": previous,
            "increase_steps": increase,
            "factor_kind": factors.kind,
            "factor_g_per_step": str(g_per_step),
            "factors": [f.to_dict() for f in factors.factors.values()],
            "formula": f"{g_per_step} g CO2/step x {increase} steps = {ug} ug = "
            f"{whole_grams(ug)} g",
            "avoided_ug": ug,
            "rounding": "exact product floored to whole micrograms; only the increase over "
            "the day's highest earlier count is credited",
        }
        return Quantification(avoided_ug=ug, explanation=explanation, quantity=steps)

    def daily_cap_ug(self, factors: FactorSet) -> int | None:
        cap = factors.optional(DAILY_CAP_G)
        return None if cap is None else g_to_ug(cap)


METHOD = StepsMethodology()
