"""The few dialect-specific statements, and the SQL shapes services share, in one place."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from carbon_credits.models import Base


def insert_missing(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]
                   ) -> set[Any]:
    """INSERT ... ON CONFLICT DO NOTHING: create those of ``rows`` that do not exist yet, in
    one statement and in the order given (callers sort them, so that concurrent inserts of
    overlapping keys wait for each other in one order); the primary keys this statement
    created (a value per row, a tuple for a composite key)."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, model.__table__)
    keys = list(table.primary_key.columns)
    # RETURNING tells which rows were made (psycopg reports no rowcount for this one).
    statement = insert(table).values(list(rows)).on_conflict_do_nothing().returning(*keys)
    return {row[0] if len(keys) == 1 else tuple(row) for row in session.execute(statement)}


def among(column: Any, values: Collection[Any]) -> Any:
    """``column IN values``, or ``column = value`` for one value: a single post's
    statements keep their cheapest form (no IN list rendered per execution)."""
    return column == next(iter(values)) if len(values) == 1 else column.in_(values)


COPY_FROM_ROWS = 12
"""Rows from which ``bulk_insert`` uses COPY on PostgreSQL (policy, measured in-process,
events rows, CPU per call: COPY needs a round trip for the ids and its own start and end,
and then costs less per row than one INSERT per row in a pipeline; they cross between 8
rows (0.34 ms by INSERT, 0.36 ms by COPY) and 16 (0.59 ms, 0.52 ms))."""


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into ``table`` (id column left out) in one go; their new ids, in order.

    PostgreSQL: through the session's own connection's driver, so inside its transaction,
    skipping SQLAlchemy's statement and parameter processing, which cost more than the
    server's work for the few rows of a post (in-process, 4 events: 0.61 ms of CPU through
    SQLAlchemy's multi-row INSERT, 0.21 ms through the driver). Fewer than
    ``COPY_FROM_ROWS`` rows: one INSERT ... RETURNING id per row, sent in one pipeline;
    more: ids drawn from the table's sequence in one round trip, then the rows sent with
    COPY. Constraints and triggers apply to both as to any INSERT (see BENCHMARKS.md,
    batch ingest). Driver errors are raised as SQLAlchemy's, so callers see the usual
    IntegrityError (a retry) or OperationalError (a 503). Both skip SQLAlchemy's type
    processing: values must already be what the driver takes (aware datetimes, which
    ``UTCDateTime`` would check; dicts for JSON columns, sent as JSONB). Other databases:
    one multi-row INSERT ... RETURNING through SQLAlchemy.
    """
    if not rows:
        return []
    columns = [c.name for c in table.columns if c.name != "id"]
    if session.get_bind().dialect.name != "postgresql":
        returned = session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return list(returned.scalars())
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    values = [[Jsonb(row[name]) if name in json_columns else row[name] for name in columns]
              for row in rows]
    driver = session.connection().connection.driver_connection
    assert driver is not None
    try:
        if len(rows) < COPY_FROM_ROWS:
            statement = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
                         f"({', '.join(['%s'] * len(columns))}) RETURNING id")
            return _insert_returning(driver, statement, values)
        statement = ("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                     "FROM generate_series(1, %s)")
        ids = [row[0] for row in driver.execute(statement, (table.name, len(rows)))]
        statement = f"COPY {table.name} (id, {', '.join(columns)}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row_id, row_values in zip(ids, values, strict=True):
                copy.write_row([row_id, *row_values])
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    return ids


def _insert_returning(driver: psycopg.Connection[Any], statement: str,
                      values: list[list[Any]]) -> list[int]:
    """One ``INSERT ... RETURNING id`` per row, in one pipeline; the ids in row order."""
    ids: list[int] = []
    with driver.cursor() as cursor:
        if len(values) == 1:  # a pipeline costs more than it saves for one row
            returned = cursor.execute(statement, values[0]).fetchone()
            assert returned is not None
            return [returned[0]]
        cursor.executemany(statement, values, returning=True)
        while True:
            returned = cursor.fetchone()
            assert returned is not None
            ids.append(returned[0])
            if not cursor.nextset():
                return ids
