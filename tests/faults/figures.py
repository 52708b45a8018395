"""Figures the reliability suites measure, printed at the end of the pytest run.

Each suite records what it did (requests sent, faults injected, 5xx seen, credits lost or
duplicated) under a name; the suite's conftest prints them in pytest's terminal summary so
that a CI log shows them and RELIABILITY.md can quote the last run.
"""

from __future__ import annotations

import json
from typing import Any

FIGURES: dict[str, dict[str, Any]] = {}


def record(name: str, **figures: Any) -> None:
    FIGURES[name] = figures


def summary_lines(prefix: str) -> list[str]:
    return [f"{name}: {json.dumps(figures, sort_keys=True, default=str)}"
            for name, figures in sorted(FIGURES.items()) if name.startswith(prefix)]
