"""Posts of several users applied as one chunk (group commit, ingest/intake.py).

The property that matters: a group of concurrent posts from different users, applied in
one transaction, gives exactly what the same posts applied one after another give:
statuses, grams, points, explanations, accounts, which users exist and with which city,
and which accounts each device was seen with (the device rule reads it). Then the same
through real threads: posts queued behind a running transaction are applied together,
each answered its own result.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from carbon_credits.antifraud.ratelimit import check_for, parse_rate_limits
from carbon_credits.errors import ServiceError
from carbon_credits.ingest import events
from carbon_credits.ingest.decide import Posted
from carbon_credits.ledger import verification
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import load_event
from carbon_credits.storage.models import Account, DeviceAccount, Event, User
from carbon_credits.tokens import Principal
from tests import factories

STATIONS = ["luohu", "guomao", "laojie", "shaoniangong", "fumin", "atlantis"]
""""atlantis" is no station, and no city: such a trip is refused inside the transaction
(422), and a new user whose token has no city must not take it."""
WAIT_BOUND_S = 120
"""A bound for "never", not a speed: on a busy machine a thread may wait seconds for a CPU."""

USERS = 6
"""More than the device rule's three accounts, so a group can put a fourth on a device."""
post = st.fixed_dictionaries({
    "user": st.integers(min_value=0, max_value=USERS - 1),
    "device": st.sampled_from([None, "d0", "d0", "d0", "d1"]),
    "city": st.sampled_from(["shenzhen", "shenzhen", "shenzhen", "atlantis"]),
    # each post's token: a new user's city is that of the token of its first stored post
    # (a city claim no other rule reads), else the event's
    "token_city": st.sampled_from(["shenzhen", None, "zhuhai"]),
    "minutes_ago": st.integers(min_value=60, max_value=2 * 24 * 60),
    "minutes": st.integers(min_value=2, max_value=95),
    "entry": st.sampled_from(STATIONS[:-1]),
    "exit": st.sampled_from(STATIONS),
    "repeat": st.integers(min_value=0, max_value=7),
})


def _body(p: dict[str, Any], n: int) -> dict[str, Any]:
    start = factories.NOW - timedelta(minutes=p["minutes_ago"])
    return factories.metro(
        event_id=f"g{n if p['repeat'] else max(0, n - 1)}", city=p["city"],
        entry_station_id=p["entry"],
        exit_station_id=p["exit"], start=start,
        ended_at=(start + timedelta(minutes=p["minutes"])).isoformat())


def _as(user: Principal, p: dict[str, Any]) -> Principal:
    """The user with the city claim of this post's token."""
    return Principal(user.sub, user.role, p["token_city"])


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "created_at"}


def _outcome(x: Any) -> tuple[int, Any]:
    if isinstance(x, ServiceError):
        return x.status, x.code
    return (201 if x.created else 200), _comparable(x.event)


def _state(rt: Runtime, principals: list[Principal], devices: dict[str, str]
           ) -> tuple[list[Any], set[tuple[str, int]]]:
    """Per user (by index): None if no user row, else its city and account figures; and
    the (device, user index) pairs recorded."""
    ids = [p.sub for p in principals]
    with rt.db.transaction() as session:
        users = {u.id: u.city for u in session.scalars(select(User).where(User.id.in_(ids)))}
        accounts = {a.user_id: (a.balance_points, a.lifetime_points, a.lifetime_ug,
                                a.carry_ug, a.entry_count)
                    for a in session.scalars(select(Account).where(Account.user_id.in_(ids)))}
        links = set(session.execute(select(DeviceAccount.device_id, DeviceAccount.user_id)
                                    .where(DeviceAccount.user_id.in_(ids))))
    names = {real: name for name, real in devices.items()}
    return ([None if i not in users else (users[i], accounts.get(i)) for i in ids],
            {(names[device], ids.index(user)) for device, user in links})


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(posts=st.lists(post, min_size=1, max_size=24),
       group=st.integers(min_value=1, max_value=24))
def test_a_group_of_several_users_decides_exactly_as_their_posts_one_by_one(
        rt: Runtime, posts: list[dict[str, Any]], group: int) -> None:
    run = uuid.uuid4().hex[:10]
    one_by_one = [Principal(f"s{i}-{run}", "user", None) for i in range(USERS)]
    grouped = [Principal(f"g{i}-{run}", "user", None) for i in range(USERS)]
    seq_devices = {d: f"s{d}-{run}" for d in ("d0", "d1")}
    grp_devices = {d: f"g{d}-{run}" for d in ("d0", "d1")}
    bodies = [_body(p, n) for n, p in enumerate(posts)]

    singles = []
    for p, body in zip(posts, bodies, strict=True):
        device = seq_devices[p["device"]] if p["device"] else None
        try:
            singles.append(_outcome(events.ingest(rt, _as(one_by_one[p["user"]], p),
                                                  load_event(body), device)))
        except ServiceError as exc:
            singles.append(_outcome(exc))

    chunk: list[Posted] = []
    refused: dict[int, ServiceError] = {}
    for n, (p, body) in enumerate(zip(posts, bodies, strict=True)):
        device = grp_devices[p["device"]] if p["device"] else None
        try:
            chunk.append(events.prepare(rt, _as(grouped[p["user"]], p), load_event(body),
                                        device))
        except ServiceError as exc:  # refused before any transaction, as a single post is
            refused[n] = exc
    applied = []
    for start in range(0, len(chunk), group):
        applied.extend(events.apply_chunk(rt, chunk[start:start + group]))
    together, rest = [], iter(applied)
    for n in range(len(posts)):
        together.append(_outcome(refused[n] if n in refused else next(rest)))

    assert together == singles
    assert _state(rt, grouped, grp_devices) == _state(rt, one_by_one, seq_devices)


