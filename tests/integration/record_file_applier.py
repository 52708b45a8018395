"""A stand-in for the crediting of record files (``RECORD_APPLIER`` in tests): records
each record once per (provider, record_id) in a table with that primary key, so a record
applied twice shows as a replay, never as a second row; counts its calls.

user_ref "nobody..." is refused (not_bound), "held..." held. With FAKE_APPLIER_HANG_AT_CALL=N
and FAKE_APPLIER_MARKER=path, this process's Nth call commits its records, creates the
marker file and then never returns: a worker to be killed between applying a chunk and
checkpointing it. With FAKE_APPLIER_DELAY_MS, each call takes at least that long: a worker
still busy with a file when it is told to stop.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from carbon_credits.providers.jobs import ApplyChunk, RowOutcome
from carbon_credits.providers.records import Record
from carbon_credits.runtime import Runtime

TABLES = (
    "CREATE TABLE IF NOT EXISTS fake_record_credits (provider_id VARCHAR(64) NOT NULL, "
    "record_id VARCHAR(64) NOT NULL, line INTEGER NOT NULL, PRIMARY KEY (provider_id, record_id))",
    "CREATE TABLE IF NOT EXISTS fake_record_calls (provider_id VARCHAR(64) NOT NULL, "
    "first_line INTEGER NOT NULL, rows INTEGER NOT NULL, pid INTEGER NOT NULL)",
)


@contextmanager
def tables(engine: Engine) -> Iterator[None]:
    """This stand-in's tables, for one test: dropped after it, since the suite's database
    must hold exactly the models' schema (tests/integration/test_schema.py)."""
    with engine.begin() as conn:
        for statement in TABLES:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS fake_record_credits"))
            conn.execute(text("DROP TABLE IF EXISTS fake_record_calls"))


def make(rt: Runtime) -> ApplyChunk:
    engine = rt.db.engine
    hang_at = int(os.environ.get("FAKE_APPLIER_HANG_AT_CALL", "0"))
    marker = os.environ.get("FAKE_APPLIER_MARKER")
    delay_s = int(os.environ.get("FAKE_APPLIER_DELAY_MS", "0")) / 1000
    calls = 0
    lock = threading.Lock()

    def apply(provider_id: str, rows: list[tuple[int, Record]]) -> list[RowOutcome]:
        nonlocal calls
        outcomes = []
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO fake_record_calls VALUES (:p, :l, :n, :pid)"),
                         {"p": provider_id, "l": rows[0][0], "n": len(rows),
                          "pid": os.getpid()})
            for line, record in rows:
                if record.user_ref.startswith("nobody"):
                    outcomes.append(RowOutcome(line, "refused", "not_bound", "user_ref",
                                               "the user is not bound to this provider"))
                    continue
                new = conn.execute(text(
                    "INSERT INTO fake_record_credits VALUES (:p, :r, :l) "
                    "ON CONFLICT DO NOTHING RETURNING record_id"),
                    {"p": provider_id, "r": record.record_id, "l": line}).first()
                status = ("replayed" if new is None else
                          "held" if record.user_ref.startswith("held") else "credited")
                outcomes.append(RowOutcome(line, status))  # type: ignore[arg-type]
        time.sleep(delay_s)
        with lock:
            calls += 1
            hang = calls == hang_at
        if hang and marker:
            Path(marker).touch()
            threading.Event().wait()  # never returns: the test kills this process
        return outcomes

    return apply


def make_real(rt: Runtime) -> ApplyChunk:
    """The service's own crediting (``providers.crediting``), with the same hang as
    ``make``: a worker killed after its Nth chunk was credited, before its checkpoint."""
    from carbon_credits.providers import crediting

    real = crediting.make_apply_chunk(rt)
    hang_at = int(os.environ.get("FAKE_APPLIER_HANG_AT_CALL", "0"))
    marker = os.environ.get("FAKE_APPLIER_MARKER")
    calls = 0

    def apply(provider_id: str, rows: list[tuple[int, Record]]) -> list[RowOutcome]:
        nonlocal calls
        outcomes = real(provider_id, rows)
        calls += 1
        if calls == hang_at and marker:
            Path(marker).touch()
            threading.Event().wait()  # never returns: the test kills this process
        return outcomes

    return apply
