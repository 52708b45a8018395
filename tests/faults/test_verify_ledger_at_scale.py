"""verify-ledger over more than one fetch chunk of ledger entries (found by the fault run).

BUG-4, found by the fault run: its ledger (about 3,000 entries over 42 accounts) made
`flask --app app verify-ledger` crash instead of checking it. verify streamed the entries
with ``yield_per(1000)`` and called ``session.expunge_all()`` after each account; the next
chunk then landed in an identity map that expunge_all had discarded, and SQLAlchemy raised
InvalidRequestError. Any ledger with more than 1,000 entries and an account boundary inside
the first 1,000 was enough. verify now reads accounts in batches, each fully read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask

from carbon_credits.config import Config
from carbon_credits.ledger import verification
from carbon_credits.ledger.verification import Report, verify
from tests import factories
from tests.conftest import LENIENT, app_on_own_database

ENTRIES = (500, 600)
"""Entries of two accounts: 1,100 in all, the first account ending inside the first chunk."""


@pytest.fixture
def big_ledger(make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Flask]:
    """An app on a database of its own holding 1,100 credited events of two users."""
    with app_on_own_database(make_config, tmp_path, plausibility=LENIENT,
                             daily_caps_g={"total": Decimal(10**9)}) as app:
        rt = app.extensions["carbon_credits"]
        client = app.test_client()
        for user, count in zip(("big-a", "big-b"), ENTRIES, strict=True):
            token = rt.codec.encode(user, "user", "shenzhen", 600)
            start = factories.today_at(6)
            items = [factories.metro(start=start + timedelta(seconds=i)) for i in range(count)]
            for chunk in (items[:500], items[500:]):
                if chunk:
                    r = client.post("/v1/events/batch", json={"events": chunk},
                                    headers={"Authorization": f"Bearer {token}"})
                    assert r.status_code == 200
                    assert {x["status"] for x in r.json["results"]} == {201}
        yield app


@pytest.mark.parametrize("entries_per_read", [7, 500, 5000])
def test_verify_ledger_checks_more_than_one_chunk_of_entries(
        big_ledger: Flask, monkeypatch: pytest.MonkeyPatch, entries_per_read: int) -> None:
    """BUG-4, fixed: verify reads entries in pages (keyset over (user_id, seq)), each page
    fully read before the session drops its objects; checked with pages that split an
    account (7, 500 entries) and with one page for both accounts."""
    monkeypatch.setattr(verification, "ENTRIES_PER_READ", entries_per_read)
    report = Report()
    problems = list(verify(big_ledger.extensions["carbon_credits"].db, report))
    assert problems == []
    assert report.entries == sum(ENTRIES)
    assert report.accounts >= len(ENTRIES)
