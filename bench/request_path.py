"""A post's CPU outside its transaction, in-process, against a healthz: the request path.

    .venv/bin/python bench/request_path.py [--posts 2000] [--rounds 3]

Calls the app's WSGI callable directly (no HTTP server, no test client: only the app's own
work) on one thread, on a private database (``cc_bench_path``, PostgreSQL + Redis, the
service's schema and seed, the clock pinned as in the tests). Per request, by the thread's
CPU clock: GET /healthz, and POST /v1/events (unique metro trips of 200 users, every one
credited), split into named blocks by wrapping the functions that run them:

- ``transaction``: ``services.events._apply`` (reads, rules, writes, COMMIT; alone here,
  a group of one);
- ``limiter``: the group's one call to the rate limiter (``Limiter.check_many``);
- ``load_event``: the schema's validation; ``prepare``: time checks and the payload hash;
- ``json_body``: reading and parsing the body; ``dump``: the result through its schema;
- ``jsonify``: the JSON encoding and the response object;
- ``group commit``: ``GroupCommit.submit`` around the transaction and the limiter call
  (its bookkeeping only: on one thread a post leads its own group, nothing is handed off);
- ``auth``: the bearer token (verified once, then remembered);
- ``rate limit checks and headers``: building the request's checks, and its RateLimit-*
  headers; ``before/after-request hooks``: the app's (metrics);
- ``Flask, smorest, the view``: everything else of the request: Flask's request context,
  routing and dispatch, flask-smorest's wrappers, the view itself; and the timers' own
  cost, which the script measures and prints beside it.

The question it answers: how much of a post is the request around the transaction, and
how much of that is any one piece (what a leaner path for this route could save).
Each round runs healthz, then the posts; medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import drop_database, fresh_database  # noqa: E402  (bench/)

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_path"
USERS = 200

spent: dict[str, float] = defaultdict(float)
"""CPU of each named block, exclusive of the blocks inside it."""
_inner = [0.0]
"""CPU of the blocks inside the one running, so far."""
entered = [0]
"""Blocks entered: their timers' own cost lands in their parents (``timer_cost``)."""


@contextmanager
def block(name: str) -> Iterator[None]:
    """Time ``name`` by the thread's CPU clock, exclusive of the blocks inside it."""
    start = time.thread_time()
    entered[0] += 1
    outer, _inner[0] = _inner[0], 0.0
    try:
        yield
    finally:
        total = time.thread_time() - start
        spent[name] += total - _inner[0]
        _inner[0] = outer + total


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with block(name):
            return fn(*args, **kwargs)
    return wrapper


