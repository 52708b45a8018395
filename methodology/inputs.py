"""What a mode's events carry, declared as data so the service can validate any mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InputKind = Literal["id", "int", "datetime", "date"]


@dataclass(frozen=True)
class InputField:
    """One field of an event payload, beyond event_id, mode and city."""

    name: str
    kind: InputKind
    required: bool = True
    minimum: int | None = None
    maximum: int | None = None
    not_before: str | None = None
    """For datetimes: the name of another field this one must not precede."""
    description: str = ""


def started_at(description: str = "trip start, ISO 8601 with offset") -> InputField:
    return InputField("started_at", "datetime", description=description)


def ended_at(required: bool) -> InputField:
    return InputField("ended_at", "datetime", required=required, not_before="started_at",
                      description="trip end, ISO 8601 with offset")
