"""Partner reduction reports and the verification (MRV) export, read from rollups only.

**Cost.** A report reads the ``report_rollups`` rows of one city between two local dates:
days x cells x 16 shards rows, each a few integers and a 256-byte sketch slice, whatever
the number of events behind them (see ``reports.rollups``). Rows arrive in date order, so
a CSV is streamed period by period: memory holds one period's groups, not the range.

**Figures.** ``ug`` is the exact credited micrograms (earn minus reversal entries of the
ledger), ``grams`` = floor(ug / 10^6) of each cell's own total (not a sum of per-event
floors), ``tonnes`` = grams / 10^6, ``points`` the points those credits earned, ``events``
the live credited events, ``participants`` the estimated distinct users (HyperLogLog, see
``reports.rollups``: relative standard error 1.6 %, small counts exact or low). Totals are
the range's own aggregate: their participants are distinct over the whole range.

**Privacy.** No report carries a user id. In partner reports every cell, and the totals,
with fewer than k estimated participants (``REPORT_MIN_PARTICIPANTS``, default 10) keeps its
period and group keys but has its figures blanked and ``suppressed`` set. Admin reports are
not suppressed. Known limit of cell suppression: a partner who combines several reports
(other ranges or groupings, or the totals minus the visible cells) can bound what a
suppressed cell holds; the rule protects a small cell from being read directly, it is not
differential privacy.

**Where.** Reports read through ``Database.reports``: the streaming replica named by
REPORTS_DATABASE_URL when set and within REPORTS_MAX_LAG_S, so they take no CPU from
ingest on the primary (``storage.replica``); otherwise the primary.

**Access.** Partners see their token's ``city`` only (asking for another is 403); admins
any city (``city``, default the service's default city); users are refused (403).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select

from carbon_credits.errors import Forbidden
from carbon_credits.reports import sketch
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import FactorVersion, ReportRollup
from carbon_credits.tokens import Principal
from methodology import FactorSet, get_methodology
from methodology.quantity import M_PER_KM, UG_PER_G
from methodology.steps import G_PER_STEP

GROUPS = ("mode", "district", "methodology_version", "source")
"""``source``: who reported the events, the users' apps (``client``) or a scenario
provider (its id): reductions a city can trust by their source (issue 21)."""
GRANULARITIES = ("day", "week", "month")
UG_PER_TONNE = 10**12

FIGURES = ("events", "grams", "tonnes", "ug", "points", "participants")


@dataclass(frozen=True)
class Scope:
    """Whose data a request may read, decided from the token."""

    city: str
    suppress: bool
    k: int


def scope_for(rt: Runtime, principal: Principal, city: str | None) -> Scope:
    """The city a principal may report on, and whether small cells are suppressed."""
    k = rt.config.report_min_participants
    if principal.role == "admin":
        return Scope(city or rt.config.default_city, suppress=False, k=k)
    if principal.role != "partner":
        raise Forbidden("reports are for partners and admins")
    if not principal.city:
        raise Forbidden("this partner token names no city", code="no_city")
    if city is not None and city != principal.city:
        raise Forbidden(f"this partner token may only read {principal.city!r}",
                        code="other_city")
    return Scope(principal.city, suppress=True, k=k)


def period_of(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    if granularity == "month":
        return day.replace(day=1)
    return day


def period_last(start: date, granularity: str) -> date:
    if granularity == "week":
        return start + timedelta(days=6)
    if granularity == "month":
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following - timedelta(days=1)
    return start


@dataclass
class _Acc:
    """Figures of one output cell being summed from rollup rows."""

    events: int = 0
    ug: int = 0
    avoided_ug: int = 0
    points: int = 0
    activity: int = 0
    sketch: sketch.Sketch = field(default_factory=sketch.Sketch)

    def add(self, row: Any) -> None:
        self.events += row.events
        self.ug += row.ug
        self.avoided_ug += row.avoided_ug
        self.points += row.points
        self.activity += row.activity
        self.sketch.add_slice(row.shard, row.hll)

    def update(self, other: _Acc) -> None:
        self.events += other.events
        self.ug += other.ug
        self.avoided_ug += other.avoided_ug
        self.points += other.points
        self.activity += other.activity
        self.sketch.update(other.sketch)

    def figures(self, scope: Scope) -> dict[str, Any]:
        participants = self.sketch.estimate()
        if scope.suppress and participants < scope.k:
            return {**dict.fromkeys(FIGURES), "suppressed": True}
        grams = self.ug // UG_PER_G
        return {"events": self.events, "grams": grams, "tonnes": grams / 10**6,
                "ug": self.ug, "points": self.points, "participants": participants,
                "suppressed": False}


@dataclass(frozen=True)
class ReductionQuery:
    start: date
    end: date
    granularity: str = "day"
    group_by: Sequence[str] = ()

    @property
    def groups(self) -> tuple[str, ...]:
        """The requested groups, deduplicated, in the canonical order."""
        return tuple(g for g in GROUPS if g in self.group_by)


def _rows(rt: Runtime, city: str, start: date, end: date) -> Iterator[Any]:
    """The rollup rows of a city and date range, in date order, streamed."""
    with rt.db.reports() as session:
        query = (select(ReportRollup.local_date, ReportRollup.mode, ReportRollup.district,
                        ReportRollup.methodology_version, ReportRollup.source,
                        ReportRollup.shard,
                        ReportRollup.events, ReportRollup.ug, ReportRollup.avoided_ug,
                        ReportRollup.points, ReportRollup.activity, ReportRollup.hll)
                 .where(ReportRollup.city == city, ReportRollup.local_date >= start,
                        ReportRollup.local_date <= end)
                 .order_by(ReportRollup.local_date))
        # Core, not ORM, execution: plain rows, a server-side cursor on PostgreSQL.
        yield from session.connection().execute(query.execution_options(yield_per=2000))


@dataclass
class _Totals:
    acc: _Acc = field(default_factory=_Acc)
    suppressed_rows: int = 0


def reduction_rows(rt: Runtime, scope: Scope, q: ReductionQuery, totals: _Totals
                   ) -> Iterator[dict[str, Any]]:
    """Output rows in (period, groups) order, one period at a time; fills ``totals``."""
    groups = q.groups
    current: date | None = None
    cells: dict[tuple[str, ...], _Acc] = {}

    def flush(period: date) -> Iterator[dict[str, Any]]:
        last = min(period_last(period, q.granularity), q.end)
        for key in sorted(cells):
            acc = cells[key]
            totals.acc.update(acc)
            figures = acc.figures(scope)
            totals.suppressed_rows += figures["suppressed"]
            yield {"period": period, "period_start": max(period, q.start), "period_end": last,
                   **dict(zip(groups, key, strict=True)), **figures}

    for row in _rows(rt, scope.city, q.start, q.end):
        period = period_of(row.local_date, q.granularity)
        if period != current:
            if current is not None:
                yield from flush(current)
            current, cells = period, {}
        key = tuple(getattr(row, g) for g in groups)
        acc = cells.get(key)
        if acc is None:
            acc = cells[key] = _Acc()
        acc.add(row)
    if current is not None:
        yield from flush(current)


def reduction(rt: Runtime, scope: Scope, q: ReductionQuery) -> dict[str, Any]:
    """The whole report as one document (JSON)."""
    totals = _Totals()
    rows = list(reduction_rows(rt, scope, q, totals))
    return {**_meta(rt, scope, q), "rows": rows,
            "totals": totals.acc.figures(scope),
            "privacy": {"k": scope.k, "applied": scope.suppress,
                        "suppressed_rows": totals.suppressed_rows}}


def _meta(rt: Runtime, scope: Scope, q: ReductionQuery) -> dict[str, Any]:
    return {"city": scope.city, "from": q.start, "to": q.end,
            "timezone": rt.config.city_timezone, "granularity": q.granularity,
            "group_by": list(q.groups),
            "participants_method": {
                "method": "HyperLogLog (linear counting when sparse, else Ertl 2017)",
                "registers": sketch.M,
                "relative_standard_error": round(sketch.RELATIVE_STANDARD_ERROR, 5),
                "note": "estimated distinct users; a user active on several days or in "
                        "several groups of one row is counted once"}}


def reduction_csv(rt: Runtime, scope: Scope, q: ReductionQuery) -> Iterator[str]:
    """The report as CSV (header row, UTF-8), generated period by period."""
    columns = ["period", "period_start", "period_end", *q.groups, "events", "grams", "tonnes",
               "ug", "points", "participants", "suppressed"]
    yield _csv_line(columns)
    for row in reduction_rows(rt, scope, q, _Totals()):
        yield _csv_line([_cell(row[c]) for c in columns])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


# ---------------------------------------------------------------- verification (MRV)

VERIFICATION_RULE = (
    "Per event: avoided_ug = floor(factor x activity x 10^6) micrograms, activity in "
    "person-km (distance_m / 1000) for trip modes or in steps for steps; credited_ug <= "
    "avoided_ug (daily caps). Per row: recomputed_ug = floor(factor x total activity x 10^6)"
    " and 0 <= recomputed_ug - avoided_ug < events (one floor per event). Grams are whole "
    "micrograms / 10^6, floored.")

VERIFICATION_COLUMNS = (
    "mode", "methodology_version", "factor_kind", "factor_name", "factor_value",
    "factor_unit", "effective_from", "events", "participants", "activity", "activity_unit",
    "avoided_ug", "avoided_grams", "credited_ug", "credited_grams", "recomputed_ug",
    "rounding_ug", "check", "suppressed")


def verification(rt: Runtime, scope: Scope, start: date, end: date) -> dict[str, Any]:
    """Per (mode, methodology version): events, activity, grams and the factor used."""
    cells: dict[tuple[str, str], _Acc] = {}
    for row in _rows(rt, scope.city, start, end):
        key = (row.mode, row.methodology_version)
        acc = cells.get(key)
        if acc is None:
            acc = cells[key] = _Acc()
        acc.add(row)
    with rt.db.reports() as session:
        versions = {(v.mode, v.version): v for v in session.scalars(
            select(FactorVersion).where(FactorVersion.city == scope.city))}
    items = [_verification_row(scope, mode, version, acc, versions.get((mode, version)))
             for (mode, version), acc in sorted(cells.items())]
    return {"city": scope.city, "from": start, "to": end,
            "timezone": rt.config.city_timezone, "rule": VERIFICATION_RULE,
            "rows": items, "privacy": {"k": scope.k, "applied": scope.suppress,
                                       "suppressed_rows": sum(r["suppressed"]
                                                              for r in items)}}


def unit_factor(mode: str, factors: FactorSet) -> tuple[str, Decimal, str, str]:
    """(factor name, value, unit, activity unit) a mode's grams are the product of."""
    try:
        cumulative = get_methodology(mode).cumulative
    except KeyError:
        cumulative = False
    if cumulative:
        return G_PER_STEP, factors.value(G_PER_STEP), "g CO2/step", "steps"
    name = "net_g_per_pkm" if factors.kind == "net" else "net_g_per_pkm (derived)"
    return name, factors.net_g_per_pkm(), "g CO2/person-km", "person-km"


