"""Field types of a dataset registry: each knows its Elasticsearch mapping and how it is validated.

A dataset declares its fields once with these types (see `cdx.py`, `roundware.py`); the index
template, the ingest schema and the query translation all follow from that declaration.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property

import orjson
from marshmallow import ValidationError, fields, validate

from .dates import ISO_DATETIME, OutsideCalendar, from_iso, utc_instant


class IsoDateTime(fields.String):
    """An ISO 8601 date or datetime, kept as the client wrote it (no offset means UTC)."""

    default_error_messages = {
        "invalid": "Not a valid ISO 8601 datetime.",
        "range": "Must lie within years 0001 to 9999 in UTC.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not ISO_DATETIME.match(text):
            raise self.make_error("invalid")
        try:
            utc_instant(text)
        except OutsideCalendar as exc:
            raise ValidationError(str(exc)) from exc
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        return text


class StringOrInteger(fields.Field):
    """A value that may be a string or an integer, kept as given (e.g. a device id)."""

    default_error_messages = {"invalid": "Must be a string or an integer."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.make_error("invalid")
        return value


class StrictInteger(fields.Integer):
    """An integer that is really one: `"3"` and `3.5` are refused, as is `true`."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer() and abs(value) >= 2**63:
            # orjson reads an integer literal past 64 bits as a float, rounded (perhaps onto
            # -2^63 itself): out of range whatever it became, so the range check every
            # StrictInteger has is handed a value surely beyond it, and names the bounds.
            return 2**64 if value > 0 else -(2**64)
        return super()._validated(value)


#: Containers a stored object may nest: well within what orjson writes (254 levels, counting
#: the event and the response around it) and what Elasticsearch parses.
MAX_DEPTH = 200


