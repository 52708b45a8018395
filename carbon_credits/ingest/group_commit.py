"""Group commit: the concurrent single posts of one worker process, applied together.

A single event costs about a dozen statements and a durable commit, nearly all of it per
transaction rather than per event (BENCHMARKS.md, single-event ingest: 8 ms of CPU for a
chunk of one, 1.5 ms per event for a chunk of eight). Posts that arrive while the process
is applying others queue; when a transaction ends, the first waiting thread takes the
queue (up to ``max_group`` posts) and applies it as one chunk, in one transaction and one
commit, and each post is answered from that commit. Nothing waits for a timer: a post
that finds the process idle is applied at once, alone, as it always was; under load the
groups form by themselves, as large as the load.

What a group does not change: an answer is given only after the commit that holds it
(nothing answered can be lost); the group's events decide exactly as the same posts one
after another (ingest/intake.py applies a chunk of several users in order); and a
failure reaches only the posts it belongs to, which ``apply`` sees to (ingest/retry.py, the
one retry layer: a failing group is applied again post by post). This module only queues
and hands out: it never retries. A group that waits on a lock is bounded by the
database's lock timeout (``Config.db_lock_timeout_ms``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from carbon_credits.errors import RETRY_AFTER_S, Unavailable

T = TypeVar("T")
R = TypeVar("R")
Admit = Callable[[Sequence[T]], Sequence[R | None]]
"""Which items of a group go on to be applied: None for each that does, else its result."""

@dataclass(eq=False)
class _Ticket(Generic[T, R]):
    item: T
    ready: threading.Event = field(default_factory=threading.Event)
    """Set when the post is answered (``done``), or when its thread is to lead."""
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """One per process, shared by its request threads (gunicorn's gthread worker)."""

    def __init__(self, max_group: int) -> None:
        self.max_group = max_group
        """Posts per transaction at most: the app gives a batch's chunk
        (``ingest.events.ITEMS_PER_TRANSACTION``), so no lock is held longer."""
        self._mutex = threading.Lock()
        self._queue: deque[_Ticket[T, R]] = deque()
        self._busy = False

    def submit(self, item: T, apply: Callable[[Sequence[T]], Sequence[R]],
               admit: Admit[T, R] | None = None) -> R:
        """``item``'s result, applied alone or in a group by ``apply`` (items in, one
        result per item out, in order; if it raises, every post of the group gets the
        error). Every caller passes the same ``apply`` and ``admit``.

        ``admit``, when given, is asked once per group, before ``apply``, which of its
        items go on (one answer per item: None to apply it, else its result, which it
        gets without being applied): what must happen once per post however the group is
        then applied (the rate limit: one call for the group, and never counted again
        when ``apply`` applies a failed group post by post). If it raises, every post of
        the group gets the error."""
        ticket: _Ticket[T, R] = _Ticket(item)
        with self._mutex:
            self._queue.append(ticket)
            leads, self._busy = not self._busy, True
        if not leads:
            ticket.ready.wait()  # answered, or handed the lead
        if not ticket.done:
            self._lead(apply, admit)
        if ticket.error is not None:
            raise ticket.error
        return ticket.result  # type: ignore[return-value]  # done without error: set

    def _lead(self, apply: Callable[[Sequence[T]], Sequence[R]],
              admit: Admit[T, R] | None) -> None:
        with self._mutex:
            group = [self._queue.popleft()
                     for _ in range(min(len(self._queue), self.max_group))]
        try:
            _run(_admitted(group, admit), apply)
        finally:
            for ticket in group:
                if not ticket.done:  # interrupted (e.g. the worker is shutting down)
                    ticket.error = Unavailable(
                        "the post was interrupted; retry with the same event_id",
                        headers={"Retry-After": str(RETRY_AFTER_S)})
                    ticket.done = True
            with self._mutex:
                if self._queue:  # its thread wakes not done, so it leads
                    self._queue[0].ready.set()
                else:
                    self._busy = False
            for ticket in group:
                ticket.ready.set()


def _admitted(group: list[_Ticket[T, R]], admit: Admit[T, R] | None) -> list[_Ticket[T, R]]:
    """The tickets ``admit`` lets through; the others answered with its result."""
    if admit is None:
        return group
    try:
        answers = admit([ticket.item for ticket in group])
    except Exception as exc:
        for ticket in group:
            ticket.error, ticket.done = exc, True
        return []
    for ticket, answer in zip(group, answers, strict=True):
        if answer is not None:
            ticket.result, ticket.done = answer, True
    return [ticket for ticket in group if not ticket.done]


def _run(group: list[_Ticket[T, R]], apply: Callable[[Sequence[T]], Sequence[R]]) -> None:
    if not group:
        return
    try:
        results = apply([ticket.item for ticket in group])
    except Exception as exc:  # the group's own failure: every post of it hears it
        for ticket in group:
            ticket.error, ticket.done = exc, True
        return
    for ticket, result in zip(group, results, strict=True):
        ticket.result, ticket.done = result, True
