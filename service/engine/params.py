"""Query parameters: the marshmallow schema of a dataset's query, generated from its registry.

The same schema reads the query string and a JSON body; it yields a `QueryParams` value that
the pure translation turns into an Elasticsearch request. Unknown names are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from .analytics import MAX_TOP, Rate, Top, period, previous_filters, rankable
from .groups import (
    MAX_FILLED_ROWS,
    AdminLevel,
    BucketOptions,
    DateBuckets,
    EntryKey,
    Group,
    NumericRanges,
    WholeEntry,
    parse_zone,
)
from .registry import Dataset

#: Elasticsearch's default `index.max_result_window`: offsets beyond it need the cursor.
RESULT_WINDOW = 10_000
#: The k of small-count suppression, for requests and tokens alike. Below 3 a hidden row could
#: only hold 1 event, which its marker already says; the top is far above any useful k.
MIN_COUNT_RANGE = (3, 1_000_000)


@dataclass(frozen=True)
class QueryParams:
    filters: dict = field(default_factory=dict)
    groups: tuple[Group, ...] = ()
    order: tuple[tuple[str, bool], ...] = ()
    page_size: int | None = None
    offset: int = 0
    time_zone: str = "UTC"
    week_start: str = "monday"
    cursor: str | None = None
    #: `zero`: add count-0 rows for every date bucket and declared value (crossed).
    fill: str | None = None
    #: Numeric fields to summarise (min, max, avg, sum, percentiles) per row.
    stats: tuple[str, ...] = ()
    #: Rows counting fewer events than this have their count hidden.
    min_count: int | None = None
    #: `rate=NAME:VALUE,…`: the share of each row's events having the value (analytics.py).
    rates: tuple[Rate, ...] = ()
    #: `distinct=NAME,…`: distinct values of these fields per row.
    distinct: tuple[str, ...] = ()
    #: `top=KEY:N`: the N values of a grouped key with most events, the rest merged.
    top: Top | None = None
    #: `compare=previous|year`: each row's count in an earlier period.
    compare: str | None = None
    #: Export only: `ndjson` or `csv`.
    format: str = "ndjson"
    #: Events on a plain page: `page_size`, or the default page size when it is absent.
    page_rows: int = 50

    @property
    def grouped(self) -> bool:
        return bool(self.groups)

    @property
    def bucket_options(self) -> BucketOptions:
        return BucketOptions(zone=self.time_zone, week_start=self.week_start)

    @property
    def streamable(self) -> bool:
        """Rows come one per bucket in bucket order, so a composite `after` key can page them."""
        return (
            not self.order
            and not self.fill
            and not self.top
            and not self.compare
            and all(group.one_row_per_bucket(self.bucket_options) for group in self.groups)
        )

    @property
    def pageable_whole(self) -> bool:
        """Rows computed whole (`top`, `compare`) but in key order: paged by their keys."""
        return (
            bool(self.top or self.compare)
            and not self.order
            and not self.fill
            and not any(isinstance(group, NumericRanges) and group.ranges for group in self.groups)
        )


class NameList(fields.Field):
    """`a,-b` in the query string or `["a", "-b"]` in JSON."""

    is_multiple = True

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        names = []
        for item in items:
            if not isinstance(item, str):
                raise ValidationError("Must be a comma-separated string or a list of strings.")
            names += [part.strip() for part in item.split(",") if part.strip()]
        return names


class GroupBy(fields.Field):
    """Group names (`gender,week(start_time)`) or objects (`{"age": [[0, 10], [10, null]]}`)."""

    is_multiple = True

    def __init__(self, dataset: Dataset, **kwargs):
        super().__init__(**kwargs)
        self.dataset = dataset

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        groups = []
        for item in items:
            if isinstance(item, str):
                groups += [self.named(name.strip()) for name in item.split(",") if name.strip()]
            elif isinstance(item, dict) and item:
                groups += [self.from_object(key, spec) for key, spec in item.items()]
            else:
                raise ValidationError("Each group must be a name or an object.")
        if not groups:
            raise ValidationError("No group given.")
        refuse_shared_keys(groups)
        return tuple(join_entry_groups(groups))

    def valid_names(self) -> list[str]:
        return sorted(name for name, g in self.dataset.groups.items() if by_name(g))

    def named(self, name: str) -> Group:
        group = self.dataset.groups.get(name)
        if group is None or not by_name(group):
            raise ValidationError(f"Unknown group '{name}'; valid: {', '.join(self.valid_names())}.")
        return group

    def from_object(self, key: str, spec) -> Group:
        ranged, admin = self.dataset.range_groups, self.dataset.group_for_admin_level()
        if key in ranged:
            ends = range_ends(self.dataset, ranged[key])
            return ranged[key].with_ranges(parse_ranges(spec, ends), ends)
        if admin is not None and key == admin.name:
            if isinstance(spec, bool) or not isinstance(spec, int) or not 0 <= spec < admin.depth:
                raise ValidationError(f"admin_level must be an integer from 0 to {admin.depth - 1}.")
            return admin.at_level(spec)
        objects = [*ranged, *([admin.name] if admin is not None else [])]
        raise ValidationError(f"Unknown group object '{key}'; valid: {', '.join(objects)}.")


def by_name(group: Group) -> bool:
    """Whether `group_by=NAME` offers the group (admin levels and ranges are JSON objects)."""
    if isinstance(group, AdminLevel):
        return False
    return not isinstance(group, NumericRanges) or group.by_name


def refuse_shared_keys(groups: list[Group]) -> None:
    """Each row key comes from one group: `gender,gender`, or one field at two intervals
    (`week(start_time),day(start_time)`, both keyed `start_time`), would make rows ambiguous."""
    makers: dict[str, str] = {}
    for group in groups:
        for key in group.keys:
            if key in makers:
                raise ValidationError(
                    f"'{makers[key]}' and '{group.name}' would both key rows by '{key}'; group by it once."
                    if makers[key] != group.name
                    else f"'{group.name}' is named twice."
                )
            makers[key] = group.name


def range_ends(dataset: Dataset, group: NumericRanges) -> tuple[int, int] | None:
    """The ends a range of an integer field may have: its type's bounds, and one past the
    largest value for an exclusive `to`; None for a field of any numbers (a delay)."""
    if not group.integral:
        return None
    name = next(name for name, path in dataset.paths.items() if path == group.field)
    bounds = dataset.field_map[name].type.bounds
    return bounds.min, bounds.max + 1


def parse_ranges(spec, ends: tuple[int, int] | None) -> list[tuple[float | None, float | None]]:
    """Ranges: `[0, 10]`, `[21]`, `[null, 5]`, `{"from": 16, "to": 21}`, `{"to": 5}`; ends are
    integers within `ends` for an integer field (`age`), any finite numbers otherwise."""
    items = [spec] if isinstance(spec, dict) else spec
    if not isinstance(items, list) or not items:
        raise ValidationError("Ranges must be a non-empty list.")
    number = int if ends is not None else int | float
    kind = "integers" if ends is not None else "numbers"
    ranges = []
    for item in items:
        if isinstance(item, list) and 1 <= len(item) <= 2:
            low, high = ([*item, None])[:2]
        elif isinstance(item, dict) and set(item) <= {"from", "to"}:
            low, high = item.get("from"), item.get("to")
        else:
            raise ValidationError(f"Not a range: {item!r}.")
        for end in (low, high):
            if end is not None and (isinstance(end, bool) or not isinstance(end, number) or end != end):
                raise ValidationError(f"Range ends must be {kind} or null: {item!r}.")
            if isinstance(end, float) and end in (float("inf"), float("-inf")):
                raise ValidationError(f"Range ends must be finite: {item!r}.")
            if end is not None and ends is not None and not ends[0] <= end <= ends[1]:
                raise ValidationError(f"Range ends must be from {ends[0]} to {ends[1]}: {item!r}.")
        ranges.append((low, high))
    return ranges


def join_entry_groups(groups: list[Group]) -> list[Group]:
    """Keys of the same nested entries grouped together become one whole-entry group."""
    by_field: dict[str, list[EntryKey]] = {}
    for group in groups:
        if isinstance(group, EntryKey):
            by_field.setdefault(group.field, []).append(group)
    joined = []
    for group in groups:
        members = by_field.get(group.field, []) if isinstance(group, EntryKey) else []
        if len(members) < 2:
            joined.append(group)
        elif group is members[0]:
            declared = {member.name: member.values for member in members}
            values = tuple(declared.get(key, ()) for key in group.entry_keys)
            joined.append(
                WholeEntry(group.field, field=group.field, entry_keys=group.entry_keys, key_values=values)
            )
    return joined


class TimeZone(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_zone(text)
        except ValueError as exc:
            raise ValidationError(
                f"Unknown time zone '{text}': use an IANA name or ±HH:MM (at most ±18:00)."
            ) from exc
        return text


def time_zone_field() -> TimeZone:
    return TimeZone(
        metadata={
            "description": "IANA name or ±HH:MM (default UTC) in which date groups are labelled "
            "(and `fill=zero` steps); filter datetimes without an offset stay UTC"
        }
    )


COMMON = ("page_size", "offset", "time_zone", "week_start", "cursor", "fill", "min_count", "format")


class QuerySchemaBase(Schema):
    class Meta:
        unknown = RAISE

    dataset: Dataset
    #: The service's DEFAULT_PAGE_SIZE and MAX_PAGE_SIZE (see `query_schema`).
    default_page_size = 50
    max_page_size = 1000

    @post_load
    def to_params(self, data, **kwargs) -> QueryParams:
        groups = data.pop("group_by", ())
        order = self.check_order(data.pop("order_by", []), groups)
        stats = tuple(self.check_stats(data.pop("stats", [])))
        if data.get("fill") and not groups:
            raise ValidationError({"fill": ["fill needs group_by."]})
        analytics = {
            "rates": self.check_rates(data.pop("rate", [])),
            "distinct": self.check_distinct(data.pop("distinct", [])),
            "top": self.check_top(data.pop("top", None), groups),
            "compare": data.pop("compare", None),
        }
        common = {key: data.pop(key) for key in COMMON if key in data}
        self.check_calendar(common, groups, data)
        # Filter datetimes without an offset are UTC (docs/api.md §5), whatever `time_zone` says.
        params = QueryParams(filters=data, groups=groups, order=order, stats=stats, **common, **analytics)
        self.check_compare(params)
        refuse_without_effect(params)
        return replace(params, page_rows=self.page_rows(params))

    def page_rows(self, params: QueryParams) -> int:
        """The events of a plain page: at most MAX_PAGE_SIZE, and within the first RESULT_WINDOW
        events unless a cursor says where the page starts."""
        rows = self.default_page_size if params.page_size is None else params.page_size
        if rows > self.max_page_size:
            raise ValidationError({"page_size": [f"Must be at most {self.max_page_size}."]})
        if params.offset + rows > RESULT_WINDOW and not params.cursor:
            raise ValidationError(
                {
                    "offset": [
                        f"offset + page_size must stay within {RESULT_WINDOW}; page further with the cursor."
                    ]
                }
            )
        return rows

    def check_rates(self, items: list[str]) -> tuple[Rate, ...]:
        """`NAME:VALUE`, NAME a field `rate` may count (registry: `rates=True`)."""
        valid = self.dataset.rate_groups
        rates = {}
        for item in items:
            name, colon, value = item.partition(":")
            name, value = name.strip(), value.strip()
            if name not in valid:
                raise ValidationError(
                    {"rate": [f"Cannot count rates of '{name}'; valid: {', '.join(valid)} (as NAME:VALUE)."]}
                )
            if not colon or not value:
                raise ValidationError({"rate": [f"'{item}' needs a value: {name}:VALUE."]})
            rates.setdefault(f"{name}:{value}", Rate(f"{name}:{value}", name, value))
        return tuple(rates.values())

    def check_distinct(self, names: list[str]) -> tuple[str, ...]:
        return tuple(known_names("distinct", names, self.dataset.distinct_fields, "count distinct"))

    def check_top(self, text: str | None, groups) -> Top | None:
        """`KEY:N`: KEY a row key of a group of values (not dates or ranges), N from 1 to MAX_TOP."""
        if text is None:
            return None
        key, _, size = text.partition(":")
        key = key.strip()
        if not groups:
            raise ValidationError({"top": ["top needs group_by: it keeps the N values of a grouped key."]})
        found = next((group for group in groups if key in group.keys), None)
        if found is None:
            keys = [k for group in groups for k in group.keys]
            raise ValidationError(
                {"top": [f"'{key}' is not grouped; top ranks a grouped key: {', '.join(keys)}."]}
            )
        if not rankable(found):
            raise ValidationError(
                {"top": [f"'{found.name}' groups dates or ranges (their own order): top ranks values."]}
            )
        if not size.strip().isdigit() or not 1 <= int(size) <= MAX_TOP:
            raise ValidationError({"top": [f"Write top as KEY:N, N from 1 to {MAX_TOP} ('{text}')."]})
        return Top(key, int(size))

    def check_compare(self, params: QueryParams) -> None:
        """`compare` needs the period bounded at both ends on the main time, and no date group
        (whose rows could never meet those of another period)."""
        if not params.compare:
            return
        field = self.dataset.time_field
        low, high = period(self.dataset, params.filters)
        if low is None or high is None:
            named = [name for name, flt in self.dataset.filters.items() if flt.field == field]
            bounds = ", ".join(f"`{name}`" for name in named)
            raise ValidationError(
                {"compare": [f"compare needs the period bounded at both ends on {field} ({bounds})."]}
            )
        if any(isinstance(group, DateBuckets) for group in params.groups):
            raise ValidationError(
                {
                    "compare": [
                        "compare matches rows by their keys: a date group's never meet another period's."
                    ]
                }
            )
        if low > high:
            raise ValidationError({"compare": ["The period is empty: its start is after its end."]})
        try:
            previous_filters(self.dataset, params.filters, params.compare)
        except (ValueError, OverflowError) as exc:
            raise ValidationError({"compare": ["The compared period would begin before year 1."]}) from exc

    def check_calendar(self, common: dict, groups, filters: dict) -> None:
        """`time_zone` labels date groups, `week_start` makes weeks: given where there is none,
        they would change nothing."""
        dated = [group for group in groups if isinstance(group, DateBuckets)]
        if "week_start" in common and not any(group.interval == "week" for group in dated):
            raise ValidationError({"week_start": ["week_start needs a week(F) group."]})
        if "time_zone" in common and not dated:
            raise ValidationError({"time_zone": ["time_zone needs a date group."]})

    def check_stats(self, names: list[str]) -> list[str]:
        return known_names("stats", names, self.dataset.stats_fields, "summarise")

    def check_order(self, names: list[str], groups) -> tuple[tuple[str, bool], ...]:
        if groups:
            valid = {key for group in groups for key in group.keys} | {"count"}
        else:
            valid = set(self.dataset.orderable)
        order = []
        for name in names:
            descending = name.startswith("-")
            bare = name.lstrip("-")
            if bare not in valid:
                raise ValidationError(
                    {"order_by": [f"Cannot order by '{bare}'; valid: {', '.join(sorted(valid))}."]}
                )
            if bare in (named for named, _ in order):  # the first would win: the second is moot
                raise ValidationError({"order_by": [f"'{bare}' is named twice."]})
            order.append((bare, descending))
        return tuple(order)


COUNT_ONLY = "page_size=0 answers the count only"


def can_add_rows(group: Group) -> bool:
    """Whether `fill=zero` may add rows to this group alone: its domain is more than the values seen."""
    return isinstance(group, DateBuckets | WholeEntry) or bool(group.values or getattr(group, "ranges", ()))


def known_names(parameter: str, names: list[str], valid, verb: str) -> list[str]:
    """`names` once each, in order, all among `valid` (else a 400 naming `parameter`)."""
    unknown = [name for name in names if name not in valid]
    if unknown:
        message = f"Cannot {verb} {', '.join(unknown)}; valid: {', '.join(valid)}."
        raise ValidationError({parameter: [message]})
    return list(dict.fromkeys(names))


def refuse_without_effect(params: QueryParams) -> None:
    """A parameter the service accepts changes the answer: one that could not change this
    answer is refused by name, never silently ignored."""
    refused = {}
    if params.cursor:
        if params.offset:
            refused["offset"] = "offset or cursor, not both: the cursor says where the page starts."
        if params.page_size == 0:
            refused["cursor"] = f"{COUNT_ONLY}: there is no page to continue."
        elif params.grouped and params.page_size is None:
            refused["cursor"] = "A grouped cursor needs page_size: without it every row comes at once."
    if params.page_size == 0:
        moot = {
            "order_by": params.order,
            "offset": params.offset,
            "fill": params.fill,
            # Without group_by these describe the whole answer, beside the count.
            "stats": params.grouped and params.stats,
            "rate": params.grouped and params.rates,
            "distinct": params.grouped and params.distinct,
            "top": params.top,
            "compare": params.grouped and params.compare,
        }
        refused |= {name: f"{COUNT_ONLY}: no rows for {name}." for name, given in moot.items() if given}
    if params.fill and len(params.groups) == 1 and not can_add_rows(params.groups[0]):
        refused["fill"] = (
            "fill=zero adds rows for date buckets, declared values, age ranges or groups crossed: "
            f"'{params.groups[0].name}' alone has none."
        )
    if refused:
        raise ValidationError({name: [message] for name, message in refused.items()})


def query_schema(dataset: Dataset, default_page_size: int = 50, max_page_size: int = 1000) -> type[Schema]:
    """The query schema of `dataset`: its filters plus paging (within the service's page
    sizes), ordering and grouping."""
    declared = {name: flt.param_field() for name, flt in dataset.filters.items()}  # as export_schema
    declared.update(
        page_size=fields.Integer(
            # A search never returns more than RESULT_WINDOW hits; MAX_PAGE_SIZE may lower it.
            validate=validate.Range(min=0, max=RESULT_WINDOW),
            metadata={
                "description": "rows per page, at most MAX_PAGE_SIZE (1000); 0: the count only (then no "
                "order_by, offset, cursor, fill or grouped stats)"
            },
        ),
        offset=fields.Integer(
            validate=validate.Range(min=0, max=RESULT_WINDOW),
            metadata={"description": f"rows to skip (at most {RESULT_WINDOW}; deeper: cursor)"},
        ),
        order_by=NameList(
            metadata={
                "description": "e.g. `age,-gender`; grouped: row keys (a date group's field) or `count`"
            }
        ),
        group_by=GroupBy(
            dataset,
            metadata={
                "description": "e.g. `gender,week(start_time)`; a date group's rows are keyed by its field "
                "(`start_time`), so each field at one interval",
                **group_by_schema(dataset),
            },
        ),
        time_zone=time_zone_field(),
        week_start=fields.String(
            validate=validate.OneOf(["monday", "sunday"]),
            metadata={
                "description": "monday: ISO weeks (default); sunday: Sunday-Saturday (MMWR) weeks "
                "(in a named time zone: counted by local day, all rows at once, null percentiles)"
            },
        ),
        cursor=fields.String(
            metadata={
                "description": "next_cursor of the previous page (not with offset; grouped: with page_size)"
            }
        ),
        fill=fields.String(
            validate=validate.OneOf(["zero"]),
            metadata={
                "description": "zero: add count-0 rows for every date bucket, declared value and age "
                f"range, crossed with the other groups' values (at most {MAX_FILLED_ROWS} rows)"
            },
        ),
        stats=NameList(
            metadata={
                "description": "numeric fields to summarise per row, or for the whole answer without "
                "group_by (roundware's array: in X-Stats), e.g. `age`"
            }
        ),
        min_count=fields.Integer(
            validate=validate.Range(*MIN_COUNT_RANGE),
            metadata={
                "description": "k, from 3 to 1000000: hide counts of 1 to k-1 events, and every figure "
                "that would give one away (small-count suppression)"
            },
        ),
        **analytics_fields(dataset),
    )
    name = f"{dataset.name.capitalize()}QuerySchema"
    limits = {"default_page_size": default_page_size, "max_page_size": max_page_size}
    return type(name, (QuerySchemaBase,), {**declared, "dataset": dataset, **limits})


def analytics_fields(dataset: Dataset) -> dict:
    """`rate`, `distinct`, `top` and `compare` (engine/analytics.py), documented from the registry."""
    time_bounds = ", ".join(
        f"`{name}`" for name, flt in dataset.filters.items() if flt.field == dataset.time_field
    )
    return {
        "rate": NameList(
            metadata={
                "description": "`NAME:VALUE`, comma-separated: each row's share of events having the value, "
                "with its 95 % Wilson interval (`rate.NAME:VALUE`: numerator, denominator, value, ci95); "
                f"NAME one of {', '.join(f'`{n}`' for n in dataset.rate_groups)}"
            }
        ),
        "distinct": NameList(
            metadata={
                "description": "fields whose distinct values to count per row (`distinct.NAME`: count, "
                "exact; exact up to 1,000 values, an estimate past them): "
                + ", ".join(f"`{n}`" for n in dataset.distinct_fields)
            }
        ),
        "top": fields.String(
            metadata={
                "description": "`KEY:N` (a grouped key, N ≤ 1000): keep the N values with most events, "
                'merge the others into rows keyed `{"other": K}` (K values merged)'
            }
        ),
        "compare": fields.String(
            validate=validate.OneOf(["previous", "year"]),
            metadata={
                "description": "each row's count in the equal-length period just before (`previous`) or a "
                f'year earlier (`year`): `"previous": {{"count"}}` and `"change"`; needs {time_bounds} '
                "bounding both ends, no date group"
            },
        ),
    }


def group_by_schema(dataset: Dataset) -> dict:
    """OpenAPI schema of `group_by`: names, and in JSON the objects of ranges (with the ends
    an integer field's ranges may take) and admin levels."""
    objects = []
    admin = dataset.group_for_admin_level()
    for ranged in dataset.range_groups.values():
        ends = range_ends(dataset, ranged)
        if ends is None:
            end = {"type": "number", "nullable": True}
        else:
            end = {"type": "integer", "minimum": ends[0], "maximum": ends[1], "nullable": True}
        one = {
            "anyOf": [
                {"type": "array", "items": end, "minItems": 1, "maxItems": 2},
                {"type": "object", "properties": {"from": end, "to": end}, "additionalProperties": False},
            ]
        }
        ranges = {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}
        objects.append({"type": "object", "properties": {ranged.name: ranges}, "additionalProperties": False})
    if admin is not None:
        level = {"type": "integer", "minimum": 0, "maximum": admin.depth - 1}
        objects.append({"type": "object", "properties": {admin.name: level}, "additionalProperties": False})
    return {"type": "array", "items": {"anyOf": [{"type": "string"}, *objects]}}


def export_schema(dataset: Dataset) -> type[Schema]:
    """The export's parameters: the dataset's filters, `order_by` and `format` (no paging)."""
    declared = {name: flt.param_field() for name, flt in dataset.filters.items()}
    declared.update(
        order_by=NameList(metadata={"description": "e.g. `age,-gender`"}),
        format=fields.String(
            validate=validate.OneOf(["ndjson", "csv"]), metadata={"description": "ndjson (default) or csv"}
        ),
    )
    name = f"{dataset.name.capitalize()}ExportSchema"
    return type(name, (QuerySchemaBase,), {**declared, "dataset": dataset})


def load_pairs(schema: Schema, pairs: list[tuple[str, str]]) -> QueryParams:
    """Parameters given as `name=value` pairs, read exactly as the query string reads them
    (a repeated name adds values; commas separate values), for callers without a request
    such as `flask export`. Raises marshmallow's ValidationError."""
    data: dict = {}
    for name, value in pairs:
        spec = schema.fields.get(name)
        if spec is not None and getattr(spec, "is_multiple", False):
            data.setdefault(name, []).append(value)
        elif name in data:
            raise ValidationError({name: ["Given more than once; it takes one value."]})
        else:
            data[name] = value
    return schema.load(data)
