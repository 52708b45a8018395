"""The carbon account's first screen (``GET /v1/me/carbon-account``) in one call.

Read from the user's aggregates, never from the events: every month row (a few dozen for
years of history: lifetime totals and the monthly trend), the day rows of the trends'
window (at most 84 days), and the balance, in one round trip on PostgreSQL
(``sql.read_together``). Only a current streak older than the window reads further back,
366 green days a round trip.

Rank in the city and in the user's district (all time and this month) comes from the
leaderboards, one more round trip to Redis, one script call (``leaderboards.service.
ranks_of``); the user's district is the one whose all-time board holds most of their grams.
When the boards cannot be read the screen still answers, with ``rank`` null, rather than a
503 for a part of it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select

from carbon_credits.account import aggregates, history
from carbon_credits.errors import ServiceError
from carbon_credits.leaderboards import service as leaderboards
from carbon_credits.ledger import settlement
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Account, RewardRedemption, User
from carbon_credits.storage.sql import Prebuilt, read_together
from carbon_credits.tokens import Principal
from methodology.equivalents import equivalents_of

ACCOUNTS = cast(Table, Account.__table__)
USERS = cast(Table, User.__table__)
HOLDS = cast(Table, RewardRedemption.__table__)
_RESERVED = (select(func.coalesce(func.sum(HOLDS.c.points), 0))
             .where(HOLDS.c.user_id == ACCOUNTS.c.user_id,
                    HOLDS.c.state == settlement.HELD_STATE, HOLDS.c.hold.is_(True))
             .scalar_subquery())
"""The points of the user's open holds (``ledger.settlement.reserved``), in the same read."""
_BALANCE = Prebuilt(lambda _: select(ACCOUNTS.c.balance_points, ACCOUNTS.c.lifetime_points,
                                     USERS.c.city, _RESERVED)
                    .join(USERS, USERS.c.id == ACCOUNTS.c.user_id)
                    .where(ACCOUNTS.c.user_id == bindparam("user")))
_STREAK_PAGE = 366
"""Green days read per round trip when the current streak goes back beyond the window."""


def carbon_account(rt: Runtime, principal: Principal) -> dict[str, Any]:
    """Totals per mode, trends per day, week and month, everyday equivalents, the current
    streak and the balance of ``principal``'s account, as of today in the city's time."""
    today = rt.clock().astimezone(rt.config.tz).date()
    since = history.window_start(today)
    user_id = principal.sub
    with rt.db.unit_of_work() as uow:
        balance, months, days = read_together(uow.session, [
            (_BALANCE, {"user": user_id}), aggregates.months_read(user_id),
            aggregates.days_read(user_id, since, today)])
        day_rows = aggregates.rows_of(days)
        green = {row.day for row in day_rows}
        oldest = since
        while history.reaches(green, oldest, today):
            older = aggregates.green_before(uow.session, user_id, oldest, _STREAK_PAGE)
            green.update(older)
            if len(older) < _STREAK_PAGE or older[-1] != oldest - timedelta(len(older)):
                break  # fewer than asked, or a gap among them: the streak starts there
            oldest = older[-1]
        uow.commit()
    view = history.screen(today, aggregates.rows_of(months), day_rows, green)
    view["user_id"] = user_id
    view["balance"] = balance[0][0] if balance else 0
    view["lifetime_points"] = balance[0][1] if balance else 0
    # Held for redemptions not yet fulfilled: in the balance, not spendable (the split of
    # the balance into available, pending, unclaimed and reserved: GET /v1/me/account).
    view["reserved"] = int(balance[0][3]) if balance else 0
    view["equivalents"] = equivalents_of(view.pop("total_grams"))
    city = balance[0][2] if balance else (principal.city or rt.config.default_city)
    view["rank"] = _rank(rt, user_id, city)
    return view


def _rank(rt: Runtime, user_id: str, city: str) -> dict[str, Any] | None:
    """The user's standing on their city's and their district's boards, all time and this
    month (one Redis round trip); None when the boards cannot be read (the rest of the
    screen stands)."""
    try:
        return leaderboards.ranks_of(rt, user_id, city)
    except ServiceError:
        return None
