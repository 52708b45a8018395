"""The account and badges features' crediting hook (``HOOK``, a ``ledger.hooks.Hook``):
what they do when an event is credited, inside the same unit of work (ingest, approvals),
and when it is reversed. ``factory.create_app`` installs it with the other features'.

Ingest sends ``prefetch``'s reads with its own (one round trip for all: a post stays two
round trips, tests/integration/test_intake.py); the approval path lets ``ledger.hooks``
read them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy.orm import Session

from carbon_credits.account import aggregates
from carbon_credits.account.earning import Ledger, earned
from carbon_credits.badges import awards, rules
from carbon_credits.ledger.entries import Balance
from carbon_credits.ledger.hooks import CreditedEvent, Rows, Scope, Writes
from carbon_credits.storage.models import Event, utcnow
from carbon_credits.storage.sql import Read, read_together
from carbon_credits.webhooks import outbox

REACH_DAYS = 37
"""Days either side of the credited events' days whose day rows are read for the badge
rules: a week back for ``modes_in_week``, and streaks up to this long with no further read
(a longer streak rule reads its days again, in a round trip of its own)."""


class Credited(aggregates.Credited, Protocol):
    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> str: ...


@dataclass
class Prefetch:
    """The reads the badge rules need, sent with the ingest's own, and their rows: the
    users' badges held and their credited history (one statement each)."""

    users: list[str]
    since: date
    until: date
    rows: list[list[tuple[Any, ...]]] | None = None

    def reads(self) -> list[Read]:
        return [awards.held_read(self.users),
                aggregates.history_read_of(self.users, self.since, self.until)]


def prefetch(users: Sequence[str], days: Sequence[date]) -> Prefetch:
    """What to read for credits of ``users`` on ``days`` (before deciding them)."""
    return Prefetch(sorted(set(users)), min(days) - timedelta(days=REACH_DAYS),
                    max(days) + timedelta(days=REACH_DAYS))


def credited(session: Session, events: Sequence[Credited],
             prefetched: Prefetch | None = None) -> Callable[[], None]:
    """Events just credited (each with an earn entry, written in this transaction): the
    badges they earn are decided now (from ``prefetched``'s rows, else read here); the
    writes (month rows, awards; the day rows are the usage rows the caps count) are
    returned, to be run with the other writes (on PostgreSQL, sent with the COMMIT:
    ``sql.committing``)."""
    if not events:
        return _nothing
    months = aggregates.deltas(events)
    won = _badges(session, events, prefetched)
    announce = _announce(session, won) if won else None

    def write() -> None:
        aggregates.add(session, months)
        awards.award(session, won)
        if announce is not None:
            announce()

    return write


def _announce(session: Session, won: Sequence[dict[str, Any]]) -> Writes | None:
    """A ``badge.earned`` webhook per award, in this unit of work (webhooks.outbox), to be
    written with the awards: the badges' codes and the endpoints are the process's copies
    (``storage.cached``, current as of this transaction's read of their versions), so
    awards add no read, whatever their number (a file's chunk awards thousands). A
    concurrent award of the same badge fails this transaction at the award's key, and its
    deliveries with it."""
    codes = {badge.id: badge.code for badge in awards.ACTIVE.get(session)}
    return outbox.publish_later(session, "badge.earned", [
        {"user_id": award["user_id"], "badge": codes.get(award["badge_id"]),
         "event_id": award["event_id"], "earned_at": award["awarded_at"].isoformat()}
        for award in won], won[0]["awarded_at"])


def _badges(session: Session, events: Sequence[Credited], known: Prefetch | None
            ) -> list[dict[str, Any]]:
    badges = awards.ACTIVE.get(session)
    if not badges:
        return []  # nothing to earn: the history was not read (``AccountHook.read``)
    if known is None or known.rows is None:
        known = prefetch([e.user_id for e in events], [e.local_date for e in events])
        known.rows = read_together(session, known.reads())
    held, history = known.rows
    reach = max(rules.streak_reach(b.rule) for b in badges)
    first = min(e.local_date for e in events)
    last = max(e.local_date for e in events)
    if first - timedelta(days=reach) < known.since or last + timedelta(days=reach) > known.until:
        [history] = read_together(session, [aggregates.history_read_of(
            known.users, first - timedelta(days=reach), last + timedelta(days=reach))])
    have = {(user_id, badge_id) for user_id, badge_id in held}
    now = utcnow()
    won = []
    by_user: dict[str, list[Credited]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    pasts = aggregates.histories(history)
    for user_id, mine in sorted(by_user.items()):
        ledger = Ledger.of(*pasts.get(user_id, ([], [], [])))
        for event, badge in earned(ledger, mine, [b for b in badges
                                                  if (user_id, b.id) not in have]):
            won.append(awards.award_row(user_id, badge, event.id, event.event_id, now))
    return won


def reversed_event(session: Session, event: Event) -> None:
    """An event whose credit is being reversed (caller holds the account lock, and calls
    this before changing the event)."""
    aggregates.reverse(session, event)
    awards.revoke(session, event)


def _nothing() -> None:
    return None


class AccountHook:
    """``account`` and ``badges`` as a crediting hook (``ledger.hooks``)."""

    def read(self, session: Session, scope: Scope) -> Sequence[Read]:
        if awards.ACTIVE.peek(session) == []:
            return []  # no active badge: no rule reads the history (the aggregates' writes
            # need no read); a badge made since shows in the versions, and the reads follow
        return prefetch(scope.users, [scope.first_day, scope.last_day]).reads()

    def credited(self, session: Session, events: Sequence[CreditedEvent],
                 accounts: Mapping[str, Balance], now: datetime, rows: Rows) -> Writes | None:
        mine = cast(Sequence[Credited], events)  # NewEvent or Event: both carry activity
        known = prefetch([e.user_id for e in mine], [e.local_date for e in mine])
        known.rows = [list(found) for found in rows] if rows else None
        return credited(session, mine, known)

    def reversed(self, session: Session, event: CreditedEvent, account: Balance,
                 now: datetime) -> None:
        reversed_event(session, cast(Event, event))


HOOK = AccountHook()
