"""Prometheus metrics, served at GET /metrics.

Under gunicorn every worker is its own process, so a scrape answered by one worker must
still show the whole server: gunicorn.conf.py points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start, each worker writes its samples to memory-mapped files
there, and /metrics merges them (prometheus_client's multiprocess mode; counters of a dead
worker keep counting toward the totals). Without the variable (flask run, tests) the
process's own registry is served.

Labels are bounded: route templates (never raw paths, which hold user-chosen ids), methods,
status codes, modes and outcomes. No user id, token or payload value is ever a label.
/metrics reveals volumes only; expose it to the monitoring network, not the internet.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram, values

if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and os.environ.get("PROMETHEUS_WORKER_SLOT"):
    # Under gunicorn: write under the worker's slot, not its pid (see gunicorn.conf.py), so a
    # recycled worker continues its predecessor's files. Must precede the metrics below.
    _slot = os.environ["PROMETHEUS_WORKER_SLOT"]
    values.ValueClass = values.MultiProcessValue(  # type: ignore[no-untyped-call]
        process_identifier=lambda: _slot)

HTTP_REQUESTS = Counter("cc_http_requests", "HTTP requests answered",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("cc_http_request_duration_seconds", "Time to answer a request",
                         ["method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
EVENTS = Counter("cc_events", "Events posted, by mode and outcome (credited, capped, held, "
                 "rejected: new events; replay: an event_id already applied)",
                 ["mode", "outcome"])
CREDITED_GRAMS = Counter("cc_credited_grams", "Avoided CO2 credited to users, in grams",
                         ["mode"])
RATE_LIMITED = Counter("cc_rate_limited", "Requests refused by a rate limit",
                       ["route", "dimension"])
LIMITER_REDIS_FAILURES = Counter("cc_ratelimit_redis_failures",
                                 "Rate limiter calls to Redis that failed")
LIMITER_FALLBACK_CHECKS = Counter("cc_ratelimit_fallback_checks",
                                  "Rate limit checks decided in-process while Redis was down")
DEPENDENCY_ERRORS = Counter("cc_dependency_errors",
                            "Requests answered 503 because a dependency failed",
                            ["dependency"])
LEADERBOARD_FAILURES = Counter("cc_leaderboard_failures",
                               "Leaderboard updates that failed after their credit was "
                               "committed (repaired by flask rebuild-leaderboards)",
                               ["operation"])
