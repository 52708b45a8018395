"""Reading a GTFS feed's files: a zip archive or a folder, CSV tables with their required
columns, every fault located by file and line (gtfs/__init__.py)."""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

REQUIRED_FILES = ("stops.txt", "routes.txt", "trips.txt", "stop_times.txt")

COLUMNS = {
    "stops.txt": ("stop_id", "stop_name", "stop_lat", "stop_lon"),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
}
"""The columns this importer reads and cannot do without, per file."""


class GtfsError(Exception):
    """A feed that cannot be imported, located by file and line (1-based, header is 1)."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


class Source:
    """The files of a feed, from a zip archive or a folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self._names = {p.name for p in path.iterdir() if p.is_file()}
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise GtfsError(path.name, None, f"not a zip archive: {exc}") from None
            # GTFS puts the files at the archive's root; folders inside are not looked into.
            self._names = {n for n in self._zip.namelist() if "/" not in n.rstrip("/")}
        else:
            raise GtfsError(str(path), None, "no such file or folder")

    def has(self, name: str) -> bool:
        return name in self._names

    @contextmanager
    def open(self, name: str) -> Iterator[IO[str]]:
        if not self.has(name):
            raise GtfsError(name, None, "required file is missing from the feed")
        # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and quoted breaks.
        if self._zip is not None:
            with self._zip.open(name) as raw, io.TextIOWrapper(
                    raw, encoding="utf-8-sig", newline="") as text:
                yield text
        else:
            with (self.path / name).open(encoding="utf-8-sig", newline="") as text:
                yield text

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


class Table:
    """One CSV file: its column positions, then its rows; ``line`` is the current row's."""

    def __init__(self, name: str, text: IO[str], required: tuple[str, ...]) -> None:
        self.name = name
        self._text = text
        self._physical = 0
        self._reader = csv.reader(self._lines(), strict=True)
        self.line = 0
        header = self._next()
        if header is None:
            raise GtfsError(name, 1, "empty file: no header row")
        self.columns = {c.strip(): i for i, c in reversed(list(enumerate(header)))}
        for column in required:
            if column not in self.columns:
                raise GtfsError(name, 1, f"missing required column {column}")

    def _lines(self) -> Iterator[str]:
        try:
            for line in self._text:
                self._physical += 1
                # PostgreSQL refuses NUL in text; no GTFS field can legitimately hold one.
                if "\x00" in line:
                    raise GtfsError(self.name, self._physical, "NUL character in the file")
                yield line
        except UnicodeDecodeError:
            # Decoding runs a buffer ahead of the lines, so the position is approximate.
            raise GtfsError(self.name, self._physical + 1, "not UTF-8 text (at or after this "
                            "line)") from None

    def _next(self) -> list[str] | None:
        while True:
            start = self._physical + 1
            try:
                row = next(self._reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                raise GtfsError(self.name, start, f"malformed CSV: {exc}") from None
            self.line = start
            if row and any(f.strip() for f in row):  # blank lines carry no record
                return row

    def rows(self) -> Iterator[list[str]]:
        width = max(self.columns.values(), default=-1) + 1
        while (row := self._next()) is not None:
            if len(row) < width:
                row += [""] * (width - len(row))
            yield [f.strip() for f in row]

    def error(self, message: str) -> GtfsError:
        return GtfsError(self.name, self.line, message)

    def required(self, row: list[str], column: str) -> str:
        value = row[self.columns[column]]
        if not value:
            raise self.error(f"empty {column}")
        return value

    def optional(self, row: list[str], column: str) -> str:
        i = self.columns.get(column)
        return row[i] if i is not None else ""

    def number(self, row: list[str], column: str, low: float, high: float) -> float:
        text = self.required(row, column)
        try:
            value = float(text)
        except ValueError:
            raise self.error(f"{column} is not a number: {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise self.error(f"{column} out of range [{low:g}, {high:g}]: {text!r}")
        return value

    def integer(self, row: list[str], column: str, *, default: int | None = None) -> int:
        text = row[self.columns[column]] if column in self.columns else ""
        if not text and default is not None:
            return default
        if not text:
            raise self.error(f"empty {column}")
        try:
            value = int(text)
        except ValueError:
            raise self.error(f"{column} is not a whole number: {text!r}") from None
        if value < 0:
            raise self.error(f"{column} must not be negative: {text!r}")
        return value


def read_file(source: Source, name: str, each: Callable[[Table, list[str]], None], *,
          optional: bool = False) -> bool:
    """Feed every row to ``each``; False for an optional file that is empty, header and all."""
    with source.open(name) as text:
        try:
            table = Table(name, text, COLUMNS[name])
        except GtfsError as exc:
            if optional and exc.message.startswith("empty file"):
                return False
            raise
        for row in table.rows():
            each(table, row)
    return True
