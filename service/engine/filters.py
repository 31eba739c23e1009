"""Filter kinds: each turns one parsed parameter into an Elasticsearch query clause.

A dataset's registry attaches filters to its fields (`Match("gender")` on `gender`); the query
schema and the bool query are generated from those declarations. Every `clause` is pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from marshmallow import fields

from .values import MAX_VALUES, NOT_NULL, NULL, SPECIAL, MultiValue, SingleValue, parse_scalar

MAX_WILDCARDS = 4
MAX_PATTERN_LENGTH = 256


@dataclass(frozen=True)
class Filter:
    """A query parameter bound to one field of the registry."""

    name: str
    field: str = ""
    field_type: object = None
    #: The nested path the field lives under (`results`), if any.
    nested: str | None = None
    doc: str = ""

    def bind(self, field: str, field_type, nested: str | None = None) -> Filter:
        return replace(self, field=field, field_type=field_type, nested=nested)

    def param_field(self) -> fields.Field:
        raise NotImplementedError

    def param_metadata(self, many: bool = True) -> dict:
        """The parameter's OpenAPI description, and the schema of its values where their type
        has one (integers carry their range)."""
        one = self.field_type.param_schema() if self.field_type is not None else {}
        if one and many:  # a list in JSON, repeated or comma-separated in the query string
            special = {"type": "string", "enum": sorted(SPECIAL)}
            one = {"type": "array", "items": {"anyOf": [one, special]}, "maxItems": MAX_VALUES}
        return {"description": self.doc, **one}

    def clause(self, value) -> dict:
        raise NotImplementedError

    #: Whether a value list of this filter also matches events that lack the whole entry.
    def matches_absent(self, value) -> bool:
        return False


def _exists(field: str) -> dict:
    return {"exists": {"field": field}}


def _missing(field: str) -> dict:
    return {"bool": {"must_not": [_exists(field)]}}


def any_of(clauses: list[dict]) -> dict:
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _special_clauses(field: str, values: list) -> list[dict]:
    clauses = []
    if NULL in values:
        clauses.append(_missing(field))
    if NOT_NULL in values:
        clauses.append(_exists(field))
    return clauses


def _plain(values: list) -> list:
    return [value for value in values if value is not NULL and value is not NOT_NULL]


@dataclass(frozen=True)
class Match(Filter):
    """Any of several values; `null` / `not(null)`; `*` wildcards where allowed."""

    wildcard: bool = False

    def param_field(self):
        parse = parse_wildcard if self.wildcard else parse_scalar
        return MultiValue(self.field_type, parse=parse, metadata=self.param_metadata())

    def clause(self, values: list) -> dict:
        return any_of(self.value_clauses(self.field, values))

    def value_clauses(self, field: str, values: list) -> list[dict]:
        plain = _plain(values)
        patterns = [value for value in plain if isinstance(value, Pattern)]
        exact = [value for value in plain if not isinstance(value, Pattern)]
        clauses = [{"terms": {field: exact}}] if exact else []
        clauses += [{"wildcard": {field: {"value": value.es_pattern}}} for value in patterns]
        return clauses + _special_clauses(field, values)

    def matches_absent(self, values: list) -> bool:
        return NULL in values


@dataclass(frozen=True)
class Pattern:
    """A value with `*` wildcards (only `*`: `?` and `\\` are literal)."""

    text: str

    @property
    def es_pattern(self) -> str:
        escaped = self.text.replace("\\", "\\\\").replace("?", "\\?")
        return escaped


def parse_wildcard(field_type, value):
    parsed = parse_scalar(field_type, value)
    if isinstance(parsed, str) and "*" in parsed:
        if parsed.count("*") > MAX_WILDCARDS or len(parsed) > MAX_PATTERN_LENGTH:
            raise ValueError(f"at most {MAX_WILDCARDS} '*' and {MAX_PATTERN_LENGTH} characters")
        return Pattern(parsed)
    return parsed


@dataclass(frozen=True)
class Bound(Filter):
    """One end of a range: `gte`, `lte`, `gt` or `lt`."""

    op: str = "gte"

    def param_field(self):
        return SingleValue(self.field_type, metadata=self.param_metadata(many=False))

    def clause(self, value) -> dict:
        return {"range": {self.field: {self.op: value}}}


@dataclass(frozen=True)
class Hierarchy(Filter):
    """A place: the field equals it, or it is one of the `ancestors`."""

    ancestors: str = ""

    def param_field(self):
        return MultiValue(self.field_type, metadata=self.param_metadata())

    def clause(self, values: list) -> dict:
        plain = _plain(values)
        clauses = [{"terms": {self.field: plain}}, {"terms": {self.ancestors: plain}}] if plain else []
        return any_of(clauses + _special_clauses(self.field, values))


@dataclass(frozen=True)
class DatePrefix(Filter):
    """A full or partial datetime: `2017-04-15` matches that whole day."""

    def param_field(self):
        return PartialDateTime(metadata={"description": self.doc})

    def clause(self, value: str) -> dict:
        start, end = prefix_bounds(value)
        # No end: the period runs to the end of year 9999 in UTC, past which nothing is stored.
        return {"range": {self.field: {"gte": start} | ({"lt": end} if end else {})}}


PARTIAL_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?)?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?$"
)


class PartialDateTime(fields.String):
    """A full or partial ISO datetime, checked when the query is read (so translation is total)."""

    default_error_messages = {"invalid": "Not a valid full or partial ISO 8601 datetime."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            prefix_bounds(text)
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        return text


def prefix_bounds(text: str) -> tuple[str, str | None]:
    """The [start, end) instants a full or partial ISO datetime covers (UTC without offset);
    the end is None when the period reaches past year 9999 in UTC (`9999-12`).

    Raises ValueError for anything else: impossible dates and offsets, and a start outside
    years 1 to 9999 in UTC (`0001-01-01T00+05:00`).
    """
    match = PARTIAL_DATETIME.match(text.strip())
    if not match:
        raise ValueError(text)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = UTC if offset in (None, "Z") else datetime.strptime(offset, "%z").tzinfo
    start = datetime(
        int(year),
        int(month or 1),
        int(day or 1),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        int((fraction or "0").ljust(6, "0")),
        tzinfo=zone,
    )
    if not _in_utc_calendar(start):
        raise ValueError(text)
    try:
        end = _period_end(start, month, day, hour, minute, second, fraction)
    except (OverflowError, ValueError):  # the period ends after 9999-12-31 in its own offset
        return start.isoformat(), None
    return start.isoformat(), end.isoformat() if _in_utc_calendar(end) else None


def _period_end(start: datetime, month, day, hour, minute, second, fraction) -> datetime:
    if month is None:
        return start.replace(year=start.year + 1)
    if day is None:
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    if hour is None:
        return start + timedelta(days=1)
    if minute is None:
        return start + timedelta(hours=1)
    if second is None:
        return start + timedelta(minutes=1)
    if fraction is None:
        return start + timedelta(seconds=1)
    return start + timedelta(microseconds=10 ** (6 - len(fraction)))


def _in_utc_calendar(moment: datetime) -> bool:
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


@dataclass(frozen=True)
class AllOf(Filter):
    """Events carrying every one of the values (`tag_ids=3,8`)."""

    def param_field(self):
        return MultiValue(self.field_type, metadata=self.param_metadata())

    def clause(self, values: list) -> dict:
        plain = _plain(values)
        clauses = [{"term": {self.field: value}} for value in plain]
        clauses += _special_clauses(self.field, values)
        return {"bool": {"filter": clauses}}
