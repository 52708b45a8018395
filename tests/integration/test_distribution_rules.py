"""The schema is ready for distributed PostgreSQL (Citus): read from the live PostgreSQL
catalog and checked against storage/distribution.py's placement and its rules; the
ingest and redemption statements are routed by the user key."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import Connection, event, text

from carbon_credits.runtime import Runtime
from carbon_credits.storage import distribution as dist
from carbon_credits.tokens import Principal
from tests.integration.test_rollups import TODAY, metro
from tests.rewards import approved, grant

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def pg(rt: Runtime, is_postgres: bool) -> Iterator[Connection]:
    if not is_postgres:
        pytest.skip("the placement rules are read from PostgreSQL's catalog")
    with rt.db.engine.connect() as conn:
        yield conn


def tables(conn: Connection) -> set[str]:
    return set(conn.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
        "AND NOT c.relispartition")).scalars())


def columns(conn: Connection, table: str) -> set[str]:
    return set(conn.execute(text(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :t"), {"t": table}).scalars())


def unique_indexes(conn: Connection) -> list[tuple[str, str, list[str]]]:
    """(table, index, its columns) of every unique index: keys, constraints, partial."""
    rows = conn.execute(text("""
        SELECT t.relname, i.relname,
               array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n
                     ORDER BY k.o)
        FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = current_schema() AND x.indisunique"""))
    return [(r[0], r[1], list(r[2])) for r in rows]


def foreign_keys(conn: Connection) -> list[tuple[str, list[str], str, list[str]]]:
    rows = conn.execute(text("""
        SELECT c.conrelid::regclass::text, c.confrelid::regclass::text,
               array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                     ORDER BY k.o),
               array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                     ORDER BY k.o)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = current_schema() AND c.contype = 'f'
        -- A partition's copy of its parent's key (events' months) is the parent's.
        AND c.conparentid = 0"""))
    return [(r[0], list(r[2]), r[1], list(r[3])) for r in rows]


def violations(conn: Connection) -> set[str]:
    """Every break of distribution.py's rules in the live schema, worded as its
    EXCEPTIONS are."""
    found: set[str] = set()
    for table, key in dist.DISTRIBUTED.items():
        if key not in columns(conn, table):
            found.add(f"{table}: has no {key}")
    for table in tables(conn) - set(dist.DISTRIBUTED):
        if "user_id" in columns(conn, table):
            found.add(f"{table}: carries user_id but is not distributed by it")
    placed = {**dist.DISTRIBUTED, **dist.APART}
    for table, _index, cols in unique_indexes(conn):
        key = placed.get(table)
        if key is not None and key not in cols:
            # By columns, not the index's name (create_all and the migrations name keys
            # differently); two partial indexes on the same columns are one entry.
            found.add(f"{table}: unique key ({', '.join(cols)}) lacks {key}")
    for table, cols, target, target_cols in foreign_keys(conn):
        pair = f"{table}: foreign key ({', '.join(cols)}) -> {target} ({', '.join(target_cols)})"
        if target in dist.REFERENCE or target in dist.LOCAL and table in dist.LOCAL:
            continue
        if table in dist.REFERENCE:
            found.add(f"{pair} is from a reference table to a distributed one")
            continue
        source_key, target_key = placed.get(table), placed.get(target)
        both_by_user = table in dist.DISTRIBUTED and target in dist.DISTRIBUTED
        if not (both_by_user and source_key in cols
                and cols.index(source_key) < len(target_cols)
                and target_cols[cols.index(source_key)] == target_key):
            found.add(f"{pair} is not co-located")
    return found


def test_every_table_is_placed_exactly_once(pg: Connection) -> None:
    lists = [set(dist.DISTRIBUTED), set(dist.REFERENCE), set(dist.APART), set(dist.LOCAL)]
    placed = set().union(*lists)
    assert sum(map(len, lists)) == len(placed), "a table is in two lists"
    assert tables(pg) - placed == set(), "classify new tables in storage/distribution.py"
    assert placed - tables(pg) == set(), "distribution.py names a table that is gone"


def test_the_schema_breaks_no_rule_but_the_documented_exceptions(pg: Connection) -> None:
    found = violations(pg)
    assert found - set(dist.EXCEPTIONS) == set(), "a new break of the Citus rules"
    assert set(dist.EXCEPTIONS) - found == set(), "an exception is fixed: drop it"


def test_a_new_break_is_caught(pg: Connection) -> None:
    """The check itself can fail: a user table keyed without the user key, and a foreign
    key from a reference table into a distributed one."""
    with pg.begin():
        pg.execute(text("CREATE TABLE rule_probe (id bigint PRIMARY KEY, user_id text)"))
        pg.execute(text("ALTER TABLE networks ADD COLUMN probe bigint "
                        "REFERENCES redemptions (id)"))
        dist.DISTRIBUTED["rule_probe"] = "user_id"
        try:
            found = violations(pg) - set(dist.EXCEPTIONS)
        finally:
            del dist.DISTRIBUTED["rule_probe"]
        assert found == {
            "rule_probe: unique key (id) lacks user_id",
            "networks: foreign key (probe) -> redemptions (id) is from a reference table to "
            "a distributed one"}
        pg.rollback()


# ------------------------------------------------------------ routing by the user key

class Recorder(psycopg.Cursor[Any]):
    """psycopg's cursor, keeping every statement text (SQLAlchemy's, the prebuilt fast
    path's and COPY alike go through a cursor)."""

    seen: list[str] = []

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        Recorder.seen.append(str(query))
        return super().execute(query, *args, **kwargs)

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        Recorder.seen.append(str(query))
        return super().executemany(query, *args, **kwargs)

    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        Recorder.seen.append(str(statement))
        return super().copy(statement, *args, **kwargs)


@pytest.fixture
def recording(make_app: Callable[..., Flask], is_postgres: bool) -> Iterator[Flask]:
    if not is_postgres:
        pytest.skip("records psycopg's statements")
    app = make_app()
    engine = app.extensions["carbon_credits"].db.engine

    @event.listens_for(engine, "connect")
    def _record(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.cursor_factory = Recorder

    Recorder.seen = []
    yield app


TABLE = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO|COPY)\s+\"?(\w+)", re.IGNORECASE)