def test_posts_queued_behind_a_transaction_are_applied_together_each_with_its_answer(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven concurrent posts: the first holds the transaction while six more queue; those
    six (four users: two posts of one user, a new user whose only trip is refused, three
    on one device) are applied as one chunk, and each gets its own answer."""
    run = uuid.uuid4().hex[:10]
    users = [Principal(f"q{i}-{run}", "user", "shenzhen") for i in range(5)]
    device = f"dev-{run}"
    start = factories.today_at(7)
    posts = [
        (users[0], factories.metro(event_id="a", start=start), None),
        (users[1], factories.metro(event_id="a", start=start), device),
        (users[1], factories.metro(event_id="b", start=start + timedelta(hours=1)), device),
        (users[2], factories.metro(event_id="a", start=start), device),
        (users[3], factories.metro(event_id="a", exit_station_id="atlantis", start=start),
         device),
        (users[4], factories.metro(event_id="a", start=start), device),
        (users[1], factories.metro(event_id="a", start=start), device),  # a replay
    ]

    def send(principal: Principal, body: dict[str, Any], dev: str | None) -> Any:
        try:
            return events.ingest(rt, principal, load_event(body), dev)
        except ServiceError as exc:
            return exc

    calls, answers = _behind_a_held_post(rt, monkeypatch, send, posts)

    assert calls == [1, 6]
    assert [_outcome(a)[0] for a in answers] == [201, 201, 201, 201, 422, 201, 200]
    assert _outcome(answers[6])[1] == _comparable(answers[1].event)
    # the device saw users 1, 2 and then 4 (user 3 was refused): the third account on it
    # is still within the rule (more than three accounts are held)
    assert [a.event["status"] for a in answers if not isinstance(a, ServiceError)] == [
        "credited"] * 6
    with rt.db.transaction() as session:
        on_device = set(session.scalars(select(DeviceAccount.user_id)
                                        .where(DeviceAccount.device_id == device)))
        refused_user = session.get(User, users[3].sub)
        stored = session.scalars(select(Event.user_id).where(
            Event.user_id.in_([u.sub for u in users]))).all()
    assert on_device == {users[1].sub, users[2].sub, users[4].sub}
    assert refused_user is None
    assert sorted(stored) == sorted([users[0].sub, users[1].sub, users[1].sub, users[2].sub,
                                     users[4].sub])
    assert list(verification.verify(rt.db, user_ids=[u.sub for u in users])) == []


def _behind_a_held_post(rt: Runtime, monkeypatch: pytest.MonkeyPatch, send: Any,
                        posts: list[Any]) -> tuple[list[int], list[Any]]:
    """``send(*posts[0])`` in a thread, its transaction held until every other post is
    sent, each in a thread of its own and queued behind it in order; the sizes of the
    chunks applied, and each post's answer."""
    calls: list[int] = []
    gate = threading.Event()
    real = events.apply_chunk

    def held(rt_: Runtime, chunk: list[Posted]) -> Any:
        calls.append(len(chunk))
        if len(calls) == 1:
            assert gate.wait(WAIT_BOUND_S)
        return real(rt_, chunk)

    monkeypatch.setattr(events, "apply_chunk", held)
    with ThreadPoolExecutor(len(posts)) as pool:
        futures = [pool.submit(send, *posts[0])]
        _wait_for(lambda: calls == [1])
        for n, p in enumerate(posts[1:], start=1):
            futures.append(pool.submit(send, *p))
            _wait_for(lambda n=n: len(rt.posts._queue) == n)
        gate.set()
        return calls, [f.result(WAIT_BOUND_S) for f in futures]


def _wait_for(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_BOUND_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_a_post_that_waits_too_long_for_a_lock_is_a_503_and_its_retry_applies(
        make_app: Any, user_id: str) -> None:
    """A threaded worker's posts queue behind one transaction, so no transaction may wait
    for a lock forever: past ``DB_LOCK_TIMEOUT_MS`` (here 300 ms) the post is a 503 with
    Retry-After, and once the lock is free the same post applies. PostgreSQL: another
    transaction holds the account row; SQLite: another holds the database's write lock."""
    app = make_app(db_lock_timeout_ms=300)
    rt: Runtime = app.extensions["carbon_credits"]
    client = app.test_client()
    codec = rt.codec
    auth = {"Authorization": f"Bearer {codec.encode(user_id, 'user', 'shenzhen', 600)}"}
    first = factories.metro(start=factories.today_at(6))
    assert client.post("/v1/events", json=first, headers=auth).status_code == 201
    body = factories.metro(start=factories.today_at(8))
    def timed_post() -> tuple[Any, float]:
        began = time.monotonic()
        return client.post("/v1/events", json=body, headers=auth), time.monotonic() - began

    with ThreadPoolExecutor(1) as pool, rt.db.transaction() as holder:
        # SQLite: the holder's BEGIN IMMEDIATE takes the write lock
        holder.execute(select(Account).where(Account.user_id == user_id).with_for_update())
        future = pool.submit(timed_post)
        # The holder keeps the lock until the post is answered: a post that waited for the
        # lock to be free would never be, and only this bound (not a speed) ends the test.
        try:
            r, waited = future.result(timeout=WAIT_BOUND_S)
        except FuturesTimeout:  # still waiting: the holder lets go as the block ends
            pytest.fail(f"the post waited for the lock for more than {WAIT_BOUND_S} s")
    assert r.status_code == 503 and r.headers["Retry-After"], r.json
    assert r.json["error"]["code"] == "database_unavailable"
    assert waited > 0.25, waited  # it did wait for the lock, the timeout's length
    again = client.post("/v1/events", json=body, headers=auth)
    assert again.status_code == 201, again.json


def test_a_new_users_city_is_the_token_city_of_its_first_stored_post(rt: Runtime) -> None:
    """Two posts of one new user in one group, with tokens claiming different cities: the
    first is refused, so the user is the second post's (as one by one, where the refused
    post's transaction leaves nothing); a token without a city gives the event's city."""
    run = uuid.uuid4().hex[:10]
    refused = factories.metro(event_id="a", exit_station_id="atlantis")
    stored = factories.metro(event_id="b")
    chunk = [events.prepare(rt, Principal(f"c1-{run}", "user", "zhuhai"), load_event(refused),
                            None),
             events.prepare(rt, Principal(f"c1-{run}", "user", "huizhou"),
                            load_event(stored), None),
             events.prepare(rt, Principal(f"c2-{run}", "user", None), load_event(stored),
                            None)]
    assert [_outcome(x)[0] for x in events.apply_chunk(rt, chunk)] == [422, 201, 201]
    with rt.db.transaction() as session:
        assert session.get_one(User, f"c1-{run}").city == "huizhou"
        assert session.get_one(User, f"c2-{run}").city == "shenzhen"


def test_a_groups_rate_limits_are_one_limiter_call_and_the_post_over_is_refused(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five concurrent posts, the limit 2 per user: the first holds the transaction while
    four queue (user a's second and third, b's and c's). The four are checked in one
    limiter call, in order: a's third is refused with a 429 and never applied, the others
    are applied together."""
    run = uuid.uuid4().hex[:10]
    a, b, c = (Principal(f"rl{i}-{run}", "user", "shenzhen") for i in range(3))
    rate = parse_rate_limits("events:user=2/60").for_route("events")["user"]
    asked: list[int] = []
    real_check_many = rt.limiter.check_many

    def check_many(requests: Any) -> Any:
        asked.append(len(requests))
        return real_check_many(requests)

    monkeypatch.setattr(rt.limiter, "check_many", check_many)
    start = factories.today_at(7)
    posts = [(a, factories.metro(event_id="1", start=start)),
             (a, factories.metro(event_id="2", start=start + timedelta(hours=1))),
             (b, factories.metro(event_id="1", start=start)),
             (a, factories.metro(event_id="3", start=start + timedelta(hours=2))),
             (c, factories.metro(event_id="1", start=start))]

    def send(principal: Principal, body: dict[str, Any]) -> Any:
        try:
            return events.ingest_prepared(
                rt, events.prepare(rt, principal, load_event(body)),
                [check_for("events", "user", principal.sub, rate)])
        except ServiceError as exc:
            return exc

    calls, answers = _behind_a_held_post(rt, monkeypatch, send, posts)

    assert asked == [1, 4] and calls == [1, 3]
    assert [_outcome(x)[0] for x in answers] == [201, 201, 201, 429, 201]
    assert answers[3].headers["Retry-After"] and answers[3].code == "rate_limited"
    assert [x.limit.headers()["RateLimit-Remaining"] for n, x in enumerate(answers)
            if n != 3] == ["1", "0", "1", "1"]
    with rt.db.transaction() as session:
        stored = session.scalars(select(Event.event_id).where(Event.user_id == a.sub)).all()
    assert sorted(stored) == ["1", "2"]
