"""verify-ledger's checks as a (problems, report) pair, for the reliability suites.

The shared test database holds other tests' accounts, so the suites check the accounts they
touched (``user_ids``); the fault suite, on a database of its own, checks all of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from carbon_credits.ledger.verification import Problem, Report, verify
from carbon_credits.storage.db import Database


def check_accounts(db: Database, user_ids: Iterable[str] | None = None
                   ) -> tuple[list[Problem], Report]:
    """Every broken invariant of the given accounts (all accounts if None), and a report."""
    report = Report()
    problems = list(verify(db, report, user_ids))
    return problems, report
