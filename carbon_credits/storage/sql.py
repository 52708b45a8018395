"""The few dialect-specific statements, and the SQL shapes services share, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb
from sqlalchemy import (
    JSON,
    ColumnElement,
    Dialect,
    Executable,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy import column as column_of
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.sql.visitors import replacement_traverse, traverse

from carbon_credits.storage.models import Base


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


COPY_FROM_ROWS = 12
"""Rows from which ``bulk_insert`` uses COPY on PostgreSQL (policy, measured in-process,
events rows, CPU per call: COPY needs its own start and end, and then costs less per row
than INSERT; they crossed between 8 rows (0.34 ms by INSERT, 0.36 ms by COPY) and 16
(0.59 ms, 0.52 ms), measured with one INSERT per row)."""


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]],
                returning: bool = True, ids: Sequence[int] | None = None) -> list[int]:
    """Insert ``rows`` into ``table`` in one go; their ids, in order (with ``returning``,
    or as given in ``ids``), else an empty list.

    PostgreSQL: through the session's own connection's driver, so inside its transaction,
    skipping SQLAlchemy's statement and parameter processing, which cost more than the
    server's work for the few rows of a post (in-process, 4 events: 0.61 ms of CPU through
    SQLAlchemy's multi-row INSERT, 0.21 ms through the driver). The ids are the caller's
    (``ids``, drawn with its reads: ``ids_read``; without them only ``returning=False``),
    and the rows are written with them, so nothing has to come back: fewer than
    ``COPY_FROM_ROWS`` rows by one INSERT per row, sent together, which can ride
    ``committing``'s round trip; more by COPY, which cannot be pipelined, so not inside
    ``committing``. Constraints and triggers apply to both as to any INSERT (see
    BENCHMARKS.md, batch ingest). Driver errors are raised as SQLAlchemy's, so callers see
    the usual IntegrityError (a retry) or OperationalError (a 503). Both skip SQLAlchemy's
    type processing: values must already be what the driver takes (aware datetimes, which
    ``UTCDateTime`` would check; dicts for JSON columns, sent as JSONB, None as NULL).
    Other databases: one multi-row INSERT (... RETURNING) through SQLAlchemy; ``ids`` must
    be None there (``ids_read`` draws none).
    """
    if not rows:
        return []
    columns = [c.name for c in table.columns if c.name != "id"]
    if session.get_bind().dialect.name != "postgresql":
        assert ids is None, "ids are drawn on PostgreSQL only"
        if not returning:
            session.execute(insert(table), rows)
            return []
        returned = session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return list(returned.scalars())
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    # None stays SQL NULL (a nullable JSON column's NULL costs a bit, JSON 'null' bytes).
    values = [[Jsonb(value) if name in json_columns and value is not None else value
               for name in columns for value in (row[name],)] for row in rows]
    assert ids is not None or not returning, "on PostgreSQL, draw the ids (ids_read)"
    with driver_errors(session, f"INSERT INTO {table.name}") as driver:
        if ids is not None:
            assert len(ids) >= len(rows)
            columns = ["id", *columns]
            values = [[ids[n], *row_values] for n, row_values in enumerate(values)]
        if len(rows) < COPY_FROM_ROWS:
            # One INSERT per row (executemany: one statement prepared, a Bind per row):
            # for these few rows it cost less CPU than one multi-row INSERT (in-process,
            # events rows: 0.6-0.7 ms against 0.9 ms for 4 rows, 0.8-1.4 against 1.5 ms
            # for 8), and inside ``committing`` it is sent in the same round trip.
            statement = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
                         f"({', '.join(['%s'] * len(columns))})")
            with driver.cursor() as cursor:
                if len(values) == 1:
                    cursor.execute(statement, values[0])
                else:
                    cursor.executemany(statement, values)
        else:
            with driver.cursor() as cursor, cursor.copy(
                    f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row_values in values:
                    copy.write_row(row_values)
    return list(ids[:len(rows)]) if ids is not None else []


def ids_read(session: Session, table: Table, count: int) -> Read | None:
    """PostgreSQL: the read that draws ``count`` new ids from ``table``'s sequence, for a
    ``read_together`` whose transaction then inserts rows with them (``bulk_insert(...,
    ids=...)``) in the round trip of its COMMIT instead of one of their own for the ids
    to come back. Ids drawn and not used are skipped, as a rolled-back insert's are.
    Other databases: None (their inserts return the ids)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return _DRAW_IDS, {"table": table.name, "n": count}


