"""The decisions of a campaign, pure: which credited events count, when the goal is met,
when a reversal takes the bonus back. No database here (tests/unit/test_campaign_rules.py).

Policy (the issue leaves it to us; README "Campaigns"):

- **What counts.** An event counts toward a campaign when it was credited (grams > 0,
  also a partly capped one), in the campaign's city, of its mode (or any mode), with a
  local date (the city's time) in [starts_on, ends_on], while the campaign is running
  (not ended early), and every eligibility rule (``ELIGIBILITY``) admits it. Counted on
  ingest (or on the approval of a held event), never retroactively.
- **Caps.** The bonus is outside the daily and annual gram caps: those bound avoided CO2,
  and a bonus is not avoided CO2 (it has no grams, ug = 0). It is bounded instead by the
  campaign's budget (a conditional UPDATE: never beyond it, whatever the concurrency) and
  by one bonus held per user per campaign.
- **Budget spent.** A user who meets the goal when the budget cannot pay the bonus is
  marked ``unfunded``: no bonus, and none later.
- **Reversal.** Reversing a counted event un-counts it; if that brings a completed user
  below the goal, the bonus is taken back (a negative 'bonus' entry; the balance may go
  negative, as with any reversal) and returned to the budget. The user may complete again
  with later events, and is paid again then (still one bonus held at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Campaign:
    id: str
    city: str
    mode: str | None
    starts_on: date
    ends_on: date
    goal_events: int
    bonus_points: int
    ended_at: datetime | None = None


@dataclass(frozen=True)
class Candidate:
    """A credited event as the rules see it."""

    user_id: str
    city: str
    mode: str
    local_date: date
    credited_ug: int


@dataclass
class Progress:
    campaign_id: str
    user_id: str
    events: int = 0
    state: str = "open"
    bonus_points: int = 0


Eligibility = Callable[[Campaign, Candidate], bool]

ELIGIBILITY: list[Eligibility] = []
"""Extra eligibility rules beyond city, mode and window (all must admit an event). The
extension point for teams: when teams exist, a campaign's team restriction is one rule
appended here (reading the user's team from what the hook read), with no change to the
counting below."""


def counts(campaign: Campaign, event: Candidate, now: datetime) -> bool:
    """Whether a just-credited event counts toward the campaign."""
    return (event.credited_ug > 0 and event.city == campaign.city
            and (campaign.mode is None or event.mode == campaign.mode)
            and campaign.starts_on <= event.local_date <= campaign.ends_on
            and (campaign.ended_at is None or now < campaign.ended_at)
            and all(rule(campaign, event) for rule in ELIGIBILITY))


def count(progress: Progress, campaign: Campaign) -> bool:
    """Count one event; True when this event meets the goal and a bonus is due (the
    caller then pays it from the budget, or marks the progress unfunded)."""
    progress.events += 1
    return progress.state == "open" and progress.events >= campaign.goal_events


def paid(progress: Progress, campaign: Campaign) -> None:
    progress.state, progress.bonus_points = "completed", campaign.bonus_points


def unfunded(progress: Progress) -> None:
    progress.state = "unfunded"


def uncount(progress: Progress, campaign: Campaign) -> int:
    """Un-count a reversed event; the bonus points to take back (0 if none)."""
    progress.events -= 1
    if progress.events >= campaign.goal_events or progress.state != "completed":
        return 0
    taken, progress.state, progress.bonus_points = progress.bonus_points, "open", 0
    return taken
