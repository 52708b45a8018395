"""The texts a client reads, by stable code: error messages, event reasons' descriptions and
marshmallow's field messages, each marked for Babel's catalog (``N_``) and translated at
answer time into the request's language.

Pure: no Flask here (the domain packages and the schemas use it). The web layer picks the
language with Flask-Babel (carbon_credits/api/i18n.py) and activates that language's
translations for the request with ``activate``; outside a request, or in English, the
texts stay as the code wrote them.

Error messages: a refusal's English text is built where it is raised, often with values
in it. It stays exactly as it is in English. In another language the message is the
catalog's template for the refusal's ``code``, filled with the refusal's named ``params``
(a template only names params its raise sites pass; the rest say what went wrong without
the values, which ``fields`` still carries).
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

ENGLISH = "en"
LOCALES = ("zh_CN", "en")
"""The languages with a catalog, in carbon_credits/translations."""


def N_(text: str) -> str:
    """Marks ``text`` for the catalog (``pybabel extract -k N_``); translated later."""
    return text


ERROR_TEMPLATES: dict[str, str] = {
    # The generic codes of errors.py's classes and of HTTP answers.
    "bad_request": N_("the request is not valid"),
    "invalid_input": N_("the request has invalid fields"),
    "unauthorized": N_("authentication is required"),
    "forbidden": N_("you may not do this"),
    "not_found": N_("not found"),
    "conflict": N_("the request conflicts with the current state"),
    "payload_too_large": N_("the request body is too large"),
    "unsupported_media_type": N_("the request body's content type is not supported"),
    "rate_limited": N_("too many requests; retry later"),
    "unavailable": N_("the service is unavailable; retry later"),
    "method_not_allowed": N_("the method is not allowed for this address"),
    "internal_error": N_("internal error"),
    "database_unavailable": N_("the database is unavailable; retry with the same event_id"),
    "cache_unavailable": N_("a dependency is unavailable; retry"),
    "invalid_value": N_("a value in the request is out of range or cannot be stored"),
    "invalid_text": N_("a text value in the request is not valid Unicode"),
    # Request parsing and authentication.
    "malformed_json": N_("the request body is not valid JSON"),
    "duplicate_key": N_("a key appears more than once in one object"),
    "missing_token": N_("missing bearer token"),
    "invalid_token": N_("invalid token"),
    "token_expired": N_("token expired"),
    "jwks_unavailable": N_("the identity provider's keys cannot be fetched"),
    # Events.
    "event_in_future": N_("the event is in the future"),
    "event_too_old": N_("the event is older than the %(days)s-day backfill window"),
    "event_id_conflict": N_("event_id was already used with a different payload"),
    "partition_missing": N_("the month of the event's date is not open for writes yet; "
                            "retry with the same event_id"),
    "write_conflict": N_("the events met concurrent writes of the same ids; retry with the "
                         "same event_id"),
    "operator_only": N_("trips of this mode in this city are credited from scenario "
                        "providers' records only"),
    "no_methodology": N_("no methodology is in force for this mode and city at that time"),
    # Personal data (carbon_credits/privacy).
    "consent_required": N_("consent to privacy notice %(version)s is required before events "
                           "are accepted"),
    "account_erased": N_("this account was erased"),
    "ledger_unverifiable": N_("the user's ledger does not verify; nothing was erased"),
    "consent_withdrawn": N_("consent to the privacy notice was withdrawn: no events are "
                            "accepted until it is given again"),
    "no_network": N_("no transit network is loaded for this city"),
    "unquantifiable": N_("the event cannot be quantified with the methodology"),
    "already_reversed": N_("event already reversed"),
    "no_claim_needed": N_("points of this city need no claim"),
    "not_held": N_("the event is not held for review"),
    "insufficient_points": N_("insufficient points: balance %(balance)s, requested "
                              "%(requested)s"),
    "redemption_id_conflict": N_("redemption_id was already used with another payload"),
    # Reports.
    "no_city": N_("this partner token names no city"),
    "other_city": N_("this partner token may not read another city"),
    # Scenario providers and record files.
    "mode_not_allowed": N_("the provider does not report trips of this mode"),
    "city_not_allowed": N_("the provider reports for another city only"),
    "not_bound": N_("no user is bound to this provider under this reference"),
    "queue_unavailable": N_("the job queue is unavailable; send the file again"),
    "unsupported_file_type": N_("send a record file as text/csv or application/x-ndjson "
                                "(JSON Lines)"),
    "unsupported_file_format": N_("not a CSV or JSON Lines record file"),
    "empty_file": N_("the file is empty"),
    "csv_no_header": N_("a CSV record file needs a header row naming its columns"),
    "unknown_columns": N_("the file has unknown columns"),
    "repeated_columns": N_("the file has repeated columns"),
    "missing_columns": N_("the file lacks required columns"),
    # Scenario providers' registry, keys and user bindings (issue 21, on main).
    "unknown_provider": N_("no such provider"),
    "provider_exists": N_("the provider exists already"),
    "campaign_exists": N_("the campaign exists already"),
    "campaign_ended": N_("the campaign has ended already"),
    "webhook_exists": N_("the webhook endpoint exists already"),
    "provider_disabled": N_("the provider is disabled"),
    "unknown_key": N_("the provider has no such key"),
    "key_exists": N_("the key id is taken"),
    "key_revoked": N_("the key is already revoked"),
    "too_many_keys": N_("the provider has too many active keys: revoke one first"),
    "nonce_store_unavailable": N_("the replay check is unavailable; retry shortly"),
    "reports_replica_unavailable": N_("reports are read from a replica that is behind or "
                                      "unreachable; retry later"),
    "invalid_code": N_("no such binding code for this provider"),
    "code_used": N_("this binding code was used already"),
    "code_expired": N_("this binding code has expired: ask the provider for a new one"),
    "already_bound": N_("you are bound to this provider already: revoke that first"),
    "ref_already_bound": N_("this provider account is bound to another user"),
    # Methodology factors and networks.
    "invalid_factors": N_("the factors are not valid for this methodology"),
    "past_effective_date": N_("effective_from must be in the future: past results never "
                              "change"),
    "effective_date_too_soon": N_("effective_from is too soon"),
    "overlapping_effective_date": N_("the version overlaps a later one; a new version must "
                                     "start later"),
    "version_exists": N_("this version already exists"),
    "invalid_feed": N_("the GTFS feed cannot be imported"),
    # Rewards.
    "reward_not_found": N_("no such reward"),
    "not_your_reward": N_("this belongs to another merchant"),
    "not_a_pool_reward": N_("the reward's codes are generated, not uploaded"),
    "duplicate_codes": N_("codes already exist"),
    "out_of_stock": N_("out of stock"),
    "voucher_not_found": N_("no such issued voucher code"),
    "voucher_used": N_("a voucher code of this redemption was used"),
    "voucher_void": N_("the voucher is void"),
    "redemption_not_found": N_("no such reward redemption"),
    "not_a_donation": N_("only a donation has a certificate"),
    "stock_below_redeemed": N_("more units are already redeemed than the new stock"),
    "reward_not_approved": N_("the reward is not approved"),
    "reward_not_yet_valid": N_("the reward is not valid yet"),
    "reward_expired": N_("the reward has expired"),
    "reward_other_city": N_("the reward is offered in another city"),
    "over_user_limit": N_("at most %(limit)s per user; you hold %(held)s"),
    "not_cancellable": N_("a donation is final"),
    "already_shipped": N_("the good was already shipped"),
    "hold_not_covered": N_("the user's balance %(balance)s no longer covers the "
                           "%(points)s points held for this good"),
    "cancel_window_closed": N_("the time to cancel is over"),
    "not_physical": N_("only physical goods have a fulfilment state"),
    "invalid_transition": N_("the redemption cannot move to that state"),
    # Leaderboards, teams and friends.
    "leaderboards_unavailable": N_("leaderboards are unavailable; retry shortly"),
    "unknown_leaderboard": N_("no such leaderboard: city, district, team or friends"),
    "unknown_period": N_("unknown period: day, week, month or all"),
    "district_required": N_("a district leaderboard needs a district"),
    "not_in_team": N_("you are in no team in this city"),
    "team_not_found": N_("no such team"),
    "invalid_invite_code": N_("no team has this invite code"),
    "already_in_team": N_("you are in a team in this city already: leave it first"),
    "no_such_user": N_("no such user"),
    "friend_self": N_("you cannot be your own friend"),
    "friend_request_exists": N_("you are friends already, or a request is pending"),
    "no_friend_request": N_("no such friend request"),
    "not_friends": N_("you are not friends"),
}
"""Each error code the service answers with, and its message template (named params)."""

HTTP_STATUS_TEMPLATE = N_("HTTP error %(status)s: %(name)s")
"""The message of any other HTTP error werkzeug may answer with (its code is its name)."""

REASON_TEXTS: dict[str, str] = {
    # Plausibility rules (antifraud/plausibility.py RULES).
    "speed_out_of_bounds": N_("the trip's speed is outside the plausible range for its mode"),
    "overlapping_trip": N_("the trip overlaps another trip of yours"),
    "too_many_trips": N_("more trips in one day than any commute needs"),
    "steps_too_fast": N_("the step count rose faster than anyone walks"),
    "steps_over_daily_ceiling": N_("the day's step count is above the plausible ceiling"),
    "device_on_many_accounts": N_("this device posts for too many accounts"),
    "user_frozen": N_("the account is frozen while it is under review"),
    # Caps and reversals (ledger).
    "daily_cap": N_("the daily cap was reached; only part of the reduction was credited"),
    "annual_cap": N_("the annual cap was reached; only part of the reduction was credited"),
    "reversed": N_("the credit was reversed"),
    # Trust policies (ingest/trust.py).
    "awaiting_operator": N_("held until the transport operator's record confirms the trip"),
    "same_trip": N_("the same trip was already credited from another report"),
    "not_confirmed": N_("no transport operator's record confirmed the trip in time"),
}
"""Each code an event's ``reason`` may hold, and its description."""

