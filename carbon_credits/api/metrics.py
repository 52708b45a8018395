"""Request timing and counting hooks, and the /metrics exposition (the series: metrics.py)."""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from carbon_credits.metrics import HTTP_REQUESTS, HTTP_SECONDS


def init_app(app: Flask) -> None:
    """Time and count every request (GET /metrics itself is in api/health.py)."""

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            HTTP_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
        return response


def exposition() -> Response:
    """The Prometheus text format, of every worker when under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Cache-Control": "no-store"})
