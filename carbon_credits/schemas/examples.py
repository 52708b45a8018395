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


TRUST_POLICY_EXAMPLES = {
    "operator_confirms": {"summary": "hold client posts until the operator's record comes",
                          "value": {"policy": "operator_confirms", "confirm_days": 2,
                                    "tolerance_s": 600,
                                    "reason": "the metro operator now reports every trip"}},
    "client": {"summary": "believe the user's app (the default)",
               "value": {"policy": "client", "reason": "no provider covers this mode yet"}},
}
"""PUT /v1/admin/trust-policies/{city}/{mode}."""

REDEMPTION_EXAMPLES = {
    "points": example("spend points against nothing (the original form)", REDEMPTION_EXAMPLE),
    "reward": example("redeem a reward of the catalogue (GET /v1/rewards)",
                      {"redemption_id": "redeem-0002", "reward_id": 1, "quantity": 1}),
}
"""POST /v1/me/redemptions: both forms; the test fills in a reward it created."""

REWARD_EXAMPLES = {
    "voucher": example("a ¥5 metro voucher, codes generated by the server", {
        "kind": "voucher", "price_points": 50, "stock": 1000, "per_user_limit": 2,
        "valid_from": "2026-01-01T00:00:00+08:00", "valid_until": "2099-01-01T00:00:00+08:00",
        "city": EXAMPLE_CITY, "title": {"zh": "5元地铁券", "en": "¥5 metro voucher"},
        "description": {"zh": "深圳地铁单程票抵扣5元", "en": "¥5 off one Shenzhen metro ride"},
        "codes": "generated"}),
    "physical": example("a physical good, shipped by the merchant", {
        "kind": "physical", "price_points": 300, "stock": 50, "per_user_limit": 1,
        "valid_from": "2026-01-01T00:00:00+08:00", "valid_until": "2099-01-01T00:00:00+08:00",
        "city": EXAMPLE_CITY, "title": {"zh": "环保购物袋", "en": "Reusable shopping bag"},
        "description": {"zh": "有机棉购物袋", "en": "An organic cotton bag"}}),
    "donation": example("a donation to a public-welfare project", {
        "kind": "donation", "price_points": 100, "stock": 10000, "per_user_limit": 100,
        "valid_from": "2026-01-01T00:00:00+08:00", "valid_until": "2099-01-01T00:00:00+08:00",
        "city": EXAMPLE_CITY, "title": {"zh": "种一棵梭梭树", "en": "Plant a saxaul tree"},
        "description": {"zh": "在阿拉善种下一棵梭梭树", "en": "One saxaul tree in Alxa"},
        "project": {"name": "Alxa desert greening", "unit": "1 tree planted"}}),
}
"""POST /v1/merchant/rewards: one per kind."""

REWARD_EDIT_EXAMPLE = {"price_points": 40, "stock": 1200}
"""PATCH /v1/merchant/rewards/{reward_id}."""

CODES_EXAMPLE = {"codes": ["SZMETRO-0001", "SZMETRO-0002", "SZMETRO-0003"]}
"""POST /v1/merchant/rewards/{reward_id}/codes (JSON; text/csv takes one code a row)."""

FULFILMENT_EXAMPLE = {"state": "shipped"}
"""POST /v1/merchant/redemptions/{id}/fulfilment."""

REWARD_REVIEW_EXAMPLES = {
    "approve": example("approve (users see it from now)",
                       {"reason": "merchant contract checked; terms are clear"}),
    "reject": example("reject, with the reason the merchant sees",
                      {"reason": "the description promises more than the voucher gives"}),
}
"""POST /v1/admin/rewards/{reward_id}/{decision}: keyed by decision."""


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


PROVIDER_RECORDS_EXAMPLE = {"records": [
    {"record_id": "tx-20261207-000187", "user_ref": "card-8800123", "kind": "metro_trip",
     "entry_station_id": "luohu", "exit_station_id": "shaoniangong",
     "tapped_in_at": f"{EXAMPLE_DAY}T08:02:11+08:00",
     "tapped_out_at": f"{EXAMPLE_DAY}T08:27:40+08:00"},
]}
"""POST /v1/provider/records: a metro operator's tap-in/tap-out."""

