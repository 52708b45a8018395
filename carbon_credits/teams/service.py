"""Teams (机构账户: a company's, school's or organisation's account) and friend links.

**Teams.** An admin creates a team in a city (audited); it gets a random invite code.
A user joins with the code and leaves at will. A user is in at most one team per city
(the primary key ``(user_id, city)`` of ``team_members``): Shanghai's 机构账户 counts a
person under one organisation, and one team per city keeps team boards and reports
disjoint, while someone who commutes between two cities may have a team in each. Joining
another team in the same city means leaving first (409 ``already_in_team``).

A member's place on the team's boards is their place on the city's boards: joining copies
their city scores of every board still kept into the team's boards, leaving takes them off
(``leaderboards.store``: one script call, atomic with concurrent credits). The membership
is committed first; if the boards cannot be updated the answer is 503 and the same request
may be sent again (joining the team one is in re-applies the boards, and answers 200).

**Team report.** The team's current members' credited grams in the team's city over a
date range, in total and by mode, from the ledger (earn minus reversal entries). The same
k-anonymity rule as partner reports (``REPORT_MIN_PARTICIPANTS``): for anyone but an admin,
a row with fewer than k distinct members credited is blanked and ``suppressed``. Readable
by admins and by the team's members.

**Friends.** A link is mutual and consented: A asks B (``requested`` on A's side,
``invited`` on B's), B accepts (both ``accepted``), and either side removes it (also
declining or withdrawing a request). Asking someone who already asked you accepts.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from carbon_credits import audit
from carbon_credits.errors import Conflict, Forbidden, InvalidInput, NotFound
from carbon_credits.leaderboards import service as leaderboards
from carbon_credits.leaderboards.periods import kept_periods
from carbon_credits.leaderboards.store import FAILURES
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Event,
    Friendship,
    LeaderboardPrivacy,
    LedgerEntry,
    Team,
    TeamMember,
    User,
    utcnow,
)
from carbon_credits.tokens import Principal

KINDS = ("company", "school", "organisation")
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
"""Invite code letters: no 0/O, 1/I/L or U, so a code read aloud or copied is unambiguous."""
CODE_LENGTH = 10
"""30^10 ≈ 6e14 codes: not guessable at the rate limits' pace."""
UG_PER_G = 10**6


def _code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def team_view(team: Team) -> dict[str, Any]:
    return {"id": team.id, "city": team.city, "name": team.name, "kind": team.kind,
            "invite_code": team.invite_code, "created_at": team.created_at}


def create_team(rt: Runtime, admin: Principal, city: str, name: str, kind: str,
                reason: str) -> dict[str, Any]:
    """An admin creates a team; audited."""
    with rt.db.transaction() as session:
        team = Team(city=city, name=name, kind=kind, invite_code=_code(),
                    created_by=admin.sub)
        session.add(team)
        session.flush()
        audit.record(session, actor=admin.sub, action="team.create",
                     target=f"team:{team.id}", reason=reason, before=None,
                     after={"city": city, "name": name, "kind": kind})
        return team_view(team)


def list_teams(rt: Runtime, city: str | None) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        query = select(Team).order_by(Team.id)
        if city:
            query = query.where(Team.city == city)
        return [team_view(t) for t in session.scalars(query)]


def _membership_view(team: Team, joined_at: Any) -> dict[str, Any]:
    return {"team_id": team.id, "city": team.city, "name": team.name, "kind": team.kind,
            "joined_at": joined_at}


