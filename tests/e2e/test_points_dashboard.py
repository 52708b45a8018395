"""The points dashboard in a real browser: points outstanding, expiring and redeemed per
period, as GET /v1/reports/points gives them, in both languages."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask

from carbon_credits.ledger import expiring
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import utcnow
from carbon_credits.tokens import Principal
from carbon_credits.tuning import expiry_policies
from tests.e2e.conftest import browse
from tests.integration.test_expiry import ADMIN, earn, new_city, spend


def test_the_points_dashboard_shows_the_points_report(
        app: Flask, rt: Runtime, server: str, token: Callable[..., str],
        tmp_path: Path) -> None:
    city = new_city()
    expiry_policies.set_policy(rt, ADMIN, city, {"rule": "days", "amount": 3,
                                                 "reason": "test"})
    for i in range(3):
        who = Principal(f"u-{uuid.uuid4().hex[:16]}", "user", city)
        earn(rt, who, 40 + i)
        spend(rt, who, 10)
    expiring.expire_due(rt, utcnow())  # folds the lots: they expire in 3 days
    today = utcnow().astimezone(rt.config.tz).date()
    start, end = today - timedelta(days=1), today + timedelta(days=4)
    partner = token("city-bureau", role="partner", city=city)
    expected = app.test_client().get(
        f"/v1/reports/points?from={start}&to={end}&granularity=day",
        headers={"Authorization": f"Bearer {partner}"}).json
    assert expected["totals"]["outstanding"] == 93 and expected["totals"]["expiring"] == 93

    url = f"{server}/dashboard/points#token={partner}&from={start}&to={end}&granularity=day"
    dom = browse(url, tmp_path, "--dump-dom")

    assert 'data-loaded="true"' in dom, dom[-3000:]
    assert partner not in dom
    for figure in ("outstanding", "expiring", "net_spent", "expired"):
        assert re.search(rf'id="total-{figure}" data-value="{expected["totals"][figure]}"',
                         dom), figure
    for item in expected["items"]:
        row = re.search(rf'<tr data-period="{item["period"]}">(.*?)</tr>', dom, re.S)
        assert row, item["period"]
        cells = dict(re.findall(r'data-figure="(\w+)">([0-9,]+)<', row.group(1)))
        assert {k: int(v.replace(",", "")) for k, v in cells.items()} == {
            k: item[k] for k in ("outstanding", "expiring", "net_spent", "expired", "earned")}

    chinese = browse(url.replace("#", "?lang=zh_CN#"), tmp_path, "--dump-dom")
    assert 'data-loaded="true"' in chinese and "期末未使用积分" in chinese
    assert "Outstanding at the end" not in chinese
