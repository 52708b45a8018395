"""Engine and transactions. Services open a unit of work; handlers never commit."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from carbon_credits.storage import replica
from carbon_credits.storage.sql import committing


class Database:
    """Created once without an app (extensions), bound in ``init_app``."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._deferred: sessionmaker[Session] | None = None
        self._replica: Engine | None = None
        self._replica_sessions: sessionmaker[Session] | None = None
        self._max_lag_s = 0.0
        self._fallback_primary = False

    def configure(self, url: str, lock_timeout_ms: int) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = make_engine(url, lock_timeout_ms)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        # The same pool; SQLAlchemy puts a connection in autocommit mode when this engine
        # checks it out and back out of it when it is returned (after the pool's
        # rollback), so no other session ever gets one in that mode.
        self._deferred = self._sessions if self._engine.dialect.name != "postgresql" else (
            sessionmaker(self._engine.execution_options(isolation_level="AUTOCOMMIT"),
                         expire_on_commit=False))

    def configure_reports(self, url: str | None, lock_timeout_ms: int, max_lag_s: float,
                          fallback_primary: bool) -> None:
        """Read reports from a streaming replica at ``url`` (REPORTS_DATABASE_URL), in
        read-only transactions; None: from the primary. See ``storage.replica``."""
        if self._replica is not None:
            self._replica.dispose()
        self._replica = make_engine(url, lock_timeout_ms) if url else None
        # REPEATABLE READ: the lag check and every read of the report share one snapshot,
        # so the figures are those of the moment the lag was measured.
        self._replica_sessions = None if self._replica is None else sessionmaker(
            self._replica.execution_options(postgresql_readonly=True,
                                            isolation_level="REPEATABLE READ"),
            expire_on_commit=False)
        self._max_lag_s = max_lag_s
        self._fallback_primary = fallback_primary

    @property
    def replica(self) -> Engine | None:
        """The reports replica's engine, when one is configured."""
        return self._replica

    def replica_state(self) -> str:
        """/readyz's word for the replica: ok, lagging (beyond REPORTS_MAX_LAG_S, or not
        streaming) or unavailable."""
        if self._replica is None:
            return "ok"
        try:
            with self._replica.connect() as conn:
                lag = replica.measure(conn)
        except (OperationalError, InterfaceError):
            return "unavailable"
        return "ok" if lag.within(self._max_lag_s) else "lagging"

    @contextmanager
    def reports(self) -> Iterator[Session]:
        """A read-only transaction for reports: on the replica when one is configured and
        within REPORTS_MAX_LAG_S (measured in this same transaction, so the snapshot read is
        the one measured), else on the primary if REPORTS_FALLBACK_PRIMARY, else
        ``replica.ReportsUnavailable`` (503). Never for a read a write depends on."""
        if self._replica_sessions is None:
            with self.transaction() as session:
                yield session
            return
        with ExitStack() as stack:
            try:
                session = stack.enter_context(self._replica_sessions())
                stack.enter_context(session.begin())
                lag = replica.measure(session.connection())
            except (OperationalError, InterfaceError):
                why = "unreachable"
            else:
                why = "" if lag.within(self._max_lag_s) else (
                    "not streaming from the primary (or its role lacks pg_monitor)"
                    if lag.seconds is None else
                    f"{lag.seconds:.1f} s behind (REPORTS_MAX_LAG_S={self._max_lag_s:g})")
            if not why:
                yield session
                return
        if not self._fallback_primary:
            raise replica.ReportsUnavailable(why)
        with self.transaction() as session:
            yield session

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

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """A unit of work for the write path: nothing is kept unless ``commit`` is called,
        and any exception, or leaving the block without a commit, rolls it back.

        On PostgreSQL the transaction's BEGIN is sent with its first reads
        (``sql.read_together``) instead of in a round trip of its own: psycopg sends a
        transaction's BEGIN alone and waits for it, even in a pipeline, unless the
        connection is in autocommit mode, which this session's is. Its first statement
        must therefore be a ``read_together``: anything before it would run (and commit) on
        its own, so the driver-level helpers of ``storage.sql`` refuse to run outside a
        transaction. ``commit`` sends the writes given to it with the COMMIT, in one round
        trip (``sql.committing``). Elsewhere: a plain transaction.
        """
        if self._deferred is None:
            raise RuntimeError("database is not configured")
        with self._deferred() as session, session.begin():
            uow = UnitOfWork(session)
            yield uow
            if not uow.committed:
                session.rollback()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._replica is not None:
            self._replica.dispose()


def make_engine(url: str, lock_timeout_ms: int) -> Engine:
    # hide_parameters: a database error's text (logged with the traceback of a 500, a
    # stopped record file...) shows the statement, not its values: user ids, device ids
    # and stations are not written to the logs, which erasure cannot reach.
    if url.startswith("sqlite"):
        # The lock timeout is SQLite's busy timeout there: how long a writer waits for the
        # database lock.
        engine = create_engine(url, connect_args={"timeout": lock_timeout_ms / 1000,
                                                  "check_same_thread": False},
                               hide_parameters=True)
        _sqlite_serializable(engine, lock_timeout_ms)
        return engine
    # No pool_pre_ping: it costs a round trip on every checkout, i.e. on every request. A
    # connection broken by a database restart fails its next statement instead; SQLAlchemy
    # sees a disconnect, invalidates every pooled connection of that age, and the request
    # is a 503 with Retry-After that the client retries with the same event_id (what
    # tests/faults checks). Idle connections are replaced before a proxy or firewall drops
    # them silently (pool_recycle).
    #
    # Bounded waits: lock_timeout (Config.db_lock_timeout_ms) for locks, TCP keepalives for
    # a server that vanished without closing the connection (found dead within about a
    # minute instead of the kernel's two hours). A threaded worker's posts queue behind one
    # transaction (group_commit), so that transaction must not wait forever.
    #
    # Sessions in UTC: what the driver returns for statements run past SQLAlchemy
    # (sql.Prebuilt) is then what ``UTCDateTime`` gives.
    #
    # Pool: at least one connection per gunicorn thread (GUNICORN_THREADS, exported by
    # gunicorn.conf.py), so no thread waits for another's connection.
    threads = int(os.environ.get("GUNICORN_THREADS", "1"))
    return create_engine(
        url, pool_size=5, max_overflow=max(10, threads), pool_recycle=1800,
        hide_parameters=True,
        connect_args={"options": f"-c lock_timeout={lock_timeout_ms} -c timezone=UTC",
                      "keepalives": 1,
                      "keepalives_idle": 30, "keepalives_interval": 10,
                      "keepalives_count": 3})


def _sqlite_serializable(engine: Engine, busy_timeout_ms: int) -> None:
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
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class UnitOfWork:
    """One write transaction (``Database.unit_of_work``): its session, and its end."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.committed = False

    def commit(self, writes: Callable[[], None] = lambda: None) -> None:
        """Run ``writes`` (statements run by the driver: ``Prebuilt.run``, ``bulk_insert``)
        and commit: on PostgreSQL one round trip for all of them and the COMMIT."""
        with committing(self.session):
            writes()
        self.committed = True
