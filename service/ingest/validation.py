"""Each event validated against its dataset's declaration: fast paths for plainly valid
events, marshmallow for the rest (so field errors are always the schema's)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import orjson
from marshmallow import RAISE, Schema, ValidationError

from ..engine.fields import (
    Coordinate,
    Date,
    FieldType,
    Identifier,
    Integer,
    Keyword,
    KeywordOrInteger,
    Long,
    LongList,
    Nested,
    StoredObject,
    StoredText,
    Tags,
)
from ..engine.registry import Dataset
from .body import Batch, read_json


def ingest_schema(dataset: Dataset) -> Schema:
    """The marshmallow schema of one event of `dataset`, from its registry; unknown keys: 400."""
    declared = {
        f.name: f.type.schema_field(required=f.required, allow_none=not f.required)
        for f in dataset.fields
        if not f.server_side
    }
    schema_class = Schema.from_dict(declared, name=f"{dataset.name.capitalize()}EventSchema")
    return schema_class(unknown=RAISE)


# -- the one-pass decoder: msgspec reads and checks a JSON text against a Struct made from the
# registry. It only ever *declines* (the text then goes through orjson and the schema), so it
# accepts a subset of what the schema accepts unchanged, never more.

#: Dates the decoder accepts: a subset of `ISO_DATETIME` that `utc_instant` surely reads in
#: years 1 to 9999 (days past 28 only in months that have them, 29 February in leap years;
#: years 0000, 0001 and 9999 declined, offsets within ±18:00). Anything else asks the schema.
PLAIN_DATE = (
    r"^(?!0000|0001|9999)(?:\d{4}-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    r"|(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
    r"(?:T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?"
    r"(?:Z|[+-](?:(?:0\d|1[0-7]):?[0-5]\d|18:?00))?)?\Z"
)
#: Ids of at most 128 characters surely fit Elasticsearch's 512 bytes (`fits_id`).
PLAIN_ID_CHARS = 128


def _get(self, name: str, default=None):
    """`dict.get` on a decoded Struct (an unset or unknown field is absent), so the code that
    reads events (derived keys, scopes, partitions) takes a Struct or a dict alike."""
    value = getattr(self, name, msgspec.UNSET)
    return default if value is msgspec.UNSET else value


def _integer(kind: Integer):
    return Annotated[int, msgspec.Meta(ge=kind.low, le=kind.high)]


def _keyword(kind: Keyword):
    return Annotated[str, msgspec.Meta(max_length=kind.max_length)]


#: A stored object's values, when the decoder reads them: flat (nothing the decoder accepts
#: nests, so no depth check is needed), integers within int64 (past them orjson may read a
#: float where msgspec keeps the int: such objects, and nested ones, ask orjson).
FLAT_VALUE = str | Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | float | bool | None

#: Field type → the msgspec type of its plainly valid values, by exact type (a subclass may
#: validate differently: it gets no fast form until it is listed here).
FAST_TYPES = {
    Keyword: _keyword,
    Identifier: lambda kind: Annotated[str, msgspec.Meta(min_length=1, max_length=PLAIN_ID_CHARS)],
    # Past int64 orjson may read a float, which the schema refuses: such integers ask it.
    KeywordOrInteger: lambda kind: str | Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],
    Integer: _integer,
    Long: _integer,
    LongList: lambda kind: list[_integer(kind)],
    # Tags as a list of integers (the schema turns "3,8" into one: such text asks it).
    Tags: lambda kind: list[_integer(kind)],
    # A number within the limit (msgspec reads 3 as 3.0, as the schema does; "45.5" asks it).
    Coordinate: lambda kind: Annotated[float, msgspec.Meta(ge=-kind.limit, le=kind.limit)],
    Date: lambda kind: Annotated[str, msgspec.Meta(pattern=PLAIN_DATE)],
    StoredText: lambda kind: str,
    StoredObject: lambda kind: dict[str, FLAT_VALUE],
    # Entries stay dicts (their keys checked against the declared ones): the derived keys read
    # them per entry, and a dict's `get` is C where a Struct's would be Python.
    Nested: lambda kind: list[dict[Literal[kind.keys], _keyword(Keyword())]],
}


def fast_type(kind: FieldType):
    """The msgspec type of a field type's plainly valid values, or None (no fast form)."""
    make = FAST_TYPES.get(type(kind))
    return make(kind) if make else None


