"""Plausibility rules: cheap checks that make farming points unprofitable.

Each rule reads facts the ingest path gathers under the user's account lock and, when it
trips, names a reason code. What a tripped rule does is configurable per rule: ``credit``
(record the flag only), ``hold`` (keep the event for an admin's review; nothing credited
until approved) or ``reject`` (stored as rejected, never credited). The strongest outcome
of all tripped rules decides. Every threshold below is an operator policy, not a published
number; each says what it is based on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

Outcome = Literal["credit", "hold", "reject"]
OUTCOMES: tuple[Outcome, ...] = ("credit", "hold", "reject")
SEVERITY = {"credit": 0, "hold": 1, "reject": 2}

RULES: tuple[str, ...] = (
    "speed_out_of_bounds",
    "overlapping_trip",
    "too_many_trips",
    "steps_too_fast",
    "steps_over_daily_ceiling",
    "device_on_many_accounts",
    "user_frozen",
)


@dataclass(frozen=True)
class Policy:
    """Thresholds and outcomes; ``from_settings`` reads overrides like ``metro_max_kmh=100``."""

    metro_min_kmh: float = 5.0
    """A metro ride slower than walking pace over its network distance (policy)."""
    metro_max_kmh: float = 90.0
    """Above the top commercial speed of Shenzhen's fastest line's average (policy)."""
    bus_min_kmh: float = 2.0
    bus_max_kmh: float = 60.0
    """City buses rarely average more than 30 km/h; 60 leaves room for express lines."""
    max_trips_per_day: int = 16
    """Eight round trips a day is beyond any commute (policy)."""
    steps_max_per_minute: int = 220
    """Above a sustained running cadence (about 180 steps/min), between two posts (policy)."""
    steps_daily_ceiling: int = 60_000
    """About 40 km of walking; step-faking devices make 6,000-9,000 steps an hour (policy)."""
    max_accounts_per_device: int = 3
    """A family may share a phone; a farm shares one device across many accounts (policy)."""
    outcomes: Mapping[str, Outcome] = field(default_factory=lambda: {
        "speed_out_of_bounds": "hold",
        "overlapping_trip": "reject",
        "too_many_trips": "hold",
        "steps_too_fast": "hold",
        "steps_over_daily_ceiling": "hold",
        "device_on_many_accounts": "hold",
        "user_frozen": "hold",
    })

    @classmethod
    def from_settings(cls, limits: Mapping[str, str], outcomes: Mapping[str, str]) -> Policy:
        policy = cls()
        values: dict[str, float | int] = {}
        for name, raw in limits.items():
            current = getattr(policy, name, None)
            if name == "outcomes" or not isinstance(current, int | float):
                raise ValueError(f"unknown plausibility limit {name!r}")
            values[name] = type(current)(raw)
        chosen = dict(policy.outcomes)
        for rule, outcome in outcomes.items():
            if rule not in RULES or outcome not in OUTCOMES:
                raise ValueError(f"expected rule=credit|hold|reject, got {rule}={outcome}")
            chosen[rule] = outcome
        return replace(policy, outcomes=chosen, **values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Facts:
    """What the rules look at for one event (None: not applicable to this mode)."""

    mode: str
    distance_m: int | None = None
    duration_s: int | None = None
    overlapping_event_ids: tuple[str, ...] = ()
    trips_today: int = 0
    """Trips already recorded for the user that local day, not counting this one."""
    steps: int | None = None
    steps_increase: int = 0
    minutes_since_last_post: float | None = None
    day_closed: bool = False
    """Whether the count's local day was already over when it arrived: a phone syncing
    yesterday's count late. Steps gained then say nothing about walking speed."""
    accounts_on_device: int = 0
    user_frozen: bool = False


@dataclass(frozen=True)
class Hit:
    code: str
    outcome: Outcome
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    hits: tuple[Hit, ...]

    @property
    def reason(self) -> str | None:
        """The code of the first rule with the deciding outcome."""
        for hit in self.hits:
            if hit.outcome == self.outcome and self.outcome != "credit":
                return hit.code
        return None


def judge(policy: Policy, facts: Facts) -> Verdict:
    hits = [Hit(code, policy.outcomes[code], detail) for code, detail in _tripped(policy, facts)]
    outcome: Outcome = max((h.outcome for h in hits), key=SEVERITY.__getitem__,
                           default="credit")
    return Verdict(outcome, tuple(hits))


def _tripped(p: Policy, f: Facts) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    bounds = {"metro": (p.metro_min_kmh, p.metro_max_kmh), "bus": (p.bus_min_kmh, p.bus_max_kmh)}
    if f.mode in bounds and f.distance_m and f.duration_s is not None:
        low, high = bounds[f.mode]
        kmh = f.distance_m / 1000 / (f.duration_s / 3600) if f.duration_s > 0 else float("inf")
        if not low <= kmh <= high:
            found.append(("speed_out_of_bounds",
                          f"{kmh:.1f} km/h over {f.distance_m} m, bounds {low}-{high} km/h"))
    if f.overlapping_event_ids:
        found.append(("overlapping_trip",
                      "overlaps trip(s) " + ", ".join(f.overlapping_event_ids[:5])))
    if f.mode != "steps" and f.trips_today + 1 > p.max_trips_per_day:
        found.append(("too_many_trips", f"trip {f.trips_today + 1} today, limit "
                                        f"{p.max_trips_per_day}"))
    if f.steps is not None:
        if f.steps > p.steps_daily_ceiling:
            found.append(("steps_over_daily_ceiling",
                          f"{f.steps} steps, ceiling {p.steps_daily_ceiling}"))
        # On a closed day the time between arrivals is when the phone synced, not when
        # its owner walked: 3,000 more steps for yesterday a minute after the last post
        # is an ordinary late sync. Only the daily ceiling (and the cap) judge it.
        if (f.steps_increase > 0 and f.minutes_since_last_post is not None
                and not f.day_closed):
            rate = f.steps_increase / max(f.minutes_since_last_post, 1 / 60)
            if rate > p.steps_max_per_minute:
                found.append(("steps_too_fast",
                              f"{f.steps_increase} steps in {f.minutes_since_last_post:.1f} "
                              f"min = {rate:.0f}/min, limit {p.steps_max_per_minute}/min"))
    if f.accounts_on_device > p.max_accounts_per_device:
        found.append(("device_on_many_accounts",
                      f"device used by {f.accounts_on_device} accounts, limit "
                      f"{p.max_accounts_per_device}"))
    if f.user_frozen:
        found.append(("user_frozen", "the account is frozen by an admin"))
    return found
