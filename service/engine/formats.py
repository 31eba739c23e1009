"""Export formats: events in, NDJSON or CSV bytes out (pure, one page at a time)."""

from __future__ import annotations

import csv
import io

import orjson

from ..datasets.registry import Dataset

MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def csv_columns(dataset: Dataset) -> list[str]:
    """Every field a client may see, in registry order."""
    return [field.name for field in dataset.fields if not field.pii]


def csv_header(dataset: Dataset) -> bytes:
    return _csv_rows([csv_columns(dataset)])


def csv_page(dataset: Dataset, events: list[dict]) -> bytes:
    """One line per event; lists and objects as JSON, absent values empty."""
    columns = csv_columns(dataset)
    return _csv_rows([[_cell(event.get(column)) for column in columns] for event in events])


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def _csv_rows(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def ndjson_page(events: list[dict]) -> bytes:
    return b"".join(orjson.dumps(event) + b"\n" for event in events)
