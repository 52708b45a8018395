"""Rebuild a city's boards from the ledger (``flask --app app rebuild-leaderboards``).

What the live path adds event by event is recomputed from the database: per user and
event local date and district, the sum of the ``ug`` of the events' ``earn`` and
``reversal`` entries (no other kind: a later campaign ``bonus`` kind never counts as
grams); every period whose board is still kept (``periods``); team boards from the
current members' city scores (what joining a team copies), and the team-vs-team boards
as the sums of the team boards; the hidden marks from the privacy choices. The result is
then swapped in at once (``store.replace``).

**Streamed.** The database sends the entries in their events' local-date order (one
read, a server-side cursor). A board is finished as
soon as the read has passed the last day of its period: a day's boards when the next day
begins, a week's on the next Monday, a month's on the next month's first day, the
all-time boards at the end. Each finished board is handed to the store at once
(``boards``), which writes it under a staging name while the read goes on, so the
database, this process and Redis work at the same time, and only the boards of the
periods still open are held in memory (all time, the current month, week and day).

Credits committed while the rebuild runs (between its read and its swap) are in the
database but may miss the new boards: run it when ingest is quiet (after a Redis outage,
or at night), or run it twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy import Select, or_, select, text
from sqlalchemy.orm import Session

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

Board = tuple[str, dict[str, int], int]
"""A finished board: (key, user -> µg, all > 0; the Unix time it is dropped, 0: never)."""


def _entries(city: str) -> Select[date, str, int | None, str | None, int]:
    """The µg of the city's events' earn and reversal entries, with each event's local
    date, user and stop, in local-date order (what lets a period's boards be finished
    while the read goes on). Not summed here: a GROUP BY per user, day and stop took
    5.2 s of PostgreSQL over 1 M entries (a hash aggregate of ~1 M groups, spilled) where
    the ordered read took 1.3 s, and the sums are made in any case, per board."""
    return (select(Event.local_date, Event.user_id, Event.network_id, Event.origin,
                   LedgerEntry.ug)
            .join(LedgerEntry, LedgerEntry.event_pk == Event.id)
            .where(Event.city == city, LedgerEntry.kind.in_(("earn", "reversal")))
            .order_by(Event.local_date))


PG_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'")
"""For the one read on PostgreSQL: no JIT (its compilation took 0.6 s of a 5.7 s query
over 1 M entries, EXPLAIN ANALYZE), and room for its sort (the default, 4 MB, spills
it to disk). Transaction-local."""


def _marks(session: Session, city: str) -> tuple[set[str], dict[str, int]]:
    """The city's hidden users and its team map (user -> team id)."""
    teams: dict[str, int] = {user: team for user, team in session.execute(
        select(TeamMember.user_id, TeamMember.team_id).where(TeamMember.city == city))}
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
    return hidden, teams


def _rows(session: Session, city: str) -> Iterator[Any]:
    """``_entries`` row by row. On PostgreSQL through the driver's own server-side
    cursor: SQLAlchemy's result rows cost ~1 us of this process a row more (the cursor
    is the SELECT figure 19b is measured against); elsewhere through SQLAlchemy."""
    connection = session.connection()
    query = _entries(city)
    if connection.dialect.name != "postgresql":
        result = connection.execution_options(yield_per=FETCH_ROWS).execute(query)
        for partition in result.partitions():
            yield from partition
        return
    for setting in PG_SETTINGS:
        connection.execute(text(setting))
    compiled = query.compile(dialect=connection.dialect,
                             compile_kwargs={"render_postcompile": True})
    raw: Any = connection.connection.driver_connection
    with raw.cursor(name="leaderboard_rebuild") as cursor:
        cursor.itersize = FETCH_ROWS
        cursor.execute(str(compiled), compiled.params)
        yield from cursor


