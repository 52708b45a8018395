"""``points.expiring`` webhooks: tell the client platform, ``EXPIRY_WEBHOOK_DAYS`` ahead,
that a user's points will expire, once per user and expiry date.

Run by ``flask expire-points`` (daily, from cron) after the day's expiry entries are
written. It goes through the accounts of the cities with an expiry policy in batches, as
the expiry job does (``ledger.expiring``): an account is read when its stored lots have a
date within the notice period or its ledger moved since they were folded; its lots are
folded in memory (no lock, nothing written to them), and each live lot expiring after
today and by today + the notice period is announced: one ``expiry_notices`` row (primary
key user and date) and, in the same transaction, one delivery per subscribed endpoint.

**Once.** The row is inserted with ``ON CONFLICT DO NOTHING ... RETURNING``, and only
the rows this run inserted are published: a second run, or two at once (the second waits
on the first's uncommitted key, then skips it), announce nothing again. The amount is the
lot's live points when announced; points added to the same date later (a ``months`` rule
maps several days to a month's last day) or spent since are not announced again: the
account's ``expiring_soon`` shows the current figure.

With no endpoint subscribed to ``points.expiring`` nothing is recorded: an endpoint that
subscribes later hears of every lot then within the notice period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from carbon_credits.ledger import expiring
from carbon_credits.privacy.erasure import PSEUDONYM_PREFIX
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import ExpiryNotice, User
from carbon_credits.webhooks import outbox

KIND = "points.expiring"
NOTICES: Table = ExpiryNotice.__table__  # type: ignore[assignment]


@dataclass
class Announced:
    notices: int = 0
    """(user, date) pairs announced by this run."""
    points: int = 0
    accounts: int = 0
    """Accounts read."""


def due_notices(lots_by_user: dict[str, Any], today: date, until: date
                ) -> list[tuple[str, date, int]]:
    """(user, expiry date, points) of every live lot expiring after ``today`` and by
    ``until`` (lots due today or earlier are the expiry job's, not a notice's); an erased
    user's pseudonym is told nothing (pure)."""
    return [(user, day, points)
            for user, lots in sorted(lots_by_user.items())
            if not user.startswith(PSEUDONYM_PREFIX)
            for day, points in lots.upcoming(until) if day > today and points > 0]


def announce_expiring(rt: Runtime, now: datetime | None = None,
                      batch: int = expiring.BATCH) -> Announced:
    """Publish a ``points.expiring`` delivery for each lot expiring within the notice
    period not announced before; one transaction per batch of accounts."""
    now = now or rt.clock()
    days = rt.config.expiry_webhook_days
    run = Announced()
    if days <= 0:
        return run
    tz = rt.config.tz
    today = now.astimezone(tz).date()
    until = today + timedelta(days=days)
    with rt.db.transaction() as session:
        if not outbox.subscribers(session, KIND):
            return run
        history = expiring.policies(session)
    cities = expiring.expiring_cities(history)
    after = ""
    while cities:
        with rt.db.transaction() as session:
            users = list(session.scalars(expiring.due_by(cities, until, after, batch)))
            if not users:
                break
            after = users[-1]
            run.accounts += len(users)
            due = due_notices(expiring.fold_accounts(session, users, history, tz), today,
                              until)
            fresh = _record(session, due, now)
            if fresh:
                homes: dict[str, str] = {user: city for user, city in session.execute(
                    select(User.id, User.city).where(
                        User.id.in_({user for user, _, _ in fresh})))}
                outbox.publish_many(session, KIND, [
                    {"user_id": user, "city": homes.get(user), "points": points,
                     "expires_on": day.isoformat(),
                     "last_valid_day": (day - timedelta(days=1)).isoformat()}
                    for user, day, points in fresh], now)
                run.notices += len(fresh)
                run.points += sum(points for _, _, points in fresh)
    return run


def _record(session: Session, due: Sequence[tuple[str, date, int]], now: datetime
            ) -> list[tuple[str, date, int]]:
    """Insert the notices not recorded yet; the ones this statement inserted."""
    if not due:
        return []
    insert = (pg_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)(NOTICES)
    statement = insert.on_conflict_do_nothing(
        index_elements=[NOTICES.c.user_id, NOTICES.c.expires_on]).returning(
        NOTICES.c.user_id, NOTICES.c.expires_on, NOTICES.c.points)
    inserted = session.execute(statement, [
        {"user_id": user, "expires_on": day, "points": points, "announced_at": now}
        for user, day, points in due])
    return sorted((user, day, int(points)) for user, day, points in inserted)