class EventLoader:
    """Loads one event of a dataset: a fast path for plainly valid events, else the schema.

    Marshmallow costs most of a worker's CPU per event on batch ingest. Most events are valid
    and already in their loaded form, which each field type can confirm cheaply
    (`FieldType.accepts`); anything it is not sure of goes through the schema, so the errors
    and any conversion are exactly the schema's. For JSON texts (NDJSON lines) `decode` reads
    and checks a plainly valid event in one pass of msgspec.
    """

    def __init__(self, dataset: Dataset):
        self.schema = ingest_schema(dataset)
        fields = {f.name: f for f in dataset.fields if not f.server_side}
        self.required = tuple(name for name, f in fields.items() if f.required)
        #: Field name → its type's check, looked up once per value (this runs for every event).
        self.accepts = {name: f.type.accepts for name, f in fields.items()}
        self.decoder = self._decoder(fields)

    def _decoder(self, fields) -> msgspec.json.Decoder:
        """A Struct of the fields with a fast form; a key without one, like an unknown key, is
        declined (unknown fields are forbidden), and so is null in a required field."""
        members = []
        for name, f in fields.items():
            kind = fast_type(f.type)
            if kind is None:
                continue
            if f.required:
                members.append((name, kind))
            else:
                members.append((name, kind | None | msgspec.UnsetType, msgspec.UNSET))
        if "get" in fields:  # the Struct's own `get` (`_get`) would be shadowed
            raise ValueError("A dataset field may not be named 'get'.")
        # gc=False: its instances hold no cycles and live only until their document is made.
        struct = msgspec.defstruct(
            "PlainEvent", members, forbid_unknown_fields=True, kw_only=True, gc=False, namespace={"get": _get}
        )
        return msgspec.json.Decoder(struct)

    def load(self, item: dict) -> dict:
        return item if self.plainly_valid(item) else self.schema.load(item)

    def read(self, text: bytes) -> msgspec.Struct | None:
        """The event of a JSON text as a Struct if msgspec finds it plainly valid, else None
        (ask orjson and the schema). Its `get` reads it like a dict; `decode` makes it one."""
        try:
            return self.decoder.decode(text)
        # msgspec raises UnicodeDecodeError for invalid UTF-8 in a string: orjson names it.
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None

    def decode(self, text: bytes) -> dict | None:
        """Exactly what `load(orjson.loads(text))` would return, if msgspec finds the text
        plainly valid, else None."""
        event = self.read(text)
        return None if event is None else msgspec.to_builtins(event)

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


def validate_items(loader: EventLoader, batch: Batch) -> tuple[dict[int, dict | msgspec.Struct], dict]:
    """(position → valid event, position → errors). Items of a batch `raw` are JSON texts
    (NDJSON lines): plainly valid ones are read by msgspec and stay Structs (their documents
    are encoded straight from them, `documents.encoded`), the rest are read by orjson (whose
    error names a line that is not JSON at all) and then the schema, as dicts."""
    valid, errors = {}, {}
    decode = loader.read if batch.raw else None
    for position, item in enumerate(batch.items):
        if decode is not None:
            event = decode(item)
            if event is not None:
                valid[position] = event
                continue
            try:
                item = orjson.loads(item if type(item) is bytes else memoryview(item))  # or msgspec.Raw
            except orjson.JSONDecodeError as exc:
                if batch.text is not None:  # a JSON array's item: the body is not JSON
                    read_json(batch.text)
                errors[position] = {"_line": [f"Not valid JSON: {exc}"]}
                continue
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
