"""The donation certificate a user downloads: a one-page PDF (reportlab) naming the
project, the units, the date, the user's pseudonym and the verification hash."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib.pagesizes import A5, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from carbon_credits.errors import Conflict
from carbon_credits.rewards import pseudonyms
from carbon_credits.rewards.redemptions import mine
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Reward
from carbon_credits.tokens import Principal

CJK_FONT = "STSong-Light"
"""One of the Adobe Asian fonts every PDF reader carries: Chinese text without embedding
a font file (reportlab's CID font support)."""
pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def certificate(rt: Runtime, principal: Principal, redemption_id: str) -> tuple[bytes, str]:
    """The PDF of the user's donation and a file name; 409 for a redemption that is not a
    donation."""
    with rt.db.transaction() as session:
        redemption, made = mine(session, principal.sub, redemption_id)
        reward = session.get(Reward, made.reward_id)
        assert reward is not None
        if reward.kind != "donation" or made.certificate_hash is None:
            raise Conflict("only a donation has a certificate", code="not_a_donation")
        facts = {"user": pseudonyms.pseudonym(rt.config, principal.sub),
                 "project": (reward.project or {}).get("name", ""),
                 "unit": (reward.project or {}).get("unit", ""), "units": made.quantity,
                 "date": made.created_at.astimezone(rt.config.tz).date().isoformat(),
                 "points": made.points, "hash": made.certificate_hash,
                 "title_zh": reward.title_zh, "title_en": reward.title_en}
    return render(facts), f"certificate-{redemption_id}.pdf"


def render(facts: dict[str, Any]) -> bytes:
    """One A5 landscape page; the Latin lines in Helvetica, the Chinese in the CJK font."""
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=landscape(A5), invariant=True)
    page.setTitle("Donation certificate")
    width, height = landscape(A5)
    y = height - 60
    page.setFont(CJK_FONT, 20)
    page.drawCentredString(width / 2, y, "公益捐赠证书")
    y -= 28
    page.setFont("Helvetica-Bold", 16)
    page.drawCentredString(width / 2, y, "Donation certificate")
    y -= 40
    lines = [
        ("Helvetica", f"Donor: {facts['user']}"),
        (CJK_FONT, f"项目 Project: {facts['project']}"),
        (CJK_FONT, f"数量 Units: {facts['units']} x {facts['unit']}"),
        (CJK_FONT, f"{facts['title_zh']} / {facts['title_en']}"),
        ("Helvetica", f"Points: {facts['points']}    Date: {facts['date']}"),
    ]
    for font, text in lines:
        page.setFont(font, 12)
        page.drawString(50, y, text)
        y -= 22
    page.setFont("Helvetica", 8)
    page.drawString(50, 40, f"Verification hash (SHA-256): {facts['hash']}")
    page.showPage()
    page.save()
    return out.getvalue()
