"""Record file readers (carbon_credits/providers/files.py): a bad row fails alone with its
line number; a file that is not CSV or JSON Lines, or a CSV without a header, fails whole."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.errors import InvalidInput, UnsupportedMedia
from carbon_credits.providers.files import (
    MAX_LINE_BYTES,
    RecordReader,
    RowError,
    declared_format,
)
from carbon_credits.providers.records import Record

HEADER = "record_id,user_ref,kind,date,steps,city\n"


def steps_row(i: int, steps: Any = None) -> str:
    return f"r{i},user {i},daily_steps,2026-12-01,{1000 + i if steps is None else steps},\n"


def reader(data: bytes, declared: Any = None, resume_at: Any = None) -> RecordReader:
    return RecordReader(io.BufferedReader(io.BytesIO(data)), "shenzhen", declared, resume_at)  # type: ignore[arg-type]


def rows(data: bytes, **kw: Any) -> list[tuple[int, Record | RowError]]:
    return list(reader(data, **kw))


def test_csv_rows_become_records_with_their_line_numbers() -> None:
    got = rows((HEADER + steps_row(1) + steps_row(2)).encode())
    assert [line for line, _ in got] == [2, 3]
    first = got[0][1]
    assert isinstance(first, Record)
    assert first.event_data == {"mode": "steps", "city": "shenzhen",
                                "date": __import__("datetime").date(2026, 12, 1),
                                "steps": 1001}
    assert first.user_ref == "user 1"


def test_a_malformed_row_fails_alone_with_its_line_number() -> None:
    text = (HEADER + steps_row(1) + steps_row(2, steps="many") + "r3,u,daily_steps\n"
            + steps_row(4) + 'r5,"u\n5",daily_steps,2026-13-01,5,\n' + steps_row(6))
    got = rows(text.encode())
    assert [(line, type(item).__name__) for line, item in got] == [
        (2, "Record"), (3, "RowError"), (4, "RowError"), (5, "Record"), (6, "RowError"),
        (8, "Record")]
    assert got[1][1] == RowError("steps", "invalid_field", "Not a valid integer.")
    assert got[2][1] == RowError("_row", "wrong_cell_count", "3 cells; the header has 6")
    assert isinstance(got[4][1], RowError) and got[4][1].field == "user_ref"


def test_empty_cells_are_absent_fields() -> None:
    text = "record_id,user_ref,kind,line_id,board_stop_id,boarded_at,alight_stop_id,alighted_at\n"
    text += "b1,u,bus_trip,M375,s1,2026-12-01T08:00:00+08:00,,\n"
    (_, record), = rows(text.encode())
    assert isinstance(record, Record)
    assert record.event_data["alight_stop_id"] is None and record.event_data["ended_at"] is None


def test_jsonl_rows_and_their_errors() -> None:
    good = {"record_id": "r1", "user_ref": "u", "kind": "daily_steps", "date": "2026-12-01",
            "steps": 10}
    lines = [json.dumps(good), "", '{"record_id": "r2", "record_id": "r3"}', "{not json",
             json.dumps(good | {"steps": "10"}), json.dumps(good | {"extra": 1}),
             json.dumps([1, 2]), json.dumps(good | {"record_id": "r9"})]
    got = rows("\n".join(lines).encode())
    assert [line for line, _ in got] == [1, 3, 4, 5, 6, 7, 8]
    assert isinstance(got[0][1], Record) and isinstance(got[-1][1], Record)
    assert got[1][1] == RowError("record_id", "duplicate_key",
                                 "appears more than once in the object")
    assert isinstance(got[2][1], RowError) and got[2][1].code == "malformed_json"
    assert got[3][1] == RowError("steps", "invalid_field", "Not a valid integer.")
    assert got[4][1] == RowError("extra", "invalid_field", "Unknown field.")
    assert got[5][1] == RowError("_row", "invalid_field", "expected an object")


def test_invalid_utf8_and_overlong_lines_fail_alone() -> None:
    data = (HEADER + steps_row(1)).encode() + b"r2,\xff\xfe,daily_steps,2026-12-01,5,\n" \
        + b"r3," + b"x" * (MAX_LINE_BYTES + 10) + b"\n" + steps_row(4).encode()
    got = rows(data)
    assert [(line, getattr(item, "code", "ok")) for line, item in got] == [
        (2, "ok"), (3, "invalid_utf8"), (4, "line_too_long"), (5, "ok")]


@pytest.mark.parametrize("data, code", [
    (b"a,b,c\n1,2,3\n", "csv_no_header"),
    (steps_row(1).encode(), "csv_no_header"),
    (b"record_id,user_ref,kind,colour\n", "unknown_columns"),
    (b"record_id,user_ref,kind,kind\n", "repeated_columns"),
    (b"record_id,kind,date\n", "missing_columns"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "unsupported_file_format"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "unsupported_file_format"),
    (b"\xff\xfe\xfd not utf-8\n", "unsupported_file_format"),
    (b"", "empty_file"),
    (b"\n  \n", "empty_file"),
])
def test_a_file_that_is_not_records_fails_whole(data: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        reader(data)
    assert caught.value.code == code
    assert caught.value.status == 422
    assert caught.value.fields


def test_a_declared_format_must_match_the_content() -> None:
    with pytest.raises(InvalidInput) as caught:
        reader((HEADER + steps_row(1)).encode(), declared="jsonl")
    assert caught.value.code == "unsupported_file_format"
    assert reader(b'{"a": 1}\n', declared="jsonl").format == "jsonl"


@pytest.mark.parametrize("content_type, expected", [
    ("text/csv", "csv"), ("text/csv; charset=utf-8", "csv"), ("application/x-ndjson", "jsonl"),
    ("application/jsonl", "jsonl"), ("application/octet-stream", None), (None, None),
    ("application/gzip", None)])
def test_content_types(content_type: str | None, expected: str | None) -> None:
    assert declared_format(content_type) == expected


def test_another_content_type_is_a_415() -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        declared_format("application/pdf")
    assert caught.value.status == 415


def test_a_gzip_compressed_file_reads_as_the_plain_one() -> None:
    plain = (HEADER + "".join(steps_row(i) for i in range(50))).encode()
    assert rows(gzip.compress(plain)) == rows(plain)


def test_a_bom_before_the_header_is_ignored() -> None:
    got = rows(b"\xef\xbb\xbf" + (HEADER + steps_row(1)).encode())
    assert isinstance(got[0][1], Record)


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.data())
def test_resuming_at_any_position_reads_exactly_the_rest(
        good: list[bool], data: st.DataObject) -> None:
    text = HEADER + "".join(steps_row(i) if ok else steps_row(i, steps="x")
                            for i, ok in enumerate(good))
    for raw in (text.encode(), gzip.compress(text.encode())):
        whole = reader(raw)
        positions = [(0, 0)]
        seen = []
        for row in whole:
            seen.append(row)
            positions.append(whole.position)
        cut = data.draw(st.integers(min_value=0, max_value=len(seen)))
        assert rows(raw, resume_at=positions[cut] if cut else None) == seen[cut:]


def test_chunks_read_ahead_come_in_order_and_a_reading_error_at_its_chunk() -> None:
    """jobs._read_ahead: a thread reads the next chunk while one is credited; the chunks
    come as read, and an error of the reading is raised where it stopped the file."""
    from carbon_credits.providers import jobs

    def chunks(fail_after: int | None) -> Iterator[jobs._Chunk]:
        for n in range(5):
            if n == fail_after:
                raise OSError("the disk went away")
            yield jobs._Chunk([], (n, n))

    assert [c.end for c in jobs._read_ahead(chunks(None))] == [(n, n) for n in range(5)]
    seen = []
    with pytest.raises(OSError, match="went away"):
        for chunk in jobs._read_ahead(chunks(3)):
            seen.append(chunk.end)
    assert seen == [(0, 0), (1, 1), (2, 2)]
    first = next(iter(jobs._read_ahead(chunks(None))))  # left early: the thread ends
    assert first.end == (0, 0)
