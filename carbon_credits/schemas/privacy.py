"""Personal-data schemas: the privacy notice, consents, the export, erasure."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

NOTICE_VERSION = validate.Length(min=1, max=32)


class NoticeQuerySchema(Schema):
    version = fields.String(load_default=None, validate=NOTICE_VERSION, metadata={
        "description": "a published version; default the one events require"})


class NoticeSchema(Schema):
    version = fields.String()
    published = fields.Date()
    required = fields.Boolean(metadata={
        "description": "whether this is the version events require consent to"})
    texts = fields.Dict(keys=fields.String(), values=fields.String(),
                        metadata={"description": "the notice by language (zh_CN, en)"})


class ConsentInSchema(Schema):
    notice_version = fields.String(required=True, validate=NOTICE_VERSION, metadata={
        "description": "the version of the notice the user read and accepts: the current "
                       "one (GET /v1/privacy-notice)"})


class ConsentSchema(Schema):
    id = fields.Integer()
    notice_version = fields.String()
    action = fields.String(metadata={"description": "accept | withdraw"})
    source = fields.String(metadata={
        "description": "user (your request) | deemed (recorded by the operator for an "
                       "account older than the notice; see note)"})
    note = fields.String(allow_none=True)
    recorded_at = fields.DateTime()


class ConsentStatusSchema(Schema):
    required_version = fields.String()
    required = fields.Boolean(metadata={
        "description": "whether events of your home city need your consent"})
    given = fields.Boolean(metadata={
        "description": "whether your latest step accepted the required version"})
    refusal = fields.String(allow_none=True, metadata={
        "description": "consent_required | consent_withdrawn when your events are refused"})
    history = fields.List(fields.Nested(ConsentSchema),
                          metadata={"description": "every step, oldest first"})


class ExportSchema(Schema):
    format = fields.String()
    subject = fields.String(metadata={"description": "your user id (the token's subject)"})
    exported_at = fields.String(metadata={"description": "ISO 8601, UTC"})
    holders = fields.List(fields.String(), metadata={
        "description": "the parts of data, one per feature holding some of yours"})
    data = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata={
        "description": "each holder's rows of yours, every stored column (times ISO 8601, "
                       "bytes base64); events also as GET /v1/events/{event_id} shows them"})


class ErasureInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000),
                           metadata={"description": "why, for the audit log"})


class ErasureSchema(Schema):
    erased = fields.Boolean()
    pseudonym = fields.String(metadata={
        "description": "the random id the remaining (non-identifying) rows now carry"})
    erased_at = fields.DateTime()
    by = fields.String(metadata={"description": "self, or the admin who erased"})
    already = fields.Boolean(metadata={
        "description": "erased before: nothing was done this time (idempotent)"})
