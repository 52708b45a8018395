"""Group commit (carbon_credits/ingest/group_commit.py): who applies what, and who hears what.

No database: ``apply`` is a recording function, and the first call is held until the
test has queued the posts it wants behind it, so the groups are deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from carbon_credits.errors import Unavailable
from carbon_credits.ingest.group_commit import GroupCommit
from carbon_credits.ingest.retry import each_alone_on_failure

WAIT_BOUND_S = 120
"""A bound for "never", not a speed: on a busy machine a thread may wait seconds for a CPU."""


class Recorder:
    """``apply`` for the tests: doubles each item, records each call's items; the first
    call waits for ``release``; ``fail(items)`` says whether a call raises."""

    def __init__(self, fail: Callable[[Sequence[int]], Exception | None] = lambda _: None
                 ) -> None:
        self.calls: list[list[int]] = []
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.calls.append(list(items))
        if len(self.calls) == 1:
            assert self.release.wait(WAIT_BOUND_S)
        error = self.fail(items)
        if error is not None:
            raise error
        return [2 * item for item in items]


def _queue_behind_first(group: GroupCommit[int, int], apply: Recorder, items: list[int],
                        pool: ThreadPoolExecutor) -> list[Future[int]]:
    """Submit ``items[0]`` (it leads, held in apply), then the rest, each queued behind it
    in order; then let the first transaction finish."""
    futures = [pool.submit(group.submit, items[0], apply)]
    _wait_for(lambda: len(apply.calls) == 1)
    for n, item in enumerate(items[1:], start=1):
        futures.append(pool.submit(group.submit, item, apply))
        _wait_for(lambda n=n: len(group._queue) == n)  # queued in this order
    apply.release.set()
    return futures


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_BOUND_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_post_that_finds_the_process_idle_is_applied_at_once_alone() -> None:
    apply = Recorder()
    apply.release.set()
    group: GroupCommit[int, int] = GroupCommit(max_group=100)
    assert group.submit(21, apply) == 42
    assert group.submit(5, apply) == 10
    assert apply.calls == [[21], [5]]


def test_posts_arriving_during_a_transaction_are_applied_together_next_in_order() -> None:
    apply = Recorder()
    group: GroupCommit[int, int] = GroupCommit(max_group=100)
    with ThreadPoolExecutor(8) as pool:
        futures = _queue_behind_first(group, apply, [1, 2, 3, 4, 5, 6], pool)
        assert [f.result(WAIT_BOUND_S) for f in futures] == [2, 4, 6, 8, 10, 12]
    assert apply.calls == [[1], [2, 3, 4, 5, 6]]
    assert not group._busy and not group._queue


def test_a_group_is_at_most_max_group_posts() -> None:
    apply = Recorder()
    group: GroupCommit[int, int] = GroupCommit(max_group=2)
    with ThreadPoolExecutor(8) as pool:
        futures = _queue_behind_first(group, apply, [1, 2, 3, 4, 5, 6], pool)
        assert [f.result(WAIT_BOUND_S) for f in futures] == [2, 4, 6, 8, 10, 12]
    assert apply.calls == [[1], [2, 3], [4, 5], [6]]


def test_posts_of_a_group_cut_short_are_told_to_retry() -> None:
    """If applying a group is interrupted by a BaseException (the worker shutting down),
    the leader's thread sees it and the others get a 503 with Retry-After: their posts may
    or may not be applied, and a retry with the same event_id is safe either way."""
    apply = Recorder(lambda items: SystemExit(1) if len(items) > 1 else None)  # type: ignore[arg-type,return-value]
    group: GroupCommit[int, int] = GroupCommit(max_group=100)
    with ThreadPoolExecutor(8) as pool:
        futures = _queue_behind_first(group, apply, [1, 2, 3], pool)
        assert futures[0].result(WAIT_BOUND_S) == 2
        with pytest.raises(SystemExit):
            futures[1].result(WAIT_BOUND_S)
        with pytest.raises(Unavailable) as told:
            futures[2].result(WAIT_BOUND_S)
    assert told.value.status == 503 and told.value.headers["Retry-After"]
    assert not group._busy and not group._queue


def test_the_next_group_starts_after_a_failure_of_the_leaders_own_post() -> None:
    """The lead passes on even when the leader's own post fails: nobody is left waiting."""
    apply = Recorder(lambda items: RuntimeError("boom") if items == [1] else None)
    group: GroupCommit[int, int] = GroupCommit(max_group=100)
    with ThreadPoolExecutor(8) as pool:
        futures = _queue_behind_first(group, apply, [1, 2, 3], pool)
        with pytest.raises(RuntimeError):
            futures[0].result(WAIT_BOUND_S)
        assert [f.result(WAIT_BOUND_S) for f in futures[1:]] == [4, 6]
    assert apply.calls == [[1], [2, 3]]


