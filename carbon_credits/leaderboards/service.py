"""Leaderboard use cases: the ingest hook, reads, privacy, erasure, ``rank_of``.

The database is the truth (ledger entries, privacy choices, team memberships); the boards
are a view of it kept in ``rt.leaderboards`` (Redis, or the in-process stand-in) and
rebuilt from it by ``flask rebuild-leaderboards`` (``rebuild``).

**Failure policy.** Boards are updated after the credit's transaction commits, in one
script call per city. If that call fails (Redis down, timeout), the credit stands: the
error is logged, counted (``cc_leaderboard_failures``) and swallowed, never turned into a
failed post; the boards then miss that credit until the rebuild command is run (run it
after a Redis outage). A read route that cannot reach Redis answers 503 with Retry-After.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from carbon_credits import metrics
from carbon_credits.errors import RETRY_AFTER_S, InvalidInput, NotFound, Unavailable
from carbon_credits.leaderboards import keys
from carbon_credits.leaderboards.periods import PERIODS, period_of, periods_of
from carbon_credits.leaderboards.store import (
    FAILURES,
    Credit,
    Place,
    Row,
    Standing,
    TeamRow,
)
from carbon_credits.reports.rollups import UNKNOWN, district_of
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Event,
    Friendship,
    LeaderboardPrivacy,
    Team,
    TeamMember,
    User,
    utcnow,
)
from carbon_credits.storage.sql import Prebuilt, Read
from carbon_credits.tokens import Principal

log = logging.getLogger(__name__)

SCOPES = ("city", "district", "team", "friends")
"""The boards a user can read (``GET /v1/leaderboards/{scope}``)."""
MAX_TOP = 100
"""The most rows one read returns (policy: the top 100 of a city)."""
UG_PER_G = 10**6


class CreditedEvent(Protocol):
    """What a board reads of a credited event (a stored ``Event`` or ``intake.NewEvent``)."""

    @property
    def user_id(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def local_date(self) -> date: ...
    @property
    def network_id(self) -> int | None: ...
    @property
    def origin(self) -> str | None: ...


@dataclass(frozen=True)
class Facts:
    """A ``CreditedEvent`` read before its transaction ends (the ORM object expires then)."""

    user_id: str
    city: str
    local_date: date
    network_id: int | None
    origin: str | None


def facts_of(event: CreditedEvent) -> Facts:
    return Facts(event.user_id, event.city, event.local_date, event.network_id, event.origin)


def credit_for(rt: Runtime, district: str, user_id: str, ug: int, day: date,
               hidden: bool = False) -> Credit:
    return Credit(user_id, ug, None if district == UNKNOWN else district,
                  _boards_of(day, rt.config.tz, rt.config.leaderboard_keep_days), hidden)


@functools.lru_cache(maxsize=64)
def _boards_of(day: date, tz: ZoneInfo, keep_days: int) -> tuple[tuple[str, int], ...]:
    """The (label, expiry) of the boards a credit of ``day`` counts in: the same for
    every credit of the day (a record file's chunk has thousands)."""
    return tuple((p.label, p.expire_at(tz, keep_days)) for p in periods_of(day))


def record(rt: Runtime, credited: Sequence[tuple[CreditedEvent, int]]) -> None:
    """The ingest hook: add committed credits (event, +µg) or reversals (event, -µg) to
    the boards, one script call per city. Never raises (see the failure policy)."""
    credited = [(e, ug) for e, ug in credited if ug]
    if not credited:
        return
    try:
        by_city: dict[str, list[Credit]] = defaultdict(list)
        known = [getattr(event, "boards", None) for event, _ in credited]
        if all(k is not None for k in known):
            # Ingest: the district and the opt-out were read in the crediting transaction
            # (``BoardsHook``): no read here.
            for (event, ug), (district, hidden) in zip(credited, cast(
                    list[tuple[str, bool]], known), strict=True):
                by_city[event.city].append(credit_for(
                    rt, district, event.user_id, ug, event.local_date, hidden))
        else:
            # Reviews and reversals. Districts of a network version are cached per
            # process: usually no query. The opted-out among the users: one primary-key
            # lookup (the table holds only them).
            with rt.db.transaction() as session:
                opted_out = set(session.scalars(select(LeaderboardPrivacy.user_id).where(
                    LeaderboardPrivacy.user_id.in_({e.user_id for e, _ in credited}),
                    LeaderboardPrivacy.hidden.is_(True))))
                for event, ug in credited:
                    district = district_of(session, event.network_id, event.origin)
                    by_city[event.city].append(credit_for(
                        rt, district, event.user_id, ug, event.local_date,
                        event.user_id in opted_out))
        for city, credits in by_city.items():
            rt.leaderboards.credit(city, credits)
    except Exception as exc:  # noqa: BLE001 - a board must never fail a committed credit
        metrics.LEADERBOARD_FAILURES.labels("credit").inc()
        log.warning("leaderboards: %d credit(s) not applied (%s: %s); run "
                    "`flask rebuild-leaderboards` to repair", len(credited),
                    type(exc).__name__, exc)


# ---------------------------------------------------------------- reads


@dataclass(frozen=True)
class Board:
    city: str
    scope: str
    """The board's key scope: ``city``, ``district:<name>``, ``team:<id>``."""
    period: str
    label: str
    key: str


def _board(rt: Runtime, city: str, scope: str, period: str) -> Board:
    if period not in PERIODS:
        raise InvalidInput("unknown period", code="unknown_period",
                           fields={"period": [f"one of {', '.join(PERIODS)}"]})
    day = rt.clock().astimezone(rt.config.tz).date()
    label = period_of(period, day).label
    return Board(city, scope, period, label, keys.board(city, scope, label))


def unavailable(exc: Exception) -> Unavailable:
    metrics.LEADERBOARD_FAILURES.labels("read").inc()
    log.warning("leaderboards: read failed (%s: %s)", type(exc).__name__, exc)
    return Unavailable("leaderboards are unavailable; retry shortly",
                       code="leaderboards_unavailable",
                       headers={"Retry-After": str(RETRY_AFTER_S)})


def _row_view(row: Row, viewer: str, anonymous: bool) -> dict[str, Any]:
    shown = not row.hidden or row.user_id == viewer
    return {"rank": row.rank, "user_id": row.user_id if shown or not anonymous else None,
            "grams": row.ug // UG_PER_G, "anonymous": not shown, "me": row.user_id == viewer}


def _me_view(row: Row | None) -> dict[str, Any] | None:
    return None if row is None else {"rank": row.rank, "grams": row.ug // UG_PER_G}


def read(rt: Runtime, principal: Principal, scope: str, period: str, limit: int,
         district: str | None = None, city: str | None = None) -> dict[str, Any]:
    """The top ``limit`` of a board and the reader's own row: one Redis round trip (the
    friends' board: one query for the friend list, then one round trip)."""
    city = city or principal.city or rt.config.default_city
    if scope not in SCOPES:
        raise NotFound(f"no leaderboard {scope!r}", code="unknown_leaderboard")
    limit = max(0, min(limit, MAX_TOP))  # 0: only the reader's own place
    if scope == "friends":
        return _friends(rt, principal, city, period, limit)
    board = _board(rt, city, _scope_key(rt, principal, scope, city, district), period)
    omit = rt.config.leaderboard_hidden_as == "omitted"
    try:
        standing = rt.leaderboards.standing(city, board.key, limit, principal.sub, omit)
    except FAILURES as exc:
        raise unavailable(exc) from None
    return _view(rt, board, scope, standing, principal.sub)


def _view(rt: Runtime, board: Board, scope: str, standing: Standing, viewer: str
          ) -> dict[str, Any]:
    anonymous = rt.config.leaderboard_hidden_as == "anonymous"
    return {"city": board.city, "scope": scope, "board": board.scope,
            "period": board.period, "label": board.label, "size": standing.size,
            "top": [_row_view(r, viewer, anonymous) for r in standing.top],
            "me": _me_view(standing.me)}


def _scope_key(rt: Runtime, principal: Principal, scope: str, city: str,
               district: str | None) -> str:
    if scope == "city":
        return keys.city_scope()
    if scope == "district":
        if not district:
            raise InvalidInput("a district board needs ?district=", code="district_required",
                               fields={"district": ["Missing data for required field."]})
        return keys.district_scope(district)
    with rt.db.transaction() as session:
        team = team_of(session, principal.sub, city)
    if team is None:
        raise NotFound("you are in no team in this city", code="not_in_team")
    return keys.team_scope(team)


def team_of(session: Any, user_id: str, city: str) -> int | None:
    """The user's team in ``city`` (at most one), or None: for campaigns' eligibility."""
    found: int | None = session.scalar(select(TeamMember.team_id).where(
        TeamMember.user_id == user_id, TeamMember.city == city))
    return found


def friends_of(session: Any, user_id: str) -> list[str]:
    """The user's accepted friends."""
    return list(session.scalars(select(Friendship.friend_id).where(
        Friendship.user_id == user_id, Friendship.state == "accepted")))


def _friends(rt: Runtime, principal: Principal, city: str, period: str, limit: int
             ) -> dict[str, Any]:
    """The reader and their friends, ranked among themselves by their scores on the
    city's board (friends credited in another city count with what they did here)."""
    board = _board(rt, city, keys.city_scope(), period)
    with rt.db.transaction() as session:
        people = [principal.sub, *friends_of(session, principal.sub)]
    try:
        found = rt.leaderboards.scores(city, board.key, people)
    except FAILURES as exc:
        raise unavailable(exc) from None
    omit = rt.config.leaderboard_hidden_as == "omitted"
    on_board = sorted(((ug, user, hidden) for user, ug, hidden in found if ug),
                      reverse=True)
    rows = [Row(user, ug, rank, hidden)
            for rank, (ug, user, hidden) in enumerate(on_board, start=1)]
    me = next((r for r in rows if r.user_id == principal.sub), None)
    shown = [r for r in rows if not (omit and r.hidden and r.user_id != principal.sub)]
    standing = Standing(shown[:limit], me, len(rows))
    view = _view(rt, Board(city, "friends", period, board.label, board.key), "friends",
                 standing, principal.sub)
    return view


def rank_of(rt: Runtime, user_id: str, city: str, period: str = "all",
            district: str | None = None) -> dict[str, Any] | None:
    """A user's rank on their city's board (or a district's) over ``period``: ``{rank,
    grams, of}``, or None when not on it; one Redis round trip. Raises
    ``Unavailable`` (503) when the boards cannot be read. For the carbon account screen."""
    scope = keys.district_scope(district) if district else keys.city_scope()
    board = _board(rt, city, scope, period)
    try:
        standing = rt.leaderboards.standing(city, board.key, 0, user_id, False)
    except FAILURES as exc:
        raise unavailable(exc) from None
    if standing.me is None:
        return None
    return {"rank": standing.me.rank, "grams": standing.me.ug // UG_PER_G,
            "of": standing.size}


def _place_view(place: Place) -> dict[str, Any] | None:
    return None if place is None else {"rank": place[0], "grams": place[1] // UG_PER_G,
                                       "of": place[2]}


def ranks_of(rt: Runtime, user_id: str, city: str) -> dict[str, Any]:
    """A user's rank in their city and in their district, all time and this month, in one
    Redis round trip: ``{city, all, month, district: {name, all, month} | None}`` (each
    place ``{rank, grams, of}``, or None when not on that board). The user's district is
    the one whose all-time board holds most of their grams, i.e. where the trips that
    avoided most of their CO2 began (ties: the first name; steps have no district).
    Raises ``Unavailable`` (503) when the boards cannot be read. For the carbon account."""
    day = rt.clock().astimezone(rt.config.tz).date()
    labels = {name: period_of(name, day).label for name in ("all", "month")}
    try:
        found = rt.leaderboards.ranks(city, user_id, list(labels.values()))
    except FAILURES as exc:
        raise unavailable(exc) from None
    view: dict[str, Any] = {"city": city}
    for name, label in labels.items():
        view[name] = _place_view(found.city[label])
    view["district"] = None if found.district is None else {
        "name": found.district,
        **{name: _place_view(found.in_district[label]) for name, label in labels.items()}}
    return view


def read_teams(rt: Runtime, principal: Principal, period: str, limit: int,
               city: str | None = None) -> dict[str, Any]:
    """Teams against teams in the reader's city: teams ranked by their members' credited
    grams over the period (the sum of the team's own board), top ``limit`` and the
    reader's team. A team with fewer than k members with credited grams in the period
    (``REPORT_MIN_PARTICIPANTS``, the rule of team and partner reports) is not shown and
    not ranked. One Redis round trip, then one query for the teams' names."""
    city = city or principal.city or rt.config.default_city
    board = _board(rt, city, keys.teams_scope(), period)
    k = rt.config.report_min_participants
    limit = max(0, min(limit, MAX_TOP))
    try:
        standing = rt.leaderboards.team_standing(city, board.label, limit, principal.sub, k)
    except FAILURES as exc:
        raise unavailable(exc) from None
    wanted = {int(r.team_id) for r in standing.top if r.team_id.isdigit()}
    if standing.mine is not None and standing.mine.isdigit():
        wanted.add(int(standing.mine))
    with rt.db.transaction() as session:
        teams = {str(t.id): t for t in session.scalars(
            select(Team).where(Team.id.in_(wanted)))} if wanted else {}

    def row(r: TeamRow) -> dict[str, Any]:
        team = teams.get(r.team_id)
        return {"rank": r.rank, "team_id": int(r.team_id),
                "name": team.name if team else None, "kind": team.kind if team else None,
                "grams": r.ug // UG_PER_G, "members": r.members,
                "mine": r.team_id == standing.mine}

    mine: dict[str, Any] | None = None
    if standing.mine is not None:
        team = teams.get(standing.mine)
        mine = {"team_id": int(standing.mine), "name": team.name if team else None,
                "shown": standing.me is not None,
                "rank": standing.me.rank if standing.me else None,
                "grams": standing.me.ug // UG_PER_G if standing.me else None,
                "members": standing.me.members if standing.me else None}
    return {"city": city, "scope": "teams", "period": period, "label": board.label,
            "min_members": k, "size": standing.size, "top": [row(r) for r in standing.top],
            "my_team": mine}


# ---------------------------------------------------------------- privacy and erasure


def privacy(rt: Runtime, principal: Principal) -> dict[str, Any]:
    with rt.db.transaction() as session:
        row = session.get(LeaderboardPrivacy, principal.sub)
        hidden = bool(row and row.hidden)
    return {"hidden": hidden, "hidden_as": rt.config.leaderboard_hidden_as}


def set_privacy(rt: Runtime, principal: Principal, hidden: bool) -> dict[str, Any]:
    """Opt out of (or back into) being shown to others. Kept in the database first (the
    rebuild reads it there), then in the boards of every city the user is on; if that
    fails the answer is 503 and the same request may simply be sent again."""
    with rt.db.transaction() as session:
        user = session.get(User, principal.sub)
        if user is None:  # no event yet: the user row is made by the first post
            user = User(id=principal.sub, city=principal.city or rt.config.default_city)
            session.add(user)
            session.flush()
        row = session.get(LeaderboardPrivacy, principal.sub)
        if row is None:
            session.add(LeaderboardPrivacy(user_id=principal.sub, hidden=hidden))
        else:
            row.hidden = hidden
            row.updated_at = utcnow()
        cities = _cities_of(session, principal.sub, user.city)
    try:
        for city in cities:
            rt.leaderboards.set_hidden(city, principal.sub, hidden)
    except FAILURES as exc:
        raise unavailable(exc) from None
    return {"hidden": hidden, "hidden_as": rt.config.leaderboard_hidden_as}


def _cities_of(session: Any, user_id: str, home: str | None = None) -> list[str]:
    cities = set(session.scalars(select(Event.city).where(Event.user_id == user_id)
                                 .distinct()))
    cities.update(session.scalars(select(TeamMember.city).where(
        TeamMember.user_id == user_id)))
    if home:
        cities.add(home)
    return sorted(cities)


def cities_of(rt: Runtime, user_id: str) -> list[str]:
    """The cities whose boards may hold ``user_id`` (their events', team's and home)."""
    with rt.db.transaction() as session:
        user = session.get(User, user_id)
        return _cities_of(session, user_id, user.city if user else None)


def forget(rt: Runtime, user_id: str, cities: Iterable[str]) -> None:
    """``remove_user`` after an erasure committed: a Redis failure is logged, not raised
    (the erasure stands; the user's entries now carry a pseudonym, so ``flask
    rebuild-leaderboards`` leaves the subject out)."""
    try:
        remove_user(rt, user_id, cities)
    except Exception:  # noqa: BLE001 - any store failure: the rebuild repairs it
        log.warning("leaderboards: erased user not removed; run rebuild-leaderboards",
                    exc_info=True)


def remove_user(rt: Runtime, user_id: str, cities: Iterable[str] | None = None) -> None:
    """Take a user off every board (erasure): of ``cities``, or of every city they have
    events or a team in. Raises the store's error if Redis fails (the caller retries).
    The rebuild would put them back while their ledger entries remain: erasure must also
    remove or pseudonymise those before a rebuild."""
    if cities is None:
        with rt.db.transaction() as session:
            user = session.get(User, user_id)
            cities = _cities_of(session, user_id, user.city if user else None)
    for city in cities:
        rt.leaderboards.remove_user(city, user_id)


# ---------------------------------------------------------------- the crediting hook

PRIVACY = cast(Table, LeaderboardPrivacy.__table__)
_OPTED_OUT = Prebuilt(lambda one_of: select(PRIVACY.c.user_id).where(
    one_of(PRIVACY.c.user_id, "users"), PRIVACY.c.hidden.is_(True)))


class BoardsHook:
    """``ledger.hooks.Hook`` of the leaderboards: reads the chunk's users' opt-outs with
    ingest's reads (its one round trip) and marks each credited event with its district
    and opt-out (``NewEvent.boards``), which ``record`` takes after the commit instead of
    a transaction of its own. Writes nothing in the crediting transaction: the boards are
    in Redis, updated after the commit."""

    # Typed by what is used: ledger.hooks' types are not imported, since the ledger
    # package imports this one (a reversal updates the boards).
    def read(self, session: Session, scope: Any) -> Sequence[Read]:
        return [(_OPTED_OUT, {"users": list(scope.users)})]

    def credited(self, session: Session, events: Sequence[Any], accounts: Mapping[str, Any],
                 now: datetime, rows: Sequence[Sequence[tuple[Any, ...]]]) -> None:
        # (``Any``: ``ledger.hooks`` names the types, but the ledger package imports this
        # one; what is read of an event is this module's ``CreditedEvent``.)
        [opted_out_rows] = rows
        opted_out = {user_id for (user_id,) in opted_out_rows}
        for event in events:
            if hasattr(event, "boards"):  # a chunk's NewEvent (stored Events are re-read)
                credited = cast(CreditedEvent, event)
                district = district_of(session, credited.network_id, credited.origin)
                event.boards = (district, credited.user_id in opted_out)
        return None

    def reversed(self, session: Session, event: Any, account: Any, now: datetime) -> None:
        return None  # the reversal's caller updates the boards after its commit


HOOK = BoardsHook()
