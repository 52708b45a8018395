"""Pieces shared by the distance-based modes (bus, metro, bike-share, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from methodology.base import MethodologyInputError, Quantification
from methodology.factors import FactorSet
from methodology.network import TransitNetwork
from methodology.quantity import ug_for_distance, whole_grams

ROUNDING = (
    "avoided CO2 = factor x distance, computed exactly and floored to whole micrograms; "
    "the event's grams are those micrograms floored to whole grams; points carry the "
    "sub-point remainder per account so no gram is lost over many events"
)


def trip_started_at(event: Mapping[str, Any], tz: tzinfo) -> datetime:
    """A trip counts at its start: that decides the factor version and the local day."""
    started: datetime = event["started_at"]
    return started


def require_network(network: TransitNetwork | None, mode: str) -> TransitNetwork:
    if network is None:
        raise MethodologyInputError("city", f"no {mode} network is loaded for this city")
    return network


def distance_result(
    *,
    factors: FactorSet,
    distance_m: int,
    distance_source: str,
    inputs: Mapping[str, Any],
    network: TransitNetwork | None,
    extra: Mapping[str, Any] | None = None,
) -> Quantification:
    """Quantify a trip of known distance and explain every step of it."""
    g_per_pkm: Decimal = factors.net_g_per_pkm()
    ug = ug_for_distance(g_per_pkm, distance_m)
    explanation: dict[str, Any] = {
        "inputs": dict(inputs),
        "distance_m": distance_m,
        "distance_source": distance_source,
        "network": None if network is None else {"city": network.city,
                                                 "version": network.version},
        "factor_kind": factors.kind,
        "factor_g_per_pkm": str(g_per_pkm),
        "factors": [f.to_dict() for f in factors.factors.values()],
        "formula": (
            f"{g_per_pkm} g CO2/person-km x {distance_m} m / 1000 = "
            f"{ug} ug = {whole_grams(ug)} g"
        ),
        "avoided_ug": ug,
        "rounding": ROUNDING,
    }
    if extra:
        explanation.update(extra)
    return Quantification(avoided_ug=ug, explanation=explanation, quantity=distance_m)
