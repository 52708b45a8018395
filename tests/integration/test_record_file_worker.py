"""A worker SIGKILLed mid-file: another worker takes the file over from its checkpoint
(Dramatiq's Redis broker gives a dead worker's message to a live one after the heartbeat
timeout) and every record is applied exactly once. Real Redis, real worker processes
(`flask --app app worker`), the suite's database."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from carbon_credits.ledger import verification
from carbon_credits.providers import jobs, registry
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Event, LedgerEntry, ProviderBinding, utcnow
from tests.conftest import JWT_SECRET
from tests.integration import record_file_applier

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 100
ROWS = 1000
INVALID = {150, 420, 421, 999}
"""Row indexes (line = index + 2) with an invalid steps value."""
HEARTBEAT_MS = 2000


def record_file(prefix: str) -> bytes:
    lines = ["record_id,user_ref,kind,date,steps\n"]
    for i in range(ROWS):
        steps = "x" if i in INVALID else str(i)
        lines.append(f"{prefix}-{i},u{i % 37},daily_steps,2026-12-01,{steps}\n")
    return "".join(lines).encode()


def wait_for(condition: Callable[[], bool], what: str, bound_s: float = 180) -> None:
    """Poll ``condition``: a generous bound on a condition, not a timing assertion."""
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {bound_s}s")
        time.sleep(0.1)


@pytest.fixture
def worker_env(database_url: str, suite_redis_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_APPLIER")}
    env.update(DATABASE_URL=database_url, REDIS_URL=suite_redis_url, JWT_SECRET=JWT_SECRET,
               UPLOAD_DIR=str(tmp_path / "uploads"), RECORD_CHUNK_ROWS=str(CHUNK),
               RECORD_APPLIER="tests.integration.record_file_applier:make",
               WORKER_HEARTBEAT_TIMEOUT_MS=str(HEARTBEAT_MS),
               QUEUE_MAINTENANCE_CHANCE="1000000", PYTHONPATH=str(ROOT))
    return env


@pytest.fixture
def workers() -> Iterator[Callable[[dict[str, str], Path], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"],
                                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def queued_rt(make_app: Callable[..., Flask], suite_redis_url: str,
              worker_env: dict[str, str]) -> Iterator[Runtime]:
    """The web side: uploads queue their jobs on the suite's Redis, for the workers."""
    rt: Runtime = make_app(
        redis_url=suite_redis_url, upload_dir=Path(worker_env["UPLOAD_DIR"]),
        record_chunk_rows=CHUNK, worker_heartbeat_timeout_ms=HEARTBEAT_MS,
        queue_maintenance_chance=1_000_000).extensions["carbon_credits"]
    queue = jobs.queue(rt.config)
    assert queue is not None
    queue.broker.flush_all()  # only this test's jobs for this test's workers
    with record_file_applier.tables(rt.db.engine):
        yield rt