class Gate:
    """``admit`` for the tests: refuses odd items (their result is -item), records each
    call's items."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int | None]:
        self.calls.append(list(items))
        return [-item if item % 2 else None for item in items]


def test_admit_is_asked_once_per_group_and_the_refused_are_not_applied() -> None:
    apply, admit = Recorder(), Gate()
    group: GroupCommit[int, int] = GroupCommit(max_group=100)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(group.submit, 2, apply, admit)]
        _wait_for(lambda: len(apply.calls) == 1)
        for n, item in enumerate([3, 4, 5, 6], start=1):
            futures.append(pool.submit(group.submit, item, apply, admit))
            _wait_for(lambda n=n: len(group._queue) == n)
        apply.release.set()
        assert [f.result(WAIT_BOUND_S) for f in futures] == [4, -3, 8, -5, 12]
    assert admit.calls == [[2], [3, 4, 5, 6]]
    assert apply.calls == [[2], [4, 6]]


def test_a_group_applied_again_post_by_post_is_not_admitted_again() -> None:
    """What admit counts (the rate limit) is counted once per post, even when the group
    fails and ingest's apply (retry.py) applies each post alone."""
    recorder = Recorder(lambda items: ValueError("bad") if 8 in items else None)

    def apply(items: Sequence[int]) -> list[int | Exception]:
        return each_alone_on_failure(recorder, items)

    admit = Gate()
    group: GroupCommit[int, int | Exception] = GroupCommit(max_group=100)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(group.submit, 2, apply, admit)]
        _wait_for(lambda: len(recorder.calls) == 1)
        for n, item in enumerate([4, 8, 9], start=1):
            futures.append(pool.submit(group.submit, item, apply, admit))
            _wait_for(lambda n=n: len(group._queue) == n)
        recorder.release.set()
        assert [futures[n].result(WAIT_BOUND_S) for n in (0, 1, 3)] == [4, 8, -9]
        assert isinstance(futures[2].result(WAIT_BOUND_S), ValueError)  # its own answer, alone
    assert admit.calls == [[2], [4, 8, 9]]
    assert recorder.calls == [[2], [4, 8], [4], [8]]


def test_a_failing_group_is_answered_to_each_of_its_posts_and_not_retried() -> None:
    """Group commit only queues: what to try again is ingest's (retry.py)."""
    apply = Recorder(lambda items: ValueError("bad group") if len(items) > 1 else None)
    group: GroupCommit[int, int] = GroupCommit(max_group=100)
    with ThreadPoolExecutor(8) as pool:
        futures = _queue_behind_first(group, apply, [1, 2, 3], pool)
        assert futures[0].result(WAIT_BOUND_S) == 2
        for future in futures[1:]:
            with pytest.raises(ValueError, match="bad group"):
                future.result(WAIT_BOUND_S)
    assert apply.calls == [[1], [2, 3]]


def test_when_admit_fails_every_post_of_the_group_hears_it() -> None:
    def admit(items: Sequence[int]) -> list[int | None]:
        raise RuntimeError("limiter down")

    apply = Recorder()
    apply.release.set()
    group: GroupCommit[int, int] = GroupCommit(max_group=100)
    with pytest.raises(RuntimeError, match="limiter down"):
        group.submit(1, apply, admit)
    assert apply.calls == [] and not group._busy
