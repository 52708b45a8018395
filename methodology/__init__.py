"""Pure quantification of avoided CO2 for low-carbon trips and steps.

No Flask, no database, no Redis: plain dataclasses and functions that an auditor can read.
Every number is traced to a named factor with a unit and a source (see ``factors``).
"""

from methodology.base import (
    Methodology,
    MethodologyInputError,
    Quantification,
    QuantifyContext,
)
from methodology.factors import Factor, FactorSet
from methodology.network import Line, Station, TransitNetwork
from methodology.registry import METHODOLOGIES, get_methodology

__all__ = [
    "METHODOLOGIES",
    "Factor",
    "FactorSet",
    "Line",
    "Methodology",
    "MethodologyInputError",
    "Quantification",
    "QuantifyContext",
    "Station",
    "TransitNetwork",
    "get_methodology",
]
