"""Parsing of filter values: comma lists, `null` / `not(null)`, typed scalars.

Pure marshmallow fields, shared by every filter kind, so the query string and the JSON body
read values the same way.
"""

from __future__ import annotations

from marshmallow import fields


class Null:
    """The `null` filter value: the field is absent."""

    def __repr__(self) -> str:
        return "null"


class NotNull:
    """The `not(null)` filter value: the field is present."""

    def __repr__(self) -> str:
        return "not(null)"


NULL = Null()
NOT_NULL = NotNull()
SPECIAL = {"null": NULL, "not(null)": NOT_NULL}
#: Values one multi-valued filter may take.
MAX_VALUES = 1024


def parse_scalar(field_type, value, allow_special: bool = True):
    """One value for a field of `field_type`, from query-string text or a JSON scalar."""
    if value is None and allow_special:
        return NULL
    if isinstance(value, str):
        text = value.strip()
        if allow_special and text in SPECIAL:
            return SPECIAL[text]
        return field_type.parse_param(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(value)
    return field_type.parse_param(str(value))


class MultiValue(fields.Field):
    """`a,b,null` in the query string, or `["a", "b", null]` in a JSON body: any of them."""

    #: webargs: read every occurrence of a repeated query parameter.
    is_multiple = True
    default_error_messages = {"invalid": "Not a valid value: {value!r}."}

    def __init__(self, field_type, parse=parse_scalar, max_values: int = MAX_VALUES, **kwargs):
        super().__init__(**kwargs)
        self.field_type = field_type
        self.parse = parse
        self.max_values = max_values

    def deserialize(self, value, attr=None, data=None, **kwargs):
        # A JSON null alone is the `null` value, as `?gender=null` and `[null]` are (marshmallow
        # would refuse it before `_deserialize` sees it).
        return super().deserialize([None] if value is None else value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        parts = []
        for item in items:
            parts += item.split(",") if isinstance(item, str) else [item]
        if not parts or len(parts) > self.max_values:
            raise self.make_error("invalid", value=value)
        values = []
        for part in parts:
            try:
                values.append(self.parse(self.field_type, part))
            except (TypeError, ValueError) as exc:
                raise self.make_error("invalid", value=part) from exc
        return values


class SingleValue(fields.Field):
    """One typed value (a range bound): no lists, no `null`."""

    default_error_messages = {"invalid": "Not a valid value: {value!r}."}

    def __init__(self, field_type, **kwargs):
        super().__init__(**kwargs)
        self.field_type = field_type

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        try:
            return parse_scalar(self.field_type, value, allow_special=False)
        except (TypeError, ValueError) as exc:
            raise self.make_error("invalid", value=value) from exc
