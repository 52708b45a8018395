"""Rebuild a city's boards from the ledger (``flask --app app rebuild-leaderboards``).

What the live path adds event by event is recomputed from the database: per user and
event local date and district, the sum of the ``ug`` of the events' ``earn`` and
``reversal`` entries (no other kind: a later campaign ``bonus`` kind never counts as
grams); every period whose board is still kept (``periods``); team boards from the
current members' city scores (what joining a team copies); the hidden marks from the
privacy choices. The result is then swapped in at once (``store.replace``).

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
from carbon_credits.leaderboards.service import credit_for
from carbon_credits.reports.rollups import district_of
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Event,
    LeaderboardPrivacy,
    LedgerEntry,
    TeamMember,
    User,
)

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
    boards: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    expiries: dict[str, int] = {}
    with rt.db.transaction() as session:
        teams: dict[str, int] = {user: team for user, team in session.execute(
            select(TeamMember.user_id, TeamMember.team_id).where(TeamMember.city == city))}
        for user_id, day, network_id, origin, ug in _sums(session, city):
            if not ug:
                continue
            credit = credit_for(rt, district_of(session, network_id, origin), user_id, ug,
                                day)  # type: ignore[arg-type]
            scopes = [keys.city_scope()]
            if credit.district:
                scopes.append(keys.district_scope(credit.district))
            if user_id in teams:
                scopes.append(keys.team_scope(teams[user_id]))
            for period in periods_of(day):  # type: ignore[arg-type]
                if not period.kept(tz, keep, now):
                    continue
                for scope in scopes:
                    key = keys.board(city, scope, period.label)
                    boards[key][user_id] += ug
                    expiries[key] = period.expire_at(tz, keep)
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
    final = {key: {u: s for u, s in board.items() if s > 0} for key, board in boards.items()}
    return ({k: b for k, b in final.items() if b}, expiries, hidden, teams)


def rebuild(rt: Runtime, city: str) -> dict[str, int]:
    """Recompute the city's boards from the ledger and swap them in; counts for the CLI."""
    boards, expiries, hidden, teams = compute(rt, city)
    rt.leaderboards.replace(city, boards, expiries, hidden, teams)
    return {"boards": len(boards), "entries": sum(len(b) for b in boards.values()),
            "hidden": len(hidden), "team_members": len(teams)}


def cities(rt: Runtime) -> list[str]:
    with rt.db.transaction() as session:
        return sorted(session.scalars(select(Event.city).distinct()))
