"""The badge rule language: a small JSON form, validated when an admin saves a badge and
evaluated, pure, against a user's credited history as of one credited event
(tests/unit/test_badge_rules.py).

A rule is one object with ``kind``, or a combination ``{"all": [rules]}`` /
``{"any": [rules]}`` (up to 8 deep, 20 parts each):

- ``{"kind": "first_trip", "mode": "metro"}``: the user's first credited event of a mode.
- ``{"kind": "distance", "km": 100}``: lifetime distance of credited trips, all trip modes
  or ``"modes": [...]``, at least ``km``.
- ``{"kind": "streak", "days": 7}``: the run of green-travel days (a local day with a
  credited event) that holds the event's day is at least ``days`` long.
- ``{"kind": "modes_in_week", "count": 3}``: distinct modes credited in the event's ISO
  week, among all modes or ``"modes": [...]``, at least ``count``.
- ``{"kind": "trips", "count": 20, "period": "month", "mode": "metro"}``: credited events
  of a mode (or of any mode, without ``mode``) in the event's ``day``, ``week``, ``month``
  or over ``all`` time, at least ``count``.

Every rule only grows with credited events, so evaluating it when an event is credited
finds the event that earned it; a reversal of that event revokes the award (``awards``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from methodology import METHODOLOGIES

KINDS = ("first_trip", "distance", "streak", "modes_in_week", "trips")
PERIODS = ("day", "week", "month", "all")
MAX_DEPTH = 8
MAX_PARTS = 20
MAX_COUNT = 100_000


class RuleError(ValueError):
    """A rule that does not parse: ``path`` says where (e.g. ``rule.all[1].days``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


@dataclass
class Facts:
    """A user's credited history as of one credited event: per mode, credited events
    (``events``) and activity (metres or steps) over the event's day, ISO week, month and
    all time, and the length of the green-day run holding the event's day."""

    day: dict[str, int] = field(default_factory=dict)
    week: dict[str, int] = field(default_factory=dict)
    month: dict[str, int] = field(default_factory=dict)
    all: dict[str, int] = field(default_factory=dict)
    distance_m: dict[str, int] = field(default_factory=dict)
    """Lifetime activity of each trip mode (metres)."""
    streak_days: int = 0

    def period(self, name: str) -> Mapping[str, int]:
        return {"day": self.day, "week": self.week, "month": self.month,
                "all": self.all}[name]


def _trip_modes() -> list[str]:
    return [m for m, method in METHODOLOGIES.items() if not method.cumulative]


def validate(rule: Any, path: str = "rule", depth: int = 0) -> dict[str, Any]:
    """``rule`` if it is a rule, else a ``RuleError`` naming where it is not."""
    if not isinstance(rule, dict):
        raise RuleError(path, "must be an object")
    if depth > MAX_DEPTH:
        raise RuleError(path, f"nested more than {MAX_DEPTH} deep")
    for combinator in ("all", "any"):
        if combinator in rule:
            parts = rule[combinator]
            if set(rule) != {combinator}:
                raise RuleError(path, f"{combinator!r} takes no other keys")
            if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PARTS:
                raise RuleError(f"{path}.{combinator}", f"must be a list of 1 to "
                                f"{MAX_PARTS} rules")
            for n, part in enumerate(parts):
                validate(part, f"{path}.{combinator}[{n}]", depth + 1)
            return rule
    kind = rule.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise RuleError(f"{path}.kind", f"must be one of {', '.join(KINDS)}")
    allowed = {"kind"} | {
        "first_trip": {"mode"}, "distance": {"km", "modes"}, "streak": {"days"},
        "modes_in_week": {"count", "modes"}, "trips": {"count", "period", "mode"}}[kind]
    extra = sorted(set(rule) - allowed)
    if extra:
        raise RuleError(f"{path}.{extra[0]}", f"unknown key for a {kind} rule")
    if kind == "first_trip":
        _mode(rule.get("mode"), f"{path}.mode", required=True)
    elif kind == "distance":
        _count(rule.get("km"), f"{path}.km")
        _modes(rule.get("modes"), f"{path}.modes", _trip_modes())
    elif kind == "streak":
        _count(rule.get("days"), f"{path}.days", most=3660)
    elif kind == "modes_in_week":
        _count(rule.get("count"), f"{path}.count", most=len(METHODOLOGIES))
        _modes(rule.get("modes"), f"{path}.modes", list(METHODOLOGIES))
    else:
        _count(rule.get("count"), f"{path}.count")
        if not isinstance(rule.get("period"), str) or rule["period"] not in PERIODS:
            raise RuleError(f"{path}.period", f"must be one of {', '.join(PERIODS)}")
        _mode(rule.get("mode"), f"{path}.mode", required=False)
    return rule


def _mode(value: Any, path: str, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or value not in METHODOLOGIES:
        raise RuleError(path, f"must be one of {', '.join(METHODOLOGIES)}")


def _modes(value: Any, path: str, known: list[str]) -> None:
    if value is None:
        return
    if (not isinstance(value, list) or not value
            or any(not isinstance(m, str) or m not in known for m in value)
            or len(set(value)) != len(value)):
        raise RuleError(path, f"must be a list of distinct modes among {', '.join(known)}")


def _count(value: Any, path: str, most: int = MAX_COUNT) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise RuleError(path, f"must be a whole number from 1 to {most}")


def holds(rule: Mapping[str, Any], facts: Facts) -> bool:
    """Whether ``rule`` (validated) holds for ``facts``."""
    if "all" in rule:
        return all(holds(part, facts) for part in rule["all"])
    if "any" in rule:
        return any(holds(part, facts) for part in rule["any"])
    kind = rule["kind"]
    if kind == "first_trip":
        return bool(facts.all.get(rule["mode"], 0) >= 1)
    if kind == "distance":
        modes = rule.get("modes") or _trip_modes()
        return bool(sum(facts.distance_m.get(m, 0) for m in modes) >= rule["km"] * 1000)
    if kind == "streak":
        return bool(facts.streak_days >= rule["days"])
    if kind == "modes_in_week":
        modes = rule.get("modes") or list(METHODOLOGIES)
        return bool(sum(1 for m in modes if facts.week.get(m, 0) > 0) >= rule["count"])
    counts = facts.period(rule["period"])
    mode = rule.get("mode")
    return bool((counts.get(mode, 0) if mode else sum(counts.values())) >= rule["count"])


def streak_reach(rule: Mapping[str, Any]) -> int:
    """How many days either side of an event the rule's streaks need read (0: none)."""
    if "all" in rule or "any" in rule:
        return max((streak_reach(p) for p in rule.get("all", rule.get("any", []))), default=0)
    return int(rule["days"]) if rule["kind"] == "streak" else 0
