"""The few dialect-specific statements, and the SQL shapes services share, in one place."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Table, insert, text
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


COPY_FROM_ROWS = 8
"""Rows from which ``bulk_insert`` uses COPY on PostgreSQL (policy, measured: COPY needs
a round trip for the ids and its own start and end, about 1 ms, and then saves about
0.25 ms per row against SQLAlchemy's multi-row INSERT, so it pays from about 4 rows)."""


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into ``table`` (id column left out) in one go; their new ids, in order.

    PostgreSQL, ``COPY_FROM_ROWS`` rows or more: ids drawn from the table's sequence in one
    round trip, then the rows sent with COPY through the session's own connection, so
    inside its transaction. Constraints and triggers apply to COPY as to INSERT; what COPY
    saves is per-row statement work (parameter processing in SQLAlchemy, query parsing in
    psycopg, planning in the server): see BENCHMARKS.md, batch ingest. Driver errors are
    raised as SQLAlchemy's, so callers see the usual IntegrityError (a retry) or
    OperationalError (a 503). COPY skips SQLAlchemy's type processing: values must
    already be what the driver takes (aware datetimes, which ``UTCDateTime`` would check;
    dicts for JSON columns, sent as JSONB). Otherwise: one multi-row INSERT ... RETURNING.
    """
    if not rows:
        return []
    columns = [c.name for c in table.columns if c.name != "id"]
    if session.get_bind().dialect.name != "postgresql" or len(rows) < COPY_FROM_ROWS:
        returned = session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return list(returned.scalars())
    ids = list(session.scalars(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
             "FROM generate_series(1, :n)"), {"table": table.name, "n": len(rows)}))
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    statement = f"COPY {table.name} (id, {', '.join(columns)}) FROM STDIN"
    driver = session.connection().connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row_id, row in zip(ids, rows, strict=True):
                copy.write_row([row_id, *(Jsonb(row[name]) if name in json_columns
                                          else row[name] for name in columns)])
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    return ids
