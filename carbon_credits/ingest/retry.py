"""The one retry layer of ingest: what is tried again when applying posts fails, and how.

Two rules, both here and nowhere else:

1. **Conflicts are tried again** (``ATTEMPTS`` in all). The unique (user_id, event_id)
   constraint caught a concurrent copy that the account lock did not serialise (e.g. the
   account was being created): the next attempt finds the stored event and answers it as a
   replay. A deadlock (two first posts of overlapping users locking in different orders,
   see ledger/entries.py ``open_accounts``) is tried again the same way. Any other database
   error is an outage (a 503). Should a conflict keep happening, the client is told to
   retry later, as for an outage: the request changed nothing, and a retry with the same
   ids is safe.
2. **A failing group is applied again post by post.** A group of several users' posts
   (group_commit.py) whose transaction raises (anything but the refusal of one event,
   which is a result) is applied again one post at a time, each under rule 1, so each post
   gets the answer it would have had alone. A lost database connection is the exception:
   every post would meet it, so it is answered to the whole group at once (each gets a
   503 and retries with the same ``event_id``). A lock timeout is not shared: it belongs to
   one user's account, and the others' posts succeed alone.

Pure of the database: the callers pass what to try, so both rules are tested with fakes
(tests/unit/test_retry.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from carbon_credits.errors import RETRY_AFTER_S, Unavailable

T = TypeVar("T")
R = TypeVar("R")

ATTEMPTS = 3
"""Tries of one transaction that meets conflicts (policy): a conflict means another copy
committed, so the second try already answers it as a replay; the third covers a deadlock
met right after."""


def is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def is_partition_missing(exc: Exception) -> bool:
    """PostgreSQL found no partition of ``events`` for the row's month (storage/partitions.py):
    nothing was stored, and trying again before the month is created would meet it again."""
    orig = getattr(exc, "orig", None)
    return (getattr(orig, "sqlstate", None) == "23514"
            and "no partition of relation" in str(orig))


def is_shared(exc: Exception) -> bool:
    """A failure every post of a group would meet: a lost database connection."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def retrying_conflicts(attempt: Callable[[], R]) -> R:
    """``attempt()``, tried again on a conflict (rule 1); a 503 past the last try."""
    for n in range(ATTEMPTS):
        try:
            return attempt()
        except (IntegrityError, OperationalError) as exc:
            if isinstance(exc, OperationalError) and not is_deadlock(exc):
                raise
            if is_partition_missing(exc):
                raise Unavailable(
                    "the month of the event's date is not open for writes yet; retry with "
                    "the same event_id", code="partition_missing",
                    headers={"Retry-After": str(RETRY_AFTER_S)}) from None
            if n == ATTEMPTS - 1:
                raise Unavailable(
                    "the events met concurrent writes of the same ids; retry with the "
                    "same event_id", code="write_conflict",
                    headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def each_alone_on_failure(apply: Callable[[Sequence[T]], Sequence[R]], items: Sequence[T]
                          ) -> list[R | Exception]:
    """``apply(items)``, or, if it raises for the group, ``apply`` of each item alone
    (rule 2): one result per item, an item's own exception as its result. Raises only
    what is shared, or what a lone item raised."""
    try:
        return list(apply(items))
    except Exception as exc:
        if len(items) == 1 or is_shared(exc):
            raise
    results: list[R | Exception] = []
    for item in items:
        try:
            results.append(apply([item])[0])
        except Exception as alone:
            results.append(alone)
    return results
