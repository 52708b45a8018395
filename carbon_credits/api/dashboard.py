"""GET /dashboard: the partner dashboard, one server-rendered page with no build step.

The page itself needs no token. The partner pastes one, or opens the page with it in the
address fragment (``/dashboard#token=...``), which browsers never send to a server and the
page removes from the address bar at once; inline JavaScript calls
``/v1/reports/reduction`` with the Authorization header and draws an inline SVG chart. No
CDN: everything is in the page, under a strict Content-Security-Policy with a per-response
nonce. Every text is in the request's language (api/i18n.py: ``?lang=``, Accept-Language,
the city's default); the script's texts come in the page as one JSON object.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Response, render_template
from flask.views import MethodView
from flask_babel import gettext as _

from carbon_credits.api import i18n
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint

blp = Blueprint("dashboard", __name__, description="Partner dashboard (HTML)")

DEFAULT_DAYS = 30

LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}
"""The switch to the other language names it in itself."""


def script_texts(locale: str) -> dict[str, str]:
    """The texts the page's script shows, in the request's language; ``{name}`` stands
    for a value the script fills in."""
    words = {f"word:{word}": text for word, text in (
        ("metro", _("metro")), ("bus", _("bus")), ("steps", _("steps")),
        ("bikeshare", _("bikeshare")), ("day", _("day")), ("week", _("week")),
        ("month", _("month")))}
    return {
        "language": locale.replace("_", "-"),
        "suppressed": _("suppressed"),
        "suppressed_cell": _("suppressed (fewer than k participants)"),
        "no_events": _("no credited events in this range"),
        "paste_token": _("Paste a partner token to see the report."),
        "loading": _("Loading…"),
        "no_answer": _("The service did not answer: {error}"),
        "error": _("error"),
        "privacy": _("Cells with fewer than {k} participants are suppressed ({n} here)."),
        "estimated": _("Participants are estimated (HyperLogLog, about ±1.6 %)."),
        "admin_view": _("Admin view: no suppression."),
        "range": _("{city}, {from} to {to} ({tz})"),
        **words,
    }


def _page(template: str, days: int, texts: dict[str, str]) -> Response:
    """A dashboard page in the request's language, under a strict CSP with a nonce."""
    rt = runtime()
    today = rt.clock().astimezone(rt.config.tz).date()
    nonce = secrets.token_urlsafe(16)
    locale = i18n.locale()
    other = next(name for name in LANGUAGE_NAMES if name != locale)
    html = render_template(template, nonce=nonce, default_to=today.isoformat(),
                           default_from=(today - timedelta(days=days - 1)).isoformat(),
                           html_lang=locale.replace("_", "-"), other_lang=other,
                           other_lang_name=LANGUAGE_NAMES[other], texts=texts)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/dashboard/points")
class PointsDashboard(MethodView):
    @blp.doc(responses={"200": {"description": "the points dashboard page",
                                "content": {"text/html": {"schema": {"type": "string"}}}}})
    def get(self) -> Response:
        """Points dashboard: points outstanding, expiring and redeemed per period."""
        locale = i18n.locale()
        return _page("points_dashboard.html", 365, {
            "language": locale.replace("_", "-"),
            "paste_token": _("Paste a partner token to see the report."),
            "loading": _("Loading…"),
            "no_answer": _("The service did not answer: {error}"),
            "error": _("error"),
            "range": _("{city}, {from} to {to}"),
        })


@blp.route("/dashboard")
class Dashboard(MethodView):
    @blp.doc(responses={"200": {"description": "the dashboard page",
                                "content": {"text/html": {"schema": {"type": "string"}}}}})
    def get(self) -> Response:
        """Partner dashboard: reduction over time per mode, totals and participants."""
        rt = runtime()
        today = rt.clock().astimezone(rt.config.tz).date()
        nonce = secrets.token_urlsafe(16)
        locale = i18n.locale()
        other = next(name for name in LANGUAGE_NAMES if name != locale)
        html = render_template("dashboard.html", nonce=nonce, default_to=today.isoformat(),
                               default_from=(today - timedelta(days=DEFAULT_DAYS - 1))
                               .isoformat(), html_lang=locale.replace("_", "-"),
                               other_lang=other, other_lang_name=LANGUAGE_NAMES[other],
                               texts=script_texts(locale))
        response = Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response
