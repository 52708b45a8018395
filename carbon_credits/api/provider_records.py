"""/v1/provider/records and /v1/provider/files: trip records from scenario providers,
signed (RFC 9421), for their bound users: up to 1,000 at once, answered per record, or a
file of millions, processed by workers and read back as a job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView

from carbon_credits.api.extensions import runtime
from carbon_credits.api.provider_auth import SECURITY, current_provider, provider_required
from carbon_credits.api.requests import Blueprint
from carbon_credits.providers import crediting, jobs, signatures
from carbon_credits.providers.job_schemas import RecordFileSchema
from carbon_credits.schemas import BatchResultSchema
from carbon_credits.schemas.examples import PROVIDER_RECORDS_EXAMPLE
from carbon_credits.schemas.providers import RecordsInSchema

blp = Blueprint("provider_records", __name__, url_prefix="/v1/provider",
                description="Scenario providers' trip records (signed requests, RFC 9421)")

FILE_TYPES = {"text/csv": {"schema": {"type": "string"}},
              "application/x-ndjson": {"schema": {"type": "string"}},
              "application/jsonl": {"schema": {"type": "string"}}}


@blp.route("/records")
class Records(MethodView):
    @provider_required
    @blp.doc(security=SECURITY)
    @blp.arguments(RecordsInSchema, example=PROVIDER_RECORDS_EXAMPLE)
    @blp.response(200, BatchResultSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Send up to 1,000 trip records of your bound users; each is answered alone (its
        status, and the event it became or why it was refused: ``not_bound``,
        ``mode_not_allowed``, invalid fields, a reused record id with another payload).
        The same record again is a replay. Kinds: ``metro_trip``, ``bus_trip``,
        ``bike_ride`` (your measured distance), ``daily_steps``."""
        return {"results": crediting.post_records(runtime(), current_provider(),
                                                  data["records"])}


@blp.before_request
def _file_body_limit() -> None:
    """A record file's own body limit (UPLOAD_MAX_BYTES), not the app's 1 MiB."""
    if request.endpoint == f"{blp.name}.{Files.__name__}":
        request.max_content_length = runtime().config.upload_max_bytes


@blp.route("/files")
class Files(MethodView):
    @blp.doc(security=SECURITY, requestBody={
        "required": True, "description": "CSV with a header row of record fields, or JSON "
        "Lines (one record per line); gzip allowed (Content-Encoding is not used: send the "
        "compressed bytes as they are)", "content": FILE_TYPES})
    @blp.response(202, RecordFileSchema)
    @blp.alt_response(200, schema=RecordFileSchema,
                      description="the same file again: its job, as it stands")
    def post(self) -> tuple[Any, int]:
        """Upload a file of records (up to UPLOAD_MAX_BYTES), streamed to disk while its
        signed Content-Digest is checked; 202 with the job (``GET /v1/provider/files/{id}``
        tells its progress), or 200 with the existing job for a file sent before. A
        malformed row fails alone (the job's error report names its line and field); a
        file that is not CSV or JSON Lines, or has no header, is refused whole."""
        rt = runtime()
        provider, digest = signatures.authenticate_stream(rt, request)
        job, created = jobs.upload(rt, provider.id, request.stream, request.content_type,
                                   provider.city, tap=digest)
        return job, 202 if created else 200


@blp.route("/files/<string:file_id>")
class FileStatus(MethodView):
    @provider_required
    @blp.doc(security=SECURITY)
    @blp.response(200, RecordFileSchema)
    def get(self, file_id: str) -> Any:
        """A file's job: status, rows by outcome, the checkpoint."""
        return jobs.status(runtime(), current_provider().id, file_id)


@blp.route("/files/<string:file_id>/errors")
class FileErrors(MethodView):
    @provider_required
    @blp.doc(security=SECURITY, responses={"200": {
        "description": "CSV: line,field,code,reason", "content": {"text/csv": {}}}})
    def get(self, file_id: str) -> Response:
        """The file's per-row error report as CSV (line, field, code, reason), streamed."""
        lines: Iterator[str] = jobs.errors_csv(runtime(), current_provider().id, file_id)
        first = next(lines)  # a 404 for another provider's file, before the 200 starts
        return Response(stream_with_context(_chain(first, lines)), mimetype="text/csv")


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest
