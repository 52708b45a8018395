"""Engine and transactions. Services open a unit of work; handlers never commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


class Database:
    """Created once without an app (extensions), bound in ``init_app``."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def configure(self, url: str) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = make_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("database is not configured")
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception."""
        if self._sessions is None:
            raise RuntimeError("database is not configured")
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_serializable(engine)
        return engine
    # No pool_pre_ping: it costs a round trip on every checkout, i.e. on every request. A
    # connection broken by a database restart fails its next statement instead; SQLAlchemy
    # sees a disconnect, invalidates every pooled connection of that age, and the request
    # is a 503 with Retry-After that the client retries with the same event_id (what
    # tests/faults checks). Idle connections are replaced before a proxy or firewall drops
    # them silently (pool_recycle).
    return create_engine(url, pool_size=5, max_overflow=10, pool_recycle=1800)


def _sqlite_serializable(engine: Engine) -> None:
    """Take SQLite's write lock when a transaction begins (BEGIN IMMEDIATE).

    SQLite has no row locks; beginning every unit of work with the database lock makes
    the embedded default as race-free as PostgreSQL's row locks, at the price of
    serialising writers, which is what a one-process development server needs.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
