"""Schemas of webhooks (/v1/admin/webhooks)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from carbon_credits.schemas import ID

KINDS = ("event.credited", "challenge.completed", "badge.earned", "points.expiring")
"""The notification kinds an endpoint may subscribe to (webhooks/outbox.py publishes)."""


class WebhookInSchema(Schema):
    id = fields.String(required=True, validate=ID, metadata={"example": "mini-program"})
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=2000),
                     metadata={"example": "https://platform.example.com/hooks/carbon"})
    kinds = fields.List(fields.String(validate=validate.OneOf(KINDS)), required=True,
                        validate=validate.Length(min=1),
                        metadata={"example": ["event.credited", "challenge.completed"]})
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class WebhookSchema(Schema):
    id = fields.String()
    url = fields.String()
    kinds = fields.List(fields.String())
    key_id = fields.String(metadata={"description": "the signature's keyid"})
    enabled = fields.Boolean()
    created_at = fields.DateTime()


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "the HMAC-SHA256 signing secret, "
                                                    "base64; shown only now"})


class WebhookListSchema(Schema):
    items = fields.List(fields.Nested(WebhookSchema))


class DeliveryQuerySchema(Schema):
    endpoint_id = fields.String(load_default=None, validate=ID)
    state = fields.String(load_default=None,
                          validate=validate.OneOf(["pending", "delivered", "failed"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": "the delivery id (Webhook-Delivery-Id)"})
    endpoint_id = fields.String()
    kind = fields.String()
    payload = fields.Dict()
    state = fields.String()
    attempts = fields.Integer()
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    last_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)


class DeliveryListSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema))


class ReplayInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))
