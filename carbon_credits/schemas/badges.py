"""Schemas of badges (勋章): the admins' definitions and a user's badges."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from carbon_credits import messages
from carbon_credits.schemas.rewards import TextsSchema, TitleSchema

CODE = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,63}$",
                       error="lower-case letters, digits and '-', up to 64")
REASON = fields.String(load_default="", validate=validate.Length(max=500))


class BadgeInSchema(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.Nested(TitleSchema, required=True)
    description = fields.Nested(TextsSchema)
    rule = fields.Dict(required=True, metadata={
        "description": "a rule of the badge rule language (README, Badges)"})
    reason = REASON


class BadgeEditSchema(Schema):
    name = fields.Nested(TitleSchema)
    description = fields.Nested(TextsSchema)
    rule = fields.Dict()
    reason = REASON


class BadgeRetireSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class BadgeTextsSchema(Schema):
    zh = fields.String()
    en = fields.String()


class _InLanguage(Schema):
    name_text = fields.Method("_name_text", metadata={
        "type": "string", "description": "the name in the request's language "
                                         "(Accept-Language: zh-CN or en)"})
    description_text = fields.Method("_description_text", metadata={
        "type": "string", "description": "the description in the request's language"})

    def _name_text(self, badge: dict[str, Any]) -> str:
        return messages.in_language(badge["name"])

    def _description_text(self, badge: dict[str, Any]) -> str:
        return messages.in_language(badge["description"])


class BadgeSchema(_InLanguage):
    code = fields.String()
    status = fields.String()
    version = fields.Integer()
    name = fields.Nested(BadgeTextsSchema)
    description = fields.Nested(BadgeTextsSchema)
    rule = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class BadgeListSchema(Schema):
    items = fields.List(fields.Nested(BadgeSchema))


class MyBadgeSchema(_InLanguage):
    code = fields.String()
    name = fields.Nested(BadgeTextsSchema)
    description = fields.Nested(BadgeTextsSchema)
    rule = fields.Dict()
    awarded_at = fields.DateTime()
    event_id = fields.String(metadata={"description": "the event whose credit earned it"})
    badge_version = fields.Integer()


class MyBadgesSchema(Schema):
    earned = fields.List(fields.Nested(MyBadgeSchema))
    not_earned = fields.List(fields.Nested(MyBadgeSchema), metadata={
        "description": "active badges not earned yet"})