def nests_within(value, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects nest at most `limit` levels deep in `value` (a container)."""
    level, containers = 0, [value]
    while containers:
        level += 1
        if level > limit:
            return False
        containers = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
    return True


class FreeObject(fields.Dict):
    """A JSON object kept exactly as given (nulls included), nested at most MAX_DEPTH levels."""

    def _deserialize(self, value, attr, data, **kwargs):
        loaded = super()._deserialize(value, attr, data, **kwargs)
        if not nests_within(loaded):
            raise ValidationError(f"Nested more than {MAX_DEPTH} levels deep.")
        return loaded


#: Elasticsearch's limit on an `_id`: a longer one fails the whole `_bulk` it travels in.
MAX_ID_BYTES = 512


def fits_id(value: str) -> bool:
    # A character is at most 4 bytes: only a longer id needs encoding to be sure.
    if 0 < len(value) <= MAX_ID_BYTES // 4:
        return True
    return 0 < len(value.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES


def _validate_id(value: str) -> None:
    if not fits_id(value):
        raise ValidationError(f"Must be 1 to {MAX_ID_BYTES} bytes of UTF-8.")


@dataclass(frozen=True)
class FieldType:
    """How a field is mapped in Elasticsearch and validated on ingest."""

    es_type: str
    extra_mapping: dict = field(default_factory=dict)
    #: In a CSV file (`flask import` / `export`) the value is the cell's text as it is; for
    #: other types a cell holds JSON (`31`, `[1, 12]`, `{"a": 1}`), or else text.
    text_cell = False

    def mapping(self) -> dict:
        return {"type": self.es_type, **self.extra_mapping}

    def sort_options(self, descending: bool) -> dict:
        """What a sort on this field adds to its order: events lacking the field go last."""
        return {"missing": "_last"}

    def from_cell(self, text: str):
        if self.text_cell:
            return text
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text

    def to_cell(self, value) -> str:
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    def schema_field(self, **kwargs) -> fields.Field:
        raise NotImplementedError

    def parse_param(self, text: str):
        """Read one query-string value of this type (raises ValueError)."""
        return text

    def param_schema(self) -> dict:
        """The OpenAPI schema of one query value of this type ({}: any text)."""
        return {}

    def accepts(self, value) -> bool:
        """Ingest's fast path: True only if the schema field surely loads `value` unchanged.

        False means "ask the marshmallow field", which then validates and reports as usual;
        so a type may say False whenever it is unsure (the default).
        """
        return False


def missing_last_as_long(descending: bool) -> dict:
    """Events lacking a long or date field last, named by the long that sorts last.

    Not `missing: "_last"`, which means the same: with it Elasticsearch 9.5 dropped events
    lacking the field from `search_after` walks, cursor pages and exports alike (in the default
    order, `-start_time`, up to 6 of 230 events on most walks of page size 1 in
    tests/integration/test_http_properties.py; none with the explicit value)."""
    return {"missing": -(2**63) if descending else 2**63 - 1}


@dataclass(frozen=True)
class Keyword(FieldType):
    es_type: str = "keyword"
    max_length: int = 1024
    extra_mapping: dict = field(default_factory=lambda: {"ignore_above": 1024})
    text_cell = True

    def schema_field(self, **kwargs):
        return fields.String(validate=validate.Length(max=self.max_length), **kwargs)

    def accepts(self, value) -> bool:
        return type(value) is str and len(value) <= self.max_length


@dataclass(frozen=True)
class Identifier(Keyword):
    """A client-given id that is also the document's `_id` (cdx `uuid`)."""

    def schema_field(self, **kwargs):
        return fields.String(validate=_validate_id, **kwargs)

    def accepts(self, value) -> bool:
        return type(value) is str and fits_id(value)


@dataclass(frozen=True)
class KeywordOrInteger(Keyword):
    """Stored as a keyword so `"17"` and `17` match alike; returned as given."""

    text_cell = False  # a CSV cell `17` reads as the integer, `dev-a` as text

    def schema_field(self, **kwargs):
        return StringOrInteger(**kwargs)

    def accepts(self, value) -> bool:
        return type(value) in (str, int)


@dataclass(frozen=True)
class Integer(FieldType):
    """A signed integer of `bits` bits, as Elasticsearch stores it: a value outside is a 400
    naming the field or parameter, not a refusal by the node."""

    es_type: str = "integer"
    minimum: int | None = None
    bits: int = 32

    @cached_property
    def bounds(self) -> validate.Range:
        return validate.Range(min=self.low, max=self.high)

    def schema_field(self, **kwargs):
        return StrictInteger(validate=self.bounds, **kwargs)

    def sort_options(self, descending: bool) -> dict:
        # Sorted as longs, an integer never ties with the missing value, a long's extreme (a
        # long holding it still does: Elasticsearch has no wider integer type).
        widened = {"numeric_type": "long"} if self.es_type == "integer" else {}
        return {**missing_last_as_long(descending), **widened}

    def parse_param(self, text: str):
        value = int(text)
        try:
            return self.bounds(value)
        except ValidationError as exc:
            raise ValueError(text) from exc

    def param_schema(self) -> dict:
        return {"type": "integer", "minimum": self.bounds.min, "maximum": self.bounds.max}

    def accepts(self, value) -> bool:
        # `type(...) is int` leaves out bool, which StrictInteger refuses; the bounds are the
        # node's, which would otherwise refuse the value as the event's `_bulk` item.
        return type(value) is int and self.low <= value <= self.high

    @property
    def low(self) -> int:
        low = -(1 << (self.bits - 1))
        return low if self.minimum is None else max(low, self.minimum)

    @property
    def high(self) -> int:
        return (1 << (self.bits - 1)) - 1


@dataclass(frozen=True)
class Long(Integer):
    es_type: str = "long"
    bits: int = 64


@dataclass(frozen=True)
class Double(FieldType):
    es_type: str = "double"

    def schema_field(self, **kwargs):
        return fields.Float(allow_nan=False, **kwargs)

    def sort_options(self, descending: bool) -> dict:
        # Explicit, as for longs (`missing_last_as_long`); a value can be any finite double.
        return {"missing": -sys.float_info.max if descending else sys.float_info.max}

    def parse_param(self, text: str):
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(text)
        return value


@dataclass(frozen=True)
class Date(FieldType):
    es_type: str = "date"
    extra_mapping: dict = field(default_factory=lambda: {"format": "strict_date_optional_time||epoch_millis"})
    text_cell = True

    def schema_field(self, **kwargs):
        return IsoDateTime(**kwargs)

    def sort_options(self, descending: bool) -> dict:
        return missing_last_as_long(descending)  # epoch milliseconds, which the mapping reads

    def parse_param(self, text: str):
        if not ISO_DATETIME.match(text):
            raise ValueError(text)
        from_iso(text)
        return text

    def accepts(self, value) -> bool:
        if type(value) is not str or not ISO_DATETIME.match(value):
            return False
        try:
            utc_instant(value)
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class LongList(Long):
    """A list of longs (Elasticsearch fields are multi-valued by nature)."""

    def schema_field(self, **kwargs):
        return fields.List(StrictInteger(validate=self.bounds), **kwargs)

    def accepts(self, value) -> bool:
        low, high = self.low, self.high
        return type(value) is list and all(type(item) is int and low <= item <= high for item in value)


@dataclass(frozen=True)
class StoredObject(FieldType):
    """An object stored in `_source` only: never indexed, so it can hold anything."""

    es_type: str = "object"
    extra_mapping: dict = field(default_factory=lambda: {"enabled": False})

    def schema_field(self, **kwargs):
        return FreeObject(**kwargs)

    def accepts(self, value) -> bool:
        return type(value) is dict and nests_within(value)


ENTRY_KEY = Keyword()


@dataclass(frozen=True)
class Nested(FieldType):
    """A list of small objects whose keys must hold together in one entry (`results`)."""

    es_type: str = "nested"
    keys: tuple[str, ...] = ()

    def mapping(self) -> dict:
        return {
            "type": "nested",
            "dynamic": "strict",
            "properties": {key: Keyword().mapping() for key in self.keys},
        }

    def schema_field(self, **kwargs):
        entry = {key: fields.String(validate=validate.Length(max=1024)) for key in self.keys}
        from marshmallow import RAISE, Schema

        entry_schema = Schema.from_dict(entry, name="Entry")
        return fields.List(fields.Nested(entry_schema(unknown=RAISE)), **kwargs)

    def accepts(self, value) -> bool:
        return type(value) is list and all(type(entry) is dict and self._entry_ok(entry) for entry in value)

    def _entry_ok(self, entry: dict) -> bool:
        return all(name in self.keys and ENTRY_KEY.accepts(value) for name, value in entry.items())


class CommaIntegers(fields.Field):
    """`"3,8"` or `[3, 8]` in, a list of ints out."""

    default_error_messages = {"invalid": "Must be a comma-separated string or list of integers."}

    def __init__(self, item_range: validate.Range | None = None, **kwargs):
        super().__init__(**kwargs)
        self.item_range = item_range

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list):
            parts = value
        else:
            raise self.make_error("invalid")
        try:
            values = [_strict_int(part) for part in parts]
        except (TypeError, ValueError) as exc:
            raise self.make_error("invalid") from exc
        return [self.item_range(v) for v in values] if self.item_range else values


