"""Request bodies in: gzip, a JSON object or array, NDJSON, or a `{"sent_at", "events"}` envelope."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import msgspec
import orjson

from ..errors import ApiError

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")

#: A body that is a JSON array (JSON's four whitespace characters before it).
_ARRAY = re.compile(rb"[ \t\n\r]*\[")
#: Splits a JSON array into its items' texts without reading them (msgspec skips each value).
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def decode_body(raw: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo `Content-Encoding: gzip`, refusing to inflate past `max_bytes` (413)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(415, "unsupported_media_type", f"Unsupported Content-Encoding '{encoding}'.")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise ApiError(400, "invalid_body", "The body is not valid gzip.") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise ApiError(413, "payload_too_large", "Request body too large once decompressed.")
    if not inflater.eof:
        raise ApiError(400, "invalid_body", "The gzip body is truncated.")
    return data


@dataclass
class Batch:
    """The items of a body; `single` when it was one JSON object rather than a list."""

    items: list
    single: bool = False
    #: Position → reason, for NDJSON lines that are not JSON at all.
    broken: dict[int, str] = field(default_factory=dict)
    #: The client's clock when it sent the batch (an envelope's `sent_at`), if given.
    sent_at: str | None = None
    #: Items are still JSON texts (NDJSON lines, or a JSON array's items), read as they are
    #: validated (`validation.validate_items`: one pass of msgspec for a plainly valid event).
    raw: bool = False
    #: The body of a JSON array read item by item: an item that is not JSON makes the whole
    #: body's 400, as if the body had been read at once (`read_json`).
    text: bytes | None = None


def parse_events(data: bytes, content_type: str) -> Batch:
    media = (content_type or "").split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return parse_ndjson(data)
    if media not in JSON_TYPES:
        raise ApiError(415, "unsupported_media_type", "Send application/json or application/x-ndjson.")
    if _ARRAY.match(data):
        items = json_items(data)
        if items is not None:
            if not items:
                raise ApiError(400, "validation_error", "The batch is empty.")
            return Batch(items, raw=True, text=data)
    body = read_json(data)
    if isinstance(body, dict) and set(body) == {"sent_at", "events"} and isinstance(body["events"], list):
        if not body["events"]:
            raise ApiError(400, "validation_error", "The batch is empty.")
        return Batch(body["events"], sent_at=body["sent_at"])
    if isinstance(body, dict):
        return Batch([body], single=True)
    if isinstance(body, list):
        if not body:
            raise ApiError(400, "validation_error", "The batch is empty.")
        return Batch(body)
    raise ApiError(400, "validation_error", "The body must be an event object or a list of events.")


def read_json(data: bytes):
    """The body's JSON value, or the 400 naming where it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}") from exc


def json_items(data: bytes) -> list | None:
    """The JSON texts of a JSON array's items, each read when it is validated as NDJSON lines
    are (so a plainly valid event is read once, by msgspec); None if msgspec cannot split
    the array (orjson then reads the body and names the error)."""
    try:
        return _ITEMS.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # nesting past msgspec's limit
        return None


def parse_ndjson(data: bytes) -> Batch:
    """The body's non-blank lines, each read when it is validated (a line that is not JSON is
    then that item's error)."""
    items = [line for line in data.splitlines() if line.strip()]
    if not items:
        raise ApiError(400, "validation_error", "The batch is empty.")
    return Batch(items, raw=True)
