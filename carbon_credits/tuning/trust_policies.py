"""Admin tuning of trust policies: whose word credits a city's trips of a mode
(ingest/trust.py). Audited; a city and mode without a policy is ``client``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from carbon_credits import audit
from carbon_credits.errors import InvalidInput
from carbon_credits.ingest import trust
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import is_valid_id
from carbon_credits.storage.models import TrustPolicy, utcnow
from carbon_credits.tokens import Principal
from methodology import METHODOLOGIES


def view(row: TrustPolicy | None, city: str, mode: str) -> dict[str, Any]:
    if row is None:
        return {"city": city, "mode": mode, "policy": trust.CLIENT.policy,
                "confirm_days": trust.CLIENT.confirm_days,
                "tolerance_s": trust.CLIENT.tolerance_s, "updated_by": None,
                "updated_at": None}
    return {"city": row.city, "mode": row.mode, "policy": row.policy,
            "confirm_days": row.confirm_days, "tolerance_s": row.tolerance_s,
            "updated_by": row.updated_by, "updated_at": row.updated_at}


def _check(city: str, mode: str | None = None) -> None:
    if not is_valid_id(city):
        raise InvalidInput("invalid city", fields={"city": ["not a city id"]})
    if mode is not None and mode not in METHODOLOGIES:
        raise InvalidInput(f"unknown mode {mode!r}",
                           fields={"mode": [f"one of {sorted(METHODOLOGIES)}"]})


def list_policies(rt: Runtime, city: str) -> list[dict[str, Any]]:
    """Every mode's policy in ``city``, the default ones included."""
    _check(city)
    with rt.db.transaction() as session:
        rows = {r.mode: r for r in session.scalars(
            select(TrustPolicy).where(TrustPolicy.city == city))}
    return [view(rows.get(mode), city, mode) for mode in sorted(METHODOLOGIES)]


def set_policy(rt: Runtime, admin: Principal, city: str, mode: str, data: dict[str, Any]
               ) -> dict[str, Any]:
    """Set a city's policy for a mode; audited with the policy before and after. It applies
    to what is ingested from then on: posts held before keep waiting for their records."""
    _check(city, mode)
    with rt.db.transaction() as session:
        row = session.get(TrustPolicy, (city, mode), with_for_update=True)
        before = None if row is None else view(row, city, mode)
        if row is None:
            row = TrustPolicy(city=city, mode=mode)
            session.add(row)
        row.policy = data["policy"]
        row.confirm_days = data.get("confirm_days", trust.DEFAULT_CONFIRM_DAYS)
        row.tolerance_s = data.get("tolerance_s", trust.DEFAULT_TOLERANCE_S)
        row.updated_by, row.updated_at = admin.sub, utcnow()
        session.flush()
        after = view(row, city, mode)
        audit.record(session, actor=admin.sub, action="trust_policy.set",
                     target=f"trust:{city}/{mode}", reason=data["reason"],
                     before=_jsonable(before), after=_jsonable(after))
    return after


def _jsonable(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {k: (x.isoformat() if hasattr(x, "isoformat") else x) for k, x in v.items()}