EXPIRY_POLICY_EXAMPLES = {
    "year_end": {"summary": "points expire at the end of the year after they were earned",
                 "value": {"rule": "year_end",
                           "reason": "points mall rules of 2027: valid to the end of next year"}},
    "months": {"summary": "points expire 24 months after they were earned",
               "value": {"rule": "months", "amount": 24, "reason": "two-year validity"}},
}
"""PUT /v1/admin/expiry-policies/{city}."""

BADGE_EXAMPLES = {
    "metro": example("20 metro trips in a calendar month", {
        "code": "metro-commuter", "name": {"zh": "地铁通勤达人", "en": "Metro commuter"},
        "description": {"zh": "一个自然月内地铁出行20次", "en": "20 metro trips in a month"},
        "rule": {"kind": "trips", "mode": "metro", "count": 20, "period": "month"},
        "reason": "November campaign badge"}),
    "combined": example("a 14-day streak and 50 km", {
        "code": "steady-50", "name": {"zh": "坚持者", "en": "Steady traveller"},
        "rule": {"all": [{"kind": "streak", "days": 14}, {"kind": "distance", "km": 50}]},
        "reason": "asked by the city's outreach team"}),
}
"""POST /v1/admin/badges."""
BADGE_EDIT_EXAMPLES = {
    "rename": example("new English name", {
        "name": {"zh": "首次地铁出行", "en": "First ride on the metro"},
        "reason": "copy review"}),
}
"""PATCH /v1/admin/badges/{code}."""
BADGE_RETIRE_EXAMPLES = {
    "retire": example("retire (awards made stand)", {"reason": "campaign ended"}),
}
"""POST /v1/admin/badges/{code}/retirement."""
TEAM_EXAMPLE = {"city": "shenzhen", "name": "南山实验学校 Nanshan Experimental School",
                "kind": "school", "reason": "school joins the green travel pilot"}
JOIN_EXAMPLE = {"invite_code": "K7QXMPDHRT"}
FRIEND_EXAMPLE = {"user_id": "wx-o6_bmjrPTlm6_2sgVt7hMZOPfL2M"}
PRIVACY_EXAMPLE = {"hidden": True}
CAMPAIGN_EXAMPLE = {
    "id": "metro-2026-11", "city": "shenzhen", "mode": "metro",
    "starts_on": "2026-11-01", "ends_on": "2026-11-30", "goal_events": 20,
    "bonus_points": 200, "budget_points": 2_000_000,
    "title_zh": "十一月地铁出行挑战", "title_en": "November metro challenge",
    "reason": "city campaign approved by the ecology and environment bureau"}
"""POST /v1/admin/campaigns: 20 metro trips in November (city time), 200 points each for
up to 10,000 finishers."""

CAMPAIGN_END_EXAMPLE = {"reason": "the sponsor withdrew"}
"""POST /v1/admin/campaigns/{campaign_id}/end."""

WEBHOOK_EXAMPLE = {
    "id": "mini-program", "url": "https://platform.example.com/hooks/carbon",
    "kinds": ["event.credited", "challenge.completed"],
    "reason": "the mini-program's backend is told of credits and completed challenges"}
"""POST /v1/admin/webhooks."""

REPLAY_EXAMPLE = {"reason": "the platform lost the notification in an outage"}
"""POST /v1/admin/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay."""


TEAM_BOARD_EXAMPLE = {
    "city": "shenzhen", "scope": "teams", "period": "month", "label": "m2026-12",
    "min_members": 10, "size": 2,
    "top": [
        {"rank": 1, "team_id": 3, "name": "Futian Middle School", "kind": "school",
         "grams": 1850230, "members": 214, "mine": False},
        {"rank": 2, "team_id": 7, "name": "Nanshan Tech Co.", "kind": "company",
         "grams": 904117, "members": 58, "mine": True}],
    "my_team": {"team_id": 7, "name": "Nanshan Tech Co.", "shown": True, "rank": 2,
                "grams": 904117, "members": 58},
}
"""``GET /v1/leaderboards/teams`` (a response: shown in /docs)."""
