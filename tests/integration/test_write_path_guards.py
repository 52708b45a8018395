"""Guards of the ingest write path that only a real PostgreSQL can show.

A deadlock met by a post is tried again (ingest/retry.py, rule 1): checked with fakes in
tests/unit/test_retry.py, and here with a real deadlock, so that what the server raises
(SQLSTATE 40P01, through the driver, ``sql.driver_errors`` and SQLAlchemy) is what the
retry layer recognises. Without that retry the post is a 503, found by mutation testing
(docs/MUTATION.md). SQLite locks the whole database for a writer, so it has no deadlocks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from flask import Flask

from carbon_credits.ledger import caps
from carbon_credits.runtime import Runtime
from tests import factories

BOUND_S = 60
"""How long any step may wait for the other side (generous: a wait that reaches it means
the interleaving did not happen, and the test fails saying so)."""


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition``, polled, up to ``BOUND_S``."""
    deadline = time.monotonic() + BOUND_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {BOUND_S} s for {what}")
        time.sleep(0.02)


def test_a_post_that_meets_a_real_deadlock_is_tried_again_and_applied(
        make_app: Callable[..., Flask], auth: dict[str, str], user_id: str,
        is_postgres: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The post holds its account lock and is about to write its daily usage row; another
    transaction (the test's) holds that row and waits for the account. The post's write
    closes the cycle, so the server aborts the post's transaction (the other one waits
    with a deadlock_timeout of an hour, so the post's check finds the cycle first). The
    retry, once the other transaction has ended, applies the post: a 201, credited once."""
    if not is_postgres:
        pytest.skip("SQLite has one writer at a time: no deadlock")
    # The service's lock_timeout (5 s by default) would race both waits of the post: its
    # write's wait, which only the deadlock check (deadlock_timeout, 1 s) is to end, and
    # its retry's wait for the account while the test's thread has yet to roll back. On a
    # loaded machine either could end first by timeout, a 503. With the bound raised,
    # each wait ends only by what the test does or checks.
    app = make_app(db_lock_timeout_ms=BOUND_S * 1000)
    rt: Runtime = app.extensions["carbon_credits"]
    client = app.test_client()
    first = factories.metro(start=factories.today_at(6))
    r = client.post("/v1/events", json=first, headers=auth)
    assert r.status_code == 201, r.json  # the account and the day's metro usage row exist
    points_first = r.json["points"]

    holding, go = threading.Event(), threading.Event()
    decided: list[int] = []
    real_decide = caps.decide

    def decide_then_wait(*args: Any, **kwargs: Any) -> Any:
        # Called with the post's account locked, before any of its writes.
        decided.append(1)
        if len(decided) == 1:
            holding.set()
            assert go.wait(BOUND_S), "the test never let the post go on"
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(caps, "decide", decide_then_wait)
    dsn = rt.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    second = factories.metro(start=factories.today_at(9))
    with psycopg.connect(dsn) as other, psycopg.connect(dsn, autocommit=True) as watcher, \
            ThreadPoolExecutor(2) as pool:
        # Only the post's backend may find the deadlock, so only its transaction is aborted.
        other.execute("SET deadlock_timeout = '1h'")
        other.execute("SELECT 1 FROM daily_usage WHERE user_id = %s FOR UPDATE", (user_id,))
        posted = pool.submit(client.post, "/v1/events", json=second, headers=auth)
        assert holding.wait(BOUND_S), "the post never reached its decision"

        def take_account() -> None:
            other.execute("SELECT 1 FROM accounts WHERE user_id = %s FOR UPDATE", (user_id,))
            other.rollback()  # the account and the usage row are free again

        took = pool.submit(take_account)
        pid = other.info.backend_pid
        _until(lambda: bool(watcher.execute("SELECT cardinality(pg_blocking_pids(%s))",
                                            (pid,)).fetchone()[0]),  # type: ignore[index]
               "the other transaction to wait for the post's account lock")
        go.set()  # the post writes its usage row: the cycle is closed
        r = posted.result(timeout=BOUND_S)
        took.result(timeout=BOUND_S)  # raises if the test's transaction was the victim
    assert r.status_code == 201, r.json
    assert len(decided) == 2  # the aborted attempt, then the retry
    account = client.get("/v1/me/account", headers=auth).json
    assert account["balance"] == points_first + r.json["points"]
