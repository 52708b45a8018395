"""Shared fixtures.

The database backend (``suite_postgres``): DATABASE_URL pointing at a PostgreSQL server
makes the suite create a fresh database on that server for this run (and drop it
afterwards); DATABASE_URL set to ``sqlite`` (anything starting so) makes it use a temporary
SQLite file. Unset, the suite uses the local PostgreSQL (127.0.0.1:5432, user postgres, the
project's machines' default) if it answers, so the write path production runs is what the
plain test command tests, and a temporary SQLite file otherwise. CI runs it both ways.
REDIS_URL, when set,
puts the rate limiter on that Redis. CI runs the suite both ways. Tests that need a Redis
when REDIS_URL is unset get a redis-server the suite starts (``suite_redis_url``).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from carbon_credits.antifraud.plausibility import RULES, Policy
from carbon_credits.antifraud.ratelimit import parse_rate_limits
from carbon_credits.config import Config
from carbon_credits.factory import create_app
from carbon_credits.runtime import Runtime
from carbon_credits.setup import init_db
from carbon_credits.webhooks import outbox
from tests import factories, prerequisites, redis_servers

settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")
"""No property test depends on speed: Hypothesis's default 200 ms per example and its
too-slow health check fail by load alone on a busy machine (a process there may wait that
long for a CPU). Tests with settings of their own set the same."""

os.environ.setdefault("CONSENT_REQUIRED", "none")
"""The consent gate (carbon_credits/privacy/consents.py) is on by default, as a new deployment
has it; the suite's apps and the servers it starts (which read the environment) run without
it, so tests that post events need not record consent first. The gate's own tests turn it
on (``make_app(consent_required="all")``): tests/security/test_consent.py."""

JWT_SECRET = "test-secret-" + "x" * 32
TEST_RATE_LIMITS = "events:user=10000/60,device=100000/60,ip=1000000/60"
"""High enough that only the rate-limit tests (which set their own) ever meet a limit: every
test request comes from one address."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop before the first test, in one line, when a program the selected tests need is
    not installed (tests/prerequisites.py)."""
    if config.option.collectonly:
        return
    absent = prerequisites.missing(prerequisites.needs(items))
    if absent:
        pytest.exit("missing prerequisites: " + ", ".join(absent),
                    returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def suite_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set (CI's PostgreSQL + Redis phase); else a redis-server of this run's
    own, never the shared 127.0.0.1:6379, whose other clients and state are not ours."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with redis_servers.standalone(tmp_path_factory.mktemp("suite-redis")) as server:
        yield server.url


def pinned_clock() -> datetime:
    """The service's business clock in tests: see tests.factories.NOW."""
    return factories.NOW


LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@functools.cache
def suite_postgres() -> str | None:
    """The PostgreSQL server this run's databases are made on, or None for SQLite."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url if url.startswith("postgresql") else None
    try:
        psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres",
                        connect_timeout=5).close()
    except psycopg.Error:
        return None
    return LOCAL_POSTGRES


def pytest_report_header(config: pytest.Config) -> str:
    server = suite_postgres()
    where = (f"PostgreSQL at {make_url(server).render_as_string(hide_password=True)}"
             if server else "SQLite (a temporary file)")
    return f"database: {where}; redis: {os.environ.get('REDIS_URL') or 'a private redis-server'}"


def _fresh_postgres(url: str) -> tuple[str, Callable[[], None]]:
    parsed = make_url(url)
    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return parsed.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = suite_postgres()
    if server:
        fresh, drop = _fresh_postgres(server)
        yield fresh
        drop()
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def make_config(database_url: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Callable[..., Config]:
    instance = tmp_path_factory.mktemp("instance")

    def make(**overrides: Any) -> Config:
        settings: dict[str, Any] = dict(
            instance_path=Path(instance), database_url=database_url,
            redis_url=os.environ.get("REDIS_URL") or None, jwt_secret=JWT_SECRET,
            testing=True, rate_limits=parse_rate_limits(TEST_RATE_LIMITS),
            # The suite asserts the English texts; a request with no Accept-Language is
            # answered in zh_CN by default (the Shenzhen default), see tests/api/test_i18n.py.
            default_locale="en",
            # See CONSENT_REQUIRED above: the gate is off unless a test turns it on.
            consent_required=os.environ["CONSENT_REQUIRED"])
        settings.update(overrides)
        return Config(**settings)

    return make


@pytest.fixture(scope="session")
def app(make_config: Callable[..., Config]) -> Iterator[Flask]:
    application = create_app(make_config())
    init_db(application.extensions["carbon_credits"].db, "shenzhen")
    application.extensions["carbon_credits"].clock = pinned_clock
    yield application
    application.extensions["carbon_credits"].db.dispose()


@pytest.fixture
def make_app(make_config: Callable[..., Config], app: Flask
             ) -> Iterator[Callable[..., Flask]]:
    """Build extra apps on the same database with other settings; disposed after the test.

    Depends on ``app`` so the shared database is migrated and seeded whatever runs first.
    """
    made: list[Flask] = []
    # create_app points the process's webhook sender at the app it makes; the made apps
    # are disposed after the test, so the sender goes back to the shared app's then.
    sender = outbox.use_sender(None)
    outbox.use_sender(sender)

    def make(**overrides: Any) -> Flask:
        application = create_app(make_config(**overrides))
        application.extensions["carbon_credits"].clock = pinned_clock
        made.append(application)
        return application

    yield make
    outbox.use_sender(sender)
    for application in made:
        application.extensions["carbon_credits"].db.dispose()


@contextmanager
def app_on_own_database(make_config: Callable[..., Config], directory: Path,
                        **overrides: Any) -> Iterator[Flask]:
    """An app (settings ``overrides``) on a fresh database of its own, migrated and seeded,
    on the suite's backend (a new PostgreSQL database, else a SQLite file in ``directory``);
    the database is dropped afterwards."""
    server = suite_postgres()
    drop: Callable[[], None] | None = None
    if server:
        fresh, drop = _fresh_postgres(server)
    else:
        fresh = f"sqlite:///{directory / 'own.sqlite3'}"
    application = create_app(make_config(database_url=fresh, **overrides))
    init_db(application.extensions["carbon_credits"].db, "shenzhen")
    application.extensions["carbon_credits"].clock = pinned_clock
    try:
        yield application
    finally:
        application.extensions["carbon_credits"].db.dispose()
        if drop is not None:
            drop()


@pytest.fixture
def isolated_app(make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Flask]:
    """An app on a database of its own, for tests that damage data on purpose."""
    with app_on_own_database(make_config, tmp_path) as application:
        yield application


LENIENT = Policy(outcomes={rule: "credit" for rule in RULES})
"""Every plausibility rule still runs and is recorded, but only ever flags: for tests of the
ledger's mechanics that need many trips a day or many posts at one instant."""


@pytest.fixture
def lenient_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(plausibility=LENIENT)


@pytest.fixture
def lenient_rt(lenient_app: Flask) -> Runtime:
    runtime: Runtime = lenient_app.extensions["carbon_credits"]
    return runtime


@pytest.fixture
def rt(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["carbon_credits"]
    return runtime


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def token(rt: Runtime) -> Callable[..., str]:
    def make(sub: str, role: str = "user", city: str | None = "shenzhen", ttl: int = 600) -> str:
        return rt.codec.encode(sub, role, city, ttl)  # type: ignore[arg-type]

    return make


@pytest.fixture
def user_id() -> str:
    """A user nobody else in this run uses, so tests never share accounts or caps."""
    return f"u-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def auth(token: Callable[..., str], user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id)}"}


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")
