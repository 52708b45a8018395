"""What other features do in the unit of work that credits or reverses an event.

One place for them: the crediting paths (ingest's ``intake``, the review queue's approval,
the admin reversal) call ``credited`` / ``reversed_`` here, and each installed hook (a
campaign's progress, a webhook's outbox row; badges and the like add theirs with
``install``) runs inside that same transaction, under the user's account lock, so what a
hook writes is committed, or rolled back, with the credit. ``factory.create_app`` installs
the hooks, as it installs the chain keys.

Cost on ingest: a hook names what it reads for a chunk (``read``: prebuilt statements, or
none), and ingest sends them with its own reads, in their one round trip; what the hook
writes (``credited`` returns it) is sent with the COMMIT. So a post stays two round trips
with hooks installed (tests/integration/test_intake.py) unless a hook has real work that
needs an answer first (a campaign's bonus against its budget). The other paths, rare and
ORM-based, let ``credited`` run the reads itself.

What hooks read on every post but admins change rarely (active badges, campaigns, webhook
endpoints) they keep in the process (``storage.cached``) and plan their reads by
(``read``: no badge, no read of the badge rules' history). Ingest's round trip carries the
tables' versions first; if one moved, ``credited`` loads it and reads the hooks' reads
again, in one more round trip (once per process after an admin's change).

A hook may append ledger entries to the locked account (``entries``): it runs after the
earn entries are chained and before the accounts are saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from carbon_credits.ledger.entries import Balance
from carbon_credits.storage import cached
from carbon_credits.storage.sql import Read, read_together

Writes = Callable[[], None]
Rows = Sequence[Sequence[tuple[Any, ...]]]
"""What a hook's reads read: the rows of each, in order."""


class CreditedEvent(Protocol):
    """An event as hooks read it: an ingest chunk's ``NewEvent`` or a stored ``Event``."""

    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def local_date(self) -> date: ...
    @property
    def credited_ug(self) -> int: ...
    @property
    def points(self) -> int: ...


@dataclass(frozen=True)
class Scope:
    """What a chunk may credit: its users, cities and local days (the hooks' reads)."""

    users: tuple[str, ...]
    cities: tuple[str, ...]
    first_day: date
    last_day: date

    @classmethod
    def of(cls, events: Iterable[CreditedEvent]) -> Scope:
        events = list(events)
        days = [e.local_date for e in events]
        return cls(tuple(sorted({e.user_id for e in events})),
                   tuple(sorted({e.city for e in events})), min(days), max(days))


class Hook(Protocol):
    def read(self, session: Session, scope: Scope) -> Sequence[Read]:
        """What the hook needs to read for a chunk, sent with ingest's reads; planned from
        the cached tables' copies as they are (``storage.cached.Cached.peek``)."""
        ...

    def credited(self, session: Session, events: Sequence[CreditedEvent],
                 accounts: Mapping[str, Balance], now: datetime, rows: Rows
                 ) -> Writes | None:
        """Events just credited (grams > 0), in order, their accounts locked; ``rows``:
        what ``read`` read, the cached tables brought up to date (``Cached.get``). The
        writes returned are run with the COMMIT."""
        ...

    def reversed(self, session: Session, event: CreditedEvent, account: Balance,
                 now: datetime) -> None:
        """An event whose credit was just reversed, its account locked."""
        ...


_hooks: tuple[Hook, ...] = ()


def install(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    """Install the process's hooks (``create_app``); returns the ones it replaces."""
    global _hooks
    previous, _hooks = _hooks, tuple(hooks)
    return previous


def reads(session: Session, scope: Scope) -> list[Sequence[Read]]:
    """What to read for a chunk, in one round trip: the cached tables' versions, then each
    installed hook's reads, in hook order (nothing when no hook is installed)."""
    if not _hooks:
        return []
    return [[cached.versions_read()], *(hook.read(session, scope) for hook in _hooks)]


def read(session: Session, events: Sequence[CreditedEvent]) -> list[Rows]:
    """What ``reads`` plans for ``events``, read now: ``credited``'s ``rows``. Called
    before any part of their credit is written (the approval path; ingest sends these
    reads with its own): the hooks read the history as it stood before the credit (the
    usage rows the caps count are also the account's day rows)."""
    if not events or not _hooks:
        return []
    cached.refresh(session)  # plan from fresh copies: ``credited`` then reads no more
    planned = reads(session, Scope.of(events))
    found = iter(read_together(session, [r for hook_reads in planned for r in hook_reads]))
    return [[next(found) for _ in hook_reads] for hook_reads in planned]


def credited(session: Session, events: Sequence[CreditedEvent],
             accounts: Mapping[str, Balance], now: datetime,
             rows: Sequence[Rows]) -> list[Writes]:
    """Run the hooks on credited events; ``rows``: what ``reads`` read (as ingest sent
    them, or ``read``), before the credit was written. The writes to run with the
    COMMIT."""
    if not events or not _hooks:
        return []
    if cached.refresh(session, rows[0][0]):
        # Read again: a cached table moved, so what the hooks planned from their old
        # copies may miss a read. Ingest sends the credit's writes with the COMMIT, so
        # this still reads the history before them. The approval path has flushed its
        # usage row by now, but ``read`` refreshed the copies just before its own reads:
        # only an admin's change committed between those two statements brings it here.
        scope = Scope.of(events)
        planned = [hook.read(session, scope) for hook in _hooks]
        found = iter(read_together(session, [r for hook_reads in planned for r in hook_reads])
                     if any(planned) else [])
        rows = [[], *([next(found) for _ in hook_reads] for hook_reads in planned)]
    return [w for hook, found in zip(_hooks, rows[1:], strict=True)
            if (w := hook.credited(session, events, accounts, now, found))]


def reversed_(session: Session, event: CreditedEvent, account: Balance, now: datetime) -> None:
    for hook in _hooks:
        hook.reversed(session, event, account, now)
