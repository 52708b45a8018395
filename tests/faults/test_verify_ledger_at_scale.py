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

from carbon_credits import create_app
from carbon_credits.config import Config
from carbon_credits.services import verification
from carbon_credits.services.setup import init_db
from carbon_credits.services.verification import Report, verify
from tests import factories
from tests.conftest import LENIENT, _fresh_postgres, pinned_clock

ENTRIES = (500, 600)
"""Entries of two accounts: 1,100 in all, the first account ending inside the first chunk."""


@pytest.fixture
def big_ledger(make_config: Callable[..., Config], tmp_path: Path,
               database_url: str) -> Iterator[Flask]:
    """An app on a database of its own holding 1,100 credited events of two users."""
    drop: Callable[[], None] | None = None
    if database_url.startswith("postgresql"):
        url, drop = _fresh_postgres(database_url)
    else:
        url = f"sqlite:///{tmp_path / 'big.sqlite3'}"
    app = create_app(make_config(database_url=url, plausibility=LENIENT,
                                 daily_caps_g={"total": Decimal(10**9)}))
    rt = app.extensions["carbon_credits"]
    init_db(rt.db, "shenzhen")
    rt.clock = pinned_clock
    client = app.test_client()
    for user, count in zip(("big-a", "big-b"), ENTRIES, strict=True):
        headers = {"Authorization": f"Bearer {rt.codec.encode(user, 'user', 'shenzhen', 600)}"}
        start = factories.today_at(6)
        items = [factories.metro(start=start + timedelta(seconds=i)) for i in range(count)]
        for chunk in (items[:500], items[500:]):
            if chunk:
                r = client.post("/v1/events/batch", json={"events": chunk}, headers=headers)
                assert r.status_code == 200
                assert {x["status"] for x in r.json["results"]} == {201}
    yield app
    rt.db.dispose()
    if drop is not None:
        drop()


@pytest.mark.parametrize("accounts_per_read", [1, 500])
def test_verify_ledger_checks_more_than_one_chunk_of_entries(
        big_ledger: Flask, monkeypatch: pytest.MonkeyPatch, accounts_per_read: int) -> None:
    """BUG-4, fixed: verify read accounts in batches, each batch fully read before the session
    drops its objects; checked with one account per batch and with both in one."""
    monkeypatch.setattr(verification, "ACCOUNTS_PER_READ", accounts_per_read)
    report = Report()
    problems = list(verify(big_ledger.extensions["carbon_credits"].db, report))
    assert problems == []
    assert report.entries == sum(ENTRIES)
    assert report.accounts >= len(ENTRIES)
