"""The repo's deploy/gunicorn.conf.py, plus the CPU each worker spends in named blocks of the
ingest path (bench/profile_server.py).

Each block (a function of the service, of Flask or of gunicorn's threaded worker) is
wrapped so that the calling thread's CPU clock (``time.thread_time``) is read on entry
and exit: the CPU that thread used inside the block, waits (on PostgreSQL, Redis, a lock
or the GIL) not counted. Blocks nest (``view`` holds ``submit``, which holds ``apply``...);
the figures are inclusive. Two clocks per call cost far less than a profiler, which on
this machine either slowed the server fivefold (cProfile) or charged the CPU to the
blocking call that followed it (samplers). At exit each worker writes
``$CC_PROFILE_DIR/worker-<pid>.json``: seconds per block, calls of ``apply`` and the posts
they applied, POST /v1/events requests, the main thread's and the process's CPU.
"""

import json
import os
import time
from pathlib import Path

exec(compile((Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py").read_text(),
             "deploy/gunicorn.conf.py", "exec"))

_repo_worker_exit = globals().get("worker_exit")
_seconds: dict[str, float] = {}
_counts = {"transactions": 0, "posts": 0, "requests": 0}
_started = [0.0]


def _timed(name, fn):  # type: ignore[no-untyped-def]
    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _seconds[name] = _seconds.get(name, 0.0) + time.thread_time() - start
    return timed


class _Requests:
    """POST /v1/events requests and the CPU of their WSGI call."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        start = time.thread_time()
        try:
            return list(self.app(environ, start_response))
        finally:
            if environ["PATH_INFO"] == "/v1/events":
                _seconds["wsgi"] = _seconds.get("wsgi", 0.0) + time.thread_time() - start
                _counts["requests"] += 1


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    import flask

    import carbon_credits.api.events as api
    from carbon_credits import group_commit
    from carbon_credits.services import events, intake

    apply = events._apply

    def counted(rt, chunk):  # type: ignore[no-untyped-def]
        _counts["transactions"] += 1
        _counts["posts"] += len(chunk)
        return apply(rt, chunk)

    events._apply = _timed("apply", counted)
    events._admit = _timed("admit (rate limits)", events._admit)
    for name in ("_read", "_decide", "_write", "read_together", "bulk_insert"):
        setattr(intake, name, _timed(name.lstrip("_"), getattr(intake, name)))
    api.load_event = _timed("load_event", api.load_event)
    api.events.prepare = _timed("prepare", events.prepare)
    api.EventCollection.post = _timed("view", api.EventCollection.post)
    group_commit.GroupCommit.submit = _timed("submit", group_commit.GroupCommit.submit)
    flask.Flask.full_dispatch_request = _timed("flask dispatch",
                                               flask.Flask.full_dispatch_request)
    flask.Flask.wsgi_app = _timed("flask wsgi_app", flask.Flask.wsgi_app)
    # the configured worker's request handling (gthread's or carbon_credits.serving's)
    type(worker).handle = _timed("gunicorn handle", type(worker).handle)
    type(worker.log).access = _timed("access log", type(worker.log).access)
    worker.wsgi = _Requests(worker.wsgi)
    _started[0] = time.process_time()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    out = Path(os.environ["CC_PROFILE_DIR"]) / f"worker-{os.getpid()}.json"
    out.write_text(json.dumps({"seconds": _seconds, **_counts,
                               "main thread": time.thread_time(),  # exit runs in it
                               "process": time.process_time() - _started[0]}))
    if _repo_worker_exit:
        _repo_worker_exit(server, worker)
