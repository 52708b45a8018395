"""The factors in force now, per mode, with units and sources."""

from __future__ import annotations

from typing import Any

from carbon_credits.runtime import Runtime
from methodology import METHODOLOGIES
from methodology.factors import FactorError


def current(rt: Runtime, city: str) -> dict[str, Any]:
    now = rt.clock()
    items = []
    with rt.db.transaction() as session:
        in_force = rt.catalog.timeline(session, {city}, METHODOLOGIES.keys(), now)
        for mode, method in METHODOLOGIES.items():
            versioned = in_force.at(city, mode, now)
            if versioned is None:
                continue
            fs = versioned.factors
            try:
                net = str(fs.net_g_per_pkm())
            except FactorError:
                net = None  # per-step modes have no per-km factor
            items.append({
                "mode": mode, "title": method.title, "city": city, "version": fs.version,
                "kind": fs.kind, "effective_from": versioned.effective_from,
                "net_g_per_pkm": net, "factors": [f.to_dict() for f in fs.factors.values()],
            })
    return {"city": city, "methodologies": items}
