"""GET /dashboard: the partner dashboard, one server-rendered page with no build step.

The page itself needs no token. The partner pastes one, or opens the page with it in the
address fragment (``/dashboard#token=...``), which browsers never send to a server and the
page removes from the address bar at once; inline JavaScript calls
``/v1/reports/reduction`` with the Authorization header and draws an inline SVG chart. No
CDN: everything is in the page, under a strict Content-Security-Policy with a per-response
nonce.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Response, render_template
from flask.views import MethodView

from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint

blp = Blueprint("dashboard", __name__, description="Partner dashboard (HTML)")

DEFAULT_DAYS = 30


@blp.route("/dashboard")
class Dashboard(MethodView):
    @blp.doc(responses={"200": {"description": "the dashboard page",
                                "content": {"text/html": {"schema": {"type": "string"}}}}})
    def get(self) -> Response:
        """Partner dashboard: reduction over time per mode, totals and participants."""
        rt = runtime()
        today = rt.clock().astimezone(rt.config.tz).date()
        nonce = secrets.token_urlsafe(16)
        html = render_template("dashboard.html", nonce=nonce, default_to=today.isoformat(),
                               default_from=(today - timedelta(days=DEFAULT_DAYS - 1))
                               .isoformat())
        response = Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response
