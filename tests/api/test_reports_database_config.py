"""REPORTS_DATABASE_URL misconfigured: refused at start-up when it is no PostgreSQL URL,
named by /readyz when nothing answers there (the live replica: tests/faults)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from carbon_credits.config import Config, ConfigError
from tests.faults.servers import free_port


def test_a_reports_url_that_is_not_postgresql_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REPORTS_DATABASE_URL"):
        Config.from_env(tmp_path, {"REPORTS_DATABASE_URL": "sqlite:///replica.db"})


def test_reports_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    cfg = Config.from_env(tmp_path, {
        "REPORTS_DATABASE_URL": "postgresql+psycopg://reader@replica/cc",
        "REPORTS_MAX_LAG_S": "0", "REPORTS_FALLBACK_PRIMARY": "1"})
    assert (cfg.reports_database_url, cfg.reports_max_lag_s, cfg.reports_fallback_primary
            ) == ("postgresql+psycopg://reader@replica/cc", 0, True)
    with pytest.raises(ConfigError, match="REPORTS_MAX_LAG_S"):
        Config.from_env(tmp_path, {"REPORTS_MAX_LAG_S": "-1"})


def test_readyz_names_an_unreachable_reports_database(make_app: Callable[..., Flask]
                                                      ) -> None:
    app = make_app(reports_database_url=f"postgresql+psycopg://postgres@127.0.0.1:"
                                        f"{free_port()}/nowhere")
    r = app.test_client().get("/readyz")
    assert r.status_code == 200  # ingest does not need the replica
    assert r.json["status"] == "degraded"
    assert r.json["checks"]["reports_database"] == "unavailable"