def join(rt: Runtime, principal: Principal, invite_code: str) -> tuple[dict[str, Any], bool]:
    """Join the team of ``invite_code``; (membership, created). Sending it again is safe."""
    with rt.db.transaction() as session:
        team = session.scalars(select(Team).where(
            Team.invite_code == invite_code.strip().upper())).one_or_none()
        if team is None:
            raise NotFound("no team has this invite code", code="invalid_invite_code",
                           fields={"invite_code": ["no team has this invite code"]})
        _ensure_user(session, principal, team.city)
        current = session.get(TeamMember, (principal.sub, team.city))
        if current is not None and current.team_id != team.id:
            raise Conflict("you are in a team in this city already: leave it first",
                           code="already_in_team")
        created = current is None
        if current is None:
            current = TeamMember(user_id=principal.sub, city=team.city, team_id=team.id)
            session.add(current)
            try:
                session.flush()
            except IntegrityError:  # a concurrent join of this user in this city
                raise Conflict("you are in a team in this city already: leave it first",
                               code="already_in_team") from None
        hidden = bool(session.scalar(select(LeaderboardPrivacy.hidden).where(
            LeaderboardPrivacy.user_id == principal.sub)))
        view = _membership_view(team, current.joined_at)
    _boards(rt, team.city, principal.sub, team.id, hidden)
    return view, created


def leave(rt: Runtime, principal: Principal, city: str) -> None:
    with rt.db.transaction() as session:
        gone = session.execute(delete(TeamMember).where(
            TeamMember.user_id == principal.sub, TeamMember.city == city))
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise NotFound("you are in no team in this city", code="not_in_team")
    _boards(rt, city, principal.sub, None, False)


def _boards(rt: Runtime, city: str, user_id: str, team_id: int | None, hidden: bool
            ) -> None:
    tz, keep = rt.config.tz, rt.config.leaderboard_keep_days
    periods = [(p.label, p.expire_at(tz, keep)) for p in kept_periods(tz, keep, rt.clock())]
    try:
        rt.leaderboards.set_team(city, user_id, team_id, periods)
        if hidden:
            rt.leaderboards.set_hidden(city, user_id, True)
    except FAILURES as exc:
        raise leaderboards.unavailable(exc) from None


def my_teams(rt: Runtime, principal: Principal) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        rows = session.execute(select(Team, TeamMember.joined_at)
                               .join(TeamMember, TeamMember.team_id == Team.id)
                               .where(TeamMember.user_id == principal.sub)
                               .order_by(Team.city)).all()
        return [_membership_view(team, joined) for team, joined in rows]


def _ensure_user(session: Any, principal: Principal, city: str) -> None:
    if session.get(User, principal.sub) is None:
        session.add(User(id=principal.sub, city=principal.city or city))
        session.flush()


def report(rt: Runtime, principal: Principal, team_id: int, start: date, end: date
           ) -> dict[str, Any]:
    """A team's totals (current members, the team's city, local dates ``start``..``end``),
    by mode; small rows suppressed for anyone but an admin (see the module docstring)."""
    if end < start:
        raise InvalidInput("to is before from", fields={"to": ["before from"]})
    k = rt.config.report_min_participants
    with rt.db.transaction() as session:
        team = session.get(Team, team_id)
        if team is None:
            raise NotFound(f"no team {team_id}", code="team_not_found")
        if principal.role != "admin":
            member = session.get(TeamMember, (principal.sub, team.city))
            if member is None or member.team_id != team.id:
                raise Forbidden("only the team's members and admins see its report")
        members = select(TeamMember.user_id).where(TeamMember.team_id == team.id,
                                                   TeamMember.city == team.city)
        size = session.scalar(select(func.count()).select_from(members.subquery())) or 0
        rows = session.execute(
            select(Event.mode, func.sum(LedgerEntry.ug),
                   func.count(func.distinct(Event.user_id)))
            .join(LedgerEntry, LedgerEntry.event_pk == Event.id)
            .where(Event.user_id.in_(members), Event.city == team.city,
                   Event.local_date >= start, Event.local_date <= end,
                   LedgerEntry.kind.in_(("earn", "reversal")))
            .group_by(Event.mode).order_by(Event.mode)).all()
        total = session.execute(
            select(func.coalesce(func.sum(LedgerEntry.ug), 0),
                   func.count(func.distinct(Event.user_id)))
            .join(LedgerEntry, LedgerEntry.event_pk == Event.id)
            .where(Event.user_id.in_(members), Event.city == team.city,
                   Event.local_date >= start, Event.local_date <= end,
                   LedgerEntry.kind.in_(("earn", "reversal")))).one()
    suppress = principal.role != "admin"

    def figures(ug: Any, participants: int) -> dict[str, Any]:
        if suppress and participants < k:
            return {"grams": None, "participants": None, "suppressed": True}
        return {"grams": int(ug or 0) // UG_PER_G, "participants": participants,
                "suppressed": False}

    return {"team": {"id": team.id, "name": team.name, "city": team.city,
                     "members": size if not suppress or size >= k else None},
            "from": start, "to": end,
            "by_mode": [{"mode": mode, **figures(ug, n)} for mode, ug, n in rows],
            "total": figures(total[0], int(total[1])),
            "privacy": {"k": k, "applied": suppress}}


