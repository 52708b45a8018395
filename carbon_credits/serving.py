"""How gunicorn serves the app: a worker whose threads accept their own connections, and
an access logger that formats only what its line uses. gunicorn.conf.py selects both.

**The worker.** gunicorn's ``gthread`` worker runs every connection through its main
thread: it accepts, hands the connection to a pool thread, is woken through a pipe when
the request is done, and closes the connection itself, waiting for the client's FIN.
Each hand-off is a thread switch, and on the hosts this service was measured on a switch
costs tens of microseconds of CPU: the main threads spent 0.6 ms of CPU per post, a fifth
of the workers', about half of it beyond starting the worker (BENCHMARKS.md, "Ingest",
seventh and eighth rounds). Here each of
``threads`` threads runs gunicorn's sync worker loop on its own: wait for a connection,
accept it, read the request, call the app, write the answer, close. The main thread only
beats the worker's heartbeat and takes signals. The threads wait in epoll sets of their
own in which the listening sockets are registered ``EPOLLEXCLUSIVE`` afresh for each
wait, so a connection wakes one thread, not all of them, and the one of any worker
process that has waited longest; a pipe registered without it wakes them all at
shutdown. The process's concurrent requests still meet in the app's group commit
(carbon_credits/ingest/group_commit.py). Against gthread, in eight alternating rounds
(BENCHMARKS.md, eighth round): 17 % more posts/s at 11 % less CPU per post, 39 % more
healthz/s, lower p99; batches at the same rate.

What it shares with gunicorn's sync worker: a connection holds its thread from accept to
close, and each answer closes its connection (no keep-alive). Like the sync worker it
expects a proxy or load balancer in front on the public internet. A client that sends
nothing is kept away from the threads by the kernel for ``timeout`` seconds
(``TCP_DEFER_ACCEPT``, Linux); once a thread has it, each read of the request, and the
writing of the answer, may take at most ``timeout`` seconds (gunicorn's ``timeout``, which
for the sync worker is how long a request may stall before the worker is killed; here only
the connection is dropped; 0, no limit). What the worker does not bound, as gthread does
not, is the app's own time: the main thread beats the heartbeat whatever the serving
threads do, so a request stuck in the app holds its thread (the database bounds its lock
waits, ``DB_LOCK_TIMEOUT_MS``, carbon_credits/storage/db.py). A thread that fails, or an accept()
that fails for any reason but a lost race (out of file descriptors), stops the worker, and
gunicorn starts another.
``GUNICORN_KEEPALIVE`` > 0 selects gunicorn's ``gthread`` worker instead (gunicorn.conf.py),
which parks idle kept-alive connections in its poller.

Shutdown: SIGTERM (or ``max_requests`` reached) stops the accepting at once, and the
requests in progress get ``graceful_timeout`` seconds to finish; SIGQUIT and SIGINT exit
at once, as gunicorn's workers do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gunicorn import glogging, http, sock, util
from gunicorn.workers.sync import SyncWorker

_ACCEPT_RACES = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED)
"""accept() errors that only mean another thread took the connection, or the client left."""


class AcceptThreadsWorker(SyncWorker):  # type: ignore[misc]  # gunicorn has no types
    """``threads`` sync loops in one process (gunicorn's ``threads`` setting)."""

    alive: bool
    """base.Worker's: False once the worker is to stop (a signal, max_requests)."""

    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(False)
            if (hasattr(socket, "TCP_DEFER_ACCEPT") and listener.family != socket.AF_UNIX
                    and self.cfg.timeout):
                listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT,
                                    max(1, int(self.cfg.timeout)))
        stop_read, stop_write = os.pipe()
        threads = [threading.Thread(target=self._serve, args=(stop_read,), name=f"http-{n}",
                                    daemon=True)
                   for n in range(max(1, self.cfg.threads))]
        for thread in threads:
            thread.start()
        while self.alive:
            self.notify()
            if not self.is_parent_alive():
                break
            # base.Worker.init_signals makes signals write to PIPE: SIGTERM ends the wait.
            if select.select([self.PIPE[0]], [], [], 1.0)[0]:
                os.read(self.PIPE[0], 4096)
        self.alive = False
        # Every waiting thread wakes and ends, after serving what woke it with the stop.
        os.write(stop_write, b"x")
        deadline = time.monotonic() + self.cfg.graceful_timeout
        for thread in threads:
            while thread.is_alive() and time.monotonic() < deadline:
                self.notify()
                thread.join(min(1.0, max(0.0, deadline - time.monotonic())))

    def _serve(self, stop_fd: int) -> None:
        """One thread's loop. If it fails (its epoll set cannot be made when the process is
        out of file descriptors, say), the whole worker stops and gunicorn starts another:
        left alone, the main thread would go on beating the heartbeat of a worker whose
        threads have all died, and the arbiter would never replace it."""
        try:
            self._accept_until_stopped(stop_fd)
        except BaseException:
            if self.alive:
                self.log.exception("A serving thread failed; the worker stops")
                self.alive = False
                self._wake_main_thread()

    def _accept_until_stopped(self, stop_fd: int) -> None:
        """Accept and serve until ``stop_fd`` is readable. A listener that woke this thread
        is accepted from even when the worker is stopping: with ``EPOLLEXCLUSIVE`` no other
        thread was woken for that connection, and left in the backlog it would wait for the
        next connection to arrive. Any accept() error but a lost race (out of file
        descriptors, most likely) stops the worker, as it does gunicorn's sync worker."""
        listeners = {listener.fileno(): listener for listener in self.sockets}
        for ready in _readiness(self.sockets, stop_fd):
            for fd in ready:
                if fd == stop_fd:
                    continue
                try:
                    self.accept(listeners[fd])
                except OSError as exc:
                    if exc.errno not in _ACCEPT_RACES:
                        raise
                if not self.alive:
                    # max_requests reached (SyncWorker.handle_request): the main thread
                    # stops the others now, not at its next heartbeat.
                    self._wake_main_thread()
            if stop_fd in ready:
                return

    def _wake_main_thread(self) -> None:
        """End the main thread's wait (base.Worker's PIPE, which signals also write to)."""
        with contextlib.suppress(BlockingIOError):  # full: it has plenty to wake it already
            os.write(self.PIPE[1], b".")

    def accept(self, listener: socket.socket) -> None:
        client, addr = listener.accept()
        # gunicorn's timeout 0 means no limit; settimeout(0) would make the socket
        # non-blocking instead.
        client.settimeout(self.cfg.timeout or None)
        util.close_on_exec(client)
        self.handle(listener, client, addr)

    def handle(self, listener: socket.socket, client: socket.socket, addr: Any) -> None:
        """The sync worker's, but for a client that stalls past the timeout: one line in
        the log, not a traceback, and the connection closed at once (the sync worker's
        close waits up to 2 s more for the client's FIN)."""
        req = None
        graceful = True
        try:
            if self.cfg.is_ssl:
                client = sock.ssl_wrap_socket(client, self.cfg)
            req = next(http.get_parser(self.cfg, client, addr))
            self.handle_request(listener, req, client, addr)
        except TimeoutError:
            graceful = False
            self.log.warning("Dropped a connection from %s: no progress in %s s",
                             addr[0] if addr else "?", self.cfg.timeout)
        except (http.errors.NoMoreData, StopIteration):
            pass  # the client left, or the request ended the connection
        except ssl.SSLError as exc:
            if exc.args[0] != ssl.SSL_ERROR_EOF:
                self.handle_error(req, client, addr, exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except BaseException as exc:
            self.handle_error(req, client, addr, exc)
        finally:
            if graceful:
                util.close_graceful(client)
            else:
                util.close(client)


def _readiness(listeners: list[socket.socket], stop_fd: int) -> Iterator[list[int]]:
    """The file descriptors that one wait found readable: listeners that may hold a
    connection (for this thread alone, on Linux), ``stop_fd``, or both."""
    if hasattr(select, "EPOLLEXCLUSIVE"):
        poller = select.epoll()
        poller.register(stop_fd, select.EPOLLIN)
        while True:
            # The listeners are registered afresh for each wait, so this thread queues
            # behind the threads that have waited longer (an exclusive wake-up goes to
            # the first waiting epoll set in the listener's queue): a connection goes to
            # the longest-idle thread of any worker process. Left registered, the sets
            # registered first took every connection their threads could: one worker at
            # 88 % CPU, the other at 5 %, under the batch load (BENCHMARKS.md).
            for listener in listeners:
                poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
            try:
                ready = [fd for fd, _ in poller.poll()]
            finally:
                for listener in listeners:
                    poller.unregister(listener.fileno())
            yield ready
    # Elsewhere (a developer's macOS): every thread wakes for each connection and all but
    # one find nothing to accept. Correct, only slower.
    selector = selectors.DefaultSelector()
    for listener in listeners:
        selector.register(listener, selectors.EVENT_READ)
    selector.register(stop_fd, selectors.EVENT_READ)
    while True:
        yield [key.fd for key, _ in selector.select()]


Atom = Callable[[Any, Any, Any, Mapping[str, Any], Any], Any]
"""An access-log atom's value from (logger, response, request, environ, request time)."""


def _status(resp: Any) -> Any:
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


_ATOMS: dict[str, Atom] = {  # as gunicorn.glogging.Logger.atoms computes them
    "h": lambda lg, resp, req, env, rt: env.get("REMOTE_ADDR", "-"),
    "l": lambda lg, resp, req, env, rt: "-",
    "u": lambda lg, resp, req, env, rt: lg._get_user(env) or "-",
    "t": lambda lg, resp, req, env, rt: lg.now(),
    "r": lambda lg, resp, req, env, rt: (f"{env['REQUEST_METHOD']} {env['RAW_URI']} "
                                         f"{env['SERVER_PROTOCOL']}"),
    "s": lambda lg, resp, req, env, rt: _status(resp),
    "m": lambda lg, resp, req, env, rt: env.get("REQUEST_METHOD"),
    "U": lambda lg, resp, req, env, rt: env.get("PATH_INFO"),
    "q": lambda lg, resp, req, env, rt: env.get("QUERY_STRING"),
    "H": lambda lg, resp, req, env, rt: env.get("SERVER_PROTOCOL"),
    "b": lambda lg, resp, req, env, rt: (str(resp.sent) if getattr(resp, "sent", None)
                                         is not None else "-"),
    "B": lambda lg, resp, req, env, rt: getattr(resp, "sent", None),
    "f": lambda lg, resp, req, env, rt: env.get("HTTP_REFERER", "-"),
    "a": lambda lg, resp, req, env, rt: env.get("HTTP_USER_AGENT", "-"),
    "T": lambda lg, resp, req, env, rt: rt.seconds,
    "D": lambda lg, resp, req, env, rt: rt.seconds * 1000000 + rt.microseconds,
    "M": lambda lg, resp, req, env, rt: rt.seconds * 1000 + int(rt.microseconds / 1000),
    "L": lambda lg, resp, req, env, rt: f"{rt.seconds}.{rt.microseconds:06d}",
    "p": lambda lg, resp, req, env, rt: f"<{os.getpid()}>",
}


class Atoms(Mapping[str, Any]):
    """gunicorn's access-log atoms (``%(h)s``, ``%({x-request-id}i)s``...) for one request,
    each computed when the log format asks for it, with gunicorn's defaults: "-" for an
    unknown atom, double quotes escaped in strings, header and environ names matched
    without case. gunicorn's own logger computes every atom, every request and response
    header and the whole WSGI environ for each line, though its default format uses
    nine: 0.15 ms of a post's CPU under load (BENCHMARKS.md, seventh round)."""

    def __init__(self, logger: Any, resp: Any, req: Any, environ: Mapping[str, Any],
                 request_time: Any) -> None:
        self._logger, self._resp, self._req = logger, resp, req
        self._environ, self._request_time = environ, request_time

    def __getitem__(self, key: str) -> Any:
        if key.startswith("{"):
            name, _, kind = key[1:].lower().rpartition("}")
            pairs: Any = {"i": getattr(self._req, "headers", ()),
                          "o": getattr(self._resp, "headers", ()),
                          "e": self._environ.items()}.get(kind, ())
            value = "-"
            for k, v in pairs:  # the last of repeated headers, as gunicorn's dict keeps
                if k.lower() == name:
                    value = v
        else:
            atom = _ATOMS.get(key)
            value = "-" if atom is None else atom(self._logger, self._resp, self._req,
                                                  self._environ, self._request_time)
        return value.replace('"', '\\"') if isinstance(value, str) else value

    def __iter__(self) -> Iterator[str]:
        return iter(_ATOMS)

    def __len__(self) -> int:
        return len(_ATOMS)


class AccessLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn has no types
    """gunicorn's logger, the access line's atoms computed on demand (``Atoms``)."""

    def atoms(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: Any
              ) -> Atoms:
        return Atoms(self, resp, req, environ, request_time)

    @staticmethod
    def atoms_wrapper_class(atoms: Atoms) -> Atoms:
        return atoms  # already answers "-" for what is missing and escapes quotes
