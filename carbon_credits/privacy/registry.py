"""What each feature holds about a user: its exporter (and eraser), registered here.

Every table that holds rows of one user is covered by exactly one ``Holder`` registered by
the feature package that owns it (``register``, at import of that package's
``personal_data`` module; ``factory.PERSONAL_DATA`` imports them all). The export
(``GET /v1/me/export``) is every holder's ``export``, under its name; erasure runs every
holder's ``erase``. A new feature with a user-owned table adds one ``register`` call and
one line in ``factory.PERSONAL_DATA``; tests/security/test_personal_data_registry.py fails
for any table with a user key that no holder covers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Subject:
    """Whose data, and what the exporters may need beyond the session."""

    user_id: str
    services: Mapping[str, Any]
    """Parts of the running service an exporter needs (``catalog``: the factor and network
    versions explanations are built from; ``config``), passed by the caller, since this
    package imports no feature."""


Export = Callable[[Session, Subject], Any]
Erase = Callable[[Session, Subject, str], None]
"""(session, subject, pseudonym): remove or pseudonymise the subject's rows, in the
erasure's transaction (``privacy.erasure``)."""


@dataclass(frozen=True)
class Holder:
    name: str
    """The key of its part of the export."""
    tables: tuple[str, ...]
    """The tables with rows of a user it covers."""
    export: Export
    erase: Erase | None = None
    order: int = 100
    """Erasers run in ascending order (tables others point at last)."""


HOLDERS: dict[str, Holder] = {}


def register(holder: Holder) -> Holder:
    """Add a feature's holder (idempotent for the same holder, refused for a name or a
    table already covered by another)."""
    known = HOLDERS.get(holder.name)
    if known is not None and known != holder:
        raise ValueError(f"a personal-data holder named {holder.name!r} is registered")
    for other in HOLDERS.values():
        if other.name != holder.name and set(other.tables) & set(holder.tables):
            raise ValueError(f"tables {sorted(set(other.tables) & set(holder.tables))} are "
                             f"covered by {other.name!r} already")
    HOLDERS[holder.name] = holder
    return holder


def covered_tables() -> set[str]:
    return {table for holder in HOLDERS.values() for table in holder.tables}


def jsonable(value: Any) -> Any:
    """A value as JSON carries it: times ISO 8601, bytes base64, decimals as strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


def export_all(session: Session, subject: Subject) -> dict[str, Any]:
    """Every holder's export of the subject, by name, JSON-ready."""
    return {name: jsonable(HOLDERS[name].export(session, subject)) for name in sorted(HOLDERS)}


def columns(row: Any, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every column of an ORM row, by name: an export holds all that is stored."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in leave_out}
