"""Ingest's one retry layer (carbon_credits/ingest/retry.py), with fakes: no database."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from carbon_credits.errors import Unavailable
from carbon_credits.ingest.retry import ATTEMPTS, each_alone_on_failure, retrying_conflicts


class Deadlock(Exception):
    sqlstate = "40P01"


def conflict() -> IntegrityError:
    return IntegrityError("INSERT INTO events", {}, Exception("duplicate key"))


def deadlock() -> OperationalError:
    return OperationalError("SELECT ... FOR UPDATE", {}, Deadlock("deadlock detected"))


class Attempts:
    """Raises the given errors in turn, then answers ``done``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


# --- rule 1: conflicts are tried again ------------------------------------------------------

def test_a_conflict_is_tried_again_and_the_next_attempt_answers() -> None:
    attempt = Attempts(conflict())
    assert retrying_conflicts(attempt) == "done"
    assert attempt.calls == 2


def test_a_deadlock_is_tried_again() -> None:
    attempt = Attempts(deadlock(), deadlock())
    assert retrying_conflicts(attempt) == "done"
    assert attempt.calls == 3


def test_any_other_database_error_is_not_tried_again() -> None:
    lock_timeout = OperationalError("SELECT ... FOR UPDATE", {}, Exception("lock timeout"))
    attempt = Attempts(lock_timeout)
    with pytest.raises(OperationalError):
        retrying_conflicts(attempt)
    assert attempt.calls == 1


def test_conflicts_past_the_last_attempt_are_a_503_to_retry_with_the_same_id() -> None:
    attempt = Attempts(*(conflict() for _ in range(ATTEMPTS)))
    with pytest.raises(Unavailable) as caught:
        retrying_conflicts(attempt)
    assert attempt.calls == ATTEMPTS
    assert caught.value.code == "write_conflict"
    assert caught.value.headers and "Retry-After" in caught.value.headers


# --- rule 2: a failing group, post by post -------------------------------------------------

class Apply:
    """Doubles each item; a call raises ``fail(items)`` when that is not None."""

    def __init__(self, fail: object) -> None:
        self.fail = fail
        self.calls: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.calls.append(list(items))
        error = self.fail(items)  # type: ignore[operator]
        if error is not None:
            raise error
        return [2 * item for item in items]


def test_a_failing_group_is_applied_again_post_by_post_so_only_the_culprit_fails() -> None:
    apply = Apply(lambda items: ValueError(f"bad item in {list(items)}") if 4 in items else None)
    results = each_alone_on_failure(apply, [2, 3, 4, 5])
    assert results[:2] == [4, 6] and results[3] == 10
    assert isinstance(results[2], ValueError) and "[4]" in str(results[2])
    assert apply.calls == [[2, 3, 4, 5], [2], [3], [4], [5]]


def test_a_lost_database_is_answered_to_the_whole_group_without_trying_each() -> None:
    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection"),
                            connection_invalidated=True)
    apply = Apply(lambda items: lost)
    with pytest.raises(OperationalError):
        each_alone_on_failure(apply, [2, 3, 4])
    assert apply.calls == [[2, 3, 4]]


def test_a_lock_timeout_is_tried_post_by_post_not_answered_to_all() -> None:
    """A database error that left the connection usable (here a lock timeout on one
    user's account) is not shared: each post is tried alone."""
    apply = Apply(lambda items: OperationalError("SELECT ... FOR UPDATE", {},
                                                 Exception("lock timeout"))
                  if 3 in items else None)
    results = each_alone_on_failure(apply, [2, 3, 4])
    assert (results[0], results[2]) == (4, 8)
    assert isinstance(results[1], OperationalError)
    assert apply.calls == [[2, 3, 4], [2], [3], [4]]


def test_a_lone_post_that_fails_raises() -> None:
    apply = Apply(lambda items: ValueError("bad"))
    with pytest.raises(ValueError):
        each_alone_on_failure(apply, [7])
    assert apply.calls == [[7]]


class NoPartition(Exception):
    sqlstate = "23514"


def test_a_month_without_a_partition_is_a_503_at_once_not_tried_again() -> None:
    """PostgreSQL found no partition of events for the row (storage/partitions.py): trying
    again would meet it again; the client retries after Retry-After."""
    attempts = Attempts(IntegrityError("INSERT INTO events", {}, NoPartition(
        'no partition of relation "events" found for row')))
    with pytest.raises(Unavailable) as refused:
        retrying_conflicts(attempts)
    assert attempts.calls == 1
    assert refused.value.code == "partition_missing"
    assert refused.value.headers["Retry-After"]


def test_another_check_violation_is_still_a_conflict_tried_again() -> None:
    attempts = Attempts(IntegrityError("INSERT INTO events", {}, NoPartition(
        'new row violates check constraint "ck_events_credited_le"')))
    assert retrying_conflicts(attempts) == "done" and attempts.calls == 2
