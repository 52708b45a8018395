"""The accepting-threads worker (carbon_credits/serving.py) outside a server, on loopback
sockets: a serving thread that fails stops the worker, so that gunicorn replaces it; a
thread woken for a connection serves it even when the worker is stopping; timeout 0 means
no limit."""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
def stop_pipe() -> Iterator[tuple[int, int]]:
    """The pipe whose read end tells a serving thread to stop, as run() makes it."""
    read, write = os.pipe()
    yield read, write
    os.close(read)
    os.close(write)


def _out_of_descriptors(listeners: Any, stop_fd: int) -> Iterator[list[int]]:
    raise OSError(errno.EMFILE, "Too many open files")
    yield [stop_fd]  # pragma: no cover  # a generator, as _readiness is


def test_a_failed_serving_thread_stops_the_worker(
        worker: serving.AcceptThreadsWorker, monkeypatch: pytest.MonkeyPatch,
        stop_pipe: tuple[int, int]) -> None:
    monkeypatch.setattr(serving, "_readiness", _out_of_descriptors)
    worker._serve(stop_pipe[0])
    assert worker.alive is False
    assert os.read(worker.PIPE[0], 16) == b"."
    assert worker.log.lines == ["A serving thread failed; the worker stops"]


def test_the_worker_ends_when_its_threads_fail(
        worker: serving.AcceptThreadsWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "_readiness", _out_of_descriptors)
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    running.join(60)
    ended = not running.is_alive()
    if not ended:  # stop it as a signal would, so the test leaves no thread behind
        worker.alive = False
        os.write(worker.PIPE[1], b".")
        running.join(60)
    assert ended


def test_a_stopping_worker_logs_nothing_for_its_threads(
        worker: serving.AcceptThreadsWorker, monkeypatch: pytest.MonkeyPatch,
        stop_pipe: tuple[int, int]) -> None:
    """A thread that fails after the worker was told to stop (its epoll set closed under
    it at exit) is part of stopping, not a fault."""
    monkeypatch.setattr(serving, "_readiness", _out_of_descriptors)
    worker.alive = False
    worker._serve(stop_pipe[0])
    assert worker.log.lines == []


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)  # as the arbiter's listeners are in the worker
        yield server


def _connect(server: socket.socket) -> socket.socket:
    return socket.create_connection(server.getsockname()[:2], timeout=5)


def _serving(worker: serving.AcceptThreadsWorker, stop_fd: int) -> threading.Thread:
    thread = threading.Thread(target=worker._serve, args=(stop_fd,), daemon=True)
    thread.start()
    time.sleep(0.1)  # into its wait (a connection made before is found ready all the same)
    return thread


def _until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def _stop(thread: threading.Thread, stop_write: int) -> None:
    os.write(stop_write, b"x")
    thread.join(60)
    assert not thread.is_alive()


def test_a_stopping_worker_serves_the_connection_that_woke_it(
        worker: serving.AcceptThreadsWorker, listener: socket.socket,
        stop_pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Woken for a connection, a thread of a stopping worker (max_requests reached by
    another thread, a SIGTERM the main thread has not acted on yet) still accepts it: the
    exclusive wake-up went to this thread alone."""
    served: list[Any] = []

    def handle(lst: Any, client: socket.socket, addr: Any) -> None:
        client.close()
        served.append(addr)

    monkeypatch.setattr(worker, "handle", handle)
    worker.sockets = [listener]
    worker.alive = False
    thread = _serving(worker, stop_pipe[0])
    with _connect(listener):
        assert _until(lambda: len(served) == 1)
    _stop(thread, stop_pipe[1])


def test_reaching_max_requests_wakes_the_main_thread(
        worker: serving.AcceptThreadsWorker, listener: socket.socket,
        stop_pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    def last_request(lst: Any, client: socket.socket, addr: Any) -> None:
        client.close()
        worker.alive = False  # as SyncWorker.handle_request does at max_requests

    monkeypatch.setattr(worker, "handle", last_request)
    worker.sockets = [listener]
    thread = _serving(worker, stop_pipe[0])
    with _connect(listener):
        assert select.select([worker.PIPE[0]], [], [], 60)[0]
    _stop(thread, stop_pipe[1])


class OutOfDescriptors:
    """A listener whose accept() fails as it does when the process has no fd left."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")


def test_a_failing_accept_stops_the_worker(
        worker: serving.AcceptThreadsWorker, listener: socket.socket,
        stop_pipe: tuple[int, int]) -> None:
    """Not a retry loop on a listener that stays readable: the worker stops and gunicorn
    starts one with its descriptors free, as with its sync worker."""
    worker.sockets = [OutOfDescriptors(listener)]
    thread = _serving(worker, stop_pipe[0])
    with _connect(listener):
        assert _until(lambda: not worker.alive)
        assert os.read(worker.PIPE[0], 16) == b"."
    if thread.is_alive():
        _stop(thread, stop_pipe[1])
    assert worker.log.lines == ["A serving thread failed; the worker stops"]


@pytest.mark.parametrize(("timeout", "expected"), [(0, None), (7, 7.0)])
def test_timeout_zero_is_no_limit(worker: serving.AcceptThreadsWorker,
                                  listener: socket.socket, monkeypatch: pytest.MonkeyPatch,
                                  timeout: int, expected: float | None) -> None:
    """gunicorn's --timeout 0 is "no limit"; socket.settimeout(0) would make the client's
    socket non-blocking, and a body arriving after its headers would fail to read."""
    worker.cfg.set("timeout", timeout)
    seen: list[float | None] = []
    monkeypatch.setattr(worker, "handle", lambda lst, client, addr: seen.append(
        client.gettimeout()) or client.close())
    with _connect(listener):
        assert select.select([listener], [], [], 5)[0]
        worker.accept(listener)
    assert seen == [expected]
