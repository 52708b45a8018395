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
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from carbon_credits.account.screen import carbon_account
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


def team_totals(city: str, boards: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The team-against-team boards as the sums of the team boards (what they must be)."""
    head = keys.prefix(city) + keys.team_scope("")
    totals: dict[str, dict[str, int]] = {}
    for key, board in boards.items():
        if key.startswith(head):
            team, label = key[len(head):].split(":", 1)
            total = totals.setdefault(keys.board(city, keys.teams_scope(), label), {})
            total[team] = total.get(team, 0) + sum(board.values())
    return totals


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
    are unchanged. The team-against-team boards among them: each team's score is the sum
    of its team board, live and rebuilt."""
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
    # Always, besides the random ones: members of a team credited, one of them reversed.
    @example(ops=[("team", 0, 1), ("team", 1, 1), ("post", 0, 0, "luohu", "fumin"),
                  ("post", 1, 3, "shaoniangong", "luohu"), ("reverse", 0)])
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
        assert team_totals(city, before[0]) == {
            k: b for k, b in before[0].items() if k.startswith(teams_prefix)}
        seen.append(len(before[0]))
        seen_teams.append(sum(k.startswith(teams_prefix) for k in before[0]))
        rebuild.rebuild(rt, city)
        assert live(rt, city) == before

    teams_prefix = keys.board(city, keys.teams_scope(), "")
    seen_teams: list[int] = []
    history()
    assert max(seen) > 0  # the examples did put people on boards
    assert max(seen_teams) > 0  # and teams on the team-against-team boards


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
        teams_board = store.team_standing(city, "all", 10, "u2", 1)
        assert [(r.team_id, r.ug, r.rank, r.members) for r in teams_board.top] == [
            ("7", 5, 1, 1)]
        assert teams_board.mine == "7" and teams_board.me == teams_board.top[0]
        store.credit(city, [Credit("u1", 9, "futian", day)])
        placed = store.ranks(city, "u1", ["all"])
        assert (placed.district, placed.in_district["all"]) == ("futian", (1, 9, 1))
        before = store.snapshot(city)
        store.replace(city, [(k, b, 0) for k, b in before.items()], {"u3"}, {"u2": 7})
        assert store.snapshot(city) == before
        assert store.ranks(city, "u1", ["all"]) == placed
        store.remove_user(city, "u2")
        assert all("u2" not in board for board in store.snapshot(city).values())


@pytest.fixture(params=["redis", "memory"])
def k2_rt(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Runtime:
    """``board_rt`` with k = 2 (REPORT_MIN_PARTICIPANTS): a team needs two members with
    grams in a period to be on the team-against-team board."""
    url = request.getfixturevalue("suite_redis_url") if request.param == "redis" else None
    runtime: Runtime = make_app(redis_url=url, plausibility=LENIENT,
                                report_min_participants=2).extensions["carbon_credits"]
    return runtime


def test_teams_rank_by_their_members_totals_and_small_teams_are_not_shown(
        k2_rt: Runtime) -> None:
    rt = k2_rt
    city = seed_city(rt, "lb")
    big, small = (teams.create_team(rt, ADMIN, city, name, "company", "test")
                  for name in ("big", "small"))
    members = [Principal(f"lb-{uuid.uuid4().hex[:8]}", "user", city) for _ in range(4)]
    for who in members[:3]:
        teams.join(rt, who, big["invite_code"])
    teams.join(rt, members[3], small["invite_code"])
    loner = Principal(f"lb-{uuid.uuid4().hex[:8]}", "user", city)  # in no team
    grams = {}
    for i, who in enumerate([*members, loner]):
        answer = post(rt, city, who.sub, metro(TODAY, 7 + i))
        grams[who.sub] = answer["grams"]
        if who == members[3]:  # the small team's one member rides the most
            post(rt, city, who.sub, metro(TODAY, 20))

    board = service.read_teams(rt, members[0], "week", 10)
    assert (board["size"], board["min_members"]) == (2 - 1, 2)
    [row] = board["top"]
    assert (row["team_id"], row["name"], row["rank"], row["members"], row["mine"]) == (
        big["id"], "big", 1, 3, True)
    total = sum(grams[m.sub] for m in members[:3])
    assert total <= row["grams"] <= total + 2  # whole grams of the summed micrograms
    assert board["my_team"]["shown"] and board["my_team"]["rank"] == 1
    hidden = service.read_teams(rt, members[3], "week", 10)["my_team"]
    assert hidden == {"team_id": small["id"], "name": "small", "shown": False, "rank": None,
                      "grams": None, "members": None}
    assert service.read_teams(rt, loner, "all", 10)["my_team"] is None

    # A reversal takes the grams off the team's total; below k members it leaves the board.
    first = post(rt, city, members[1].sub, metro(TODAY - timedelta(days=1), 9))
    reversals.reverse_event(rt, ADMIN, members[1].sub, first["event_id"], "fraud")
    assert service.read_teams(rt, members[0], "all", 10)["top"][0]["grams"] == row["grams"]
    assert live(rt, city) == rebuilt(rt, city)
    # Erasure takes a member off: the team's total loses what they added.
    service.remove_user(rt, members[2].sub, [city])
    after = service.read_teams(rt, members[0], "all", 10)["top"][0]
    assert after["members"] == 2
    assert after["grams"] < row["grams"]
    service.remove_user(rt, members[1].sub, [city])
    assert service.read_teams(rt, members[0], "all", 10)["top"] == []
    board_key = keys.board(city, keys.teams_scope(), "all")
    assert rt.leaderboards.snapshot(city)[board_key][str(big["id"])] // 10**6 in range(
        grams[members[0].sub] - 1, grams[members[0].sub] + 1)
    # Leaving takes the member's score off the team's total too.
    teams.leave(rt, members[0], city)
    assert str(big["id"]) not in rt.leaderboards.snapshot(city).get(board_key, {})


def test_the_carbon_account_ranks_in_the_city_and_the_district_in_one_round_trip(
        board_rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's district: the one where the trips that avoided most of their grams
    began (luohu is in Luohu, shaoniangong and fumin in Futian)."""
    rt = board_rt
    city = seed_city(rt, "lb")
    rider, rival = (Principal(f"lb-{uuid.uuid4().hex[:8]}", "user", city) for _ in range(2))
    short = post(rt, city, rider.sub, metro(TODAY, 7, entry_station_id="luohu",
                                            exit_station_id="guomao"))
    long = post(rt, city, rider.sub, metro(TODAY, 9, entry_station_id="shaoniangong",
                                           exit_station_id="luohu"))
    assert long["grams"] > short["grams"] > 0
    post(rt, city, rival.sub, metro(TODAY, 8, entry_station_id="fumin",
                                    exit_station_id="chegongmiao"))
    post(rt, city, rival.sub, metro(TODAY, 18, entry_station_id="shaoniangong",
                                    exit_station_id="luohu"))

    calls: list[str] = []
    if isinstance(rt.leaderboards, RedisStore):
        run = rt.leaderboards._run
        monkeypatch.setattr(rt.leaderboards, "_run",
                            lambda *a: calls.append("script") or run(*a))
    else:
        for name in ("standing", "scores", "ranks", "team_standing"):
            original = getattr(rt.leaderboards, name)
            monkeypatch.setattr(rt.leaderboards, name, lambda *a, _o=original, _n=name: (
                calls.append(_n) or _o(*a)))
    view = carbon_account(rt, rider)
    assert len(calls) == 1  # the whole rank: one script call, one round trip
    rank = view["rank"]
    assert rank["city"] == city and rank["all"]["of"] == 2
    district = rank["district"]
    assert district["name"] == "futian"  # more grams from Futian than from Luohu
    assert district["all"]["rank"] == 2 and district["all"]["of"] == 2  # the rival: more
    assert district["month"] == district["all"]
    assert district["all"]["grams"] in range(long["grams"], long["grams"] + 2)
    # Steps only: on no district board.
    walker = Principal(f"lb-{uuid.uuid4().hex[:8]}", "user", city)
    post(rt, city, walker.sub, factories.steps(6000, date=TODAY.isoformat()))
    walking = service.ranks_of(rt, walker.sub, city)
    assert walking["district"] is None and walking["all"] is not None
    # The same after a rebuild (the district names come back with the boards).
    rebuild.rebuild(rt, city)
    assert service.ranks_of(rt, rider.sub, city)["district"] == rank["district"]


def test_the_rebuild_counts_events_posted_out_of_date_order(board_rt: Runtime) -> None:
    """The rebuild reads the entries in local-date order and hands a period's boards over
    as soon as the read has passed the period's last day: trips posted out of date order
    (a Monday, two weeks later, the Tuesday after the Monday, ...) still all count in their
    day, week, month and all-time boards, as they do live."""
    rt = board_rt
    city = seed_city(rt, "lb")
    riders = [f"lb-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    monday = TODAY - timedelta(days=TODAY.weekday() + 21)
    for i, offset in enumerate((0, 14, 1, 21, 2, 8, 15, 3)):
        post(rt, city, riders[i % 2], metro(monday + timedelta(days=offset), 7 + i))
    before = live(rt, city)
    assert before == rebuilt(rt, city)
    rebuild.rebuild(rt, city)
    assert live(rt, city) == before
    week = before[0][keys.board(city, keys.city_scope(), period_of("week", monday).label)]
    assert set(week) == set(riders)


def test_a_rebuilt_board_keeps_every_member_id_and_score(suite_redis_url: str) -> None:
    """The rebuild writes places in Redis's wire format itself: ids with tabs, newlines
    or non-ASCII characters, scores of 17 digits or below one, and a board over several
    commands all come back as given."""
    import redis

    store = RedisStore(redis.Redis.from_url(suite_redis_url))
    city = f"lb-{uuid.uuid4().hex[:10]}"
    given_boards = [
        (keys.board(city, "city", "all"), {f"u{i}": 3 * i + 1 for i in range(25_000)}, 0),
        (keys.board(city, "city", "d1"), {"tab\tid": 7, "new\nline": 9, "x": 2**53}, 2**40),
        (keys.board(city, "district:a", "all"), {"用户一": 5, "b": 2}, 0),
        (keys.board(city, "district:b", "all"), {"wide": 10**16 + 2, "c": 3}, 0),
        (keys.board(city, "district:c", "all"), {"low": 0, "d": -4}, 0),
    ]
    try:
        store.replace(city, iter(given_boards), {"用户一"}, {"x": 3})
        assert store.snapshot(city) == {key: board for key, board, _e in given_boards}
        assert store.marks(city) == ({"用户一"}, {"x": "3"})
        client = redis.Redis.from_url(suite_redis_url)
        assert client.ttl(given_boards[1][0]) > 0  # EXPIREAT 2^40: in 36,000 years
        assert client.ttl(given_boards[0][0]) == -1
    finally:
        store.close()


def test_a_rebuild_that_fails_midway_leaves_the_boards_as_they_were(
        suite_redis_url: str) -> None:
    """The boards are staged as they come and swapped in at the end: a read that fails
    after some boards were written swaps nothing in and leaves no staged key behind."""
    import redis

    store = RedisStore(redis.Redis.from_url(suite_redis_url))
    city = f"lb-{uuid.uuid4().hex[:10]}"

    def failing() -> Any:
        yield keys.board(city, "city", "all"), {f"u{i}": i + 1 for i in range(30_000)}, 0
        yield keys.board(city, "city", "d1"), {"u1": 4}, 0
        raise RuntimeError("the database went away")

    try:
        store.credit(city, [Credit("u1", 5, "futian", (("all", 0),))])
        before = store.snapshot(city)
        with pytest.raises(RuntimeError):
            store.replace(city, failing(), set(), {})
        assert store.snapshot(city) == before
        client = redis.Redis.from_url(suite_redis_url)
        assert list(client.scan_iter(match=keys.prefix(city) + "rebuild-*")) == []
    finally:
        store.close()
