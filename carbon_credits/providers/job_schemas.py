"""Response schemas of record files: a job's status and its error rows (for the routes)."""

from __future__ import annotations

from marshmallow import Schema, fields


class RecordFileCountsSchema(Schema):
    rows_read = fields.Integer(metadata={"description": "rows read so far (blank lines "
                                                        "not counted)"})
    credited = fields.Integer()
    held = fields.Integer(metadata={"description": "held for review or for a match"})
    replayed = fields.Integer(metadata={"description": "records already applied"})
    refused = fields.Integer(metadata={"description": "rows refused: see the error report"})


class RecordFileSchema(Schema):
    file_id = fields.String(attribute="id")
    provider_id = fields.String()
    sha256 = fields.String(metadata={"description": "hex SHA-256 of the file as uploaded"})
    format = fields.String(metadata={"description": "csv | jsonl"})
    size_bytes = fields.Integer()
    city = fields.String(metadata={"description": "the city of records that name none"})
    status = fields.String(metadata={"description": "queued | running | done | failed"})
    counts = fields.Method("_counts", metadata={"description": "rows by outcome"})
    checkpoint_line = fields.Integer(metadata={
        "description": "the last line applied and counted"})
    failure = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)

    def _counts(self, job: object) -> dict[str, int]:
        return {name: int(getattr(job, name))
                for name in ("rows_read", "credited", "held", "replayed", "refused")}


class RecordFileErrorSchema(Schema):
    """One row of the error report (also downloadable as CSV: line,field,code,reason)."""

    line = fields.Integer(metadata={"description": "1-based line; a CSV header is line 1"})
    field = fields.String(metadata={"description": "the offending field, or _row"})
    code = fields.String()
    reason = fields.String()
