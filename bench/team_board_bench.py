"""What the team-against-team board and the district rank cost on the Redis path.

    .venv/bin/python bench/team_board_bench.py [--users 20000] [--teams 200] [--calls 3000]

On the local Redis (REDIS_URL, default redis://127.0.0.1:6379/0), in a city of its own
(``bench-tb-<random>``, its keys deleted afterwards), one run:

* a city board of ``--users`` users over 10 districts, ``--teams`` teams of members;
* **credit**: ``RedisStore.credit`` of one event (4 periods) for a team member (city,
  district, team and team-against-team boards) against the same for a user in no team
  (city and district boards only; what every credit paid before teams counted as teams):
  p50 and p99 of ``--calls`` calls each, interleaved;
* **screen rank**: ``RedisStore.ranks`` (city and district, all time and month: one
  script call) against the two ``standing`` calls the screen made before for the city
  alone, and a Redis ``PING``;
* **teams read**: ``RedisStore.team_standing`` (top 100, walking every team) against
  ``standing`` on the city board (top 100).

Ratios are what to read (the machine is shared); absolute times are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable

import redis

from carbon_credits.leaderboards import keys
from carbon_credits.leaderboards.store import Credit, RedisStore

PERIODS = (("d2026-12-07", 0), ("w2026-W50", 0), ("m2026-12", 0), ("all", 0))
DISTRICTS = [f"district-{i}" for i in range(10)]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e6)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    store = RedisStore(client)
    city = f"bench-tb-{uuid.uuid4().hex[:8]}"
    rng = random.Random(7)
    try:
        users = [f"u{i}" for i in range(args.users)]
        for start in range(0, len(users), 500):
            store.credit(city, [Credit(u, rng.randint(1, 10**9), rng.choice(DISTRICTS),
                                       PERIODS) for u in users[start:start + 500]])
        members = users[: args.users // 2]
        for i, user in enumerate(members):
            store.set_team(city, user, i % args.teams, PERIODS)
        member, loner = members[0], users[-1]
        with_team, without = [], []
        for _ in range(args.calls):
            with_team += timed(lambda: store.credit(city, [Credit(
                member, 376_000_000, "district-1", PERIODS)]), 1)
            without += timed(lambda: store.credit(city, [Credit(
                loner, 376_000_000, "district-1", PERIODS)]), 1)
        board = keys.board(city, keys.city_scope(), "all")
        month = keys.board(city, keys.city_scope(), "m2026-12")
        ranks = timed(lambda: store.ranks(city, member, ["all", "m2026-12"]), args.calls)
        two = timed(lambda: (store.standing(city, board, 0, member, False),
                             store.standing(city, month, 0, member, False)), args.calls)
        ping = timed(client.ping, args.calls)
        teams = timed(lambda: store.team_standing(city, "all", 100, member, 10),
                      args.calls // 3)
        top = timed(lambda: store.standing(city, board, 100, member, False), args.calls // 3)
    finally:
        registered = [k.decode() for k in client.smembers(keys.registry(city))]
        for start in range(0, len(registered), 500):
            client.delete(*registered[start:start + 500])
        client.delete(keys.registry(city), keys.teams(city), keys.hidden(city),
                      keys.districts(city))
        store.close()

    def line(name: str, a: list[float], b: list[float], base: str) -> None:
        print(f"{name:<34} p50 {p(a, 50):7.0f} us  p99 {p(a, 99):7.0f} us   "
              f"/ {base}: p50 {p(a, 50) / p(b, 50):.2f}  p99 {p(a, 99) / p(b, 99):.2f}")

    print(f"city of {args.users} users, {args.teams} teams, {args.calls} calls; "
          f"load {os.getloadavg()[0]:.2f}")
    line("credit, team member", with_team, without, "no team")
    line("screen rank (ranks, 1 call)", ranks, two, "2 x standing")
    line("screen rank (ranks, 1 call)", ranks, ping, "PING")
    line("teams top 100 (team_standing)", teams, top, "city top 100")


if __name__ == "__main__":
    main()
