"""Synthetic history generated in SQL: users, events and their earn ledger entries.

Shared by ``report_bench.py`` (reports over 100k and 10M events) and ``history_bench.py``
(ingest on a database already holding 10M ledger rows). Rows are made with
``generate_series`` in batches of a million, straight into the tables, without the service:
metro 50 %, bus 35 %, steps 15 %, ``DAYS`` local days from ``first_day``, ``USERS`` users,
entry stops spread over both demo districts; every event at 08:00 local time on its day.
"""

from __future__ import annotations

import datetime as dt
import time

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from carbon_credits.networks import demo_network
from carbon_credits.runtime import Runtime

CITY = "shenzhen"
USERS = 200_000
DAYS = 30
FIRST_DAY = dt.date(2026, 10, 1)
BATCH = 1_000_000
METRO_STOPS = ["luohu", "guomao", "laojie", "dajuyuan", "kexueguan", "huaqianglu", "gangxia",
               "shaoniangong", "hongling", "futiankouan", "fumin"]
BUS_STOPS = ["b-luohu", "b-guomao", "b-dajuyuan", "b-kexueguan", "b-futiankouan", "b-fumin"]


GENERATE_USERS = """
INSERT INTO users (id, city, frozen, created_at)
SELECT 'bench-u' || u, %(city)s, false, now()
FROM generate_series(0, %(users)s::int - 1) u ON CONFLICT DO NOTHING;
---
INSERT INTO accounts (user_id, balance_points, lifetime_points, lifetime_ug, carry_ug,
                      entry_count, last_hash, updated_at)
SELECT 'bench-u' || u, 0, 0, 0, 0, 0, decode(repeat('0', 64), 'hex'), now()
FROM generate_series(0, %(users)s::int - 1) u ON CONFLICT DO NOTHING
"""

GENERATE_EVENTS = """
INSERT INTO events (id, user_id, event_id, mode, city, occurred_at, ends_at, local_date,
                    device_id, origin, payload_hash, status, reason, avoided_ug,
                    credited_ug, points, factor_version_id, methodology_version, network_id,
                    activity, created_at)
SELECT i, 'bench-u' || (i %% %(users)s::int), 'e' || i, mode, %(city)s,
       (day + time '08:00') AT TIME ZONE 'Asia/Shanghai', NULL, day, NULL,
       CASE mode WHEN 'metro' THEN metro_stop WHEN 'bus' THEN bus_stop END,
       decode(md5(i::text) || md5(i::text), 'hex'), 'credited', NULL, ug, ug, ug / 1000000,
       CASE mode WHEN 'metro' THEN %(fv_metro)s WHEN 'bus' THEN %(fv_bus)s
                 ELSE %(fv_steps)s END,
       'sz-2021.1', CASE WHEN mode = 'steps' THEN NULL ELSE %(network)s END,
       CASE WHEN mode = 'steps' THEN walked ELSE dist END,
       now()
FROM (
    SELECT i, mode, day, dist, walked, metro_stop, bus_stop,
           CASE mode WHEN 'metro' THEN dist::bigint * 46800 WHEN 'bus' THEN dist::bigint * 26900
                     ELSE walked::bigint * 20000 END AS ug
    FROM (
        SELECT i,
               CASE WHEN h %% 20 < 10 THEN 'metro' WHEN h %% 20 < 17 THEN 'bus'
                    ELSE 'steps' END AS mode,
               %(first_day)s::date + ((h / 20) %% %(days)s::int)::int AS day,
               1000 + (h / 600) %% 15000 AS dist,
               2000 + (h / 600) %% 8000 AS walked,
               (%(metro_stops)s::text[])[1 + (h / 7) %% %(n_metro)s::int] AS metro_stop,
               (%(bus_stops)s::text[])[1 + (h / 7) %% %(n_bus)s::int] AS bus_stop
        FROM (SELECT i, (i * 2654435761) %% 4294967296 AS h  -- Knuth's multiplicative mix
              FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) i) ids
    ) raw
) g;
---
INSERT INTO ledger_entries (id, user_id, seq, kind, points, ug, balance_after, event_pk,
                            redemption_pk, mode, factor_version_id, created_at, hash)
SELECT e.id, e.user_id, e.id / %(users)s::int + 1, 'earn', e.points, e.credited_ug, 0, e.id,
       NULL, e.mode, e.factor_version_id, now(), decode(md5(e.id::text) || md5(e.id::text), 'hex')
FROM events e WHERE e.id BETWEEN %(lo)s AND %(hi)s
"""


def generate(rt: Runtime, lo: int, hi: int, *, first_day: dt.date = FIRST_DAY) -> float:
    """Events lo..hi (and their earn entries) straight into the database; seconds.

    Users ``bench-u0`` .. ``bench-u199999`` (created when missing) get event ``i`` when
    ``i % USERS`` is their number; days run from ``first_day`` over ``DAYS`` local days.
    Only ``events``, ``ledger_entries``, ``users`` and ``accounts`` are written: accounts keep
    their zero state and the id sequences are not advanced (see ``history_bench.py`` for
    what the service needs before it can ingest on top of these rows).
    """
    started = time.perf_counter()
    with rt.db.engine.connect() as conn:
        ids = dict(conn.execute(text(
            "SELECT mode, id FROM factor_versions WHERE city = :c AND version = 'sz-2021.1'"),
            {"c": CITY}).all())
        network = conn.execute(text("SELECT id FROM networks WHERE city = :c AND version = :v"),
                               {"c": CITY, "v": demo_network.VERSION}).scalar_one()
    url = make_url(str(rt.config.database_url)).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in GENERATE_USERS.split("---"):
            conn.execute(statement, {"city": CITY, "users": USERS})  # type: ignore[arg-type]
        for start in range(lo, hi + 1, BATCH):
            end = min(hi, start + BATCH - 1)
            for statement in GENERATE_EVENTS.split("---"):
                conn.execute(statement, {  # type: ignore[arg-type]
                    "city": CITY, "users": USERS, "days": DAYS, "first_day": first_day,
                    "lo": start, "hi": end, "fv_metro": ids["metro"], "fv_bus": ids["bus"],
                    "fv_steps": ids["steps"], "network": network,
                    "metro_stops": METRO_STOPS, "bus_stops": BUS_STOPS,
                    "n_metro": len(METRO_STOPS), "n_bus": len(BUS_STOPS)})
            print(f"  events {start:,}..{end:,} in {time.perf_counter() - started:.0f} s",
                  flush=True)
        conn.execute("ANALYZE")
    return time.perf_counter() - started
