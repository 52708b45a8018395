"""The programs the suite needs besides Python packages, checked once before any test runs.

Missing ones stop the run with one line naming the Debian packages to install, instead of a
traceback in every test that needs them (these are real components, DESIGN.md section 6:
their tests fail, they are never skipped). Only what the selected tests need is checked:
a run of tests/unit alone needs none of these.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.faults.servers import find_postgres_bin

TESTS = Path(__file__).resolve().parent

REDIS_MODULES = {"integration/test_ratelimit.py", "integration/test_ratelimit_cluster.py",
                 "integration/test_redis_failure.py"}
"""Tests that start redis-server processes of their own (tests/redis_servers.py)."""
REDIS_FIXTURE = "suite_redis_url"
"""Tests on the suite's Redis: a private redis-server when REDIS_URL is unset."""


def _where(item: pytest.Item) -> str:
    try:
        return item.path.resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return ""


def needs(items: Iterable[pytest.Item]) -> set[str]:
    """Which of "redis", "postgres", "chromium", "nginx" the selected ``items`` need."""
    needed: set[str] = set()
    for item in items:
        where = _where(item)
        if where.startswith("faults/"):
            needed |= {"redis", "postgres"}  # the fault tests start both themselves
        if where in REDIS_MODULES or (REDIS_FIXTURE in getattr(item, "fixturenames", ())
                                      and not os.environ.get("REDIS_URL")):
            needed.add("redis")
        if where.startswith("e2e/"):
            needed.add("chromium")
        if where == "faults/test_nginx_front.py":
            needed.add("nginx")
    return needed


def missing(needed: set[str]) -> list[str]:
    """What is not installed, each as "program (apt-get install package)"."""
    absent = []
    if "redis" in needed:
        absent += [f"{name} (apt-get install redis-server)"
                   for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    if "postgres" in needed and find_postgres_bin() is None:
        absent.append("initdb/pg_ctl (apt-get install postgresql)")
    if "chromium" in needed and not any(shutil.which(n) for n in ("chromium",
                                                                    "chromium-browser")):
        absent.append("chromium (apt-get install chromium)")
    if "nginx" in needed and not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        absent.append("nginx (apt-get install nginx)")
    return absent
