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


ENGLISH_TEXTS = ("Show report", "Credited events", "Participants", "Reduction per mode",
                 "Granularity", "suppressed", "Points", "The token stays in this page",
                 "estimated distinct", "City (admins)")
"""A few of the page's English texts: none may be left in the Chinese page."""
ALLOWED_LATIN = {"CO2", "k", "GET", "v1", "reports", "reduction", "HyperLogLog", "Bearer", "token",
                 "English", "Asia", "Shanghai", "g", "t", "from", "effective_from"}
"""Latin words the Chinese page may show: units, the API's address, names."""


def _visible_text(dom: str) -> str:
    """The page's text as a reader sees it: no script or style, no markup; with the
    placeholders and labels read out to screen readers."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    shown = re.findall(r'(?:placeholder|aria-label)="([^"]*)"', body)
    body = re.sub(r"<[^>]+>", " ", body)
    return html.unescape(" ".join([body, *shown]))


def _seed_report(app: Flask, rt: Runtime, token: Callable[..., str]) -> tuple[str, str]:
    city = seed_city(rt, "dash-i18n")
    for i in range(10):
        post(rt, city, f"{city}-rider-{i}", metro(TODAY, 7, i, entry_station_id="luohu",
                                                     exit_station_id="chegongmiao"))
    post(rt, city, f"{city}-walker", steps(TODAY, 7000))  # under k: suppressed
    partner = token("city-bureau", role="partner", city=city)
    return city, partner


def test_the_dashboard_speaks_chinese_to_a_chinese_browser(
        app: Flask, rt: Runtime, server: str, token: Callable[..., str],
        tmp_path: Path) -> None:
    city, partner = _seed_report(app, rt, token)
    url = f"{server}/dashboard#token={partner}&from={TODAY}&to={TODAY}&granularity=day"
    # Chromium sends Accept-Language: zh-CN,zh (the suite's app defaults to English).
    dom = browse(url, tmp_path, "--accept-lang=zh-CN,zh", "--lang=zh-CN", "--dump-dom")

    assert 'data-loaded="true"' in dom, dom[-3000:]
    assert '<html lang="zh-CN"' in dom
    text = _visible_text(dom)
    for chinese in ("碳普惠 减排报告 · 合作方看板", "查看报告", "已记入的事件", "参与人数",
                    "各出行方式减排量", "粒度", "地铁",
                    "参与人数少于 10 的单元格已隐匿（此处 1 个）",
                    f"{city}，{TODAY} 至 {TODAY}（Asia/Shanghai）", "令牌只留在本页面中"):
        assert chinese in text, chinese
    assert "步行 " + f"{TODAY}: 已隐匿（参与人数少于 k）" in text  # the chart's tooltip
    for english in ENGLISH_TEXTS:
        assert english not in text, english
    latin = set(re.findall(r"[A-Za-z][A-Za-z0-9_]*", text.replace(city, " "))) - ALLOWED_LATIN
    assert not latin, latin


def test_the_dashboard_speaks_english_when_asked(
        app: Flask, rt: Runtime, server: str, token: Callable[..., str],
        tmp_path: Path) -> None:
    city, partner = _seed_report(app, rt, token)
    # ?lang=en wins over the browser's Chinese Accept-Language (the page's language link).
    url = (f"{server}/dashboard?lang=en#token={partner}&from={TODAY}&to={TODAY}"
           "&granularity=day")
    dom = browse(url, tmp_path, "--accept-lang=zh-CN,zh", "--lang=zh-CN", "--dump-dom")

    assert 'data-loaded="true"' in dom, dom[-3000:]
    assert '<html lang="en"' in dom
    text = _visible_text(dom)
    for english in ENGLISH_TEXTS:
        assert english in text, english
    assert f"{city}, {TODAY} to {TODAY} (Asia/Shanghai)" in text
    assert "Cells with fewer than 10 participants are suppressed (1 here)." in text, text
    for chinese in ("查看报告", "已记入的事件", "地铁", "已隐匿"):
        assert chinese not in text, chinese
    assert ">中文</a>" in dom  # the switch back names the other language in itself
