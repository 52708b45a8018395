"""The privacy notice users accept, by version. A changed notice is a new version (never
an edit of a published one): a user's consent names the version they read, and
PRIVACY_NOTICE_VERSION (config.py) says which version events require."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Notice:
    version: str
    published: date
    texts: dict[str, str]
    """The notice in each language (zh_CN, en): what the client shows before consent."""


NOTICES: dict[str, Notice] = {n.version: n for n in (
    Notice(
        version="2026-12",
        published=date(2026, 12, 7),
        texts={
            "zh_CN": (
                "个人信息处理规则（2026-12 版）\n"
                "1. 我们处理的信息：您的账号标识、您上报的出行记录（线路、上下车站点、出行时间、"
                "步数）、设备标识、积分与兑换记录，以及您授权的场景方绑定关系。\n"
                "2. 目的：按城市碳普惠方法学核算您的减排量并发放碳积分，防范作弊，"
                "并以汇总（不可识别个人）的形式向城市主管部门报告减排总量。\n"
                "3. 保存期限：出行明细（站点、时间、设备标识）在保存期限届满后删除，"
                "仅保留核证所需的日期、方式、里程与减排量；积分账本按记账规则长期保存。\n"
                "4. 您的权利：您可随时撤回同意（撤回后不再接收新的出行记录）、"
                "导出您的全部个人信息、或注销账号并删除您的个人信息。\n"
                "5. 不同意本规则时，我们不会处理您的出行记录。"),
            "en": (
                "Privacy notice (version 2026-12)\n"
                "1. What we process: your account id, the trips you report (line, stops or "
                "stations, times, step counts), your device id, your points and "
                "redemptions, and the scenario providers you bound your account to.\n"
                "2. Why: to quantify your avoided emissions under the city's low-carbon "
                "methodology and credit carbon points, to prevent fraud, and to report "
                "aggregate reductions (which identify nobody) to the city.\n"
                "3. How long: trip details (stops, times, device ids) are deleted after the "
                "retention period, keeping only the date, mode, distance and reduction the "
                "verification needs; the points ledger is kept as bookkeeping requires.\n"
                "4. Your rights: you may withdraw consent at any time (no new trips are "
                "then accepted), export all your personal data, or delete your account "
                "and personal data.\n"
                "5. Without your consent to this notice we do not process your trips."),
        }),
)}

LATEST = max(NOTICES)
"""The newest version (versions are ISO year-month, so they sort by time)."""