def test_a_killed_workers_file_is_finished_by_another_exactly_once(
        queued_rt: Runtime, worker_env: dict[str, str],
        workers: Callable[[dict[str, str], Path], subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    rt = queued_rt
    provider = f"p-{uuid.uuid4().hex[:12]}"
    job, created = jobs.upload(rt, provider, io.BytesIO(record_file(provider)), "text/csv")
    assert created and job.status == "queued"

    marker = tmp_path / "hung-after-third-chunk"
    first = workers({**worker_env, "FAKE_APPLIER_HANG_AT_CALL": "3",
                     "FAKE_APPLIER_MARKER": str(marker)}, tmp_path / "worker-1.log")
    wait_for(marker.exists, "the first worker to apply its third chunk")
    # The third chunk's records are applied (committed) and its checkpoint is not.
    assert jobs.status(rt, provider, job.id).checkpoint_line == 2 * CHUNK + 1
    first.send_signal(signal.SIGKILL)
    first.wait()

    workers(worker_env, tmp_path / "worker-2.log")

    def finished() -> bool:
        return jobs.status(rt, provider, job.id).status == "done"

    try:
        wait_for(finished, "the second worker to finish the file")
    except AssertionError:
        print((tmp_path / "worker-2.log").read_text())
        raise

    valid_lines = [i + 2 for i in range(ROWS) if i not in INVALID]
    with rt.db.engine.connect() as conn:
        lines = sorted(conn.execute(text(
            "SELECT line FROM fake_record_credits WHERE provider_id = :p"),
            {"p": provider}).scalars())
        handed = conn.execute(text(
            "SELECT first_line, pid FROM fake_record_calls WHERE provider_id = :p "
            "ORDER BY first_line, pid"), {"p": provider}).all()
    # Every record applied once (the table's key refuses a second copy: the redone chunk's
    # records came back as replays), and none missing.
    assert lines == valid_lines
    # Each chunk handed over once, except the one the first worker died in: once by each.
    starts = [row.first_line for row in handed]
    assert starts.count(2 * CHUNK + 2) == 2
    assert len(starts) == ROWS // CHUNK + 1
    assert len({row.pid for row in handed if row.first_line == 2 * CHUNK + 2}) == 2

    done = jobs.status(rt, provider, job.id)
    redone = CHUNK - len([i for i in INVALID if 2 * CHUNK <= i < 3 * CHUNK])
    assert (done.rows_read, done.refused) == (ROWS, len(INVALID))
    assert (done.credited, done.replayed) == (ROWS - len(INVALID) - redone, redone)
    assert done.attempts == 2
    errors = list(jobs.errors_csv(rt, provider, job.id))[1:]
    assert [int(line.split(",")[0]) for line in errors] == sorted(i + 2 for i in INVALID)


def test_a_stopped_worker_leaves_its_file_at_a_checkpoint_for_the_next(
        queued_rt: Runtime, worker_env: dict[str, str],
        workers: Callable[[dict[str, str], Path], subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    """SIGTERM: the worker stops between chunks and the file is queued again; the next
    worker goes on from the checkpoint, re-applying nothing."""
    rt = queued_rt
    provider = f"p-{uuid.uuid4().hex[:12]}"
    job, _ = jobs.upload(rt, provider, io.BytesIO(record_file(provider)), "text/csv")
    first = workers({**worker_env, "FAKE_APPLIER_DELAY_MS": "300"}, tmp_path / "worker-1.log")
    wait_for(lambda: jobs.status(rt, provider, job.id).checkpoint_line > 0,
             "the first worker's first checkpoint")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 0
    stopped = jobs.status(rt, provider, job.id)
    assert stopped.status == "running" and 0 < stopped.rows_read < ROWS

    workers(worker_env, tmp_path / "worker-2.log")
    wait_for(lambda: jobs.status(rt, provider, job.id).status == "done",
             "the second worker to finish the file")
    done = jobs.status(rt, provider, job.id)
    assert (done.rows_read, done.credited, done.replayed, done.refused) == (
        ROWS, ROWS - len(INVALID), 0, len(INVALID))
    with rt.db.engine.connect() as conn:
        starts = list(conn.execute(text(
            "SELECT first_line FROM fake_record_calls WHERE provider_id = :p"),
            {"p": provider}).scalars())
    assert len(starts) == len(set(starts)) == ROWS // CHUNK


def test_a_killed_worker_with_the_real_crediting_credits_every_record_once(
        queued_rt: Runtime, worker_env: dict[str, str],
        workers: Callable[[dict[str, str], Path], subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    """The same kill, with the service's crediting: every metro record of the bound users
    becomes one credited event and one earn entry, and verify-ledger passes."""
    rt = queued_rt
    provider_id = f"p-{uuid.uuid4().hex[:10]}"
    registry.register(rt, "test", provider_id=provider_id, name="Kill Metro",
                      city="shenzhen", modes=["metro"], reason="test")
    users = [f"u-kill-{uuid.uuid4().hex[:10]}" for _ in range(100)]
    with rt.db.transaction() as session:
        for n, user in enumerate(users):
            session.add(ProviderBinding(provider_id=provider_id, user_ref=f"card-{n}",
                                        user_id=user, bound_at=utcnow()))
    rows = 300
    lines = ["record_id,user_ref,kind,entry_station_id,exit_station_id,tapped_in_at,"
             "tapped_out_at\n"]
    # Three trips a user, four hours apart, on the workers' real clock (not the tests'
    # pinned one): no overlaps, within the rules and the backfill window.
    base = datetime.now(UTC) - timedelta(hours=26)
    for i in range(rows):
        start = base + timedelta(hours=4 * (i // len(users)))
        end = start + timedelta(minutes=20)
        lines.append(f"r-{i},card-{i % len(users)},metro_trip,luohu,shaoniangong,"
                     f"{start.isoformat()},{end.isoformat()}\n")
    job, _ = jobs.upload(rt, provider_id, io.BytesIO("".join(lines).encode()), "text/csv")
    env = {**worker_env, "RECORD_APPLIER": "tests.integration.record_file_applier:make_real"}
    marker = tmp_path / "hung"
    first = workers({**env, "FAKE_APPLIER_HANG_AT_CALL": "2",
                     "FAKE_APPLIER_MARKER": str(marker)}, tmp_path / "worker-1.log")
    wait_for(marker.exists, "the first worker to credit its second chunk")
    first.send_signal(signal.SIGKILL)
    first.wait()
    workers(env, tmp_path / "worker-2.log")
    wait_for(lambda: jobs.status(rt, provider_id, job.id).status == "done",
             "the second worker to finish the file")
    with rt.db.transaction() as session:
        statuses = list(session.scalars(select(Event.status).where(
            Event.source == provider_id)))
        earns = session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.user_id.in_(users), LedgerEntry.kind == "earn"))
    assert len(statuses) == rows and set(statuses) <= {"credited", "capped"}
    assert earns == statuses.count("credited")
    done = jobs.status(rt, provider_id, job.id)
    assert (done.rows_read, done.refused, done.credited + done.replayed) == (rows, 0, rows)
    assert list(verification.verify(rt.db, user_ids=users)) == []
