"""The accepting-threads worker (carbon_credits/serving.py) outside a server: a serving
thread that fails stops the worker, so that gunicorn replaces it."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.config import Config

from carbon_credits import serving


class Log:
    """The worker's logger, keeping what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def exception(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@pytest.fixture
def worker() -> Iterator[serving.AcceptThreadsWorker]:
    cfg = Config()
    cfg.set("threads", 2)
    w = serving.AcceptThreadsWorker(0, os.getppid(), [], None, 30, cfg, Log())
    w.PIPE = os.pipe()
    w.alive = True
    yield w
    w.tmp.close()
    for fd in w.PIPE:
        os.close(fd)


@pytest.fixture
def stop_fd() -> Iterator[int]:
    read, write = os.pipe()
    yield read
    os.close(read)
    os.close(write)


def _out_of_descriptors(listeners: Any, stop_fd: int) -> Iterator[int]:
    raise OSError(errno.EMFILE, "Too many open files")
    yield stop_fd  # pragma: no cover  # a generator, as _readiness is


def test_a_failed_serving_thread_stops_the_worker(
        worker: serving.AcceptThreadsWorker, monkeypatch: pytest.MonkeyPatch,
        stop_fd: int) -> None:
    monkeypatch.setattr(serving, "_readiness", _out_of_descriptors)
    worker._serve(stop_fd)
    assert worker.alive is False
    assert os.read(worker.PIPE[0], 16) == b"."
    assert worker.log.lines == ["A serving thread failed; the worker stops"]


def test_the_worker_ends_when_its_threads_fail(
        worker: serving.AcceptThreadsWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "_readiness", _out_of_descriptors)
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    running.join(5)
    ended = not running.is_alive()
    if not ended:  # stop it as a signal would, so the test leaves no thread behind
        worker.alive = False
        os.write(worker.PIPE[1], b".")
        running.join(5)
    assert ended


def test_a_stopping_worker_logs_nothing_for_its_threads(
        worker: serving.AcceptThreadsWorker, monkeypatch: pytest.MonkeyPatch,
        stop_fd: int) -> None:
    """A thread that fails after the worker was told to stop (its epoll set closed under
    it at exit) is part of stopping, not a fault."""
    monkeypatch.setattr(serving, "_readiness", _out_of_descriptors)
    worker.alive = False
    worker._serve(stop_fd)
    assert worker.log.lines == []
