"""Both languages for every error code, reason code and text the service answers with: a
code without a zh_CN and an en translation fails here. Pure: reads the source tree and
the catalogs in carbon_credits/translations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from werkzeug.exceptions import default_exceptions

from carbon_credits import messages
from carbon_credits.antifraud.plausibility import RULES
from carbon_credits.ingest import trust
from carbon_credits.ledger import caps

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "carbon_credits"
TRANSLATIONS = PACKAGE / "translations"

CODE_SITES = re.compile(
    # ServiceError(..., code="x"), class attributes `code = "x"`, rewards' Refusal("x", ...),
    # the error handlers' error_response(503, "x", ...) and the HTTP status map {404: "x"};
    # `"x" if ... else "y"` at any of them.
    r'(?:\bcode\s*=\s*|Refusal\(\s*|error_response\(\s*\d+,\s*|\b\d{3}: )"(\w+)"'
    r'(?:\s+if\s+[^\n]*?\s+else\s+"(\w+)")?')


def error_codes_in_source() -> set[str]:
    codes: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for found in CODE_SITES.finditer(path.read_text(encoding="utf-8")):
            codes.update(code for code in found.groups() if code)
    return codes


def reason_codes() -> set[str]:
    """Every value an event's ``reason`` may hold."""
    ledger = PACKAGE / "ledger"
    reversed_ = re.findall(r'event\.reason = "(\w+)"', (ledger / "reversals.py").read_text())
    capped = re.findall(r'"(\w+_cap)"', (ledger / "caps.py").read_text())
    assert reversed_ and capped, "the reason codes moved: update this test"
    return {*RULES, trust.AWAITING, trust.SAME_TRIP, trust.NOT_CONFIRMED, *reversed_, *capped}


def catalog(locale: str) -> Catalog:
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=locale)


def translated(locale: str, text: str) -> str:
    message = catalog(locale).get(text)
    assert message is not None and message.string and not message.fuzzy, (
        f"{text!r} has no {locale} translation: run pybabel update and translate it "
        "(carbon_credits/translations/README.md)")
    return str(message.string)


def test_the_source_yields_the_codes_this_test_looks_for() -> None:
    codes = error_codes_in_source()
    # A few from each kind of site: the search itself works.
    assert {"bad_request", "not_found", "event_too_old", "over_user_limit", "voucher_void",
            "database_unavailable", "method_not_allowed", "already_shipped"} <= codes
    assert len(codes) > 60


def test_every_error_code_has_a_template() -> None:
    missing = error_codes_in_source() - set(messages.ERROR_TEMPLATES)
    assert not missing, f"error codes with no message template in messages.py: {missing}"


@pytest.mark.parametrize("locale", messages.LOCALES)
def test_every_error_code_is_translated(locale: str) -> None:
    for code in sorted(error_codes_in_source() | set(messages.ERROR_TEMPLATES)):
        text = translated(locale, messages.ERROR_TEMPLATES[code])
        if locale == "zh_CN":
            assert re.search(r"[\u4e00-\u9fff]", text), (code, text)


@pytest.mark.parametrize("locale", messages.LOCALES)
def test_every_reason_code_is_described_and_translated(locale: str) -> None:
    codes = reason_codes()
    assert {"speed_out_of_bounds", "awaiting_operator", "same_trip", "not_confirmed",
            "daily_cap", "reversed"} <= codes
    missing = codes - set(messages.REASON_TEXTS)
    assert not missing, f"reason codes with no description in messages.py: {missing}"
    for code in sorted(codes):
        text = translated(locale, messages.REASON_TEXTS[code])
        if locale == "zh_CN":
            assert re.search(r"[\u4e00-\u9fff]", text), (code, text)


def test_any_other_http_error_has_a_translated_message() -> None:
    """werkzeug's other errors answer with a code of their name (``gone``): the generic
    HTTP template, translated, is their message."""
    others = {status for status in default_exceptions
              if str(status) not in ("400", "404", "405", "413", "415", "422")}
    assert others
    text = translated("zh_CN", messages.HTTP_STATUS_TEMPLATE)
    assert text % {"status": 410, "name": "Gone"} == "HTTP 错误 410：Gone"
    translated("en", messages.HTTP_STATUS_TEMPLATE)


@pytest.mark.parametrize("locale", messages.LOCALES)
def test_every_text_in_the_template_is_translated(locale: str) -> None:
    with open(TRANSLATIONS / "messages.pot", "rb") as fh:
        template = read_po(fh)
    ids = [m.id for m in template if m.id]
    assert len(ids) > 100
    for text in ids:
        assert isinstance(text, str)
        translated(locale, text)


def test_the_template_holds_every_marked_text_of_the_source() -> None:
    """A text marked in the code (N_, _, gettext) but not extracted would stay English."""
    method_map = [("carbon_credits/**.py", "python"),
                  ("carbon_credits/templates/**.html", "jinja2")]
    found = {message for _, _, message, *_ in extract_from_dir(
        str(ROOT), method_map=method_map, keywords={"N_": None, "_": None, "gettext": None})
        if isinstance(message, str)}
    with open(TRANSLATIONS / "messages.pot", "rb") as fh:
        extracted = {m.id for m in read_po(fh) if m.id}
    assert found - extracted == set(), "run pybabel extract (translations/README.md)"
    assert extracted - found == set(), "texts no longer in the code: run pybabel extract"


@pytest.mark.parametrize("locale", messages.LOCALES)
def test_the_compiled_catalog_matches_its_source(locale: str) -> None:
    """The .mo files are committed (a fresh clone needs no compile step): each must say
    what its .po says."""
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    source = {m.id: m.string for m in catalog(locale) if m.id and m.string}
    assert compiled == source, "run pybabel compile -d carbon_credits/translations"


def test_caps_reason_is_the_one_the_ledger_writes() -> None:
    credit = caps.Credit(1, 1, "capped", "daily_cap", None)
    assert credit.reason in messages.REASON_TEXTS
