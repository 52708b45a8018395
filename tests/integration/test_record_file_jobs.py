"""Record file jobs (carbon_credits/providers/jobs.py) on the real database: the same file
is the same job; rows are counted once, with their errors, also across a restart."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from carbon_credits.errors import InvalidInput, NotFound, TooLarge, Unavailable
from carbon_credits.providers import jobs
from carbon_credits.providers.job_schemas import RecordFileErrorSchema, RecordFileSchema
from carbon_credits.providers.jobs import RowOutcome
from carbon_credits.providers.records import Record
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import RecordFile, RecordFileError
from tests.integration import record_file_applier

HEADER = "record_id,user_ref,kind,date,steps\n"
APPLIER = "tests.integration.record_file_applier:make"


def steps_file(n: int, bad: dict[int, str] | None = None, prefix: str = "") -> bytes:
    """n rows (lines 2..n+1); ``bad`` maps a row index to the user_ref or a bad value."""
    bad = bad or {}
    rows = []
    for i in range(n):
        tag = bad.get(i)
        steps = "lots" if tag == "invalid" else str(100 + i)
        user = tag if tag and tag != "invalid" else f"u{i}"
        rows.append(f"{prefix}r{i},{user},daily_steps,2026-12-01,{steps}\n")
    return (HEADER + "".join(rows)).encode()


@pytest.fixture
def provider() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Jobs handed to the queue, not processed: the tests run ``process`` themselves."""
    sent: list[str] = []
    monkeypatch.setattr(jobs, "dispatch", lambda _rt, job_id: sent.append(job_id))
    return sent


@pytest.fixture
def chunked_rt(make_app: Callable[..., Flask]) -> Iterator[Runtime]:
    rt: Runtime = make_app(record_chunk_rows=10, record_applier=APPLIER
                           ).extensions["carbon_credits"]
    with record_file_applier.tables(rt.db.engine):
        yield rt


def credited_lines(rt: Runtime, provider: str) -> list[int]:
    with rt.db.engine.connect() as conn:
        return sorted(conn.execute(text(
            "SELECT line FROM fake_record_credits WHERE provider_id = :p"), {"p": provider}
        ).scalars())


def calls(rt: Runtime, provider: str) -> list[tuple[int, int]]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT first_line, rows FROM fake_record_calls WHERE provider_id = :p"),
            {"p": provider}).all()
        return sorted((int(a), int(b)) for a, b in rows)


def test_the_same_file_twice_is_the_same_job(rt: Runtime, provider: str,
                                             dispatched: list[str]) -> None:
    data = steps_file(20)
    first, created = jobs.upload(rt, provider, io.BytesIO(data), "text/csv")
    again, created_again = jobs.upload(rt, provider, io.BytesIO(data), "text/csv")
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.sha256 == first.sha256
    # A replay of a job still queued queues it again (its first queuing may have failed).
    assert dispatched == [first.id, first.id]
    other, created_other = jobs.upload(rt, f"{provider}-b", io.BytesIO(data), "text/csv")
    assert created_other and other.id != first.id
    with rt.db.transaction() as session:
        assert session.scalar(select(RecordFile.sha256).where(
            RecordFile.id == first.id)) == first.sha256
    stored = jobs.file_path(rt.config, first.sha256)
    assert stored.read_bytes() == data


def test_a_done_job_uploaded_again_is_not_queued_again(
        chunked_rt: Runtime, provider: str, dispatched: list[str]) -> None:
    data = steps_file(5)
    job, _ = jobs.upload(chunked_rt, provider, io.BytesIO(data), None)
    jobs.process(chunked_rt, job.id, jobs.applier(chunked_rt))
    again, created = jobs.upload(chunked_rt, provider, io.BytesIO(data), None)
    assert not created and again.status == "done" and dispatched == [job.id]


def incoming_files(rt: Runtime) -> list[Path]:
    return list(rt.config.uploads.glob(".incoming-*"))


@pytest.mark.parametrize("data, code", [(b"a,b,c\n1,2,3\n", "csv_no_header"),
                                        (b"\x89PNG\r\n\x1a\n\x00\x00", "unsupported_file_format")])
