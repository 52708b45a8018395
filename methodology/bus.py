"""Bus: net reduction factor x distance along the line (or the line's / city's default)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from methodology.base import MethodologyInputError, Quantification, QuantifyContext
from methodology.factors import NET_FACTOR, Factor, FactorSet, factor_set
from methodology.inputs import InputField, ended_at, started_at
from methodology.network import UnknownStation
from methodology.trips import distance_result, require_network, trip_started_at

DEFAULT_TRIP_M = "default_trip_m"

SHENZHEN_2021 = factor_set(
    "bus",
    "shenzhen",
    "sz-2021.1",
    "net",
    Factor(
        NET_FACTOR,
        Decimal("26.9"),
        "g CO2/person-km",
        "《深圳市低碳公共出行碳普惠方法学（试行）》 (Shenzhen, Dec 2021), net factor for the "
        "battery-electric bus fleet as reported at the launch of 低碳星球",
    ),
    Factor(
        DEFAULT_TRIP_M,
        Decimal("3000"),
        "m",
        "operator policy: no published source; a deliberately low city default for tap-on-only "
        "rides on lines without an average trip length, so unknown rides are not over-credited",
        policy=True,
    ),
)


class BusMethodology:
    mode = "bus"
    title = "Bus ride: net factor x distance along the line between boarding and alighting"
    network_mode: str | None = "bus"
    cumulative = False
    inputs: tuple[InputField, ...] = (
        InputField("line_id", "id", description="GTFS route_id"),
        InputField("board_stop_id", "id", description="GTFS stop_id where the ride began"),
        InputField("alight_stop_id", "id", required=False,
                   description="GTFS stop_id where the ride ended (tap-off), if known"),
        InputField("distance_m", "int", required=False, minimum=0, maximum=500_000,
                   description="client-measured distance; never trusted above the network's"),
        started_at(),
        ended_at(required=False),
    )

    def check_factors(self, factors: FactorSet) -> None:
        factors.net_g_per_pkm()
        factors.value(DEFAULT_TRIP_M)

    def default_factors(self, city: str) -> FactorSet:
        if city != "shenzhen":
            raise KeyError(city)
        return SHENZHEN_2021

    def occurred_at(self, event: Mapping[str, Any], tz: tzinfo) -> datetime:
        return trip_started_at(event, tz)

    def quantify(
        self, event: Mapping[str, Any], factors: FactorSet, ctx: QuantifyContext
    ) -> Quantification:
        network = require_network(ctx.network, self.mode)
        line_id: str = event["line_id"]
        board: str = event["board_stop_id"]
        alight: str | None = event.get("alight_stop_id")
        reported: int | None = event.get("distance_m")
        patterns = network.routes.get(line_id, ())
        if not patterns or patterns[0].mode != "bus":
            raise MethodologyInputError("line_id", f"unknown bus line {line_id!r}")
        inputs: dict[str, Any] = {"line_id": line_id, "board_stop_id": board,
                                  "alight_stop_id": alight, "distance_m": reported}
        try:
            if alight is not None:
                along = network.route_distance_m(line_id, board, alight)
                limit_source = "line_between_stops"
            else:
                along = network.route_farthest_from_m(line_id, board)
                limit_source = "line_farthest_from_board"
        except UnknownStation as exc:
            fld = "board_stop_id" if exc.args[0] == board else "alight_stop_id"
            raise MethodologyInputError(
                fld, f"stop {exc.args[0]!r} is not on bus line {line_id!r}"
            ) from None
        avg_trip_m = next((p.avg_trip_m for p in patterns if p.avg_trip_m is not None), None)

        extra: dict[str, Any] = {"line_length_m": network.route_length_m(line_id)}
        if alight is not None and reported is None:
            distance, source = along, "line_between_stops"
        elif reported is not None:
            # A client's distance is evidence of a shorter ride, never of a longer one.
            distance = min(reported, along)
            source = "reported" if reported <= along else f"reported_capped_at_{limit_source}"
            extra["network_limit_m"] = along
        elif avg_trip_m is not None:
            distance, source = min(avg_trip_m, along), "line_average_trip"
        else:
            default = int(factors.value(DEFAULT_TRIP_M))
            distance, source = min(default, along), "city_default_trip"
        return distance_result(
            factors=factors,
            distance_m=distance,
            distance_source=source,
            inputs=inputs,
            network=network,
            extra=extra,
        )

    def daily_cap_ug(self, factors: FactorSet) -> int | None:
        return None


METHOD = BusMethodology()
