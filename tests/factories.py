"""Event payloads for tests: valid by default, any field overridable."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SHENZHEN = ZoneInfo("Asia/Shanghai")


def new_id() -> str:
    return f"e-{uuid.uuid4().hex[:20]}"


def today_at(hour: int, minute: int = 0) -> datetime:
    now = datetime.now(SHENZHEN)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0)


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
        "date": datetime.now(SHENZHEN).date().isoformat(), "steps": count,
    }
    body.update(overrides)
    return body
