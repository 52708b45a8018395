"""Bike-share: net factor x the operator's recorded ride distance, bounded by plausibility.

The fourth mode, added as this module plus a factor set and one line in the registry, with
no change to the ingest path. Bike-share rides have no network: the distance comes from the
operator's order record (the client relays it), so it is bounded twice: by the ride's
duration at a maximum plausible speed, and by a maximum ride length.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from methodology.base import Quantification, QuantifyContext
from methodology.factors import NET_FACTOR, Factor, FactorSet, factor_set
from methodology.inputs import InputField, ended_at, started_at
from methodology.trips import distance_result, trip_started_at

MAX_SPEED_KMH = "max_speed_kmh"
MAX_TRIP_M = "max_trip_m"

SHENZHEN_DEFAULT = factor_set(
    "bikeshare",
    "shenzhen",
    "wuhan-2025.1",
    "net",
    Factor(
        NET_FACTOR,
        Decimal("93.3"),
        "g CO2/person-km",
        "Wuhan 碳碳星球, 93.3 g per shared-bike km (2025 reporting). Shenzhen published its "
        "own bike-share methodology in Dec 2022; its factor is not in this project's sources, "
        "so Wuhan's published value stands in until an admin enters Shenzhen's as a new "
        "version",
    ),
    Factor(
        MAX_SPEED_KMH,
        Decimal("25"),
        "km/h",
        "operator policy: GB 17761-2018 caps e-bikes at 25 km/h; a pedal bike-share ride "
        "averaging more is implausible",
        policy=True,
    ),
    Factor(
        MAX_TRIP_M,
        Decimal("20000"),
        "m",
        "operator policy: no published source; longer rides are credited up to this length",
        policy=True,
    ),
)


class BikeshareMethodology:
    mode = "bikeshare"
    title = "Bike-share ride: net factor x recorded distance, bounded by duration and length"
    network_mode: str | None = None
    cumulative = False
    inputs: tuple[InputField, ...] = (
        InputField("distance_m", "int", minimum=0, maximum=200_000,
                   description="ride distance from the operator's order record"),
        started_at("ride start (unlock), ISO 8601 with offset"),
        ended_at(required=True),
    )

    def check_factors(self, factors: FactorSet) -> None:
        factors.net_g_per_pkm()
        factors.value(MAX_SPEED_KMH)
        factors.value(MAX_TRIP_M)

    def default_factors(self, city: str) -> FactorSet:
        if city != "shenzhen":
            raise KeyError(city)
        return SHENZHEN_DEFAULT

    def occurred_at(self, event: Mapping[str, Any], tz: tzinfo) -> datetime:
        return trip_started_at(event, tz)

    def quantify(
        self, event: Mapping[str, Any], factors: FactorSet, ctx: QuantifyContext
    ) -> Quantification:
        reported: int = event["distance_m"]
        seconds = max(0, int((event["ended_at"] - event["started_at"]).total_seconds()))
        # metres = km/h x seconds / 3.6, floored: the bound never rounds in the rider's favour
        by_speed = int(factors.value(MAX_SPEED_KMH) * seconds * 10 / 36)
        by_length = int(factors.value(MAX_TRIP_M))
        distance = min(reported, by_speed, by_length)
        if distance == reported:
            source = "operator_record"
        elif distance == by_speed:
            source = "operator_record_capped_at_max_speed"
        else:
            source = "operator_record_capped_at_max_trip"
        return distance_result(
            factors=factors,
            distance_m=distance,
            distance_source=source,
            inputs={"distance_m": reported, "duration_s": seconds},
            network=None,
            extra={"speed_limit_m": by_speed, "max_trip_m": by_length},
        )

    def daily_cap_ug(self, factors: FactorSet) -> int | None:
        return None


METHOD = BikeshareMethodology()