FIELD_MESSAGES: tuple[str, ...] = (
    # marshmallow's and this service's fixed field messages, translated where they appear
    # in an error's ``fields``. (Messages with values in them stay as they are.)
    N_("Missing data for required field."),
    N_("Unknown field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Invalid input type."),
    N_("Not a valid string."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Not a valid boolean."),
    N_("Not a valid datetime."),
    N_("Not a valid date."),
    N_("Not a valid time."),
    N_("Not a valid list."),
    N_("Not a valid tuple."),
    N_("Not a valid mapping type."),
    N_("Not a valid UUID."),
    N_("Not a valid URL."),
    N_("Not a valid email address."),
    N_("Invalid data."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("Shorter than minimum length {min}."),
    N_("Longer than maximum length {max}."),
    N_("Length must be between {min} and {max}."),
    N_("Must be greater than or equal to {min}."),
    N_("Must be less than or equal to {max}."),
    N_("Must be greater than or equal to {min} and less than or equal to {max}."),
    N_("Must be one of: {choices}."),
    N_("later than now + {seconds} s"),
    N_("older than {days} days"),
    N_("balance is {balance}"),
    N_("malformed JSON"),
    N_("must be printable characters only"),
    N_("must not be before from"),
    N_("credited from providers' records only"),
    N_("give either points or reward_id, not both"),
    N_("expired"),
    N_("already exists"),
    N_("already used"),
    N_("appears more than once"),
    N_("no network loaded"),
    N_("not bound"),
)
"""Field messages; ``{name}`` stands for a value (marshmallow's own placeholders)."""


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)"
                    for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


_FIXED = frozenset(m for m in FIELD_MESSAGES if "{" not in m)
_PATTERNS = tuple((m, _pattern(m)) for m in FIELD_MESSAGES if "{" in m)


@dataclass(frozen=True)
class Language:
    """A request's language: its locale and its catalog (a ``gettext`` translations)."""

    locale: str
    translations: gettext.NullTranslations

    @property
    def english(self) -> bool:
        return self.locale.split("_")[0] == ENGLISH


_CURRENT: ContextVar[Language | None] = ContextVar("carbon_credits_language", default=None)


def activate(language: Language | None) -> Token[Language | None]:
    """Answers in ``language`` until ``deactivate`` (the web layer, per request)."""
    return _CURRENT.set(language)


def deactivate(token: Token[Language | None]) -> None:
    _CURRENT.reset(token)


@contextmanager
def speaking(language: Language | None) -> Iterator[None]:
    token = activate(language)
    try:
        yield
    finally:
        deactivate(token)


def current() -> Language | None:
    return _CURRENT.get()


def _gettext(text: str) -> str:
    language = current()
    return text if language is None else language.translations.gettext(text)


def error_message(code: str, message: str, params: Mapping[str, Any] | None = None) -> str:
    """The message of an error ``code`` in the request's language; in English (or outside a
    request) the ``message`` the code built, with all its values."""
    language = current()
    template = ERROR_TEMPLATES.get(code)
    if language is None or language.english or template is None:
        return message
    try:
        return language.translations.gettext(template) % dict(params or {})
    except (KeyError, ValueError, TypeError):
        # A raise site that did not pass a param its template names: the message as built,
        # rather than a 500 while answering an error.
        return message


def http_status_message(status: int, name: str, message: str) -> str:
    """The message of an HTTP error whose code has no template of its own."""
    language = current()
    if language is None or language.english:
        return message
    return language.translations.gettext(HTTP_STATUS_TEMPLATE) % {"status": status,
                                                                   "name": name}


def field_messages(messages: Any) -> Any:
    """``fields`` of an error body, known messages translated, the structure unchanged."""
    language = current()
    if language is None or language.english:
        return messages
    if isinstance(messages, str):
        return _field_message(messages)
    if isinstance(messages, Mapping):
        return {key: field_messages(value) for key, value in messages.items()}
    if isinstance(messages, list | tuple):
        return [field_messages(value) for value in messages]
    return messages


def _field_message(text: str) -> str:
    if text in _FIXED:
        return _gettext(text)
    for template, pattern in _PATTERNS:
        found = pattern.match(text)
        if found:
            return _gettext(template).format(**found.groupdict())
    return text


def in_language(texts: Mapping[str, str]) -> str:
    """Of a text given in both languages (``{"zh": ..., "en": ...}``, as rewards carry
    them), the request's; Chinese outside a request (the service's first language)."""
    language = current()
    return texts["en"] if language is not None and language.english else texts["zh"]


def reason_text(reason: str | None) -> str | None:
    """The description of an event's ``reason`` code in the request's language (the code
    itself if it has none)."""
    if reason is None:
        return None
    template = REASON_TEXTS.get(reason)
    return reason if template is None else _gettext(template)
