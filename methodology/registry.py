"""Mode name -> methodology module: the one place where modes are wired in."""

from __future__ import annotations

from collections.abc import Mapping

from methodology import bikeshare, bus, metro, steps
from methodology.base import Methodology

METHODOLOGIES: Mapping[str, Methodology] = {
    m.mode: m for m in (bus.METHOD, metro.METHOD, steps.METHOD, bikeshare.METHOD)
}


def get_methodology(mode: str) -> Methodology:
    """The methodology for a mode; KeyError for an unknown mode."""
    return METHODOLOGIES[mode]
