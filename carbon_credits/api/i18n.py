"""The request's language, chosen by Flask-Babel: ``?lang=`` (the dashboard's switch), else
the best of ``Accept-Language`` among the catalogs (zh_CN, en), else the configured
default (Config.default_locale: zh_CN for a Chinese city, so zh-CN first). The chosen
language's translations answer the request's errors and texts (carbon_credits.messages)."""

from __future__ import annotations

from typing import Any

from babel import support
from flask import Flask, g, request
from flask_babel import Babel, Domain, get_locale, get_translations

from carbon_credits import messages
from carbon_credits.config import Config

TRANSLATIONS_DIR = "translations"
"""Under the package (carbon_credits/translations): the catalogs, compiled .mo committed."""


def _normalize(tag: str) -> str:
    return tag.strip().replace("-", "_").lower()


_BY_TAG = {_normalize(locale): locale for locale in messages.LOCALES}
_BY_LANGUAGE = {locale.split("_")[0]: locale for locale in messages.LOCALES}


def choose_locale(lang: str | None, accept_language: str | None, default: str) -> str:
    """The locale of a request: ``lang`` (the ``?lang=`` override), else the first tag of
    ``Accept-Language`` (by quality) this service speaks: exactly (zh-CN) or by its
    language (zh, zh-Hans, zh-TW, en-US), else ``default``."""
    if lang and _normalize(lang) in _BY_TAG:
        return _BY_TAG[_normalize(lang)]
    tags: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, rest = part.partition(";")
        quality = 1.0
        for param in rest.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.strip() and quality > 0:
            tags.append((-quality, position, _normalize(tag)))
    for _, _, tag in sorted(tags):
        if tag in _BY_TAG:
            return _BY_TAG[tag]
        if tag.split("_")[0] in _BY_LANGUAGE:
            return _BY_LANGUAGE[tag.split("_")[0]]
    return default


def init_app(app: Flask, config: Config) -> None:
    default = config.default_locale or "zh_CN"
    app.config["BABEL_DEFAULT_LOCALE"] = default
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = TRANSLATIONS_DIR

    def select() -> str:
        g.catalog_locale = choose_locale(request.args.get("lang"),
                                         request.headers.get("Accept-Language"), default)
        return str(g.catalog_locale)

    babel = Babel(app, locale_selector=select)
    babel.domain_instance = CatalogDomain()
    app.before_request(activate)
    app.teardown_request(_deactivate)
    app.after_request(_content_language)


def activate() -> None:
    """Answers this request in its language (idempotent: error handlers call it too, for
    errors raised before the app's first before_request function ran)."""
    if "language_token" not in g:
        language = messages.Language(locale(), get_translations())
        g.language_token = messages.activate(language)


class CatalogDomain(Domain):  # type: ignore[misc]
    """Flask-Babel's domain, loading the catalog folder the request's locale is named by
    (zh_CN): Flask-Babel would look for the Locale's full name (zh_Hans_CN) and then zh."""

    def get_translations(self) -> support.NullTranslations:
        chosen = locale()
        found: support.NullTranslations | None = self.cache.get(chosen)
        if found is None:
            merged = support.Translations()
            for directory in self.translation_directories:
                loaded = support.Translations.load(directory, [chosen], self.domain[0])
                if isinstance(loaded, support.Translations):  # else: no catalog there
                    merged.merge(loaded)
            self.cache[chosen] = found = merged
        return found


def locale() -> str:
    """The request's locale as the catalogs name it (zh_CN, en)."""
    get_locale()  # runs the selector once per request
    return str(g.get("catalog_locale", messages.ENGLISH))


def _deactivate(_exc: BaseException | None) -> None:
    token = g.pop("language_token", None)
    if token is not None:
        messages.deactivate(token)


def _content_language(response: Any) -> Any:
    response.headers.setdefault("Content-Language", locale().replace("_", "-"))
    response.vary.add("Accept-Language")
    return response
