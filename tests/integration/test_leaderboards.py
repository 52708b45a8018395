"""Leaderboards: live boards equal boards rebuilt from the ledger, on a real Redis and in
the in-process stand-in; reversals and erasure take people off; privacy; Redis failures.

Each test works in a city of its own (``seed_city``), so other tests' events never enter
its boards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_credits.leaderboards import keys, rebuild, service
from carbon_credits.leaderboards.periods import period_of
from carbon_credits.leaderboards.store import Credit, MemoryStore, RedisStore
from carbon_credits.ledger import reversals
from carbon_credits.runtime import Runtime
from carbon_credits.teams import service as teams
from carbon_credits.tokens import Principal
from tests import factories
from tests.conftest import LENIENT
from tests.integration.test_rollups import at, metro, post, seed_city

ADMIN = Principal("lb-admin", "admin", None)
TODAY = factories.NOW.date()
STATIONS = ["luohu", "guomao", "laojie", "huaxin", "shaoniangong", "fumin", "chegongmiao"]


@pytest.fixture(params=["redis", "memory"])
def board_rt(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Runtime:
    """A lenient app (random trips overlap) whose boards are in the suite's private
    redis-server, or in process."""
    url = request.getfixturevalue("suite_redis_url") if request.param == "redis" else None
    runtime: Runtime = make_app(redis_url=url, plausibility=LENIENT).extensions[
        "carbon_credits"]
    assert isinstance(runtime.leaderboards, RedisStore if url else MemoryStore)
    return runtime


Boards = tuple[dict[str, dict[str, int]], set[str], dict[str, str]]


def live(rt: Runtime, city: str) -> Boards:
    hidden, members = rt.leaderboards.marks(city)
    return rt.leaderboards.snapshot(city), hidden, members


def rebuilt(rt: Runtime, city: str) -> Boards:
    boards, _expiries, hidden, members = rebuild.compute(rt, city)
    return boards, hidden, {u: str(t) for u, t in members.items()}


OPS = st.lists(st.one_of(
    st.tuples(st.just("post"), st.integers(0, 2), st.integers(0, 29),
              st.sampled_from(STATIONS), st.sampled_from(STATIONS)),
    st.tuples(st.just("reverse"), st.integers(0, 50)),
    st.tuples(st.just("hide"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("team"), st.integers(0, 2), st.integers(0, 2)),
), min_size=1, max_size=16)


def test_boards_rebuilt_from_the_ledger_equal_the_live_ones(board_rt: Runtime) -> None:
    """The issue's property: over random histories of trips on random days of the backfill
    window (days, weeks and months), reversals, privacy choices and team moves, the live
    boards (and their hidden marks and team map) equal
    those the rebuild computes from the ledger; and after the rebuild swaps them in, they
    are unchanged."""
    rt = board_rt
    city = seed_city(rt, "lb")
    codes = [teams.create_team(rt, ADMIN, city, f"team {i}", "company", "test")["invite_code"]
             for i in range(2)]
    minute = iter(range(10**6))
    seen: list[int] = []

    @settings(max_examples=30, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(ops=OPS)
    def history(ops: list[tuple[Any, ...]]) -> None:
        users = [f"lb-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        credited: list[tuple[str, str]] = []
        for op in ops:
            if op[0] == "post":
                _, who, back, a, b = op
                m = next(minute)
                start = at(TODAY - timedelta(days=back), 6) + timedelta(minutes=m % 900)
                answer = post(rt, city, users[who], metro(
                    start.date(), start.hour, start.minute, entry_station_id=a,
                    exit_station_id=b))
                if answer["grams"] > 0:
                    credited.append((users[who], answer["event_id"]))
            elif op[0] == "reverse" and credited:
                user, event_id = credited.pop(op[1] % len(credited))
                reversals.reverse_event(rt, ADMIN, user, event_id, "fraud found later")
            elif op[0] == "hide":
                service.set_privacy(rt, Principal(users[op[1]], "user", city), op[2])
            elif op[0] == "team":  # leave (0) or join team 1 or 2
                who = Principal(users[op[1]], "user", city)
                mine = [m for m in teams.my_teams(rt, who) if m["city"] == city]
                if mine:
                    teams.leave(rt, who, city)
                if op[2]:
                    teams.join(rt, who, codes[op[2] - 1])
        before = live(rt, city)
        assert before == rebuilt(rt, city)
        seen.append(len(before[0]))
        rebuild.rebuild(rt, city)
        assert live(rt, city) == before

    history()
    assert max(seen) > 0  # the examples did put people on boards


def test_a_reversal_takes_the_grams_off_and_the_last_one_the_person(board_rt: Runtime
                                                                     ) -> None:
    rt = board_rt
    city = seed_city(rt, "lb")
    rider = f"lb-{uuid.uuid4().hex[:8]}"
    first = post(rt, city, rider, metro(TODAY, 7))
    second = post(rt, city, rider, metro(TODAY, 18, entry_station_id="shaoniangong",
                                         exit_station_id="luohu"))
    both = service.rank_of(rt, rider, city, "day")
    # Shown grams floor the summed micrograms: at least the sum of the events' grams.
    assert both is not None and (both["rank"], both["of"]) == (1, 1)
    assert first["grams"] + second["grams"] <= both["grams"] <= (
        first["grams"] + second["grams"] + 1)
    reversals.reverse_event(rt, ADMIN, rider, first["event_id"], "fraud")
    one = service.rank_of(rt, rider, city, "week")
    assert one is not None and second["grams"] <= one["grams"] <= second["grams"] + 1
    reversals.reverse_event(rt, ADMIN, rider, second["event_id"], "fraud")
    for period in ("day", "week", "month", "all"):
        assert service.rank_of(rt, rider, city, period) is None
    assert rt.leaderboards.snapshot(city) == {}


def test_remove_user_takes_a_person_off_every_board(board_rt: Runtime) -> None:
    rt = board_rt
    city = seed_city(rt, "lb")
    riders = [f"lb-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for i, rider in enumerate(riders):
        post(rt, city, rider, metro(TODAY, 7 + i))
    service.remove_user(rt, riders[0])
    boards = rt.leaderboards.snapshot(city)
    assert boards and all(set(b) == {riders[1]} for b in boards.values())
    kept = service.rank_of(rt, riders[1], city)
    assert kept is not None and (kept["rank"], kept["of"]) == (1, 1)
    assert service.rank_of(rt, riders[0], city) is None


def test_district_boards_follow_the_boarding_station(board_rt: Runtime) -> None:
    rt = board_rt
    city = seed_city(rt, "lb")
    rider = f"lb-{uuid.uuid4().hex[:8]}"
    post(rt, city, rider, metro(TODAY, 7))  # luohu: Luohu district in the demo network
    boards = rt.leaderboards.snapshot(city)
    label = period_of("week", TODAY).label
    assert keys.board(city, keys.city_scope(), label) in boards
    districts = [k for k in boards if ":district:" in k and k.endswith(label)]
    assert len(districts) == 1


def test_a_redis_outage_never_fails_a_credit_and_the_rebuild_repairs(
        make_app: Callable[..., Flask], tmp_path: Any) -> None:
    """Redis unreachable: the post is credited (the board update is logged and dropped),
    a read is a 503 with Retry-After; the rebuild command, once Redis is back, restores
    the boards."""
    from tests import redis_servers
    with redis_servers.standalone(tmp_path) as server:
        app = make_app(redis_url=server.url)
        rt: Runtime = app.extensions["carbon_credits"]
        city = seed_city(rt, "lb")
        rider = f"lb-{uuid.uuid4().hex[:8]}"
        post(rt, city, rider, metro(TODAY, 7))
        server.stop()
        late = post(rt, city, rider, metro(TODAY, 18, entry_station_id="shaoniangong",
                                           exit_station_id="luohu"))
        assert late["status"] == "credited" and late["grams"] > 0
        token = rt.codec.encode(rider, "user", city, 600)
        answer = app.test_client().get("/v1/leaderboards/city?period=day",
                                       headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
        assert answer.json["error"]["code"] == "leaderboards_unavailable"
        server.start()
        assert rt.leaderboards.snapshot(city) == {}  # the restart lost what it had
        assert app.test_cli_runner().invoke(args=["rebuild-leaderboards", "--city", city]
                                            ).exit_code == 0
        boards, _e, _h, _t = rebuild.compute(rt, city)
        assert rt.leaderboards.snapshot(city) == boards
        assert service.rank_of(rt, rider, city, "day") is not None


def test_every_operation_of_a_city_runs_on_a_redis_cluster(tmp_path: Any) -> None:
    """All of a city's keys share its hash tag: each script call is in one slot, so the
    store works on Redis Cluster (the rate limiter's deployment) given any node's URL."""
    import redis

    from tests import redis_servers
    with redis_servers.cluster(tmp_path) as cluster:
        store = RedisStore(redis.Redis.from_url(cluster.url))
        try:
            _every_operation(store)
        finally:
            store.close()


def _every_operation(store: RedisStore) -> None:
    day = (("d1", 0), ("all", 0))
    for city in ("shenzhen", "beijing", "a}b{c"):
        store.credit(city, [Credit("u1", 5, "futian", day), Credit("u2", 3, None, day),
                            Credit("u3", 4, None, day, hidden=True)])
        store.set_team(city, "u2", 7, day)
        store.credit(city, [Credit("u2", 2, None, day), Credit("u1", -5, "futian", day)])
        standing = store.standing(city, keys.board(city, "city", "all"), 10, "u2", True)
        assert [(r.user_id, r.ug, r.rank) for r in standing.top] == [("u2", 5, 1)]
        assert standing.me is not None and standing.size == 2
        assert store.scores(city, keys.board(city, "team:7", "d1"), ["u2", "u1"]) == [
            ("u2", 5, False), ("u1", None, False)]
        before = store.snapshot(city)
        store.replace(city, before, {}, {"u3"}, {"u2": 7})
        assert store.snapshot(city) == before
        store.remove_user(city, "u2")
        assert all("u2" not in board for board in store.snapshot(city).values())
