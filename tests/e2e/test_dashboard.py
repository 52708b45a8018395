"""The partner dashboard in a real browser: headless Chromium against a real HTTP server.

The browser and the server come from conftest.py.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask

from carbon_credits.runtime import Runtime
from tests.e2e.conftest import browse
from tests.integration.test_rollups import TODAY, YESTERDAY, bus, metro, post, seed_city, steps


def test_the_dashboard_draws_the_partner_report(
        app: Flask, rt: Runtime, server: str, token: Callable[..., str],
        tmp_path: Path) -> None:
    city = seed_city(rt, "dash")
    for i in range(12):
        user = f"dash-rider-{i}"
        for day in (YESTERDAY, TODAY):
            post(rt, city, user, metro(day, 7, i, entry_station_id="luohu" if i % 2
                                       else "shaoniangong", exit_station_id="chegongmiao"))
            post(rt, city, user, bus(day, 12, i))
    for i in range(3):  # under k: the steps line shows suppressed points
        post(rt, city, f"dash-walker-{i}", steps(TODAY, 7000))
    partner = token("city-bureau", role="partner", city=city)
    start = TODAY - timedelta(days=6)
    expected = app.test_client().get(
        f"/v1/reports/reduction?from={start}&to={TODAY}&granularity=day&group_by=mode",
        headers={"Authorization": f"Bearer {partner}"}).json
    totals = expected["totals"]
    assert totals["suppressed"] is False and totals["participants"] == 15

    url = f"{server}/dashboard#token={partner}&from={start}&to={TODAY}&granularity=day"
    dom = browse(url, tmp_path, "--dump-dom")

    assert 'data-loaded="true"' in dom, dom[-3000:]
    assert partner not in dom  # the token never lands in the page
    for figure in ("grams", "points", "events", "participants"):
        assert re.search(rf'id="total-{figure}" data-value="{totals[figure]}"', dom), figure
    assert f"{totals['grams']:,}" in dom
    chart = re.search(r'<svg id="chart"[^>]*data-periods="7"[^>]*>(.*?)</svg>', dom, re.S)
    assert chart, "no chart"
    days = [(start + timedelta(days=i)).isoformat() for i in range(7)]
    for mode in ("metro", "bus"):
        want = [sum(r["grams"] for r in expected["rows"]
                    if r["mode"] == mode and r["period"] == d) for d in days]
        assert want[-1] > 0 and want[-2] > 0
        line = re.search(rf'<path class="series" data-mode="{mode}"[^>]*'
                         rf'data-values="([0-9,]*)"', chart.group(1))
        assert line and [int(v) for v in line.group(1).split(",")] == want, mode
        assert f"{mode} {TODAY}: {want[-1]:,} g" in html.unescape(chart.group(1))
    walkers = re.search(r'<path class="series" data-mode="steps"[^>]*data-values="([0-9,]*)"',
                        chart.group(1))
    assert walkers and walkers.group(1).split(",") == ["0"] * 6 + [""]  # today: a gap
    assert f"steps {TODAY}: suppressed" in html.unescape(chart.group(1))
    assert "suppressed (1 here)" in dom

    shot = tmp_path / "dashboard.png"
    browse(url, tmp_path, f"--screenshot={shot}", "--window-size=1200,900",
           "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
