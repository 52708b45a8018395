"""Examples shown in /docs for every request body and required query parameter.

Every one is posted by tests/api/test_doc_examples.py and must be accepted, so a stale
example fails a test."""

from __future__ import annotations

from typing import Any

from methodology import METHODOLOGIES

# Every one is posted by tests/api/test_doc_examples.py and must be accepted, so a stale
# example fails a test. Event examples use the demo network's ids (carbon_credits/
# demo_network.py); the test moves EXAMPLE_DAY to its own "today", as events must be
# recent (BACKFILL_DAYS) and not in the future.

EXAMPLE_CITY = "shenzhen"
EXAMPLE_DAY = "2026-12-01"
"""The local date of the event examples."""
EXAMPLE_EFFECTIVE_FROM = "2099-01-01T00:00:00+08:00"
"""Factor versions must start in the future, after every existing one: far ahead, so the
example stays valid (the era ends at 2100)."""


def example(summary: str, value: Any) -> dict[str, Any]:
    """One named OpenAPI example object."""
    return {"summary": summary, "value": value}


EVENT_EXAMPLES: dict[str, dict[str, Any]] = {
    "metro": example("metro trip, entry and exit station", {
        "event_id": "trip-0001", "mode": "metro", "city": EXAMPLE_CITY,
        "entry_station_id": "luohu", "exit_station_id": "shaoniangong",
        "started_at": f"{EXAMPLE_DAY}T08:00:00+08:00",
        "ended_at": f"{EXAMPLE_DAY}T08:25:00+08:00"}),
    "bus": example("bus ride with tap-off (alight stop) and end time", {
        "event_id": "trip-0002", "mode": "bus", "city": EXAMPLE_CITY, "line_id": "bus-1",
        "board_stop_id": "b-luohu", "alight_stop_id": "b-gangxia",
        "started_at": f"{EXAMPLE_DAY}T12:10:00+08:00",
        "ended_at": f"{EXAMPLE_DAY}T12:40:00+08:00"}),
    "bikeshare": example("bike-share ride, distance from the operator's order record", {
        "event_id": "trip-0003", "mode": "bikeshare", "city": EXAMPLE_CITY,
        "distance_m": 2400, "started_at": f"{EXAMPLE_DAY}T17:30:00+08:00",
        "ended_at": f"{EXAMPLE_DAY}T17:45:00+08:00"}),
    "steps": example("the day's cumulative step count so far", {
        "event_id": "steps-0001", "mode": "steps", "city": EXAMPLE_CITY,
        "date": EXAMPLE_DAY, "steps": 8000}),
}
"""POST /v1/events: one per mode."""

BATCH_EXAMPLE = {"events": [
    {"event_id": "trip-0004", "mode": "metro", "city": EXAMPLE_CITY,
     "entry_station_id": "shaoniangong", "exit_station_id": "luohu",
     "started_at": f"{EXAMPLE_DAY}T19:00:00+08:00",
     "ended_at": f"{EXAMPLE_DAY}T19:25:00+08:00"},
    {"event_id": "steps-0002", "mode": "steps", "city": EXAMPLE_CITY,
     "date": EXAMPLE_DAY, "steps": 11500},
]}
"""POST /v1/events/batch: items as for POST /v1/events (a phone syncing after a day
offline)."""

REDEMPTION_EXAMPLE = {"redemption_id": "redeem-0001", "points": 50,
                      "description": "metro ride voucher"}

REVERSAL_EXAMPLE = {"reason": "fraud found later: the same card's ride was also claimed by "
                              "another account"}

REVIEW_EXAMPLES = {
    "approve": example("approve (credit it now)",
                       {"reason": "checked against the operator's tap records"}),
    "reject": example("reject (credit nothing)",
                      {"reason": "no matching tap at the entry station"}),
}
"""POST /v1/admin/reviews/{user_id}/{event_id}/{decision}: keyed by decision."""

FREEZE_EXAMPLES = {
    "freeze": example("freeze (hold their new events)",
                      {"reason": "one device posting for 40 accounts"}),
    "unfreeze": example("unfreeze", {"reason": "investigation closed: a family's phones"}),
}
"""POST /v1/admin/users/{user_id}/{action}: keyed by action."""


def _draft(mode: str) -> dict[str, Any] | None:
    """A mode's shipped Shenzhen factor set as admin input (the set each mode's
    ``check_factors`` accepts), or None if the mode ships none for the city."""
    try:
        shipped = METHODOLOGIES[mode].default_factors(EXAMPLE_CITY)
    except KeyError:
        return None
    return {"city": EXAMPLE_CITY, "mode": mode, "kind": shipped.kind,
            "factors": [f.to_dict() for f in shipped.factors.values()]}


def factor_version_examples() -> dict[str, dict[str, Any]]:
    """POST /v1/admin/factor-versions: one per mode, each with the factors its methodology
    reads (bus also ``default_trip_m``, bike-share its speed and length bounds, steps grams
    per step), as shipped for Shenzhen."""
    found = {}
    for mode in sorted(METHODOLOGIES):
        draft = _draft(mode)
        if draft is not None:
            found[mode] = example(
                f"{mode}: the shipped factors re-issued as a new version", {
                    **draft, "version": "sz-2099.1",
                    "effective_from": EXAMPLE_EFFECTIVE_FROM,
                    "reason": "annual review: factors confirmed against the 2021 "
                              "methodology"})
    return found


def preview_examples() -> dict[str, dict[str, Any]]:
    """POST /v1/admin/factor-versions/preview: a draft per mode over a past month."""
    found = {}
    for mode in sorted(METHODOLOGIES):
        draft = _draft(mode)
        if draft is not None:
            found[mode] = example(f"{mode}: the shipped factors over November 2026",
                                  {**draft, "from": "2026-11-01", "to": "2026-11-30"})
    return found


EXAMPLE_ED25519_PUBLIC_KEY = ("-----BEGIN PUBLIC KEY-----\n"
                              "MCowBQYDK2VwAyEAMWZSaWOkJKU3OQihZjTQs0+tR1PYVR6YAvNnVxPpnyI=\n"
                              "-----END PUBLIC KEY-----\n")
"""A made-up provider's public key (its private half was thrown away)."""
PROVIDER_EXAMPLE = {"id": "sz-metro", "name": "Shenzhen Metro", "city": EXAMPLE_CITY,
                    "modes": ["metro"], "reason": "contract 2026-114 signed"}
PROVIDER_KEY_EXAMPLES = {
    "hmac-sha256": example("a shared secret, generated and shown once", {
        "algorithm": "hmac-sha256", "reason": "first key"}),
    "ed25519": example("the provider's Ed25519 public key, PEM", {
        "algorithm": "ed25519", "public_key": EXAMPLE_ED25519_PUBLIC_KEY,
        "reason": "rotation 2026-12"}),
}
PROVIDER_KEY_REVOKE_EXAMPLE = {"reason": "rotation done: the new key signs"}
PROVIDER_ENABLE_EXAMPLES = {
    "disable": example("stop accepting its requests", {
        "reason": "the contract is suspended"}),
    "enable": example("accept its requests again", {"reason": "the contract resumed"}),
}
BINDING_CODE_EXAMPLE = {"user_ref": "card-8800123"}
BINDING_EXAMPLE = {"provider_id": "sz-metro", "code": "K7QXM-2PDHR"}