def _strict_int(value) -> int:
    if isinstance(value, (bool, float)):
        raise TypeError(value)
    return int(value)


class LenientNumber(fields.Float):
    """A number or a numeric string (`"45.5"`), as Roundware clients send coordinates."""

    def __init__(self, **kwargs):
        super().__init__(allow_nan=False, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise ValidationError("Not a valid number.")
        return super()._validated(value)


@dataclass(frozen=True)
class Coordinate(Double):
    """A latitude or longitude: a number or a numeric string, within `limit` degrees."""

    limit: float = 180.0

    def schema_field(self, **kwargs):
        return LenientNumber(validate=validate.Range(min=-self.limit, max=self.limit), **kwargs)


@dataclass(frozen=True)
class Tags(Long):
    """Integer tags, sent as `"3,8"` or `[3, 8]`, stored as a list of longs."""

    def schema_field(self, **kwargs):
        return CommaIntegers(item_range=self.bounds, **kwargs)

    def accepts(self, value) -> bool:
        return False  # "3,8" becomes [3, 8]: always through the schema field


@dataclass(frozen=True)
class StoredText(FieldType):
    """A string stored in `_source` only (free-form payloads): returned, never searched."""

    es_type: str = "keyword"
    extra_mapping: dict = field(default_factory=lambda: {"index": False, "doc_values": False})
    text_cell = True

    def schema_field(self, **kwargs):
        return fields.String(**kwargs)
