"""Small helpers shared by the bench scripts.

The service side (fresh database, gunicorn, wrk) comes from ``ingest_bench.py`` and the
machine description from ``report_bench.py``; this module adds what they lack: the
benches' service settings (``bench_config``, ``service_env``), tokens for chosen subjects,
the service in-process, alternating measured rounds of single posts, database sizes and
per-database statistics, and writing a result block between markers into BENCHMARKS.md.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from flask import Flask

    from carbon_credits.config import Config
    from carbon_credits.ingest.decide import Posted
    from carbon_credits.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ingest_bench import SECRET  # noqa: E402

CONSENT_REQUIRED = "none"
"""The consent gate of every bench's service (``Config.consent_required``, the environment's
CONSENT_REQUIRED): off. The benches' users never accepted the privacy notice, and a
refused post is not what is measured (with the gate on, a run measured refusals only). The
gate's own cost is bench/consent_bench.py's figure, which turns it on itself."""


def bench_config(**fields: Any) -> Config:
    """The Config of a bench's service built in code: ``fields``, and the consent gate off
    (``CONSENT_REQUIRED``)."""
    from carbon_credits.config import Config

    return Config(consent_required=CONSENT_REQUIRED, **fields)


def service_env(**settings: str) -> dict[str, str]:
    """The environment of a service a bench starts as a process (gunicorn, ``flask
    init-db``) or reads it from (``in_process_app``): this process's environment, the
    consent gate off (``CONSENT_REQUIRED``), then ``settings``."""
    return {**os.environ, "CONSENT_REQUIRED": CONSENT_REQUIRED, **settings}


def write_tokens(path: Path, subjects: list[str], base: datetime) -> None:
    """A Lua file defining TOKENS (one user JWT per subject, signed with the bench secret)
    and BASE (unix time), as bench/wrk/events.lua and bench/wrk/batch.lua expect."""
    from carbon_credits.tokens import TokenCodec

    codec = TokenCodec(bench_config(instance_path=ROOT / "instance", database_url="sqlite://",
                                    jwt_secret=SECRET))
    tokens = [codec.encode(sub, "user", "shenzhen", 6 * 3600) for sub in subjects]
    path.write_text("TOKENS = {\n" + ",\n".join(f'"{t}"' for t in tokens)
                    + f"\n}}\nBASE = {int(base.timestamp())}\n")


def in_process_app() -> Flask:
    """The service in this process (no HTTP server) on the configured database
    (``DATABASE_URL``), seeded, signing with the bench secret, its clock pinned as in the
    tests (``tests.factories.NOW``): for the in-process profiles and CPU figures."""
    from carbon_credits.config import Config
    from carbon_credits.factory import create_app
    from carbon_credits.setup import init_db
    from tests import factories

    config = Config.from_env(ROOT / "instance", service_env())
    config.jwt_secret = SECRET
    app = create_app(config)
    rt = app.extensions["carbon_credits"]
    init_db(rt.db, "shenzhen")
    rt.clock = lambda: factories.NOW
    return app


@dataclass
class Rounds:
    """What ``alternating_rounds`` measured, per mode: seconds of wall time and of this
    process's CPU (the client's: the database server's is not in it), and posts."""

    wall: dict[str, float]
    cpu: dict[str, float]
    posts: int
    """Posts measured in each mode (posts a round times rounds)."""


def metro_posts(rt: Runtime, users: int) -> Callable[[int], Posted]:
    """``posted(user)``: the next single post of user ``u<user>`` (of ``users``), prepared
    for ``ingest.events.apply_chunk`` in the service ``rt``: a metro trip 40 minutes after
    that user's previous one, from yesterday's local midnight (the pinned clock). Each user
    posts once first, applied here (their accounts, devices and first trips exist)."""
    from carbon_credits.ingest import events
    from carbon_credits.schemas import load_event
    from carbon_credits.tokens import Principal
    from tests import factories

    principals = [Principal(sub=f"u{i}", role="user", city="shenzhen") for i in range(users)]
    trips = [0] * users

    def posted(user: int) -> Posted:
        start = factories.today_at(0) - timedelta(days=1) + timedelta(minutes=40 * trips[user])
        trips[user] += 1
        return events.prepare(rt, principals[user], load_event(factories.metro(start=start)),
                              f"dev{user}")

    for user in range(users):
        events.apply_chunk(rt, [posted(user)])
    return posted