def test_a_file_that_is_not_records_is_refused_whole_and_nothing_kept(
        rt: Runtime, provider: str, dispatched: list[str], data: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        jobs.upload(rt, provider, io.BytesIO(data), "application/octet-stream")
    assert caught.value.code == code
    assert incoming_files(rt) == [] and dispatched == []
    with rt.db.transaction() as session:
        assert session.scalar(select(RecordFile.id).where(
            RecordFile.provider_id == provider)) is None


def test_a_file_over_the_limit_is_413_and_nothing_kept(
        make_app: Callable[..., Flask], provider: str, dispatched: list[str]) -> None:
    rt: Runtime = make_app(upload_max_bytes=1000).extensions["carbon_credits"]
    with pytest.raises(TooLarge) as caught:
        jobs.upload(rt, provider, io.BytesIO(steps_file(100)), "text/csv")
    assert caught.value.status == 413
    assert incoming_files(rt) == [] and dispatched == []


def test_rows_are_counted_by_outcome_with_their_errors(
        chunked_rt: Runtime, provider: str, dispatched: list[str]) -> None:
    rt = chunked_rt
    bad = {3: "invalid", 7: "nobody-7", 12: "held-12", 20: "invalid", 24: "nobody-24"}
    job, _ = jobs.upload(rt, provider, io.BytesIO(steps_file(25, bad)), "text/csv")
    done = jobs.process(rt, job.id, jobs.applier(rt))
    assert done is not None and done.status == "done"
    view = RecordFileSchema().dump(jobs.status(rt, provider, job.id))
    assert view["counts"] == {"rows_read": 25, "credited": 20, "held": 1, "replayed": 0,
                              "refused": 4}
    assert view["checkpoint_line"] == 26 and view["finished_at"] is not None
    # Each chunk of 10 rows (lines 2-11, 12-21, 22-26) handed over once, invalid rows not.
    assert calls(rt, provider) == [(2, 9), (12, 10), (23, 4)]
    report = list(csv.reader(jobs.errors_csv(rt, provider, job.id)))
    assert report == [
        ["line", "field", "code", "reason"],
        ["5", "steps", "invalid_field", "Not a valid integer."],
        ["9", "user_ref", "not_bound", "the user is not bound to this provider"],
        ["22", "steps", "invalid_field", "Not a valid integer."],
        ["26", "user_ref", "not_bound", "the user is not bound to this provider"]]
    with rt.db.transaction() as session:
        first = session.scalars(select(RecordFileError).where(
            RecordFileError.file_id == job.id).order_by(RecordFileError.line)).first()
        assert RecordFileErrorSchema().dump(first) == {
            "line": 5, "field": "steps", "code": "invalid_field",
            "reason": "Not a valid integer."}


def test_another_providers_job_is_not_found(rt: Runtime, provider: str,
                                            dispatched: list[str]) -> None:
    job, _ = jobs.upload(rt, provider, io.BytesIO(steps_file(2)), "text/csv")
    with pytest.raises(NotFound):
        jobs.status(rt, f"{provider}-other", job.id)
    with pytest.raises(NotFound):
        list(jobs.errors_csv(rt, f"{provider}-other", job.id))


class Crash(Exception):
    pass


def test_a_restarted_job_reapplies_only_its_unfinished_chunk_and_counts_once(
        chunked_rt: Runtime, provider: str, dispatched: list[str]) -> None:
    """The crash comes after the crediting of the third chunk committed and before its
    checkpoint: the restart hands that chunk over again, its records are replays, and
    every row is counted once."""
    rt = chunked_rt
    job, _ = jobs.upload(rt, provider, io.BytesIO(steps_file(45, {30: "invalid"})),
                         "text/csv")
    real = jobs.applier(rt)
    seen = 0

    def dies_after_third(provider_id: str, rows: list[tuple[int, Record]]
                         ) -> list[RowOutcome]:
        nonlocal seen
        outcomes = real(provider_id, rows)
        seen += 1
        if seen == 3:
            raise Crash
        return outcomes

    with pytest.raises(Crash):
        jobs.process(rt, job.id, dies_after_third)
    stopped = jobs.status(rt, provider, job.id)
    assert (stopped.status, stopped.checkpoint_line, stopped.rows_read) == ("running", 21, 20)
    done = jobs.process(rt, job.id, real)
    assert done is not None and done.status == "done" and done.attempts == 2
    assert credited_lines(rt, provider) == [line for line in range(2, 47) if line != 32]
    assert calls(rt, provider) == [(2, 10), (12, 10), (22, 10), (22, 10), (33, 9), (42, 5)]
    assert (done.rows_read, done.credited, done.replayed, done.refused) == (45, 34, 10, 1)
    assert [line for line, *_ in csv.reader(jobs.errors_csv(rt, provider, job.id))] == [
        "line", "32"]


def test_a_worker_behind_another_on_the_same_job_counts_nothing(
        chunked_rt: Runtime, provider: str, dispatched: list[str]) -> None:
    rt = chunked_rt
    job, _ = jobs.upload(rt, provider, io.BytesIO(steps_file(15)), "text/csv")
    stale = jobs.status(rt, provider, job.id)  # read before the other worker ran
    jobs.process(rt, job.id, jobs.applier(rt))
    with jobs.file_path(rt.config, job.sha256).open("rb") as fh:
        first_chunk = next(jobs._chunks(jobs.RecordReader(fh, "shenzhen"), 10))
    with pytest.raises(jobs.Superseded):
        jobs._apply(rt, stale, first_chunk, jobs.applier(rt), 0)
    after = jobs.status(rt, provider, job.id)
    assert (after.rows_read, after.credited, after.replayed) == (15, 15, 0)


def test_a_job_whose_file_is_gone_fails_with_a_reason(
        chunked_rt: Runtime, provider: str, dispatched: list[str]) -> None:
    job, _ = jobs.upload(chunked_rt, provider, io.BytesIO(steps_file(3, prefix="gone")),
                         "text/csv")
    jobs.file_path(chunked_rt.config, job.sha256).unlink()
    failed = jobs.process(chunked_rt, job.id, jobs.applier(chunked_rt))
    assert failed is not None and failed.status == "failed"
    assert failed.failure is not None and "cannot be read" in failed.failure
    assert jobs.process(chunked_rt, job.id, jobs.applier(chunked_rt)) is None


def test_a_queue_that_is_down_is_a_503_and_the_same_upload_again_queues_the_job(
        make_app: Callable[..., Flask], suite_redis_url: str, provider: str) -> None:
    down: Runtime = make_app(redis_url="redis://127.0.0.1:1/0").extensions["carbon_credits"]
    data = steps_file(4, prefix="down")
    with pytest.raises(Unavailable) as caught:
        jobs.upload(down, provider, io.BytesIO(data), "text/csv")
    assert caught.value.status == 503 and caught.value.headers["Retry-After"]
    up: Runtime = make_app(redis_url=suite_redis_url).extensions["carbon_credits"]
    queue = jobs.queue(up.config)
    assert queue is not None
    before = queue.broker.client.llen(f"{queue.broker.namespace}:{jobs.QUEUE_NAME}")
    job, created = jobs.upload(up, provider, io.BytesIO(data), "text/csv")
    assert not created and job.status == "queued"
    assert queue.broker.client.llen(f"{queue.broker.namespace}:{jobs.QUEUE_NAME}") == before + 1
    queue.broker.flush_all()  # no worker of a later test is to take it


def test_a_job_started_too_often_is_given_up(
        chunked_rt: Runtime, provider: str, dispatched: list[str]) -> None:
    """A crediting that raises each time (a bug) ends in 'failed', not in retries forever."""
    job, _ = jobs.upload(chunked_rt, provider, io.BytesIO(steps_file(3, prefix="often")),
                         "text/csv")

    def broken(provider_id: str, rows: list[tuple[int, Record]]) -> list[RowOutcome]:
        raise Crash

    for _ in range(jobs.MAX_ATTEMPTS):
        with pytest.raises(Crash):
            jobs.process(chunked_rt, job.id, broken)
    failed = jobs.process(chunked_rt, job.id, broken)
    assert failed is not None and failed.status == "failed"
    assert failed.failure == f"given up after {jobs.MAX_ATTEMPTS} attempts (see the workers' logs)"
    assert jobs.status(chunked_rt, provider, job.id).status == "failed"


def test_without_redis_a_file_is_processed_in_the_web_process(
        make_app: Callable[..., Flask], provider: str) -> None:
    rt: Runtime = make_app(redis_url=None, record_applier=APPLIER
                           ).extensions["carbon_credits"]
    with record_file_applier.tables(rt.db.engine):
        job, created = jobs.upload(rt, provider,
                                   io.BytesIO(steps_file(30, prefix="inproc")), "text/csv")
        assert created
        deadline = time.monotonic() + 120  # a bound on a condition, not a timing assertion
        state: Any = job
        while state.status != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
            state = jobs.status(rt, provider, job.id)
        assert (state.status, state.rows_read, state.credited) == ("done", 30, 30)
