"""Gunicorn settings (`gunicorn -c deploy/gunicorn.conf.py app:app`, from the repo root).

gunicorn's own workers: ``gthread`` (threads), or ``sync`` with GUNICORN_THREADS=1. In
production they sit behind nginx (deploy/nginx.conf), which reads each request whole
before passing it on and keeps its connections to gunicorn alive: a gthread thread is held
by a request only while the app runs, never while a slow client sends or reads. Served
directly, a client that sends slowly holds a thread for as long as it likes (gthread reads
a request in a pool thread with a blocking socket), so do not expose gunicorn itself.

Sizing comes from the environment so the same image fits any host.
"""

import os


def _cpu_count() -> int:
    # sched_getaffinity respects CPU pinning (cpusets), unlike os.cpu_count(). Neither sees a
    # CFS quota (docker --cpus, k8s limits), so set WEB_CONCURRENCY explicitly there.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS
        return os.cpu_count() or 1


bind = f"0.0.0.0:{int(os.environ.get('PORT', '8000'))}"

# Threads: concurrent single posts of one process are applied together, in one transaction
# and one commit (carbon_credits/ingest/group_commit.py), which is where the threads pay off: on
# 2 cores, 2 workers x 16 threads ingest about 1.8x the events/s of 5 sync workers
# (BENCHMARKS.md). A process runs Python on one core at a time, so one worker per core.
# GUNICORN_THREADS=1 gives sync workers (2 x cores + 1 of them), each post alone.
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
os.environ["GUNICORN_THREADS"] = str(threads)  # the app sizes its connection pool by it
workers = int(os.environ.get("WEB_CONCURRENCY",
                             _cpu_count() if threads > 1 else 2 * _cpu_count() + 1))
worker_class = "gthread" if threads > 1 else "sync"

# Keep-alive, in seconds, of an idle connection (gthread parks it in its poller: it holds
# no thread; the sync worker ignores this). nginx keeps a pool of connections to gunicorn
# (deploy/nginx.conf: `keepalive` in the upstream) and closes one after 60 s idle
# (`keepalive_timeout 60s`). gunicorn must wait longer than that: if it closed a connection
# first, nginx could send a request on it at the same moment, and a POST, which nginx does
# not retry (not idempotent), would come back as a 502. Hence 75 s. A connection nginx
# keeps stays with the worker that accepted it; with nginx's pool that is many connections
# spread over the workers as the kernel hands them out.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))

# 30 s: a sync worker stuck that long in one request is killed and replaced. gthread's main
# loop beats the heartbeat while its threads work, so there it does not bound a request; the
# app's own time is bounded by the database's lock timeout and TCP keepalives
# (DB_LOCK_TIMEOUT_MS: carbon_credits/storage/db.py), and nginx gives up on an answer after its
# proxy_read_timeout (deploy/nginx.conf).
timeout = 30
# On SIGTERM, in-flight requests get 30 s to finish. Let the orchestrator wait at least as long
# (k8s terminationGracePeriodSeconds defaults to 30; `docker stop` only waits 10 unless -t is set).
graceful_timeout = 30

# Recycle each worker after about a million requests, so a slow leak or fragmentation
# can't grow memory without bound; the jitter staggers the restarts. Not oftener: a worker
# starts in about 1 s of CPU (importing and building the app), while the others carry its
# load, and a worker's RSS grew 1.9 MB over its first 20,000 posts, 0.15 MB of it over the
# last 8,000 (BENCHMARKS.md, eighth round). At 10,000 requests, as before, a 2-core server
# under load restarted a worker every 10-30 s: healthz p99 0.7-1.4 s instead of 15-65 ms.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000000"))
max_requests_jitter = max_requests // 10

# Log to stdout/stderr; the container runtime collects them. (gunicorn's own access line;
# nginx logs each request too, with the client's address.)
accesslog = "-"
errorlog = "-"

# False: the app is imported in every worker after fork, not once in the master. With preload,
# SQLAlchemy/psycopg and Redis connection pools created at import time would be inherited by all
# workers, and several processes sharing one socket corrupt each other's protocol streams.
# Loading per worker gives each its own connections (and lets HUP reload pick up new code).
preload_app = False

# The worker heartbeat file lives in tmpfs: on a container's overlay filesystem, writes to it
# can block and trigger false worker timeouts.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn >= 25 opens a control socket under $HOME/.gunicorn by default; in the container $HOME
# is not writable for the app user and nothing uses gunicornc. (Older versions ignore the name.)
control_socket_disable = True

# Prometheus metrics of the whole server, not of whichever worker answers a scrape: each
# worker writes its samples to files in one directory and GET /metrics merges them
# (prometheus_client's multiprocess mode). The directory must be empty when the server
# starts, so a fresh one is made per server unless the operator names one (it must then be
# emptied before each start). Set here, in the master, so the workers inherit it; the made
# directory is remembered in the environment too, so a reload (HUP), which runs this file
# again, still knows to remove it at exit.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["CC_METRICS_DIR_MADE"] = (
        tempfile.mkdtemp(prefix="cc-metrics-",
                         dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


# Each worker writes its files under a *slot* (``<master pid>-<n>``, n the lowest number no
# live worker of this master holds), not under its pid: a worker recycled by max_requests,
# or replaced after a crash, takes over its predecessor's files and counts on from their
# totals, so the directory holds a bounded set of files (about workers x metric types)
# however long the server runs, instead of a new set per worker ever started. The master
# pid keeps the workers of a second master (USR2 upgrade) on files of their own.
def pre_fork(server, worker):  # type: ignore[no-untyped-def]
    held = {getattr(w, "metrics_slot", None) for w in server.WORKERS.values()}
    n = 0
    while f"{os.getpid()}-{n}" in held:
        n += 1
    worker.metrics_slot = f"{os.getpid()}-{n}"


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    os.environ["PROMETHEUS_WORKER_SLOT"] = worker.metrics_slot  # read by carbon_credits.metrics


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A dead worker's live gauges stop counting (its counters still add to the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(getattr(worker, "metrics_slot", worker.pid))


def on_exit(server):  # type: ignore[no-untyped-def]
    """Remove the metrics directory this config made (an operator's own is left alone),
    unless a new master started by USR2 is still using it."""
    made = os.environ.get("CC_METRICS_DIR_MADE")
    if made and made == os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not getattr(
            server, "reexec_pid", 0):
        import shutil

        shutil.rmtree(made, ignore_errors=True)
