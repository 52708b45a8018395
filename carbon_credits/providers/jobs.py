"""Record files as jobs: upload, process in checkpointed chunks, report status and errors.

- **Upload** (``upload``): the request stream is written to ``UPLOAD_DIR`` while it is
  hashed, never held in memory, and kept under its SHA-256. The format and the CSV header
  are checked before a job is made (a bad file is a 4xx, nothing stored). One job per
  (provider, content): the same file again is the same job (``created`` False).
- **Processing** (``process``): the file is read in chunks of ``RECORD_CHUNK_ROWS`` rows;
  each chunk's valid records go to the crediting (``ApplyChunk``, idempotent by record
  id), then the chunk's counts, its errors and the new checkpoint are written in one
  transaction, guarded by the checkpoint read before it (compare and set). A job
  restarted from its checkpoint therefore re-applies at most its unfinished chunk, whose
  records the crediting answers as replays, and counts every row exactly once; two
  workers on one job cannot both count a chunk.
- **Queue** (``RecordFileQueue``): Dramatiq on the service's Redis (docs/RECORD_FILES.md
  says why). Without REDIS_URL the file is processed in a thread of the web process.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import logging
import os
import queue as queue_
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, cast

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries
from redis.cluster import RedisCluster
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits.config import Config
from carbon_credits.errors import RETRY_AFTER_S, NotFound, TooLarge, Unavailable
from carbon_credits.providers.files import (
    Format,
    RecordReader,
    RowError,
    declared_format,
    ref_digest,
)
from carbon_credits.providers.records import Record
from carbon_credits.runtime import Runtime
from carbon_credits.storage import redis_nodes
from carbon_credits.storage.models import RecordFile, RecordFileError, utcnow

log = logging.getLogger(__name__)

OutcomeStatus = Literal["credited", "replayed", "held", "refused"]
READ_BLOCK = 1 << 16
QUEUE_NAME = "record_files"
ACTOR_NAME = "process_record_file"
MAX_REASON = 300
QUEUE_TIMEOUT_S = 5
"""Connect and reply timeout of the cluster probe, and of the cluster client it makes."""
MAX_ATTEMPTS = 20
"""Starts of one job (a worker died, stopped, or the crediting raised) before it is given
up as failed; the queue's Retries allow as many deliveries."""


@dataclass(frozen=True)
class RowOutcome:
    """What the crediting did with one record (by its line): a refused one says why."""

    line: int
    status: OutcomeStatus
    code: str | None = None
    field: str | None = None
    reason: str | None = None


class ApplyChunk(Protocol):
    """The crediting of a chunk of valid records, one outcome per given line. Must be
    idempotent by (provider, record_id): a record applied before is answered 'replayed'."""

    def __call__(self, provider_id: str, rows: list[tuple[int, Record]]) -> list[RowOutcome]:
        ...


ApplierFactory = Callable[[Runtime], ApplyChunk]


def applier(rt: Runtime) -> ApplyChunk:
    """The configured crediting (``RECORD_APPLIER``, ``module:factory``)."""
    module, _, name = rt.config.record_applier.partition(":")
    factory: ApplierFactory = getattr(importlib.import_module(module), name)
    return factory(rt)


# -- upload ----------------------------------------------------------------------------


def file_path(config: Config, sha256: str) -> Path:
    return config.uploads / sha256[:2] / sha256


class Tap(Protocol):
    """Sees every block of an upload as it is stored, and may refuse it at the end (the
    signature's Content-Digest: ``signatures.StreamDigest``)."""

    def update(self, block: bytes) -> None: ...

    def check(self) -> None: ...


def upload(rt: Runtime, provider_id: str, stream: IO[bytes], content_type: str | None,
           default_city: str | None = None, tap: Tap | None = None
           ) -> tuple[RecordFile, bool]:
    """Store a record file and make its job (True), or find the job of the same content
    from the same provider (False). The job is then queued (again, if a replay of a job
    that is still queued: its first queuing may have failed). ``tap`` refusing the
    stored content leaves nothing behind."""
    declared = declared_format(content_type)
    config = rt.config
    config.uploads.mkdir(parents=True, exist_ok=True)
    sha256, size, incoming = _store_incoming(stream, config.uploads, config.upload_max_bytes,
                                             tap)
    try:
        if tap is not None:
            tap.check()
        job, created = _job_for(rt, provider_id, sha256, size, incoming, declared,
                                default_city or config.default_city)
    finally:
        incoming.unlink(missing_ok=True)
    if job.status == "queued" or (job.status == "running" and config.redis_url is None):
        # Queued: its first queuing may have failed. Running without Redis: the process
        # that ran it may have stopped; a second runner meets the checkpoint's guard.
        dispatch(rt, job.id)
    return job, created


