"""Factor sets: named numbers with a unit and a source, in one of two published forms.

A *net* set gives the reduction factor directly (Shenzhen publishes net g CO2 per
person-km). A *baseline* set gives the baseline mode mix (shares and g/pkm of private car,
taxi, ride-hailing) and the project mode's own factor; the net factor is then
sum(share_i * EF_i) - EF_project (the mean method, 均值法, of DB11/T 3043-2024 and CDM).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

FactorKind = Literal["net", "baseline"]

NET_FACTOR = "net_g_per_pkm"
"""Name of the net reduction factor in a net set, g CO2 per person-km."""

PROJECT_FACTOR = "project_g_per_pkm"
"""Name of the project mode's own emission factor in a baseline set, g CO2 per person-km."""

BASELINE_PREFIX = "baseline_"
"""Baseline set entries come in pairs: baseline_<mode>_g_per_pkm and baseline_<mode>_share."""


@dataclass(frozen=True)
class Factor:
    """One number of a methodology: its value, unit and where it comes from."""

    name: str
    value: Decimal
    unit: str
    source: str
    policy: bool = False
    """True when no published source gives the value and it is an operator's choice."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": str(self.value),
            "unit": self.unit,
            "source": self.source,
            "policy": self.policy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Factor:
        return cls(
            name=str(data["name"]),
            value=Decimal(str(data["value"])),
            unit=str(data["unit"]),
            source=str(data["source"]),
            policy=bool(data.get("policy", False)),
        )


class FactorError(ValueError):
    """A factor set that cannot be used (missing, negative or inconsistent factors)."""


@dataclass(frozen=True)
class FactorSet:
    """The factors one mode uses in one city from one version on."""

    mode: str
    city: str
    version: str
    kind: FactorKind
    factors: Mapping[str, Factor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("net", "baseline"):
            raise FactorError(f"unknown factor set kind {self.kind!r}")
        for f in self.factors.values():
            if not f.value.is_finite():  # NaN would raise InvalidOperation on comparison
                raise FactorError(f"factor {f.name} is not a finite number ({f.value})")
            if f.value < 0:
                raise FactorError(f"factor {f.name} is negative ({f.value})")
        if self.kind == "baseline":
            share_names = [
                name
                for name in self.factors
                if name.startswith(BASELINE_PREFIX) and name.endswith("_share")
            ]
            shares = [self.factors[name].value for name in share_names]
            if not shares or sum(shares) != 1:
                raise FactorError("baseline shares must be present and sum to exactly 1")
            for name in share_names:
                ef_name = name[: -len("_share")] + "_g_per_pkm"
                if ef_name not in self.factors:
                    raise FactorError(f"baseline share {name} needs {ef_name}")
            if PROJECT_FACTOR not in self.factors:
                raise FactorError(f"baseline set needs {PROJECT_FACTOR}")

    def value(self, name: str) -> Decimal:
        try:
            return self.factors[name].value
        except KeyError:
            raise FactorError(f"factor set {self.mode}/{self.version} has no {name}") from None

    def optional(self, name: str) -> Decimal | None:
        f = self.factors.get(name)
        return None if f is None else f.value

    def net_g_per_pkm(self) -> Decimal:
        """Net avoided g CO2 per person-km, whichever form the set is given in."""
        if self.kind == "net":
            return self.value(NET_FACTOR)
        baseline = Decimal(0)
        for name, f in self.factors.items():
            if name.startswith(BASELINE_PREFIX) and name.endswith("_share"):
                ef_name = name[: -len("_share")] + "_g_per_pkm"
                baseline += f.value * self.value(ef_name)
        net = baseline - self.value(PROJECT_FACTOR)
        # A project mode dirtier than its baseline avoids nothing; it never earns negative.
        return max(net, Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "city": self.city,
            "version": self.version,
            "kind": self.kind,
            "factors": [f.to_dict() for f in self.factors.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FactorSet:
        factors = [Factor.from_dict(f) for f in data["factors"]]
        kind = data["kind"]
        if kind not in ("net", "baseline"):
            raise FactorError(f"unknown factor set kind {kind!r}")
        return cls(
            mode=str(data["mode"]),
            city=str(data["city"]),
            version=str(data["version"]),
            kind=kind,
            factors={f.name: f for f in factors},
        )


def factor_set(
    mode: str, city: str, version: str, kind: FactorKind, *factors: Factor
) -> FactorSet:
    """Build a set from factors, keyed by name."""
    return FactorSet(mode=mode, city=city, version=version, kind=kind,
                     factors={f.name: f for f in factors})