def environ(method: str, path: str, token: str | None = None, body: bytes = b""
            ) -> dict[str, Any]:
    """A request's WSGI environ, built before the timed loop (werkzeug's builder, as the
    test client uses, without the client's own work around the call)."""
    headers = [("User-Agent", "wrk"), *([("Authorization", f"Bearer {token}")] if token else [])]
    return EnvironBuilder(path=path, method=method, base_url="http://127.0.0.1:8000/",
                          headers=headers, data=body or None,
                          content_type="application/json" if body else None,
                          environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fresh_database(ADMIN_DSN, DATABASE)
    os.environ["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
    os.environ["RATE_LIMITS"] = "events:user=1000000/60"
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        run(args.posts, args.rounds)
    finally:
        drop_database(ADMIN_DSN, DATABASE)


def run(posts: int, rounds: int) -> None:
    from benchlib import in_process_app
    from flask import Flask

    from carbon_credits import auth
    from carbon_credits.api import events as api_events
    from carbon_credits.ingest import events
    from carbon_credits.schemas import EventResultSchema
    from tests import factories

    app: Flask = in_process_app()
    rt = app.extensions["carbon_credits"]
    for owner, name, label in (
            (events, "_apply", "transaction"), (rt.limiter, "check_many", "limiter"),
            (api_events, "load_event", "load_event"), (api_events, "json_body", "json_body"),
            (events, "prepare", "prepare"), (EventResultSchema, "dump", "dump"),
            (app.json, "response", "jsonify"), (auth, "authenticate", "auth"),
            (api_events, "rate_checks", "rate limit checks and headers"),
            (api_events, "rate_headers", "rate limit checks and headers"),
            (rt.posts, "submit", "group commit")):
        setattr(owner, name, timed(label, getattr(owner, name)))
    for hooks in (app.before_request_funcs, app.after_request_funcs):
        for key, funcs in hooks.items():
            hooks[key] = [timed("before/after-request hooks", f) for f in funcs]
    tokens = [rt.codec.encode(f"path{i}", "user", "shenzhen", 3600) for i in range(USERS)]
    trips = [0] * USERS
    size = 0

    def post_env(n: int) -> dict[str, Any]:
        user = n % USERS
        start = factories.today_at(0) - timedelta(days=2) + timedelta(minutes=40 * trips[user])
        trips[user] += 1
        return environ("POST", "/v1/events", tokens[user],
                       json.dumps(factories.metro(start=start)).encode())

    def call(env: dict[str, Any]) -> str:
        nonlocal size
        status: list[str] = []
        def start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)

        body = b"".join(app.wsgi_app(env, start_response))
        size = len(body)
        return status[0]

    for n in range(USERS):  # warm-up: accounts, caches, prepared statements
        assert call(post_env(n)).startswith("201")
    for _ in range(500):
        call(environ("GET", "/healthz"))
    results: list[dict[str, float]] = []
    for round_ in range(rounds):
        envs = [environ("GET", "/healthz") for _ in range(posts)]
        start = time.thread_time()
        for env in envs:
            assert call(env).startswith("200")
        healthz = (time.thread_time() - start) / posts
        envs = [post_env(n) for n in range(posts)]
        spent.clear()
        entered[0] = 0
        start = time.thread_time()
        for env in envs:
            assert call(env).startswith("201")
        total = (time.thread_time() - start) / posts
        named = {k: v / posts for k, v in spent.items()}
        row = {"healthz": healthz, "post": total, **named, "blocks": entered[0] / posts,
               "Flask, smorest, the view": total - sum(named.values())}
        results.append(row)
        print(f"round {round_ + 1}: healthz {1000 * healthz:.3f} ms, post {1000 * total:.3f} "
              f"ms, transaction {1000 * named.get('transaction', 0):.3f} ms", flush=True)
    rt.db.dispose()
    keys = ["healthz", "post", "transaction", "limiter", "group commit", "load_event",
            "prepare", "json_body", "dump", "jsonify", "auth", "rate limit checks and headers",
            "before/after-request hooks", "Flask, smorest, the view"]
    median = {k: sorted(r.get(k, 0.0) for r in results)[len(results) // 2] for k in keys}
    path = median["post"] - median["transaction"] - median["limiter"]
    print(f"\nmedians of {rounds} rounds of {posts} requests, ms of CPU per request "
          f"(response {size} bytes):")
    for k in keys:
        print(f"  {k:30s} {1000 * median[k]:7.3f}")
    print(f"  request path (post - transaction - limiter): {1000 * path:.3f} ms "
          f"= {path / median['healthz']:.1f} in-process healthz")
    blocks = sorted(r["blocks"] for r in results)[len(results) // 2]
    cost = timer_cost()
    print(f"  timers: {blocks:.1f} blocks per post at {1e6 * cost:.1f} us each, "
          f"{1000 * blocks * cost:.3f} ms per post, counted in the blocks around them "
          "(mostly the post and 'Flask, smorest, the view'); healthz: 2 blocks (hooks)")


def timer_cost(n: int = 20_000) -> float:
    """CPU of one ``block`` around nothing, nested in another as the post's are."""
    with block("probe outer"):
        start = time.thread_time()
        for _ in range(n):
            with block("probe"):
                pass
        cost = (time.thread_time() - start) / n
    return cost


if __name__ == "__main__":
    main()
