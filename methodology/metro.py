"""Metro: net reduction factor x shortest network distance between entry and exit."""

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

SHENZHEN_2021 = factor_set(
    "metro",
    "shenzhen",
    "sz-2021.1",
    "net",
    Factor(
        NET_FACTOR,
        Decimal("46.8"),
        "g CO2/person-km",
        "《深圳市低碳公共出行碳普惠方法学（试行）》 (Shenzhen, Dec 2021), net metro factor as "
        "reported at the launch of 低碳星球; one 2022 report gives 46.7",
    ),
)


class MetroMethodology:
    mode = "metro"
    title = "Metro trip: net factor x shortest network distance entry -> exit"
    network_mode: str | None = "metro"
    cumulative = False
    inputs: tuple[InputField, ...] = (
        InputField("entry_station_id", "id", description="GTFS stop_id or parent station id"),
        InputField("exit_station_id", "id", description="GTFS stop_id or parent station id"),
        started_at(),
        ended_at(required=True),
    )

    def check_factors(self, factors: FactorSet) -> None:
        factors.net_g_per_pkm()

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
        entry, exit_ = event["entry_station_id"], event["exit_station_id"]
        for fld, stop in (("entry_station_id", entry), ("exit_station_id", exit_)):
            try:
                network.station_key(stop)
            except UnknownStation:
                raise MethodologyInputError(
                    fld, f"unknown metro station {stop!r} in {network.city} network"
                ) from None
        try:
            distance = network.metro_distance_m(entry, exit_)
        except UnknownStation as exc:
            fld = "entry_station_id" if exc.args[0] == entry else "exit_station_id"
            raise MethodologyInputError(
                fld, f"{exc.args[0]!r} is not a metro station reachable in {network.city}"
            ) from None
        return distance_result(
            factors=factors,
            distance_m=distance,
            distance_source="network_shortest_path",
            inputs={"entry_station_id": entry, "exit_station_id": exit_},
            network=network,
        )

    def daily_cap_ug(self, factors: FactorSet) -> int | None:
        return None


METHOD = MetroMethodology()
