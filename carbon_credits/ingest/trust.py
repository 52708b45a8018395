"""Trust policies and matching: whose word credits a trip, and when a client's post and a
provider's record are the same trip, credited once.

A city and mode has one policy (``TrustPolicy`` rows, set by an admin; none = ``client``):

- ``client``: the user's client is believed, as before providers existed. A provider's
  record of a trip the client already posted is stored, not credited again
  (``same_trip``), and the client's event notes which provider confirmed it; a client
  post of a trip a provider already reported is the same.
- ``operator_confirms``: a client post is held (``awaiting_operator``) until a provider's
  record of the same trip arrives; the record is credited, with the provider's figures
  (a bike-share ride's measured distance, not the client's claim), and the client's post
  is closed as ``same_trip``. A post no record confirms within ``confirm_days`` is
  rejected (``not_confirmed``) by ``expire_unconfirmed``.
- ``operator_only``: client posts of the mode are refused (422 ``operator_only``).

Matching is pure (tested in tests/unit/test_trust.py): same user (the caller's), same
mode, one side a client post and the other a provider's record, start times within the
policy's tolerance, and the mode's own keys: metro the entry and exit stations, bus the
line and boarding stop (and the alighting stop when both sides give it), bike-share the
end time too; steps the same local day (a day's count is cumulative: whichever source
reports more, only the increase is credited, so under ``client`` both simply count).
Station and stop ids are compared as given: a provider and a client must use the city's
GTFS ids (the catalog's), as both are asked to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

Policy = Literal["client", "operator_confirms", "operator_only"]
POLICIES: tuple[Policy, ...] = ("client", "operator_confirms", "operator_only")
AWAITING = "awaiting_operator"
"""The reason of a client post held for its provider's record."""
SAME_TRIP = "same_trip"
"""The reason of the second report of a trip credited once already."""
NOT_CONFIRMED = "not_confirmed"
"""The reason of a client post no provider's record confirmed in time."""

DEFAULT_CONFIRM_DAYS = 2
"""Days a client post waits for its provider's record under ``operator_confirms``. Beijing
MaaS credits platform-sensed trips two days after the trip (issue 21); a policy value,
set per city and mode by an admin."""
DEFAULT_TOLERANCE_S = 600
"""How far apart the two reports' start times may be (policy, no source): a phone's
clock and a gate's differ by seconds, but a client may post the time the rider opened
the app, minutes from the tap-in."""


@dataclass(frozen=True)
class Trust:
    """The policy of one city and mode."""

    policy: Policy = "client"
    confirm_days: int = DEFAULT_CONFIRM_DAYS
    tolerance_s: int = DEFAULT_TOLERANCE_S


CLIENT = Trust()


@dataclass(frozen=True, slots=True)
class Report:
    """One report of a trip (or a day's steps) as matching sees it: a stored event, or the
    one being decided."""

    event_id: str
    mode: str
    began: datetime
    ended: datetime | None
    local_date: date
    origin: str | None
    destination: str | None
    line_id: str | None
    source: str | None
    """None for the user's client, else the provider's id."""
    status: str = "credited"
    reason: str | None = None


def same_trip(a: Report, b: Report, tolerance: timedelta) -> bool:
    """Whether a client post and a provider's record (either way round) describe the same
    trip of one user."""
    if a.mode != b.mode or (a.source is None) == (b.source is None):
        return False
    if a.mode == "steps":
        return a.local_date == b.local_date
    if abs(a.began - b.began) > tolerance:
        return False
    if a.mode == "metro":
        return a.origin == b.origin and a.destination == b.destination
    if a.mode == "bus":
        alighting = (a.destination is None or b.destination is None
                     or a.destination == b.destination)
        return a.line_id == b.line_id and a.origin == b.origin and alighting
    # Trips without stations (bike-share): the end must agree too, where both give it.
    return a.ended is None or b.ended is None or abs(a.ended - b.ended) <= tolerance


@dataclass(frozen=True)
class Verdict:
    """What trust decides of a report before the methodology and the rules.

    ``outcome``: ``credit`` (go on as usual), ``hold`` (a client post awaiting its
    record), ``duplicate`` (the trip is credited already: store, credit nothing).
    ``match``: the other report of the trip, if any; ``close``: the held client posts
    the credited record now replaces (closed as ``same_trip``: a trip's one post, or a
    day's several step counts)."""

    outcome: Literal["credit", "hold", "duplicate"]
    match: Report | None = None
    close: tuple[Report, ...] = ()


CREDITED = ("credited", "capped")


def judge(trust: Trust, report: Report, others: Iterable[Report]) -> Verdict:
    """The verdict on ``report`` given the user's other reports around it (stored or
    decided earlier; neither rejected nor reversed)."""
    tolerance = timedelta(seconds=trust.tolerance_s)
    matches = [o for o in others if same_trip(report, o, tolerance)]
    credited = next((o for o in matches if o.status in CREDITED), None)
    if report.mode == "steps" and trust.policy == "client":
        # A day's count: both sources feed the day's highest count (only increases count).
        return Verdict("credit")
    if report.source is None:
        if credited is not None:
            return Verdict("duplicate", match=credited)
        return Verdict("hold" if trust.policy == "operator_confirms" else "credit")
    waiting = tuple(o for o in matches if o.status == "held" and o.reason == AWAITING)
    if waiting:
        return Verdict("credit", match=waiting[0], close=waiting)
    if credited is not None and report.mode != "steps":
        return Verdict("duplicate", match=credited)
    return Verdict("credit")