def _verification_row(scope: Scope, mode: str, version: str, acc: _Acc,
                      stored: FactorVersion | None) -> dict[str, Any]:
    row: dict[str, Any] = {"mode": mode, "methodology_version": version,
                           "factor_kind": None, "factor_name": None, "factor_value": None,
                           "factor_unit": None, "effective_from": None, "factors": None}
    unit = "steps"
    if stored is not None:
        factors = FactorSet.from_dict(stored.factors)
        name, value, factor_unit, unit = unit_factor(mode, factors)
        row.update(factor_kind=factors.kind, factor_name=name, factor_value=str(value),
                   factor_unit=factor_unit, effective_from=stored.effective_from,
                   factors=[f.to_dict() for f in factors.factors.values()])
    participants = acc.sketch.estimate()
    if scope.suppress and participants < scope.k:
        blank = dict.fromkeys(c for c in VERIFICATION_COLUMNS
                              if c not in row and c != "suppressed")
        return {**row, **blank, "activity_unit": unit, "suppressed": True}
    activity: Fraction = (Fraction(acc.activity, M_PER_KM) if unit == "person-km"
                          else Fraction(acc.activity))
    recomputed = (int(Fraction(Decimal(row["factor_value"])) * UG_PER_G * activity)
                  if row["factor_value"] is not None else None)
    rounding = None if recomputed is None else recomputed - acc.avoided_ug
    ok = rounding is not None and 0 <= rounding < max(acc.events, 1)
    return {**row, "events": acc.events, "participants": participants,
            "activity": _decimal(activity), "activity_unit": unit,
            "avoided_ug": acc.avoided_ug, "avoided_grams": acc.avoided_ug // UG_PER_G,
            "credited_ug": acc.ug, "credited_grams": acc.ug // UG_PER_G,
            "recomputed_ug": recomputed, "rounding_ug": rounding,
            "check": "ok" if ok else "mismatch", "suppressed": False}


def _decimal(value: Fraction) -> str:
    """An exact decimal string of a fraction whose denominator divides 1000."""
    whole, rest = divmod(value.numerator * 1000 // value.denominator, 1000)
    return f"{whole}.{rest:03d}" if rest else str(whole)


def verification_csv(document: dict[str, Any]) -> Iterator[str]:
    yield _csv_line(VERIFICATION_COLUMNS)
    for row in document["rows"]:
        yield _csv_line([_cell(row[c]) for c in VERIFICATION_COLUMNS])