def alternating_rounds(rt: Runtime, modes: tuple[str, str], switch: Callable[[str], None],
                       posts: int, rounds: int, users: int = 400) -> Rounds:
    """Single posts (chunks of one) applied by ``ingest.events.apply_chunk`` in the service
    ``rt`` (``in_process_app``), in ``2 * rounds`` rounds of ``posts`` that alternate the
    two ``modes``, the first first; ``switch(mode)`` sets a mode up before its round.
    Alternating rounds share the machine's drift (other load, caches, the database's
    growth) between the modes, which one block after the other would give to one of them.

    The posts are metro trips of users ``u0`` .. ``u{users - 1}`` in turn, each user's 40
    minutes after their previous one from yesterday's local midnight (the pinned clock).
    Each user posts once first, in whatever mode is set up (their accounts exist, and what
    a mode creates on a user's first post); a round's posts are prepared before its clock
    starts, and each must be stored."""
    from carbon_credits.ingest import events

    posted = metro_posts(rt, users)
    turn = 0
    wall = dict.fromkeys(modes, 0.0)
    cpu = dict.fromkeys(modes, 0.0)
    for r in range(2 * rounds):
        mode = modes[r % 2]
        switch(mode)
        chunks = []
        for _ in range(posts):
            chunks.append([posted(turn % users)])
            turn += 1
        w0, c0 = time.perf_counter(), time.process_time()
        for chunk in chunks:
            assert all(getattr(x, "created", False) for x in events.apply_chunk(rt, chunk))
        wall[mode] += time.perf_counter() - w0
        cpu[mode] += time.process_time() - c0
    return Rounds(wall, cpu, posts * rounds)


def libpq(dsn: str, name: str) -> str:
    """The libpq DSN of database ``name`` on the server of ``dsn``."""
    return dsn.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def fresh_database(admin_dsn: str, name: str) -> None:
    """Database ``name``, empty: dropped first if it exists (a run that was stopped)."""
    drop_database(admin_dsn, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]


def database_size(dsn: str, tables: tuple[str, ...]) -> dict[str, Any]:
    """Whole database size and, per table, rows (estimate) and size with indexes (a
    partitioned table's: its partitions')."""
    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        out: dict[str, Any] = {"database_bytes": total[0] if total else 0, "tables": {}}
        for t in tables:
            # Summed over the partitions: a partitioned table (events) has no storage of
            # its own, and pg_total_relation_size of its parent is 0.
            row = conn.execute(
                "SELECT coalesce(p.rows, greatest(c.reltuples, 0)::bigint), "
                "coalesce(p.bytes, pg_total_relation_size(c.oid)) FROM pg_class c "
                "LEFT JOIN LATERAL (SELECT sum(greatest(k.reltuples, 0))::bigint AS rows, "
                "sum(pg_total_relation_size(k.oid))::bigint AS bytes "
                "FROM pg_partition_tree(c.oid) t JOIN pg_class k ON k.oid = t.relid) p "
                "ON true WHERE c.oid = %s::regclass", (t,)).fetchone()
            if row:
                out["tables"][t] = {"rows_estimate": row[0], "bytes": row[1]}
    return out


DB_COUNTERS = ("xact_commit", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
               "tup_inserted", "tup_updated")


def db_counters(dsn: str) -> dict[str, int]:
    """pg_stat_database counters of the database ``dsn`` names (a delta gives per-run work)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(f"SELECT {', '.join(DB_COUNTERS)} FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return dict(zip(DB_COUNTERS, (int(v) for v in row or ()), strict=True))


def update_section(path: Path, title: str, begin: str, end: str, block: str,
                   intro: str, outro: str = "") -> None:
    """Replace the text between ``begin`` and ``end`` in ``path``; if the markers are not
    there, append a new section ``## title`` with ``intro``, the block and ``outro``."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        path.write_text(f"{head}{begin}\n{block}\n{end}{tail}")
    else:
        after = f"\n{outro.strip()}\n" if outro.strip() else ""
        path.write_text(text.rstrip("\n") + f"\n\n## {title}\n\n{intro.strip()}\n\n"
                        f"{begin}\n{block}\n{end}\n{after}")
    print(f"updated {path}")