def _store_incoming(stream: IO[bytes], directory: Path, limit: int, tap: Tap | None = None
                    ) -> tuple[str, int, Path]:
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=directory, prefix=".incoming-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            while block := stream.read(READ_BLOCK):
                size += len(block)
                if size > limit:
                    raise TooLarge(f"a record file may have at most {limit} bytes",
                                   fields={"file": [f"more than {limit} bytes"]})
                digest.update(block)
                if tap is not None:
                    tap.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), size, path


def _job_for(rt: Runtime, provider_id: str, sha256: str, size: int, incoming: Path,
             declared: Format | None, city: str) -> tuple[RecordFile, bool]:
    """The job of this content, found or made, in one unit of work."""
    try:
        with rt.db.transaction() as session:
            existing = _find(session, provider_id, sha256)
            if existing is not None:
                return existing, False
            with incoming.open("rb") as fh:
                fmt = RecordReader(fh, city, declared).format  # a bad file: 4xx, nothing kept
            final = file_path(rt.config, sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            # Before the commit: a job never names a file that is not there. The same
            # content from another upload is the same bytes, so replacing it is harmless.
            os.replace(incoming, final)
            job = RecordFile(
                id=uuid.uuid4().hex, provider_id=provider_id, sha256=sha256, format=fmt,
                size_bytes=size, city=city, status="queued", rows_read=0, credited=0,
                held=0, replayed=0, refused=0, checkpoint_line=0, checkpoint_offset=0,
                attempts=0)
            session.add(job)
        return job, True
    except IntegrityError:
        # The same file, uploaded at the same moment: the other upload's job is this one.
        with rt.db.transaction() as session:
            found = _find(session, provider_id, sha256)
        if found is None:
            raise
        return found, False


def _find(session: Session, provider_id: str, sha256: str) -> RecordFile | None:
    return session.scalar(select(RecordFile).where(
        RecordFile.provider_id == provider_id, RecordFile.sha256 == sha256))


# -- status and errors -----------------------------------------------------------------


def status(rt: Runtime, provider_id: str, job_id: str) -> RecordFile:
    """A provider's job; 404 for another provider's, as for one that does not exist."""
    with rt.db.transaction() as session:
        job = session.get(RecordFile, job_id)
        if job is None or job.provider_id != provider_id:
            raise NotFound("no such record file", fields={"file_id": ["not found"]})
        return job


ERRORS_PAGE = 5000


def errors_csv(rt: Runtime, provider_id: str, job_id: str) -> Iterator[str]:
    """The job's row errors as CSV lines (header first): line, field, code, reason. Read a
    page at a time, each page in a transaction of its own, so a report of a million errors
    is streamed, not built."""
    status(rt, provider_id, job_id)
    yield _csv_line(("line", "field", "code", "reason"))
    after = 0
    while True:
        with rt.db.transaction() as session:
            page = session.execute(
                select(RecordFileError.line, RecordFileError.field, RecordFileError.code,
                       RecordFileError.reason)
                .where(RecordFileError.file_id == job_id, RecordFileError.line > after)
                .order_by(RecordFileError.line).limit(ERRORS_PAGE)).all()
        for row in page:
            yield _csv_line((str(row.line), row.field, row.code, row.reason))
        if len(page) < ERRORS_PAGE:
            return
        after = page[-1].line


def _csv_line(cells: tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(
        # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
        ["'" + c if c[:1] in ("=", "+", "-", "@") else c for c in cells])
    return out.getvalue()


# -- processing ------------------------------------------------------------------------


class Superseded(Exception):
    """Another worker moved the job's checkpoint first: this one stops."""


class Stopping(Exception):
    """The worker is shutting down: the job is left at its checkpoint for the next one."""


@dataclass
class _Chunk:
    rows: list[tuple[int, Record | RowError]]
    end: tuple[int, int]


def process(rt: Runtime, job_id: str, apply_chunk: ApplyChunk,
            stop: threading.Event | None = None) -> RecordFile | None:
    """Apply a job's file from its checkpoint to its end; None if there is nothing to do
    (done, failed, unknown). Raises ``Stopping`` when ``stop`` is set between chunks."""
    with rt.db.transaction() as session:
        job = session.get(RecordFile, job_id, with_for_update=True)
        if job is None or job.status in ("done", "failed"):
            return None
        if job.attempts >= MAX_ATTEMPTS:
            job.status, job.failure, job.finished_at = (
                "failed", f"given up after {job.attempts} attempts (see the workers' logs)",
                utcnow())
            return job
        job.status = "running"
        job.attempts += 1
        job.started_at = job.started_at or utcnow()
    path = file_path(rt.config, job.sha256)
    try:
        fh = path.open("rb")
    except OSError as exc:
        return _finish(rt, job, "failed", f"the stored file cannot be read: {exc.strerror}")
    with fh:
        reader = RecordReader(fh, job.city, resume_at=(job.checkpoint_line,
                                                       job.checkpoint_offset))
        checkpoint = job.checkpoint_line
        for chunk in _read_ahead(_chunks(reader, rt.config.record_chunk_rows)):
            if stop is not None and stop.is_set():
                raise Stopping(job_id)
            checkpoint = _apply(rt, job, chunk, apply_chunk, checkpoint)
    return _finish(rt, job, "done", None)


_DONE = object()


def _read_ahead(chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """``chunks``, the next one read and parsed by a thread while the current one is
    credited (the crediting waits on the database for part of each chunk; the reading
    runs then). One chunk ahead at most, so memory stays that of two chunks. A reading
    error is raised here, at the chunk it stopped; the thread ends with the generator
    (stopped early: it is left blocked on a full queue, a daemon, and ends with the
    process; or drains when the reader closes)."""
    ahead: queue_.Queue[object] = queue_.Queue(maxsize=1)
    done = threading.Event()

    def read() -> None:
        try:
            for chunk in chunks:
                while not done.is_set():
                    try:
                        ahead.put(chunk, timeout=0.5)
                        break
                    except queue_.Full:
                        continue
                if done.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            ahead.put(exc)

    reader = threading.Thread(target=read, daemon=True, name="record-file-reader")
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(_Chunk, item)
    finally:
        done.set()
        reader.join()


def _chunks(reader: RecordReader, size: int) -> Iterator[_Chunk]:
    rows: list[tuple[int, Record | RowError]] = []
    for row in reader:
        rows.append(row)
        if len(rows) >= size:
            yield _Chunk(rows, reader.position)
            rows = []
    if rows:
        yield _Chunk(rows, reader.position)


def _apply(rt: Runtime, job: RecordFile, chunk: _Chunk, apply_chunk: ApplyChunk,
           checkpoint: int) -> int:
    valid = [(line, item) for line, item in chunk.rows if isinstance(item, Record)]
    outcomes = apply_chunk(job.provider_id, valid) if valid else []
    if sorted(o.line for o in outcomes) != [line for line, _ in valid]:
        raise RuntimeError("apply_chunk must answer each given line exactly once")
    counts = {"credited": 0, "held": 0, "replayed": 0, "refused": 0}
    # Each error filed under its row's user reference (a digest): erasure finds a user's.
    refs = {line: item.user_ref for line, item in valid}
    errors = [{"file_id": job.id, "line": line, "field": item.field[:64],
               "code": item.code[:64], "reason": item.reason[:MAX_REASON],
               "ref_digest": _digest(job.provider_id, item.user_ref)}
              for line, item in chunk.rows if isinstance(item, RowError)]
    counts["refused"] += len(errors)
    for o in outcomes:
        counts[o.status] += 1
        if o.status == "refused":
            errors.append({"file_id": job.id, "line": o.line, "field": (o.field or "_row")[:64],
                           "code": (o.code or "refused")[:64],
                           "reason": (o.reason or "")[:MAX_REASON],
                           "ref_digest": _digest(job.provider_id, refs.get(o.line))})
    end_line, end_offset = chunk.end
    with rt.db.transaction() as session:
        moved = session.execute(
            update(RecordFile)
            .where(RecordFile.id == job.id, RecordFile.checkpoint_line == checkpoint)
            .values(checkpoint_line=end_line, checkpoint_offset=end_offset,
                    rows_read=RecordFile.rows_read + len(chunk.rows),
                    credited=RecordFile.credited + counts["credited"],
                    held=RecordFile.held + counts["held"],
                    replayed=RecordFile.replayed + counts["replayed"],
                    refused=RecordFile.refused + counts["refused"]))
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise Superseded(job.id)
        if errors:
            session.execute(insert(RecordFileError), errors)
    return end_line


def _digest(provider_id: str, user_ref: str | None) -> bytes | None:
    return None if user_ref is None else ref_digest(provider_id, user_ref)


def _finish(rt: Runtime, job: RecordFile, outcome: str, failure: str | None) -> RecordFile:
    with rt.db.transaction() as session:
        row = session.get(RecordFile, job.id, with_for_update=True)
        assert row is not None
        if row.status == "running":
            row.status = outcome
            row.failure = failure
            row.finished_at = utcnow()
        return row


# -- queue -----------------------------------------------------------------------------


class RecordFileQueue:
    """The Dramatiq broker and actor of record files on one Redis, or on a Redis Cluster
    (all the queue's keys in one slot: storage/redis_nodes.py)."""

    def __init__(self, config: Config) -> None:
        assert config.redis_url is not None
        # Asks the node whether it is in a cluster: a RedisError here is the caller's 503.
        # (Bounded: a node that does not answer is an outage, not a hung upload.)
        backend = redis_nodes.resolve(redis.Redis.from_url(
            config.redis_url, socket_connect_timeout=QUEUE_TIMEOUT_S,
            socket_timeout=QUEUE_TIMEOUT_S))
        on_cluster = isinstance(backend, RedisCluster)
        # Retries: a job that raised (the database away, a worker stopping) is tried again
        # from its checkpoint. No TimeLimit: a file of millions of rows takes minutes.
        self.broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=backend if on_cluster else None,
            url=None if on_cluster else config.redis_url,
            namespace=(redis_nodes.CLUSTER_QUEUE_NAMESPACE if on_cluster
                       else redis_nodes.QUEUE_NAMESPACE),
            heartbeat_timeout=config.worker_heartbeat_timeout_ms,
            maintenance_chance=config.queue_maintenance_chance,
            middleware=[Retries(max_retries=MAX_ATTEMPTS, min_backoff=1000,
                                max_backoff=60_000)])
        self._perform: Callable[[str], None] | None = None
        self.actor: dramatiq.Actor[[str], None] = dramatiq.Actor(
            self._run, broker=self.broker, actor_name=ACTOR_NAME, queue_name=QUEUE_NAME,
            priority=0, options={})

    def enqueue(self, job_id: str) -> None:
        self.actor.send(job_id)

    def serve(self, perform: Callable[[str], None]) -> None:
        """Make this process's worker run ``perform`` for each queued job."""
        self._perform = perform

    def _run(self, job_id: str) -> None:
        if self._perform is None:
            raise RuntimeError("this process does not work on record files")
        self._perform(job_id)


_queues: dict[tuple[str, int, int], RecordFileQueue] = {}
_queues_lock = threading.Lock()


def queue(config: Config) -> RecordFileQueue | None:
    """The queue of this configuration's Redis (one per process), or None without Redis."""
    if config.redis_url is None:
        return None
    key = (config.redis_url, config.worker_heartbeat_timeout_ms,
           config.queue_maintenance_chance)
    with _queues_lock:
        if key not in _queues:
            _queues[key] = RecordFileQueue(config)
        return _queues[key]


def dispatch(rt: Runtime, job_id: str) -> None:
    """Queue a job for the workers; without Redis, process it in a thread of this process
    (the embedded default: one process, SQLite)."""
    if rt.config.redis_url is not None:
        try:
            q = queue(rt.config)
            assert q is not None
            q.enqueue(job_id)
        except redis.RedisError:
            # The job is stored, queued: the same upload again is its replay, and queues it.
            raise Unavailable("the job queue is unavailable; send the file again",
                              code="queue_unavailable",
                              headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        return
    threading.Thread(target=_process_logged, args=(rt, job_id), daemon=True,
                     name=f"record-file-{job_id}").start()


def _process_logged(rt: Runtime, job_id: str) -> None:
    try:
        process(rt, job_id, applier(rt))
    except Exception:
        # Left at its checkpoint ('running'): uploading the same file again resumes it.
        log.exception("record file %s stopped", job_id)


def perform(rt: Runtime, apply_chunk: ApplyChunk, stop: threading.Event
            ) -> Callable[[str], None]:
    """What a worker does with a queued job id."""

    def run(job_id: str) -> None:
        try:
            process(rt, job_id, apply_chunk, stop)
        except Superseded:
            log.info("record file %s: another worker has it", job_id)
        except Stopping:
            # Queued again (Retries) for another worker, from the checkpoint; not an error.
            raise dramatiq.Retry(f"record file {job_id}: stopped at a checkpoint",
                                 delay=1000) from None

    return run

