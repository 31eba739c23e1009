"""Ingest: request bodies in, validated Elasticsearch documents out, bulk outcomes reported.

Everything here is pure but for `store`, which sends one `_bulk` request. An event counts as
stored only when Elasticsearch's bulk item says so; each item's outcome is reported as it is.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from marshmallow import RAISE, Schema, ValidationError

from .datasets.fields import ISO_DATETIME, OutsideCalendar, utc_instant
from .datasets.registry import Dataset
from .errors import ApiError

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


# -- bodies ---------------------------------------------------------------------------------


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


def parse_events(data: bytes, content_type: str) -> Batch:
    media = (content_type or "").split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return parse_ndjson(data)
    if media not in JSON_TYPES:
        raise ApiError(415, "unsupported_media_type", "Send application/json or application/x-ndjson.")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}") from exc
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


def parse_ndjson(data: bytes) -> Batch:
    items, broken = [], {}
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            broken[len(items)] = f"Not valid JSON: {exc}"
            items.append(None)
    if not items:
        raise ApiError(400, "validation_error", "The batch is empty.")
    return Batch(items, broken=broken)


# -- validation -----------------------------------------------------------------------------


def ingest_schema(dataset: Dataset) -> Schema:
    """The marshmallow schema of one event of `dataset`, from its registry; unknown keys: 400."""
    declared = {
        f.name: f.type.schema_field(required=f.required, allow_none=not f.required)
        for f in dataset.fields
        if not f.server_side
    }
    schema_class = Schema.from_dict(declared, name=f"{dataset.name.capitalize()}EventSchema")
    return schema_class(unknown=RAISE)


class EventLoader:
    """Loads one event of a dataset: a fast path for plainly valid events, else the schema.

    Marshmallow costs most of a worker's CPU per event on batch ingest. Most events are valid
    and already in their loaded form, which each field type can confirm cheaply
    (`FieldType.accepts`); anything it is not sure of goes through the schema, so the errors
    and any conversion are exactly the schema's.
    """

    def __init__(self, dataset: Dataset):
        self.schema = ingest_schema(dataset)
        fields = {f.name: f for f in dataset.fields if not f.server_side}
        self.required = tuple(name for name, f in fields.items() if f.required)
        #: Field name → its type's check, looked up once per value (this runs for every event).
        self.accepts = {name: f.type.accepts for name, f in fields.items()}

    def load(self, item: dict) -> dict:
        return item if self.plainly_valid(item) else self.schema.load(item)

    def plainly_valid(self, item: dict) -> bool:
        for name in self.required:
            if item.get(name) is None:
                return False
        accepts = self.accepts
        for name, value in item.items():
            check = accepts.get(name)
            if check is None or (value is None and name in self.required):
                return False
            if value is not None and not check(value):
                return False
        return True


def validate_items(loader: EventLoader, batch: Batch) -> tuple[dict[int, dict], dict[int, dict]]:
    """(position → valid event, position → errors)."""
    valid, errors = {}, {}
    for position, item in enumerate(batch.items):
        if position in batch.broken:
            errors[position] = {"_line": [batch.broken[position]]}
        elif not isinstance(item, dict):
            errors[position] = {"_event": ["An event must be a JSON object."]}
        else:
            try:
                valid[position] = loader.load(item)
            except ValidationError as exc:
                errors[position] = exc.messages
    return valid, errors


# -- clock skew --------------------------------------------------------------------------------


def clock_skew(sent_at, received_at: datetime) -> dict:
    """The `clock_correction` figures of a batch: `sent_at` and `received_at` in UTC to the
    millisecond, as stored, and `offset_ms`, exactly the one minus the other, so how far the
    client's clock is behind ours reads the same from either (a 400 naming `sent_at` if it is
    unreadable)."""
    try:
        if not isinstance(sent_at, str) or not ISO_DATETIME.match(sent_at):
            raise ValueError(sent_at)
        sent = _to_ms(utc_instant(sent_at))
    except ValueError as exc:
        reason = str(exc) if isinstance(exc, OutsideCalendar) else "Not a valid ISO 8601 datetime."
        raise ApiError(
            400,
            "validation_error",
            "sent_at must be an ISO 8601 datetime.",
            {"fields": {"sent_at": [reason]}},
        ) from exc
    received = _to_ms(received_at.astimezone(UTC))
    return {
        "sent_at": _iso_ms(sent),
        "received_at": _iso_ms(received),
        "offset_ms": (received - sent) // timedelta(milliseconds=1),
    }


def correct_clock(event: dict, fields: tuple[str, ...], skew: dict) -> dict:
    """Shift the event's client-clock times by `skew`'s offset (to the millisecond, as times are
    stored); keep the originals. A time the shift carries outside years 1 to 9999 is that
    field's error (ValidationError): the event is refused alone, its batch stored."""
    offset = timedelta(milliseconds=skew["offset_ms"])
    original = {name: event[name] for name in fields if event.get(name)}
    corrected, errors = {}, {}
    for name, value in original.items():
        try:
            # In UTC: a local time at a calendar edge may shift past it while its instant does not.
            corrected[name] = _iso_ms(utc_instant(value) + offset)
        except OverflowError:
            shift = skew["offset_ms"]
            errors[name] = [f"Corrected by the client's clock offset ({shift} ms) it leaves years 1 to 9999."]
    if errors:
        raise ValidationError(errors)
    return {**event, **corrected, "clock_correction": {**skew, "original": original}}


