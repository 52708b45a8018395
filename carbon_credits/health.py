"""Dependency checks for /readyz."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from carbon_credits.runtime import Runtime

log = logging.getLogger(__name__)

REPORTS_CHECK = "reports_database"


def check(rt: Runtime) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with rt.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        log.warning("readiness: database: %s", type(exc).__name__)
        checks["database"] = "unavailable"
    if rt.db.replica is not None:
        # Named so a misconfigured or unreachable REPORTS_DATABASE_URL is seen; it does not
        # fail readiness (api/health.py): ingest does not need it.
        checks[REPORTS_CHECK] = rt.db.replica_state()
    if rt.redis is not None:
        try:
            rt.redis.ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            log.warning("readiness: redis: %s", type(exc).__name__)
            checks["redis"] = "unavailable"
    return checks
