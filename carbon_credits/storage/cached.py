"""Small admin-managed tables every post reads (the active badges, the campaigns, the
webhook endpoints), kept in the process and read again only when their version moves.

Each such table has a trigger (migration 0009_table_versions) that writes a new random
version into ``table_versions`` in the transaction that changes it, whoever writes. Ingest
reads the versions with its other reads (``VERSIONS``: one statement for every table, in
the first round trip) and ``refresh`` reads again the tables whose cached copy carries
another version: an extra round trip after an admin's change, once per process. So no
post uses a copy older than the last change committed before its read, as if it had read
the table itself (tests/integration/test_cached_tables.py).

Why random versions, not counters: a copy is kept per database (its URL), and a database
made again with the same URL (the tests', a restored backup) must not match an old copy.

Why: on the 2-core bench host, the three tables' reads (and the badges' JSON rules decoded
by the driver on every post) were about a fifth of a post's statements (BENCHMARKS.md,
figure 9).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, Table, select
from sqlalchemy.orm import Session

from carbon_credits.storage.models import TableVersion
from carbon_credits.storage.sql import Prebuilt, Read

T = TypeVar("T")

_VERSIONS_TABLE: Table = TableVersion.__table__  # type: ignore[assignment]
VERSIONS = Prebuilt(lambda _: select(_VERSIONS_TABLE.c.name, _VERSIONS_TABLE.c.version))
"""Every cached table's version: (name, version)."""

_lock = threading.Lock()
_ALL: list[Cached[Any]] = []


_names: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _database(session: Session) -> str:
    """The session's database, named by its URL: rendered once per engine (a post asks
    several times; rendering a URL costs more than the lookup)."""
    engine = session.get_bind().engine
    name = _names.get(engine)
    if name is None:
        name = _names[engine] = engine.url.render_as_string(hide_password=True)
    return name


class Cached(Generic[T]):
    """One cached table: ``load`` reads it (and makes the value kept), run only when the
    version read differs from the copy's."""

    def __init__(self, table: str, load: Callable[[Session], T]) -> None:
        self.table = table
        self._load = load
        self._copies: dict[str, tuple[str | None, T]] = {}
        _ALL.append(self)

    def peek(self, session: Session) -> T | None:
        """The copy kept for the session's database, however old (None: none yet): what
        to plan a chunk's reads by, before the versions come back."""
        copy = self._copies.get(_database(session))
        return None if copy is None else copy[1]

    def get(self, session: Session) -> T:
        """The copy, as of this transaction's last ``refresh`` (loaded now if none)."""
        copy = self._copies.get(_database(session))
        if copy is None:
            refresh(session)
            copy = self._copies[_database(session)]
        return copy[1]

    def _refresh(self, session: Session, database: str, version: str | None) -> bool:
        copy = self._copies.get(database)
        if copy is not None and version is not None and copy[0] == version:
            return False
        # The version was read before the rows: a change committed in between makes the
        # copy newer than its version says, and the next read of the versions loads it
        # again (never the other way round: an older copy under a newer version).
        value = self._load(session)
        with _lock:
            self._copies[database] = (version, value)
        return True


def versions_read() -> Read:
    return VERSIONS, {}


def refresh(session: Session, rows: Sequence[tuple[Any, ...]] | None = None) -> bool:
    """Bring every cached table up to ``rows`` (``VERSIONS``' rows, read in this
    transaction; None: read them now). True if any copy was read again (what was planned
    from ``peek`` may have missed reads: plan again)."""
    if rows is None:
        rows = VERSIONS.rows(session, {})
    versions = {str(name): str(version) for name, version in rows}
    database = _database(session)
    moved = False
    for cached in _ALL:
        # A table with no version row (a database made before the triggers) is read again
        # every time: never a stale copy.
        moved |= cached._refresh(session, database, versions.get(cached.table))
    return moved
