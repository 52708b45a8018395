"""Rate limiter benchmark: carbon_credits.antifraud.ratelimit (GCRA) against the ``limits`` library.

``limits`` is what Flask-Limiter runs on. Both run in this process, on the same private
redis-server (started here on a spare loopback port, so INFO commandstats deltas are ours
alone; the shared 127.0.0.1:6379 is not touched), same machine, same run, single-threaded.

    pip install limits          # into the dev venv; the benchmark only
    .venv/bin/python bench/limiter_bench.py [--checks 5000] [--rounds 5] [--no-cluster]
                                            [--update BENCHMARKS.md]

Install ``limits`` WITHOUT its ``[redis]`` extra: that extra pins ``redis<8`` and would
downgrade this project's redis-py; ``limits`` works with the redis client already here.

Scenarios (every check is admitted, so both sides run their full write path):
  1 dim, decide       one subject: our check vs ``limits`` hit (fixed window, moving window,
                      sliding-window counter)
  1 dim, + headers    the same plus what RateLimit-* headers need: ours returns it in the
                      same reply; ``limits`` needs ``get_window_stats`` (as Flask-Limiter
                      does when headers are on)
  3 dims, + headers   user, device and IP: ours is one pipelined call; ``limits`` is one hit
                      per limit plus one window-stats call for the headers (a lower bound
                      for Flask-Limiter, which may ask stats for more than one limit)

Measured: checks per second; requests written per check (counted in the client: each
``send_packed_command`` is one request whose replies are then awaited - a pipeline to one
node is one; a cluster pipeline writes to every node it touches before reading any reply,
so its sends overlap in time, while ``limits``' calls are one after another); Redis
commands per check and Redis CPU microseconds per check (INFO commandstats deltas, summed
over the nodes; commands a script runs count too). Ratios are ours / limits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from redis.connection import AbstractConnection  # noqa: E402

from carbon_credits.antifraud.ratelimit import Check, Rate, RedisLimiter, check_for  # noqa: E402
from tests import redis_servers  # noqa: E402

try:
    import limits
    import limits.storage
    import limits.strategies
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("bench/limiter_bench.py compares against the `limits` library, which is not "
             "installed.\nInstall it into the venv (without the [redis] extra, which would "
             "downgrade redis-py):\n    .venv/bin/pip install limits")

BEGIN = "<!-- limiter-bench:begin -->"
END = "<!-- limiter-bench:end -->"
HIGH = 1_000_000  # per minute: every check in the benchmark is admitted


class Counting:
    """Counts requests written to Redis (round trips) while active."""

    def __init__(self) -> None:
        self.sends = 0
        self._original = AbstractConnection.send_packed_command

    @contextmanager
    def active(self) -> Iterator[None]:
        original, counter = self._original, self

        def send(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.sends += 1
            original(conn, command, check_health)

        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        try:
            yield
        finally:
            AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


@dataclass
class Result:
    scenario: str
    name: str
    checks_per_s: float
    round_trips: float
    commands: float
    server_us: float


def commandstats(nodes: list[redis.Redis]) -> tuple[int, float]:
    calls, usec = 0, 0.0
    for node in nodes:
        for name, stats in node.info("commandstats").items():
            if name in ("cmdstat_info",):
                continue
            calls += int(stats["calls"])
            usec += float(stats["usec"])
    return calls, usec


def measure(scenario: str, steps: dict[str, Callable[[int], Any]], n: int, rounds: int,
            nodes: list[redis.Redis], counting: Counting) -> list[Result]:
    """Each limiter runs ``n`` checks in ``rounds`` interleaved slices, so load from other
    processes on the machine falls on all of them alike."""
    for step in steps.values():
        for i in range(min(200, n)):  # warm up: connections, script caches
            step(-1 - i)
    totals = {name: [0.0, 0, 0, 0.0] for name in steps}  # seconds, sends, calls, usec
    per_round = n // rounds
    for r in range(rounds):
        for name, step in steps.items():
            calls0, usec0 = commandstats(nodes)
            sends0 = counting.sends
            with counting.active():
                start = time.perf_counter()
                for i in range(r * per_round, (r + 1) * per_round):
                    step(i)
                elapsed = time.perf_counter() - start
            calls1, usec1 = commandstats(nodes)
            total = totals[name]
            total[0] += elapsed
            total[1] += counting.sends - sends0
            total[2] += calls1 - calls0
            total[3] += usec1 - usec0
    done = per_round * rounds
    return [Result(scenario, name, done / t[0], t[1] / done, t[2] / done, t[3] / done)
            for name, t in totals.items()]


def run(url: str, nodes: list[redis.Redis], n: int, rounds: int, label: str,
        cluster: bool) -> list[Result]:
    counting = Counting()
    tag = uuid.uuid4().hex[:8]
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    ours = RedisLimiter(client)
    rate = Rate(HIGH, 60)

    def subject(i: int) -> str:
        return f"{tag}-{i % 500}"  # 500 active users, like a busy minute

    def our_checks(i: int, dims: int) -> list[Check]:
        s = subject(i)
        return [check_for("events", d, f"{d}-{s}", rate)
                for d in ("user", "device", "ip")[:dims]]

    scheme = "redis+cluster" if cluster else "redis"
    storage = limits.storage.storage_from_string(url.replace("redis", scheme, 1))
    item = limits.parse(f"{HIGH}/minute")
    strategies = {
        "limits fixed window": limits.strategies.FixedWindowRateLimiter(storage),
        "limits moving window": limits.strategies.MovingWindowRateLimiter(storage),
        "limits sliding counter": limits.strategies.SlidingWindowCounterRateLimiter(storage),
    }
    results: list[Result] = []

    def ours_step(dims: int) -> Callable[[int], Any]:
        def step(i: int) -> Any:
            decision = ours.check(our_checks(i, dims))
            assert decision.allowed and decision.backend == "redis"
            return decision.headers()
        return step

    def limits_step(strategy: Any, dims: int, stats: bool) -> Callable[[int], Any]:
        kind = type(strategy).__name__  # strategies keep different types under one key
        def step(i: int) -> Any:
            s = subject(i)
            keys = [f"{d}-{s}" for d in ("user", "device", "ip")[:dims]]
            for key in keys:
                assert strategy.hit(item, "events", kind, key)
            if stats:
                return strategy.get_window_stats(item, "events", kind, keys[0])
            return None
        return step

    scenarios = [("1 dim, decide", 1, False), ("1 dim, + headers", 1, True),
                 ("3 dims, + headers", 3, True)]
    for title, dims, stats in scenarios:
        steps = {"ours (GCRA)": ours_step(dims)}
        steps.update({name: limits_step(strategy, dims, stats)
                      for name, strategy in strategies.items()})
        results += measure(f"{label}: {title}", steps, n, rounds, nodes, counting)
    assert ours.failures == 0
    client.close()
    return results


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    server = subprocess.run([redis_servers.binary("redis-server"), "--version"],
                            capture_output=True, text=True, check=True).stdout
    version = re.search(r"v=(\S+)", server)
    return (f"{dt.date.today().isoformat()}; {cpu}, {os.cpu_count()} CPUs; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
            f"redis-server {version.group(1) if version else '?'} on loopback; "
            f"redis-py {redis.__version__}; limits {limits.__version__}")


def table(results: list[Result]) -> str:
    lines = []
    for scenario in dict.fromkeys(r.scenario for r in results):
        rows = [r for r in results if r.scenario == scenario]
        ours = rows[0]
        lines += [f"**{scenario}**", "",
                  "| limiter | checks/s | ours/limits | round trips/check | ours/limits "
                  "| Redis cmds/check | Redis CPU us/check |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            speed = "" if r is ours else f"{ours.checks_per_s / r.checks_per_s:.2f}x"
            trips = "" if r is ours else f"{ours.round_trips / r.round_trips:.2f}"
            lines.append(f"| {r.name} | {r.checks_per_s:,.0f} | {speed} | "
                         f"{r.round_trips:.2f} | {trips} | {r.commands:.2f} | "
                         f"{r.server_us:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--update", type=Path, help="rewrite the results block in this file")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        with redis_servers.standalone(Path(tmp) / "standalone") as server:
            node = server.client()
            results += run(server.url, [node], args.checks, args.rounds, "Redis",
                           cluster=False)
            node.close()
        if not args.no_cluster:
            with redis_servers.cluster(Path(tmp) / "cluster") as cluster:
                nodes = [n.client() for n in cluster.nodes]
                results += run(cluster.url, nodes, args.checks, args.rounds,
                               "3-node Cluster", cluster=True)
                for n in nodes:
                    n.close()
    body = (f"Run: {machine()}. {args.checks} checks per row in {args.rounds} interleaved "
            f"slices, single-threaded, after a warm-up; `bench/limiter_bench.py`.\n\n"
            f"{table(results)}")
    print(body)
    if args.update:
        text = args.update.read_text()
        if BEGIN not in text or END not in text:
            sys.exit(f"{args.update}: no {BEGIN} ... {END} block to update")
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        args.update.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


if __name__ == "__main__":
    main()
