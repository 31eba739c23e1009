"""Event files for `flask import` and `flask export`: NDJSON or CSV, read and written as streams.

NDJSON lines are events as the API takes and returns them. A CSV file has one column per
field of the dataset (a header row names them); a cell holds text for string and date fields
and JSON for the others (`31`, `[1, 12]`, `{"a": 1}`), an empty cell means the field is absent.
Reading yields numbered lines in batches, so a file of any size is imported in constant memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import orjson

from .engine.registry import Dataset
from .ingest.body import Batch

FORMATS = ("ndjson", "csv")


def format_of(path: str, explicit: str | None) -> str:
    """The explicit format, else the file's extension (`.csv`), else NDJSON."""
    if explicit:
        return explicit
    return "csv" if path.lower().endswith(".csv") else "ndjson"


@dataclass
class Line:
    number: int
    item: object = None
    #: Why the line is not an event at all (not JSON), if so.
    broken: str | None = None


def read_ndjson(lines: Iterable[str]) -> Iterator[Line]:
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            yield Line(number, orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            yield Line(number, broken=f"Not valid JSON: {exc}")


def read_csv(lines: Iterable[str], dataset: Dataset) -> Iterator[Line]:
    """Rows as events; unknown columns are kept, so validation names them."""
    reader = csv.DictReader(lines)
    for row in reader:
        event = {}
        for name, text in row.items():
            if name is None or text in ("", None):
                continue
            field = dataset.field_map.get(name)
            event[name] = field.type.from_cell(text) if field else text
        yield Line(reader.line_num, event)


def read_lines(lines: Iterable[str], file_format: str, dataset: Dataset) -> Iterator[Line]:
    return read_csv(lines, dataset) if file_format == "csv" else read_ndjson(lines)


def batches(lines: Iterable[Line], size: int) -> Iterator[tuple[list[int], Batch]]:
    """(line numbers, batch) of at most `size` events each; broken lines stay in place."""
    numbers, items, broken = [], [], {}
    for line in lines:
        if line.broken:
            broken[len(items)] = line.broken
        numbers.append(line.number)
        items.append(line.item)
        if len(items) == size:
            yield numbers, Batch(items, broken=broken)
            numbers, items, broken = [], [], {}
    if items:
        yield numbers, Batch(items, broken=broken)


def csv_columns(dataset: Dataset) -> list[str]:
    """Every field a client may see, in registry order (PII is never exported)."""
    return [field.name for field in dataset.fields if not field.pii]


def csv_row(dataset: Dataset, event: dict) -> dict:
    """One event as CSV cells, typed by the registry (absent and null: empty)."""
    return {
        name: dataset.field_map[name].type.to_cell(value)
        for name, value in event.items()
        if value is not None and name in dataset.field_map
    }


def csv_writer(stream: IO[str], dataset: Dataset) -> csv.DictWriter:
    return csv.DictWriter(stream, fieldnames=csv_columns(dataset), extrasaction="ignore", lineterminator="\n")


MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def encode_pages(pages: Iterable[list[dict]], file_format: str, dataset: Dataset) -> Iterator[str]:
    """The file's text a page at a time (CSV: the header first), so memory stays constant."""
    if file_format == "csv":
        buffer = io.StringIO()
        csv_writer(buffer, dataset).writeheader()
        yield buffer.getvalue()
    for events in pages:
        if file_format == "csv":
            buffer = io.StringIO()
            csv_writer(buffer, dataset).writerows(csv_row(dataset, event) for event in events)
            yield buffer.getvalue()
        else:
            yield b"".join(orjson.dumps(event) + b"\n" for event in events).decode()


def write_events(stream: IO[str], pages: Iterable[list[dict]], file_format: str, dataset: Dataset) -> int:
    """Write pages of events to `stream`; the number of events written."""
    written = 0

    def counted():
        nonlocal written
        for events in pages:
            written += len(events)
            yield events

    for chunk in encode_pages(counted(), file_format, dataset):
        stream.write(chunk)
    return written
