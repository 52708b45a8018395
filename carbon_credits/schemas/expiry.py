"""Schemas of points expiry policies (ledger/expiry.py)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

RULES = ("never", "days", "months", "year_end")
"""ledger.expiry.RULES (schemas sit below the features; a unit test keeps them equal)."""
LIMITS = {"days": 3652, "months": 120}
"""At most ten years (Shenzhen's 《深圳市碳普惠管理办法》), as ledger.expiry's limits."""


class ExpiryPolicyInSchema(Schema):
    rule = fields.String(required=True, validate=validate.OneOf(RULES), metadata={
        "description": "never; days or months (with `amount`): points expire that long "
                       "after the local day they were earned; year_end: at the end of the "
                       "year after the one they were earned in. At most 10 years."})
    amount = fields.Integer(metadata={"description": "days (1-3652) or months (1-120)"})
    reason = fields.String(required=True, validate=validate.Length(1, 500))

    @validates_schema
    def _amount(self, data: dict[str, Any], **_: Any) -> None:
        limit = LIMITS.get(data.get("rule", ""))
        amount = data.get("amount")
        if limit is None:
            if amount not in (None, 0):
                raise ValidationError(f"no amount for rule {data.get('rule')}", "amount")
            return
        if amount is None:
            raise ValidationError(f"required for rule {data['rule']}", "amount")
        if not 1 <= amount <= limit:
            raise ValidationError(f"must be 1 to {limit} {data['rule']} (at most 10 years, "
                                  "Shenzhen's rule)", "amount")


class ExpiryPolicySchema(Schema):
    city = fields.String()
    rule = fields.String()
    amount = fields.Integer()
    effective_from = fields.DateTime(allow_none=True)
    created_by = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class ExpiryPolicyListSchema(Schema):
    current = fields.Nested(ExpiryPolicySchema)
    history = fields.List(fields.Nested(ExpiryPolicySchema), metadata={
        "description": "every policy the city had, oldest first: points keep the rule in "
                       "force when they were earned"})
