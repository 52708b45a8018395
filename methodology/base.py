"""The protocol every mode implements, and the values that cross it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Protocol

from methodology.factors import FactorSet
from methodology.inputs import InputField
from methodology.network import TransitNetwork


class MethodologyInputError(ValueError):
    """An event the methodology cannot quantify; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class QuantifyContext:
    """What a mode may know beyond the event itself."""

    network: TransitNetwork | None = None
    previous_quantity: int = 0
    """For cumulative modes (steps): the highest count already posted for the same day."""


@dataclass(frozen=True)
class Quantification:
    """Avoided CO2 for one event, exact in micrograms, with how it was found."""

    avoided_ug: int
    explanation: Mapping[str, Any] = field(default_factory=dict)
    quantity: int = 0
    """The mode's measured quantity: metres travelled, or the cumulative step count."""

    def __post_init__(self) -> None:
        if self.avoided_ug < 0:
            raise ValueError("avoided CO2 must not be negative")


class Methodology(Protocol):
    """A mode of low-carbon travel: validate a trip, then quantify it."""

    mode: str
    title: str
    network_mode: str | None
    """Which part of the transit network the mode reads ("metro", "bus") or None."""
    cumulative: bool
    """True when events post a running total per local day (steps)."""
    inputs: tuple[InputField, ...]
    """The event fields the mode reads, beyond event_id, mode and city."""

    def default_factors(self, city: str) -> FactorSet:
        """The sourced default factor set for a city."""
        ...

    def check_factors(self, factors: FactorSet) -> None:
        """Raise FactorError unless the set has every factor ``quantify`` reads."""
        ...

    def occurred_at(self, event: Mapping[str, Any], tz: tzinfo) -> datetime:
        """The instant that decides the factor version and the local day (aware)."""
        ...

    def quantify(
        self, event: Mapping[str, Any], factors: FactorSet, ctx: QuantifyContext
    ) -> Quantification:
        """Avoided CO2 for one validated event, or MethodologyInputError."""
        ...

    def daily_cap_ug(self, factors: FactorSet) -> int | None:
        """A per-user per-day cap the methodology itself sets, if any, in micrograms."""
        ...