@contextmanager
def committing(session: Session) -> Iterator[None]:
    """Commit the session's transaction at the end of the block, sending the block's writes
    with the COMMIT: on PostgreSQL, one round trip for all of them (a psycopg pipeline,
    COMMIT queued last) instead of one per statement. Nothing is answered before the
    COMMIT's reply: a write that fails (a unique violation: the caller's retry) aborts the
    rest and the COMMIT, and raises here as SQLAlchemy's error; the caller's transaction
    then rolls back as on any error. Other databases: the writes as they come, then
    ``session.commit()``.

    Only statements run by the driver (``Prebuilt.run``, ``bulk_insert`` of fewer than
    ``COPY_FROM_ROWS`` rows with ``ids`` or without ``returning``) belong in the block:
    SQLAlchemy cannot read a statement's result inside a pipeline (it sees none), so
    anything that may query through the session (a cache filled on first use) runs before
    it.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        session.commit()
        return
    with driver_errors(session, "COMMIT") as driver:
        with driver.pipeline():
            yield
            driver.execute("COMMIT")
    # The driver's transaction has ended: this only ends SQLAlchemy's (psycopg sends
    # nothing for a commit outside a transaction).
    session.commit()


OneOf = Callable[[ColumnElement[Any], str], ColumnElement[bool]]
"""How a prebuilt statement tests ``column`` against the list bound as ``name``."""


def _in_list(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    return column.in_(bindparam(name, expanding=True))


ARRAY_FROM = 33
"""Values in a list from which a prebuilt statement binds it as one array (``= ANY``),
planned for its values at each execution, instead of a parameter per value (policy: a
record file's chunk binds thousands of values; psycopg keeps the parsed form of a
statement of at most 50 parameters only, so a longer IN list was parsed again on every
execution, and each length was a statement of its own, compiled and prepared)."""
WHOLE = -1
"""The length recorded for a list bound as one array."""


def _in_values(lengths: Mapping[str, int]) -> OneOf:
    """``one_of`` for lists of these lengths: one parameter per value (``name_<i>``), and
    ``=`` for a single value; a list bound whole (``WHOLE``) as ``= ANY(array)``."""
    def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        if lengths[name] == WHOLE:
            return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
        names = [f"{name}_{i}" for i in range(lengths[name])]
        if len(names) == 1:
            return column == bindparam(names[0])
        return column.in_([bindparam(n) for n in names])
    return one_of


@dataclass(frozen=True)
class _Compiled:
    statement: Executable
    text: str | None
    """PostgreSQL: the SQL the driver runs (None elsewhere: SQLAlchemy runs it)."""
    defaults: dict[str, Any]
    """Values the statement binds itself (e.g. a literal's)."""
    prepare: bool | None = None
    """False: never prepared by the driver (a statement binding arrays: planned for the
    values of each execution; a plan kept for an array of unknown length guessed ten
    values)."""


class Prebuilt:
    """A statement built once and run with bound values only: the ingest path's reads and
    writes, whose few rows per post made SQLAlchemy's per-execution work cost more CPU than
    the database's.

    On PostgreSQL it is compiled to SQL text once per length of its list values and run
    through the session connection's driver (inside its transaction): in-process, a read
    costs about 80 us of CPU so against 130-150 us through SQLAlchemy. A list value binds
    an IN list of that many parameters (``=`` for one), as SQLAlchemy's expanding IN
    would: each length is a statement of its own, which the driver prepares after a few
    uses, and whose generic plan counts the values. (Bound as one array, ``= ANY($1)``,
    a statement's generic plan guessed ten values: on the few rows of a new database that
    plan was a sequential scan, kept by the connection as the tables grew, and the
    server's CPU per post rose by half.) As with ``bulk_insert``, values skip SQLAlchemy's
    type processing both ways: bound values are what the driver takes (aware datetimes),
    and rows come back as the driver makes them (the engine's sessions are in UTC, so
    datetimes come back in UTC as ``UTCDateTime`` would give them). Elsewhere SQLAlchemy
    runs it, a list bound to an expanding IN.

    A list of ``ARRAY_FROM`` values or more is bound as one array (``= ANY``), and so are
    the values named in ``arrays`` (PostgreSQL only: a statement that ``unnest``s them);
    such a statement is planned for its values at each execution (never prepared).

    ``build`` makes the statement, given how to test a column against a list parameter;
    ``json`` names the values bound to JSON columns (sent as JSONB by the driver).
    """

    def __init__(self, build: Callable[[OneOf], Executable], json: Sequence[str] = (),
                 arrays: Sequence[str] = ()) -> None:
        self._build = build
        self._json = frozenset(json)
        self._arrays = frozenset(arrays)
        self._compiled: dict[tuple[str, tuple[tuple[str, int], ...]], _Compiled] = {}
        self._sets: dict[tuple[str, tuple[str, ...]], str | None] = {}

    def _lengths(self, values: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(
            (name, WHOLE if name in self._arrays or len(value) >= ARRAY_FROM else len(value))
            for name, value in values.items() if isinstance(value, list)))

    def _for(self, dialect: Dialect, values: Mapping[str, Any]) -> _Compiled:
        lengths = self._lengths(values) if dialect.name == "postgresql" else ()
        compiled = self._compiled.get((dialect.name, lengths))
        if compiled is None:
            if dialect.name == "postgresql":
                statement = self._build(_in_values(dict(lengths)))
                text = cast(ClauseElement, statement).compile(dialect=dialect)
                compiled = _Compiled(statement, text.string,
                                     {k: v for k, v in text.params.items() if v is not None},
                                     False if any(n == WHOLE for _, n in lengths) else None)
            else:
                compiled = _Compiled(self._build(_in_list), None, {})
            self._compiled[(dialect.name, lengths)] = compiled
        return compiled

    def _driver_call(self, dialect: Dialect, values: Mapping[str, Any]
                     ) -> tuple[str, dict[str, Any], bool | None]:
        """PostgreSQL: the SQL and the values the driver runs, each list value bound as
        ``name_<i>`` (or whole, as an array), and whether the driver may prepare it."""
        compiled = self._for(dialect, values)
        assert compiled.text is not None
        bound = dict(compiled.defaults)
        whole = compiled.prepare is False
        for name, value in values.items():
            if isinstance(value, list) and not (
                    whole and (name in self._arrays or len(value) >= ARRAY_FROM)):
                bound.update((f"{name}_{i}", item) for i, item in enumerate(value))
            else:
                bound[name] = value
        return compiled.text, bound, compiled.prepare

    def rows(self, session: Session, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The statement's rows, as tuples in its column order."""
        conn = session.connection()
        if conn.dialect.name != "postgresql":
            statement = self._for(conn.dialect, values).statement
            return [tuple(row) for row in conn.execute(statement, values)]
        text, bound, prepare = self._driver_call(conn.dialect, values)
        with driver_errors(session, text) as driver:
            return driver.execute(text, bound, prepare=prepare).fetchall()

    def run(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement once per set of values (one pipeline on PostgreSQL); the
        values hold no lists. On PostgreSQL, ``ARRAY_FROM`` rows or more of an INSERT or
        UPDATE go as one statement over their values as arrays (``_as_set``), when it has
        such a form."""
        if not rows:
            return
        conn = session.connection()
        compiled = self._for(conn.dialect, rows[0])
        if compiled.text is None:
            conn.execute(compiled.statement, list(rows))
            return
        if len(rows) >= ARRAY_FROM and not self._json:
            whole = self._as_set(conn.dialect, compiled, tuple(sorted(rows[0])))
            if whole is not None:
                names = tuple(sorted(rows[0]))
                with driver_errors(session, whole) as driver:
                    driver.execute(whole, {name: [row[name] for row in rows]
                                           for name in names}, prepare=False)
                return
        if self._json:
            rows = [{k: Jsonb(v) if k in self._json and v is not None else v
                     for k, v in row.items()} for row in rows]
        with driver_errors(session, compiled.text) as driver, driver.cursor() as cursor:
            if len(rows) == 1:
                cursor.execute(compiled.text, {**compiled.defaults, **rows[0]})
            else:
                cursor.executemany(compiled.text,
                                   [{**compiled.defaults, **row} for row in rows])


    def _as_set(self, dialect: Dialect, compiled: _Compiled, names: tuple[str, ...]
                ) -> str | None:
        """The statement's SQL over arrays of its values, one per name (``unnest``): an
        UPDATE's ``FROM``, an INSERT's ``SELECT`` (its ON CONFLICT kept); None when it has
        no such form (an ON CONFLICT clause that reads a value: only the row inserted is
        visible there) or other values than ``names``. Built once per set of names."""
        key = ("set", names)
        known = self._sets.get(key, False)
        if known is not False:
            return cast(str | None, known)
        text = None
        try:
            text = _set_based(compiled.statement, names, dialect)
        finally:
            self._sets[key] = text
        return text


def _set_based(statement: Executable, names: tuple[str, ...], dialect: Dialect
               ) -> str | None:
    values = cast(Any, statement)._values if isinstance(statement, (Insert, Update)) else None
    if not values:
        return None
    types: dict[str, Any] = {}
    table = cast(Any, statement).table
    for target, value in values.items():
        if not isinstance(value, BindParameter):
            return None
        types[value.key] = table.c[target if isinstance(target, str) else target.key].type
    binds = {b.key: b for b in _binds(statement)}
    for name, bind in binds.items():
        types.setdefault(name, bind.type)
    if set(binds) != set(names) or any(isinstance(t, NullType) for t in types.values()):
        return None
    # Every value an array: unnest makes one row of them per row of values.
    rows = func.unnest(*(bindparam(name, type_=postgresql.ARRAY(types[name]))
                         for name in names)).table_valued(
        *(column_of(name, types[name]) for name in names)).render_derived()

    def replace(element: Any) -> Any:
        return rows.c[element.key] if isinstance(element, BindParameter) else None

    if isinstance(statement, Update):
        # (typed for a replace(element, **kw): the plain one is what it calls)
        changed: Any = cast(Any, replacement_traverse)(statement, {}, replace)
        return cast(str, changed.compile(dialect=dialect).string)
    assert isinstance(statement, Insert)
    conflict = getattr(statement, "_post_values_clause", None)
    if conflict is not None and list(_binds(conflict)):
        return None
    columns = [c if isinstance(c, str) else c.key for c in values]
    as_set = cast(Any, postgresql.insert(statement.table).from_select(
        columns, select(*(rows.c[cast(BindParameter[Any], v).key] for v in values.values()))))
    as_set._post_values_clause = conflict
    return cast(ClauseElement, as_set).compile(dialect=dialect).string


def _binds(element: Any) -> list[BindParameter[Any]]:
    found: list[BindParameter[Any]] = []
    traverse(element, {}, {"bindparam": found.append})
    return found


Read = tuple[Prebuilt, dict[str, Any]]
"""A prebuilt read and its values."""

_DRAW_IDS = Prebuilt(lambda _: select(func.nextval(func.pg_get_serial_sequence(
    bindparam("table", type_=String), literal("id")))).select_from(
        func.generate_series(1, bindparam("n", type_=Integer))))


def read_together(session: Session, reads: Sequence[Read]) -> list[list[tuple[Any, ...]]]:
    """The rows of several reads, in order. PostgreSQL: sent in one pipeline, so one round
    trip (each read still sees the writes and locks of the statements before it), led by
    the transaction's BEGIN if it has not begun (a session of
    ``Database.unit_of_work``); others: one after another."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return [statement.rows(session, values) for statement, values in reads]
    calls = [statement._driver_call(conn.dialect, values) for statement, values in reads]
    with driver_errors(session, "; ".join(text for text, _, _ in calls), begins=True
                       ) as driver:
        with driver.pipeline():
            if driver.info.transaction_status == TransactionStatus.IDLE:
                driver.execute("BEGIN")  # autocommit: psycopg sent none
            cursors = [driver.execute(text, bound, prepare=prepare)
                       for text, bound, prepare in calls]
        return [cursor.fetchall() for cursor in cursors]


@contextmanager
def driver_errors(session: Session, statement: str, begins: bool = False
                  ) -> Iterator[psycopg.Connection[Any]]:
    """The session connection's psycopg connection; its errors raised as SQLAlchemy's (an
    IntegrityError is a retry, an OperationalError a 503), a lost connection marked as
    such, as SQLAlchemy marks it (``connection_invalidated``: group commit answers it to the
    whole group; the transaction's rollback then discards the connection).

    A connection in autocommit mode outside a transaction (a session of
    ``Database.unit_of_work`` before its first ``read_together``, which
    ``begins`` it) is refused: the statement would commit on its own."""
    conn = session.connection()
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    if (not begins and driver.autocommit
            and driver.info.transaction_status == TransactionStatus.IDLE):
        raise RuntimeError(f"{statement[:60]!r} outside a transaction: a session begun by its "
                           "reads must run a read_together first")
    try:
        yield driver
    except psycopg.Error as exc:
        lost = conn.dialect.is_disconnect(cast(Any, exc), cast(Any, driver), None)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error,
                                  connection_invalidated=lost) from exc
