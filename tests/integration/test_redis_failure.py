"""Redis failure policy: Redis stopped mid-run, then back.

Policy (carbon_credits.antifraud.ratelimit): when Redis fails, each request is limited by the
per-process limiter with the same rates, the failure is counted and logged once, requests
never fail because of it, and Redis is used again as soon as it answers. Database caps and
idempotency never depend on Redis. These tests use a redis-server of their own on a spare
port (the shared 6379 is never touched), stopped with SIGTERM (no persistence: its data is
gone) and started again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from carbon_credits.antifraud.ratelimit import RedisLimiter, parse_rate_limits
from carbon_credits.storage.models import Account, Event, LedgerEntry
from tests import factories, redis_servers
from tests.integration.test_ratelimit import LENIENT, new_user

RATELIMIT_LOGGER = "carbon_credits.antifraud.ratelimit"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[redis_servers.RedisServer]:
    with redis_servers.standalone(tmp_path / "redis") as running:
        yield running


@pytest.fixture
def on_server(app: Flask, make_app: Callable[..., Flask], server: redis_servers.RedisServer
              ) -> Callable[[str], Flask]:
    """An app whose limiter is on ``server``; ``app`` first initialises the database."""
    def make(spec: str) -> Flask:
        return make_app(redis_url=server.url, rate_limits=parse_rate_limits(spec),
                        plausibility=LENIENT)
    return make


def limiter_of(app: Flask) -> RedisLimiter:
    limiter = app.extensions["carbon_credits"].limiter
    assert isinstance(limiter, RedisLimiter)
    return limiter


def wait_for_redis(app: Flask, limiter: RedisLimiter, post: Callable[[], Any]) -> None:
    """Post until the limiter has used Redis again: after one retry interval when all is
    well; the bound is only for "never" (a busy machine may take seconds per request)."""
    before = limiter.redis_checks
    deadline = time.monotonic() + 60 * limiter.retry_interval_s + 60
    while limiter.redis_checks == before:
        assert time.monotonic() < deadline, "the limiter never went back to Redis"
        post()
        time.sleep(0.05)


def test_limits_hold_while_redis_is_down_and_resume_in_redis(
        on_server: Callable[[str], Flask], server: redis_servers.RedisServer,
        token: Callable[..., str], caplog: pytest.LogCaptureFixture) -> None:
    app = on_server("events:user=3/30")
    limiter = limiter_of(app)
    client = app.test_client()
    caplog.set_level(logging.INFO, logger=RATELIMIT_LOGGER)

    def post(user: str) -> Any:
        return client.post("/v1/events", json=factories.metro(),
                           headers={"Authorization": f"Bearer {token(user)}"})

    up = new_user()
    assert [post(up).status_code for _ in range(4)] == [201, 201, 201, 429]
    assert limiter.failures == 0 and not limiter.degraded

    server.stop()
    down = new_user()
    statuses = [post(down).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]  # still limited: by this process
    for _ in range(20):  # a client hammering during the outage: 429s, never a 5xx
        assert post(down).status_code == 429
    assert limiter.failures >= 1 and limiter.degraded
    assert limiter.fallback_checks >= 24

    server.start()
    back = new_user()
    wait_for_redis(app, limiter, lambda: post(back))
    assert not limiter.degraded and limiter.recoveries == 1
    fresh = new_user()
    assert [post(fresh).status_code for _ in range(4)] == [201, 201, 201, 429]
    with server.client() as r:
        assert r.exists(f"rl:{{user:{fresh}}}:events")  # decided in Redis again

    messages = [rec.getMessage() for rec in caplog.records if rec.name == RATELIMIT_LOGGER]
    assert sum("Redis unavailable" in m for m in messages) == 1  # once per state change
    assert sum("Redis answers again" in m for m in messages) == 1


USERS = 8
EVENTS = 1000
STOP_AFTER = 300
START_AFTER = 700


def plan(users: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """1,000 events with unique event_ids over ``users``: metro trips and growing step counts
    (more than the daily caps allow, so caps are exercised)."""
    planned: list[tuple[str, dict[str, Any]]] = []
    steps_so_far = Counter[str]()
    for i in range(EVENTS):
        user = users[i % len(users)]
        if i % 3 == 0:
            steps_so_far[user] += 700
            planned.append((user, factories.steps(steps_so_far[user])))
        else:
            minute = (i // len(users)) % 600
            start = factories.today_at(6) + timedelta(minutes=minute)
            planned.append((user, factories.metro(start=start)))
    return planned


def test_1000_events_with_redis_stopped_midway(
        on_server: Callable[[str], Flask], server: redis_servers.RedisServer,
        token: Callable[..., str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=RATELIMIT_LOGGER)
    # A per-user limit the run stays under: every refusal would be a lost-looking event, and
    # the point here is what the client was told versus the ledger, not the 429s.
    app = on_server("events:user=1000/60,device=2000/60,ip=20000/60")
    rt = app.extensions["carbon_credits"]
    limiter = limiter_of(app)
    client = app.test_client()
    users = [new_user() for _ in range(USERS)]
    headers = {u: {"Authorization": f"Bearer {token(u)}", "X-Device-Id": f"dev-{u}"}
               for u in users}
    planned = plan(users)

    told: dict[tuple[str, str], dict[str, Any]] = {}
    statuses: Counter[int] = Counter()
    redis_checks_at_restart = 0
    for i, (user, body) in enumerate(planned):
        if i == STOP_AFTER:
            server.stop()
        if i == START_AFTER:
            server.start()
            redis_checks_at_restart = limiter.redis_checks
            # Past the limiter's pause after its last failure: the remaining posts may
            # well take less than that.
            time.sleep(limiter.retry_interval_s)
        r = client.post("/v1/events", json=body, headers=headers[user])
        statuses[r.status_code] += 1
        assert r.status_code < 500, (i, r.status_code, r.json)
        if r.status_code in (200, 201):
            told[(user, body["event_id"])] = r.json
    assert statuses[500] == 0 and sum(statuses.values()) == EVENTS
    assert set(statuses) <= {200, 201}, statuses  # no 429 at these rates, no 503 from Redis
    assert len(told) == EVENTS

    # The limiter saw the outage and used Redis again after the restart.
    assert limiter.failures >= 1
    assert limiter.fallback_checks >= START_AFTER - STOP_AFTER - 1
    assert limiter.redis_checks > redis_checks_at_restart
    assert limiter.recoveries == 1 and not limiter.degraded
    with server.client() as r:
        # Scripts ran on the restarted server (its counts began at the restart). Not its
        # keys: at these rates a key lives one emission interval (3-60 ms), gone by now on
        # a busy machine.
        stats = r.info("commandstats")
        assert sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                   for name in ("evalsha", "eval")) > 0

    # Every retry of every event_id is a replay with the same answer: nothing more credited.
    for user, body in planned:
        again = client.post("/v1/events", json=body, headers=headers[user])
        assert again.status_code == 200, again.json
        first = told[(user, body["event_id"])]
        assert (again.json["status"], again.json["points"], again.json["grams"]) == (
            first["status"], first["points"], first["grams"])

    with rt.db.transaction() as session:
        # What the client was told equals the ledger: one earn per credited event, no other.
        earned = dict(session.execute(
            select(Event.event_id, func.count(LedgerEntry.id))
            .join(LedgerEntry, LedgerEntry.event_pk == Event.id)
            .where(Event.user_id.in_(users), LedgerEntry.kind == "earn")
            .group_by(Event.event_id)).all())
        stored = {event_id: (points, ug) for event_id, points, ug in session.execute(
            select(Event.event_id, Event.points, Event.credited_ug)
            .where(Event.user_id.in_(users))).all()}
        assert len(stored) == EVENTS  # every event stored once, none lost
        for (_user, event_id), result in told.items():
            points, ug = stored[event_id]
            assert points == result["points"]
            assert earned.get(event_id, 0) == (1 if ug > 0 else 0)
        assert max(earned.values()) == 1
        for user in users:
            account = session.get(Account, user)
            assert account is not None
            told_points = sum(res["points"] for (u, _), res in told.items() if u == user)
            ledger_points = session.scalar(select(func.sum(LedgerEntry.points))
                                           .where(LedgerEntry.user_id == user))
            assert account.balance_points == told_points == ledger_points
            # Daily caps (operator policy: 5 kg total, steps 296 g; 1 point per gram).
            assert account.balance_points <= 5000
            steps_g = session.scalar(select(func.sum(Event.credited_ug)).where(
                Event.user_id == user, Event.mode == "steps")) or 0
            assert steps_g <= 296 * 1_000_000
        assert sum(res["status"] == "capped" for res in told.values()) > 0  # caps did bite

    messages = [rec.getMessage() for rec in caplog.records if rec.name == RATELIMIT_LOGGER]
    assert sum("Redis unavailable" in m for m in messages) == 1
    assert sum("Redis answers again" in m for m in messages) == 1
