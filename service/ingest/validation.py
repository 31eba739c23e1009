"""Each event validated against its dataset's declaration: a fast path for plainly valid
events, marshmallow for the rest (so field errors are always the schema's)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError

from ..engine.registry import Dataset
from .body import Batch


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