def _to_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def _iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- outcomes ---------------------------------------------------------------------------------

CREATED, DUPLICATE, INVALID, RETRY, FAILED = "created", "duplicate", "invalid", "retry", "failed"


def bulk_body(operations: list[tuple[str, object, dict]]) -> bytes:
    """The NDJSON of `_bulk` `create` actions for (index, id, document) triples.

    `create` makes Elasticsearch refuse a repeated id, so a retry never duplicates. Encoded
    here with orjson: the client's own serializer would use the much slower standard library.
    """
    lines, heads = [], {}
    for index, doc_id, document in operations:
        head = heads.get(index)
        if head is None:  # the action line up to the id is the same for a whole index
            head = heads[index] = b'{"create":{"_index":' + orjson.dumps(index) + b',"_id":'
        lines.append(head + orjson.dumps(str(doc_id)) + b"}}")
        lines.append(orjson.dumps(document))
    lines.append(b"")
    return b"\n".join(lines)


def item_outcome(item: dict) -> tuple[str, str | None]:
    result = item.get("create") or item.get("index") or {}
    status = result.get("status", 500)
    if status in (200, 201):
        return CREATED, None
    error = result.get("error") or {}
    reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip(": ")
    if status == 409:
        return DUPLICATE, None
    if status == 400:
        return INVALID, reason
    if status == 429:
        return RETRY, reason
    return FAILED, reason


@dataclass
class Report:
    """What happened to each item of one request, in request order."""

    size: int
    ids: dict[int, object] = field(default_factory=dict)
    outcomes: dict[int, str] = field(default_factory=dict)
    errors: dict[int, object] = field(default_factory=dict)

    def not_stored(self, positions: list[int], outcome: str, reason: str) -> None:
        """Events whose `_bulk` failed as a whole (after others of the request were stored)."""
        for position in positions:
            self.outcomes[position] = outcome
            self.errors[position] = {"_elasticsearch": [reason]}

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)

    @property
    def rejected(self) -> int:
        return self.size - self.count(CREATED) - self.count(DUPLICATE)

    @property
    def status(self) -> int:
        created, duplicates = self.count(CREATED), self.count(DUPLICATE)
        done = created + duplicates
        if done == self.size:
            return 201 if created else 200
        if done:
            return 207
        if any(self.outcomes.get(i) in (RETRY, FAILED) for i in range(self.size)):
            return 429 if self.count(RETRY) else 503
        return 400

    def body(self) -> dict:
        return {
            "stored": self.count(CREATED),
            "duplicates": self.count(DUPLICATE),
            "rejected": self.rejected,
            "ids": [
                self.ids.get(i) if self.outcomes.get(i) in (CREATED, DUPLICATE) else None
                for i in range(self.size)
            ],
            "errors": [
                {"index": i, "status": self.outcomes.get(i, INVALID), "errors": self.errors[i]}
                for i in sorted(self.errors)
            ],
        }
