"""Streaming readers of record files: CSV (header row required) and JSON Lines.

A file is read a line at a time from a binary stream (at most ``MAX_LINE_BYTES`` of one
line in memory), so memory stays flat in the file's size. A gzip-compressed file is
recognised by its magic bytes and read through ``gzip`` the same way.

What fails the whole file (``InvalidInput``, raised when the reader is opened, before any
row): content that is neither CSV nor JSON Lines, a CSV without a header row, unknown,
repeated or missing columns. What fails one row (``RowError``, yielded with its line
number, the rest read on): a row that does not parse or does not validate, invalid UTF-8,
a line longer than ``MAX_LINE_BYTES``.

Line numbers are 1-based lines of the (decompressed) file, the CSV header being line 1; a
CSV row spanning lines (a quoted newline) is numbered by its first line.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import gzip
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Literal

from marshmallow import ValidationError

from carbon_credits.errors import InvalidInput, UnsupportedMedia
from carbon_credits.providers.records import (
    COMMON_FIELDS,
    INTEGER_FIELDS,
    RECORD_FIELDS,
    Record,
    load_record,
)

Format = Literal["csv", "jsonl"]
MAX_LINE_BYTES = 16 * 1024
"""The longest line (one record) accepted; a record is well under 1 KiB. Bounds the memory
a hostile line can take."""
GZIP_MAGIC = b"\x1f\x8b"
CONTENT_TYPES: Mapping[str, Format | None] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    # Told by the content: a generic type, or a compressed file of either format.
    "application/octet-stream": None,
    "application/gzip": None,
    "application/x-gzip": None,
    "text/plain": None,
}
REQUIRED_COLUMNS = ("record_id", "user_ref", "kind")
_INTEGER = re.compile(r"-?[0-9]{1,15}")


@dataclass(frozen=True)
class RowError:
    """Why one row was refused: the field (or ``_row`` for the row as a whole), a
    machine-readable code, and a reason a person can act on."""

    field: str
    code: str
    reason: str
    user_ref: str | None = dataclasses.field(default=None, compare=False)
    """The row's ``user_ref`` when it could be read (a row that parsed but did not
    validate): only to file the error under the user (``ref_digest``), never shown."""


def ref_digest(provider_id: str, user_ref: str) -> bytes:
    """What a refused row of a user's is filed under in ``record_file_errors``: erasure
    finds the rows of the user's bindings by it, and the reference itself is not kept
    there. (A digest, not the reference: the error report needs no more.)"""
    return hashlib.sha256(f"{provider_id}\x1f{user_ref}".encode()).digest()[:16]


Row = tuple[int, Record | RowError]


def declared_format(content_type: str | None) -> Format | None:
    """The format a Content-Type names (None: to be told from the content); 415 for a type
    that is neither CSV nor JSON Lines."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise UnsupportedMedia(
            "send a record file as text/csv or application/x-ndjson (JSON Lines)",
            code="unsupported_file_type",
            fields={"Content-Type": [f"expected one of {sorted(CONTENT_TYPES)}"]})
    return CONTENT_TYPES[media]


def _not_records(reason: str) -> InvalidInput:
    return InvalidInput(f"not a CSV or JSON Lines record file: {reason}",
                        code="unsupported_file_format", fields={"file": [reason]})


def sniff_format(head: bytes) -> Format:
    """CSV or JSON Lines, from the file's first line (decompressed): a bad later line is
    that row's error, not the file's."""
    head = head.lstrip().split(b"\n", 1)[0]
    if b"\x00" in head:
        raise _not_records("binary content")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        raise _not_records("not UTF-8 text") from None
    stripped = text.lstrip()
    if not stripped:
        raise InvalidInput("the file is empty", code="empty_file",
                           fields={"file": ["no records"]})
    return "jsonl" if stripped.startswith("{") else "csv"


class _Lines:
    """A binary stream's lines, decoded, counted, each at most ``MAX_LINE_BYTES``: what
    cannot be decoded or is too long is noted in ``bad`` (line -> RowError) and read as an
    empty line, so one bad line costs one row."""

    def __init__(self, stream: IO[bytes], line: int = 0, offset: int = 0) -> None:
        self.stream = stream
        self.line = line
        """Lines read so far (the number of the last line read)."""
        self.offset = offset
        """Bytes read so far: where the next line starts."""
        self.bad: dict[int, RowError] = {}

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        self.line += 1
        self.offset += len(raw)
        if self.line == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest, a bounded piece at a time
                raw = self.stream.readline(MAX_LINE_BYTES)
                self.offset += len(raw)
            self.bad[self.line] = RowError("_row", "line_too_long",
                                           f"longer than {MAX_LINE_BYTES} bytes")
            return "\n"
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad[self.line] = RowError("_row", "invalid_utf8",
                                           f"not valid UTF-8 at byte {exc.start}")
            return "\n"

    def bad_between(self, first: int, last: int) -> RowError | None:
        if not self.bad:
            return None
        for number in range(first, last + 1):
            error = self.bad.pop(number, None)
            if error is not None:
                return error
        return None


def validation_error(exc: ValidationError) -> RowError:
    """A record's validation messages as one RowError: its first field (in record order)
    and message, and the other offending fields named."""
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    order: dict[str, int] = {}
    for name in (*COMMON_FIELDS, *sorted(RECORD_FIELDS)):
        order.setdefault(name, len(order))
    names = sorted(messages, key=lambda n: (order.get(str(n), len(order)), str(n)))
    first = names[0]
    detail = messages[first]
    reason = str(detail[0] if isinstance(detail, list) and detail else detail)
    if len(names) > 1:
        reason += f" (also invalid: {', '.join(str(n) for n in names[1:])})"
    field = "_row" if first == "_schema" else str(first)
    return RowError(field, "invalid_field", reason)


