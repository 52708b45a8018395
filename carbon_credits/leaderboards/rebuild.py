"""Rebuild a city's boards from the ledger (``flask --app app rebuild-leaderboards``).

What the live path adds event by event is recomputed from the database: per user and
event local date and district, the sum of the ``ug`` of the events' ``earn`` and
``reversal`` entries (no other kind: a later campaign ``bonus`` kind never counts as
grams); every period whose board is still kept (``periods``); team boards from the
current members' city scores (what joining a team copies), and the team-vs-team boards
as the sums of the team boards; the hidden marks from the privacy choices. The result is
then swapped in at once (``store.replace``).

Credits committed while the rebuild runs (between its read and its swap) are in the
database but may miss the new boards: run it when ingest is quiet (after a Redis outage,
or at night), or run it twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import func, or_, select

from carbon_credits.leaderboards import keys
from carbon_credits.leaderboards.periods import periods_of
from carbon_credits.reports.rollups import UNKNOWN, district_of
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Event,
    LeaderboardPrivacy,
    LedgerEntry,
    TeamMember,
    User,
)

CITY_SCOPE = keys.city_scope()
TEAM_SCOPE = keys.team_scope("")
FETCH_ROWS = 50_000
"""Rows read per fetch from the server-side cursor (bounded memory for the read)."""


def _sums(session: object, city: str) -> Iterator[tuple[str, object, int | None,
                                                        str | None, int]]:
    query = (select(Event.user_id, Event.local_date, Event.network_id, Event.origin,
                    func.sum(LedgerEntry.ug))
             .join(LedgerEntry, LedgerEntry.event_pk == Event.id)
             .where(Event.city == city, LedgerEntry.kind.in_(("earn", "reversal")))
             .group_by(Event.user_id, Event.local_date, Event.network_id, Event.origin))
    result = session.execute(  # type: ignore[attr-defined]
        query.execution_options(yield_per=FETCH_ROWS))
    for user_id, day, network_id, origin, ug in result:
        yield user_id, day, network_id, origin, int(ug or 0)


def compute(rt: Runtime, city: str) -> tuple[dict[str, dict[str, int]], dict[str, int],
                                             set[str], dict[str, int]]:
    """The city's boards as the live path would have them now: (boards by key, expiry by
    key, hidden users, team by user)."""
    now = rt.clock()
    tz, keep = rt.config.tz, rt.config.leaderboard_keep_days
    # (scope, label) -> user -> µg. The kept periods of a day, and a stop's district, are
    # worked out once per distinct value, not per row (a city has ~30 live days).
    boards: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    expiries: dict[str, int] = {}
    day_periods: dict[object, list[tuple[str, int]]] = {}
    districts: dict[tuple[int | None, str | None], str | None] = {}
    with rt.db.transaction() as session:
        teams: dict[str, int] = {user: team for user, team in session.execute(
            select(TeamMember.user_id, TeamMember.team_id).where(TeamMember.city == city))}
        for user_id, day, network_id, origin, ug in _sums(session, city):
            if not ug:
                continue
            kept = day_periods.get(day)
            if kept is None:
                kept = day_periods[day] = [
                    (p.label, p.expire_at(tz, keep)) for p in periods_of(day)  # type: ignore[arg-type]
                    if p.kept(tz, keep, now)]
            where = (network_id, origin)
            if where not in districts:
                found = district_of(session, network_id, origin)
                districts[where] = None if found == UNKNOWN else keys.district_scope(found)
            district = districts[where]
            team = teams.get(user_id)
            for label, _expire in kept:
                boards[(CITY_SCOPE, label)][user_id] += ug
                if district:
                    boards[(district, label)][user_id] += ug
                if team is not None:
                    boards[(keys.team_scope(team), label)][user_id] += ug
        expire_of = {label: expire for kept in day_periods.values() for label, expire in kept}
        # Marked in a city: their home city, a city they have events or a team in
        # (``service.set_privacy``'s cities, and the ingest hook's marks).
        in_city = (select(Event.id).where(Event.city == city,
                                          Event.user_id == LeaderboardPrivacy.user_id)
                   .exists())
        in_team = (select(TeamMember.user_id).where(
            TeamMember.city == city, TeamMember.user_id == LeaderboardPrivacy.user_id)
            .exists())
        hidden = set(session.scalars(
            select(LeaderboardPrivacy.user_id)
            .join(User, User.id == LeaderboardPrivacy.user_id)
            .where(LeaderboardPrivacy.hidden.is_(True),
                   or_(User.city == city, in_city, in_team))))
    final: dict[str, dict[str, int]] = {}
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (scope, label), board in boards.items():
        kept_members = {u: score for u, score in board.items() if score > 0}
        if kept_members:
            key = keys.board(city, scope, label)
            final[key] = kept_members
            expiries[key] = expire_of[label]
            if scope.startswith(TEAM_SCOPE):  # a team's total: its board's sum
                totals[label][scope[len(TEAM_SCOPE):]] += sum(kept_members.values())
    for label, by_team in totals.items():
        key = keys.board(city, keys.teams_scope(), label)
        final[key] = dict(by_team)
        expiries[key] = expire_of[label]
    return final, expiries, hidden, teams


def rebuild(rt: Runtime, city: str) -> dict[str, int]:
    """Recompute the city's boards from the ledger and swap them in; counts for the CLI."""
    boards, expiries, hidden, teams = compute(rt, city)
    rt.leaderboards.replace(city, boards, expiries, hidden, teams)
    return {"boards": len(boards), "entries": sum(len(b) for b in boards.values()),
            "hidden": len(hidden), "team_members": len(teams)}


def cities(rt: Runtime) -> list[str]:
    with rt.db.transaction() as session:
        return sorted(session.scalars(select(Event.city).distinct()))
