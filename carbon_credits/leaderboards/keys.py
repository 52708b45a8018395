"""Redis key names of the boards (pure).

Every key of a city carries the hash tag ``{<city>}``: on Redis Cluster all of a city's
boards, its hidden set and its team map sit in one slot, so one script call updates every
board an event counts in (city, district, team; day, week, month, all) atomically and in
one round trip, and a read of the top N, the reader's rank and who is hidden is one script
call too. The price: a city is the unit of placement (a 1 M-user city's boards, about 1 GB
with district and team boards, are on one node; cities spread over the nodes).

- ``lb:{city}:<scope>:<period>``: a sorted set, member = user id, score = credited
  micrograms of CO2 (``store``); scope ``city``, ``district:<name>``, ``team:<id>``;
  period ``all``, ``d2026-12-07``, ``w2026-W50``, ``m2026-12`` (``periods``).
- ``lb:{city}:teams:<period>``: the team-vs-team board, member = team id, score = the
  sum of the scores on that team's board of the period (its members' totals).
- ``lb:{city}:hidden``: the set of users who opted out of being shown.
- ``lb:{city}:team``: hash user id -> team id (the user's team in this city).
- ``lb:{city}:keys``: the set of the city's board keys (for erasure and rebuilds).
- ``lb:{city}:districts``: the names of the districts with an all-time board (a user's
  district, for the carbon account: ``store.ranks``).
"""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def tag(city: str) -> str:
    """The city as a hash tag: a name with braces or odd characters is replaced by a
    digest, so no city can break the tag."""
    if _SAFE.fullmatch(city):
        return city
    return "h" + hashlib.sha256(city.encode()).hexdigest()[:32]


def prefix(city: str) -> str:
    return f"lb:{{{tag(city)}}}:"


def board(city: str, scope: str, period_label: str) -> str:
    return f"{prefix(city)}{scope}:{period_label}"


def hidden(city: str) -> str:
    return f"{prefix(city)}hidden"


def teams(city: str) -> str:
    return f"{prefix(city)}team"


def registry(city: str) -> str:
    return f"{prefix(city)}keys"


def districts(city: str) -> str:
    return f"{prefix(city)}districts"


def city_scope() -> str:
    return "city"


def district_scope(district: str) -> str:
    return f"district:{district}"


def team_scope(team_id: int | str) -> str:
    return f"team:{team_id}"


def teams_scope() -> str:
    """The team-vs-team board's scope (members are team ids, not users)."""
    return "teams"