def unrouted(statements: list[str]) -> list[str]:
    """Statements touching a distributed table without its key in the WHERE clause (or,
    for an INSERT or COPY, its column list)."""
    bad = []
    for sql in statements:
        touched = {t for t in TABLE.findall(sql) if t in dist.DISTRIBUTED}
        for table in touched:
            key = dist.DISTRIBUTED[table]
            head = sql.lstrip().upper()
            if head.startswith(("INSERT", "COPY")):
                columns_part = sql[sql.find("(") + 1: sql.find(")")]
                if re.search(rf"\b{key}\b", columns_part):
                    continue
            where = re.split(r"\bWHERE\b", sql, maxsplit=1, flags=re.IGNORECASE)
            if len(where) == 2 and re.search(rf"\b{key}\b", where[1]):
                continue
            # Joined on its key to a table filtered by the user key: a co-located join,
            # routed to the same shard.
            names = [table, *re.findall(rf"\b{table}\s+AS\s+(\w+)", sql, re.IGNORECASE)]
            if (len(where) == 2 and re.search(r"\buser_id\b", where[1])
                    and any(re.search(rf"\b{name}\.{key}\b\s*=|=\s*{name}\.{key}\b", sql)
                            for name in names)):
                continue
            bad.append(f"{table}: {' '.join(sql.split())[-400:]}")
    return bad


def test_ingest_and_redemption_statements_are_routed_by_the_user_key(
        recording: Flask) -> None:
    client = recording.test_client()
    rt: Runtime = recording.extensions["carbon_credits"]
    user = f"citus-{uuid.uuid4().hex[:12]}"
    auth = {"Authorization": f"Bearer {rt.codec.encode(user, 'user', 'shenzhen', 600)}"}
    r = client.post("/v1/events", json={**metro(TODAY, 8), "city": "shenzhen"},
                    headers=auth)
    assert r.status_code in (200, 201), r.json
    ingest = list(Recorder.seen)
    Recorder.seen.clear()
    reward = approved(rt)
    grant(rt, Principal(user, "user", "shenzhen"), 100)
    Recorder.seen.clear()
    r = client.post("/v1/me/redemptions", json={"redemption_id": "citus-1", "points": 1},
                    headers=auth)
    assert r.status_code in (200, 201), r.json
    r = client.post("/v1/me/redemptions", json={"redemption_id": "citus-2",
                                                 "reward_id": reward, "quantity": 1},
                    headers=auth)
    assert r.status_code in (200, 201), r.json
    redemption = list(Recorder.seen)
    assert any("events" in s for s in ingest) and any("redemptions" in s for s in redemption)
    assert unrouted(ingest) == []
    assert unrouted(redemption) == [], "\n".join(unrouted(redemption))


def test_the_routing_check_flags_a_statement_without_the_user_key() -> None:
    assert unrouted(["SELECT events.id FROM events WHERE events.id = 7",
                     "UPDATE accounts SET balance_points = 1",
                     "INSERT INTO redemptions (user_id, points) VALUES ('u', 1)",
                     "SELECT a.x FROM accounts JOIN users AS u1 ON u1.id = accounts.user_id "
                     "WHERE accounts.user_id = 'u'"]) == [
        "events: SELECT events.id FROM events WHERE events.id = 7",
        "accounts: UPDATE accounts SET balance_points = 1"]


def test_the_scaling_guide_gives_each_table_its_citus_call() -> None:
    """docs/SCALING.md's create_*_table calls follow distribution.py, table by table."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "SCALING.md").read_text()
    calls = {(m[0], m[1], m[2] or None) for m in re.findall(
        r"create_(reference|distributed)_table\('(\w+)'(?:, '(\w+)')?", doc)}
    expected = ({("reference", t, None) for t in dist.REFERENCE}
                | {("distributed", t, k) for t, k in dist.DISTRIBUTED.items()}
                | {("distributed", t, k) for t, k in dist.APART.items()})
    assert calls == expected
