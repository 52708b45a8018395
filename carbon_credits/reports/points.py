"""The points export for the city platform: per period, points earned, spent (redeemed),
refunded, expired, lapsed and reversed in a city, the points outstanding at the period's
end, and the points due to expire in it (as of the expiry job's last run: its lots).
Shenzhen's 《深圳市碳普惠管理办法》 has spent points reported to the city platform and
cancelled (注销) there; this is that report. A physical good's points count as redeemed
when it ships (its 'redeem' entry), not when they are held: 'hold' and 'release' entries
move no points (only ``entries`` counts them), and the held points stay outstanding.

Read from the ledger itself (entries of the city's users, by the local day of their
``created_at``), on the reports replica when one is configured. The ledger has no index on
``created_at`` (none is added to the ingest path for a monthly export), so a request reads
the ledger table once; the range is bounded like every report's (REPORT_MAX_DAYS). Entries
are summed per UTC hour in the database and the hours put into local days here, which is
exact for the whole-hour offsets of China's time zone (Asia/Shanghai, UTC+8).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from carbon_credits.reports.partner import Scope, _csv_line, period_of
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Account, ExpiryState, LedgerEntry, User

NEVER_KEY = "never"
"""ledger.expiry.NEVER_KEY, the lot of points that never expire (reports sit beside the
ledger and may not import it: the ledger writes rollups)."""
COLUMNS = ("period", "earned", "redeemed", "refunded", "net_spent", "expired", "lapsed",
           "reversed", "entries", "outstanding", "expiring")
_FIGURE = {"earn": "earned", "redeem": "redeemed", "adjustment": "refunded",
           "expiry": "expired", "lapse": "lapsed", "reversal": "reversed"}
"""Ledger kinds -> columns; any other crediting kind (a later 'bonus') counts as earned."""


def points(rt: Runtime, scope: Scope, start: date, end: date, granularity: str
           ) -> dict[str, Any]:
    tz = rt.config.tz
    lo = datetime.combine(start, time(0), tz)
    hi = datetime.combine(end + timedelta(days=1), time(0), tz)
    periods: dict[date, dict[str, int]] = {}
    with rt.db.reports() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        hour = (func.date_trunc("hour", LedgerEntry.created_at) if postgres
                else func.strftime("%Y-%m-%d %H:00:00", LedgerEntry.created_at))
        rows = session.execute(
            select(hour, LedgerEntry.kind, func.sum(LedgerEntry.points), func.count())
            .join(User, User.id == LedgerEntry.user_id)
            .where(User.city == scope.city, LedgerEntry.created_at >= lo,
                   LedgerEntry.created_at < hi)
            .group_by(hour, LedgerEntry.kind))
        # Outstanding at each period's end: the city's balances now, less every entry
        # written since (after the range, then period by period backwards).
        now_total = int(session.scalar(
            select(func.coalesce(func.sum(Account.balance_points), 0))
            .join(User, User.id == Account.user_id).where(User.city == scope.city)) or 0)
        since = int(session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.points), 0))
            .join(User, User.id == LedgerEntry.user_id)
            .where(User.city == scope.city, LedgerEntry.created_at >= hi)) or 0)
        expiring: dict[date, int] = {}
        for (lots,) in session.execute(
                select(ExpiryState.lots).join(User, User.id == ExpiryState.user_id)
                .where(User.city == scope.city, ExpiryState.next_due.is_not(None),
                       ExpiryState.next_due <= end)):
            for key, n in (lots or {}).get("lots", {}).items():
                if key != NEVER_KEY and start <= date.fromisoformat(key) <= end:
                    day = period_of(date.fromisoformat(key), granularity)
                    expiring[day] = expiring.get(day, 0) + int(n)
        net: dict[date, int] = {}
        for at, kind, total, n in rows:
            when = (at if isinstance(at, datetime)
                    else datetime.fromisoformat(str(at)).replace(tzinfo=UTC))
            period = period_of(when.astimezone(tz).date(), granularity)
            cell = periods.setdefault(period, dict.fromkeys(COLUMNS[1:], 0))
            figure = _FIGURE.get(kind, "earned" if int(total) > 0 else "redeemed")
            cell[figure] += abs(int(total))
            cell["entries"] += int(n)
            net[period] = net.get(period, 0) + int(total)
        for day in expiring:
            periods.setdefault(day, dict.fromkeys(COLUMNS[1:], 0))
    outstanding = now_total - since
    for day in sorted(periods, reverse=True):
        cell = periods[day]
        cell["net_spent"] = cell["redeemed"] - cell["refunded"]
        cell["expiring"] = expiring.get(day, 0)
        cell["outstanding"] = outstanding
        outstanding -= net.get(day, 0)
    totals = {c: sum(cell[c] for cell in periods.values()) for c in COLUMNS[1:]
              if c != "outstanding"}
    totals["outstanding"] = now_total - since
    items: list[dict[str, Any]] = [{"period": p, **periods[p]} for p in sorted(periods)]
    return {"city": scope.city, "from_": start, "to": end, "granularity": granularity,
            "items": items, "totals": totals}


def points_csv(document: dict[str, Any]) -> Iterator[str]:
    yield _csv_line(COLUMNS)
    for item in document["items"]:
        yield _csv_line([item["period"].isoformat(), *(item[c] for c in COLUMNS[1:])])
