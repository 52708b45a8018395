"""Schemas of trust policies (ingest/trust.py)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

POLICIES = ("client", "operator_confirms", "operator_only")
"""ingest.trust.POLICIES (schemas sit below the features; a unit test keeps them equal)."""


class TrustPolicyInSchema(Schema):
    """Omitted numbers take the defaults of ``ingest.trust``."""

    policy = fields.String(required=True, validate=validate.OneOf(POLICIES))
    confirm_days = fields.Integer(
        validate=validate.Range(1, 30),
        metadata={"description": "operator_confirms: days a client post waits for its "
                                 "provider's record before it is rejected"})
    tolerance_s = fields.Integer(
        validate=validate.Range(0, 3600),
        metadata={"description": "how far apart (seconds) a client post's and a provider "
                                 "record's start times may be to be the same trip"})
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class TrustPolicySchema(Schema):
    city = fields.String()
    mode = fields.String()
    policy = fields.String()
    confirm_days = fields.Integer()
    tolerance_s = fields.Integer()
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class TrustPolicyListSchema(Schema):
    items = fields.List(fields.Nested(TrustPolicySchema))
