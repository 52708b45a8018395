"""verify-ledger's checks, account by account, for the reliability suites.

``carbon_credits.services.verification.verify`` streams the whole ledger and crashes past
1,000 entries (BUG-4, tests/faults/test_verify_ledger_at_scale.py); the shared test database
holds more than that by the time a full run reaches these suites. So they run the command's
own per-account routine on the accounts they touched, each read in a query of its own, plus
its last check (a credited event without an earn entry). Same rules, no streaming.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, select
from sqlalchemy.orm import aliased

from carbon_credits.db import Database
from carbon_credits.models import Event, LedgerEntry
from carbon_credits.services import verification
from carbon_credits.services.verification import Problem, Report


def check_accounts(db: Database, user_ids: Iterable[str] | None = None
                   ) -> tuple[list[Problem], Report]:
    """Every broken invariant of the given accounts (all accounts if None), and a report."""
    report = Report()
    problems: list[Problem] = []
    with db.transaction() as session:
        users = sorted(set(user_ids)) if user_ids is not None else list(session.scalars(
            select(LedgerEntry.user_id).distinct().order_by(LedgerEntry.user_id)))
        for user in users:
            rows = session.execute(
                select(LedgerEntry, Event)
                .outerjoin(Event, Event.id == LedgerEntry.event_pk)
                .where(LedgerEntry.user_id == user).order_by(LedgerEntry.seq)).all()
            if rows:
                report.accounts += 1
                problems += verification._account(session, user, [(e, ev) for e, ev in rows],
                                                  report)
        earn = aliased(LedgerEntry)
        for event in session.scalars(
                select(Event).outerjoin(earn, and_(earn.event_pk == Event.id,
                                                   earn.kind == "earn"))
                .where(Event.credited_ug > 0, earn.id.is_(None), Event.user_id.in_(users))):
            problems.append(Problem(f"event {event.id} ({event.user_id}/{event.event_id})",
                                    "credited but has no earn entry"))
    return problems, report
