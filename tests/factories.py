"""Event payloads for tests: valid by default, any field overridable."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SHENZHEN = ZoneInfo("Asia/Shanghai")


def new_id() -> str:
    return f"e-{uuid.uuid4().hex[:20]}"


NOW = datetime.now(SHENZHEN).replace(hour=23, minute=30, second=0, microsecond=0)
"""The service's pinned clock in tests (see conftest): late in today's local day, so that a
test's events of "today" are all in the past and all in one local day, at any hour."""


def today_at(hour: int, minute: int = 0) -> datetime:
    return NOW.replace(hour=hour, minute=minute)


def metro(**overrides: Any) -> dict[str, Any]:
    start = overrides.pop("start", None) or today_at(8)
    body: dict[str, Any] = {
        "event_id": new_id(), "mode": "metro", "city": "shenzhen",
        "entry_station_id": "luohu", "exit_station_id": "shaoniangong",
        "started_at": start.isoformat(), "ended_at": (start + timedelta(minutes=25)).isoformat(),
    }
    body.update(overrides)
    return body


def bus(**overrides: Any) -> dict[str, Any]:
    start = overrides.pop("start", None) or today_at(9)
    body: dict[str, Any] = {
        "event_id": new_id(), "mode": "bus", "city": "shenzhen", "line_id": "bus-1",
        "board_stop_id": "b-luohu", "alight_stop_id": "b-gangxia",
        "started_at": start.isoformat(),
    }
    body.update(overrides)
    return body


def steps(count: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": new_id(), "mode": "steps", "city": "shenzhen",
        "date": NOW.date().isoformat(), "steps": count,
    }
    body.update(overrides)
    return body