def boards(rt: Runtime, session: Session, city: str,
           teams: dict[str, int]) -> Iterator[Board]:
    """The city's boards as the live path would have them now, each yielded as soon as the
    read has passed its period (see the module docstring); members at or below zero are
    left out, as the live path removes them; empty boards are not yielded."""
    now = rt.clock()
    tz, keep = rt.config.tz, rt.config.leaderboard_keep_days
    # Open boards per period label: (scope -> user -> µg); the label's last local day
    # (None: all time) and the time its board is dropped.
    open_boards: dict[str, dict[str, dict[str, int]]] = {}
    last_day: dict[str, date | None] = {}
    expire_of: dict[str, int] = {}
    # Boards given a negative sum (a reversal's): only these can hold members <= 0.
    lowered: set[int] = set()
    districts: dict[tuple[int | None, str | None], str | None] = {}
    team_scopes = {user: keys.team_scope(team) for user, team in teams.items()}
    # The boards a row of the current day adds to, per stop (the city's and its
    # district's, of every kept period of the day): worked out once per day and stop.
    targets: dict[tuple[int | None, str | None], list[dict[str, int]]] = {}
    labels: list[str] = []
    current: date | None = None

    def board_of(scope: str, label: str) -> dict[str, int]:
        return open_boards[label].setdefault(scope, {})

    def finish(label: str) -> Iterator[Board]:
        by_scope = open_boards.pop(label)
        expire = expire_of[label]
        totals: dict[str, int] = {}
        for scope, board in sorted(by_scope.items()):
            if id(board) in lowered:
                board = {u: ug for u, ug in board.items() if ug > 0}
            if not board:
                continue
            if scope.startswith(TEAM_SCOPE):  # a team's total: its board's sum
                totals[scope[len(TEAM_SCOPE):]] = sum(board.values())
            yield keys.board(city, scope, label), board, expire
        if totals:
            yield keys.board(city, keys.teams_scope(), label), totals, expire

    for day, user_id, network_id, origin, ug in _rows(session, city):
        if not ug:
            continue
        if day != current:
            # A new local day: every open period that ended before it is finished.
            for label in [lb for lb, last in last_day.items()
                          if last is not None and last < day]:
                del last_day[label]
                yield from finish(label)
            current = day
            targets = {}
            labels = []
            for p in periods_of(day):
                expire = p.expire_at(tz, keep)
                if p.kept(tz, keep, now):
                    labels.append(p.label)
                    if p.label not in open_boards:
                        open_boards[p.label] = {}
                        last_day[p.label] = p.last
                        expire_of[p.label] = expire
        where = (network_id, origin)
        into = targets.get(where)
        if into is None:
            if where not in districts:
                found = district_of(session, network_id, origin)
                districts[where] = None if found == UNKNOWN else keys.district_scope(found)
            district = districts[where]
            into = targets[where] = [board_of(scope, label) for label in labels
                                     for scope in (CITY_SCOPE, district) if scope]
        team = team_scopes.get(user_id)
        if team is not None:
            into = [*into, *(board_of(team, label) for label in labels)]
        for board in into:
            board[user_id] = board.get(user_id, 0) + ug
        if ug < 0:
            lowered.update(id(board) for board in into)
    for label in list(open_boards):
        yield from finish(label)


def compute(rt: Runtime, city: str) -> tuple[dict[str, dict[str, int]], dict[str, int],
                                             set[str], dict[str, int]]:
    """The city's boards as the live path would have them now, all at once: (boards by
    key, expiry by key, hidden users, team by user)."""
    with rt.db.transaction() as session:
        hidden, teams = _marks(session, city)
        final: dict[str, dict[str, int]] = {}
        expiries: dict[str, int] = {}
        for key, board, expire in boards(rt, session, city, teams):
            final[key] = board
            expiries[key] = expire
    return final, expiries, hidden, teams


def rebuild(rt: Runtime, city: str) -> dict[str, int]:
    """Recompute the city's boards from the ledger and swap them in; counts for the CLI."""
    counts = {"boards": 0, "entries": 0}

    def counted(stream: Iterator[Board]) -> Iterator[Board]:
        for board in stream:
            counts["boards"] += 1
            counts["entries"] += len(board[1])
            yield board

    with rt.db.transaction() as session:
        hidden, teams = _marks(session, city)
        rt.leaderboards.replace(city, counted(boards(rt, session, city, teams)), hidden,
                                teams)
    return {**counts, "hidden": len(hidden), "team_members": len(teams)}


def cities(rt: Runtime) -> list[str]:
    with rt.db.transaction() as session:
        return sorted(session.scalars(select(Event.city).distinct()))