# ---------------------------------------------------------------- friends


def friends(rt: Runtime, principal: Principal) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        rows = session.scalars(select(Friendship).where(Friendship.user_id == principal.sub)
                               .order_by(Friendship.friend_id))
        return [{"user_id": f.friend_id, "state": f.state, "since": f.updated_at}
                for f in rows]


def request_friend(rt: Runtime, principal: Principal, other: str) -> dict[str, Any]:
    """Ask ``other`` to be friends (or accept, if they asked first)."""
    if other == principal.sub:
        raise InvalidInput("you cannot be your own friend", code="friend_self",
                           fields={"user_id": ["you cannot be your own friend"]})
    with rt.db.transaction() as session:
        if session.get(User, other) is None:
            raise NotFound(f"no user {other!r}", code="no_such_user")
        _ensure_user(session, principal, rt.config.default_city)
        mine = session.get(Friendship, (principal.sub, other))
        if mine is not None and mine.state == "invited":
            return _accept(session, principal.sub, other)
        if mine is not None:
            raise Conflict("you are friends already, or a request is pending",
                           code="friend_request_exists")
        session.add_all([Friendship(user_id=principal.sub, friend_id=other,
                                    state="requested"),
                         Friendship(user_id=other, friend_id=principal.sub,
                                    state="invited")])
        try:
            session.flush()
        except IntegrityError:  # they asked at the same moment: one of the two wins
            raise Conflict("you are friends already, or a request is pending",
                           code="friend_request_exists") from None
        return {"user_id": other, "state": "requested", "since": utcnow()}


def accept_friend(rt: Runtime, principal: Principal, other: str) -> dict[str, Any]:
    with rt.db.transaction() as session:
        mine = session.get(Friendship, (principal.sub, other))
        if mine is None or mine.state != "invited":
            raise NotFound("no such friend request", code="no_friend_request")
        return _accept(session, principal.sub, other)


def _accept(session: Any, me: str, other: str) -> dict[str, Any]:
    now = utcnow()
    for user, friend in ((me, other), (other, me)):
        row = session.get(Friendship, (user, friend))
        if row is None:  # the other side was removed meanwhile: recreate it
            row = Friendship(user_id=user, friend_id=friend, state="accepted")
            session.add(row)
        row.state = "accepted"
        row.updated_at = now
    return {"user_id": other, "state": "accepted", "since": now}


def remove_friend(rt: Runtime, principal: Principal, other: str) -> None:
    """Unfriend, decline or withdraw: both sides' rows go."""
    with rt.db.transaction() as session:
        gone = session.execute(delete(Friendship).where(
            ((Friendship.user_id == principal.sub) & (Friendship.friend_id == other))
            | ((Friendship.user_id == other) & (Friendship.friend_id == principal.sub))))
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise NotFound("you are not friends", code="not_friends")


def team_of(session: Any, user_id: str, city: str) -> int | None:
    """The user's team in ``city`` (at most one), or None: e.g. a campaign's eligibility.
    Runs inside the caller's transaction."""
    return leaderboards.team_of(session, user_id, city)