def _load(body: Any, default_city: str) -> Record | RowError:
    try:
        return load_record(body, default_city)
    except ValidationError as exc:
        error = validation_error(exc)
        ref = body.get("user_ref") if isinstance(body, dict) else None
        return (RowError(error.field, error.code, error.reason, ref)
                if isinstance(ref, str) else error)


class RecordReader:
    """The rows of one record file. Opening it checks the format and, for CSV, the header
    (``InvalidInput`` for the whole file); iterating yields ``(line, Record | RowError)``.

    ``resume_at`` = (line, offset) of a checkpoint (``position`` after a row): reading
    starts after it, without re-reading what came before (the CSV header excepted)."""

    def __init__(self, stream: IO[bytes], default_city: str, declared: Format | None = None,
                 resume_at: tuple[int, int] | None = None) -> None:
        self.default_city = default_city
        stream = _decompressed(stream)
        self.format: Format = sniff_format(_peek(stream))
        if declared is not None and declared != self.format:
            raise _not_records(f"declared {declared} but the content looks like {self.format}")
        self.stream = stream
        self.columns: list[str] = []
        self._lines = _Lines(stream)
        if self.format == "csv":
            self.columns = _header(self._lines)
        if resume_at is not None and resume_at[0] > self._lines.line:
            _skip_to(stream, resume_at[1] - self._lines.offset)
            self._lines.line, self._lines.offset = resume_at

    @property
    def position(self) -> tuple[int, int]:
        """(last line read, bytes read): where the next row starts, after a whole row."""
        return self._lines.line, self._lines.offset

    def __iter__(self) -> Iterator[Row]:
        return self._csv_rows() if self.format == "csv" else self._jsonl_rows()

    def _csv_rows(self) -> Iterator[Row]:
        lines = self._lines
        reader = csv.reader(lines, strict=True)
        width = len(self.columns)
        while True:
            first = lines.line + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield first, lines.bad_between(first, lines.line) or RowError(
                    "_row", "malformed_csv", str(exc))
                continue
            bad = lines.bad_between(first, lines.line)
            if bad is not None:
                yield first, bad
            elif not cells or cells == [""] and width > 1:
                continue  # a blank line
            elif len(cells) != width:
                yield first, RowError("_row", "wrong_cell_count",
                                      f"{len(cells)} cells; the header has {width}")
            else:
                body = {name: _cell(name, value)
                        for name, value in zip(self.columns, cells, strict=True) if value != ""}
                yield first, _load(body, self.default_city)

    def _jsonl_rows(self) -> Iterator[Row]:
        lines = self._lines
        for text in lines:
            number = lines.line
            bad = lines.bad_between(number, number)
            if bad is not None:
                yield number, bad
                continue
            if not text.strip():
                continue
            try:
                body = json.loads(text, object_pairs_hook=_unique_keys)
            except _RepeatedKey as exc:
                yield number, RowError(str(exc), "duplicate_key",
                                       "appears more than once in the object")
            except (ValueError, RecursionError) as exc:
                yield number, RowError("_row", "malformed_json", str(exc)[:200])
            else:
                yield number, _load(body, self.default_city)


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """As the event path (api.requests.decode_json): a key twice in one object is refused,
    since parsers disagree on which value wins."""
    decoded = dict(pairs)
    if len(decoded) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return decoded


def _cell(name: str, value: str) -> Any:
    """A CSV cell as the JSON value it stands for: integers of integer fields, else text."""
    if name in INTEGER_FIELDS and _INTEGER.fullmatch(value):
        return int(value)
    return value


def _header(lines: _Lines) -> list[str]:
    """The CSV header's columns; InvalidInput for a file with none or a wrong one."""
    try:
        text = next(lines)
    except StopIteration:
        raise InvalidInput("the file is empty", code="empty_file",
                           fields={"file": ["no header row"]}) from None
    if lines.bad:
        raise _not_records("the first line is not a readable CSV header")
    try:
        columns = [c.strip() for c in next(csv.reader([text], strict=True))]
    except (csv.Error, StopIteration):
        raise _not_records("the first line is not a CSV header") from None
    unknown = [c for c in columns if c not in RECORD_FIELDS]
    if len(unknown) == len(columns):
        raise InvalidInput("a CSV record file needs a header row naming its columns "
                           f"({', '.join(REQUIRED_COLUMNS)}, ...)", code="csv_no_header",
                           fields={"header": ["missing: the first line names no record field"]})
    if unknown:
        raise InvalidInput(f"unknown columns: {', '.join(unknown)}", code="unknown_columns",
                           fields={"header": [f"unknown column {c!r}" for c in unknown]})
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InvalidInput(f"repeated columns: {', '.join(repeated)}", code="repeated_columns",
                           fields={"header": [f"column {c!r} appears twice" for c in repeated]})
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidInput(f"missing columns: {', '.join(missing)}", code="missing_columns",
                           fields={"header": [f"missing column {c!r}" for c in missing]})
    return columns


def _peek(stream: IO[bytes]) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is None:
        raise TypeError("a record file is read from a buffered stream (with peek)")
    head: bytes = peek(4096)[:4096]
    return head


def _decompressed(stream: IO[bytes]) -> IO[bytes]:
    if _peek(stream)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def _skip_to(stream: IO[bytes], forward: int) -> None:
    """Move ``forward`` bytes on: a seek on a file, a read through on a gzip stream."""
    if forward <= 0:
        return
    stream.seek(forward, 1)
