"""Small helpers shared by the bench scripts.

The service side (fresh database, gunicorn, wrk) comes from ``ingest_bench.py`` and the
machine description from ``report_bench.py``; this module adds what they lack: tokens for
chosen subjects, the service in-process, database sizes and per-database statistics, and
writing a result block between markers into BENCHMARKS.md.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ingest_bench import SECRET  # noqa: E402


def write_tokens(path: Path, subjects: list[str], base: datetime) -> None:
    """A Lua file defining TOKENS (one user JWT per subject, signed with the bench secret)
    and BASE (unix time), as bench/wrk/events.lua and bench/wrk/batch.lua expect."""
    from carbon_credits.config import Config
    from carbon_credits.tokens import TokenCodec

    codec = TokenCodec(Config(instance_path=ROOT / "instance", database_url="sqlite://",
                              jwt_secret=SECRET,
                              consent_required="none"))
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

    config = Config.from_env(ROOT / "instance")
    config.jwt_secret = SECRET
    # The bench's users never accepted the privacy notice: a refused post is not what is
    # measured (the gate's own cost: bench/consent_bench.py, which turns it on itself).
    config.consent_required = "none"
    app = create_app(config)
    rt = app.extensions["carbon_credits"]
    init_db(rt.db, "shenzhen")
    rt.clock = lambda: factories.NOW
    return app


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
    """Whole database size and, per table, rows (estimate) and size with indexes."""
    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        out: dict[str, Any] = {"database_bytes": total[0] if total else 0, "tables": {}}
        for t in tables:
            row = conn.execute(
                "SELECT c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
                "WHERE c.oid = %s::regclass", (t,)).fetchone()
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

