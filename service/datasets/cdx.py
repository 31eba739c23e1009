"""The `cdx` dataset: diagnostic test events from lab devices (docs/api.md §4)."""

import uuid
from datetime import datetime

from ..engine.dates import from_iso
from ..engine.fields import (
    Date,
    Double,
    Identifier,
    Integer,
    Keyword,
    KeywordOrInteger,
    Long,
    LongList,
    Nested,
    StoredObject,
)
from ..engine.filters import Bound, Hierarchy, Match
from ..engine.groups import AdminLevel, AgeRanges, EntryKey, NumericRanges, Terms
from ..engine.registry import CLOCK_CORRECTION, Dataset, Endpoints, Field, date_groups

RESULT_KEYS = ("condition", "result")
#: Declared values: `fill=zero` shows a row for each even when no event has it.
TEST_TYPES = ("qc", "specimen")
RESULTS = ("positive", "negative")


def prepare(event, now: datetime, new_id) -> dict:
    """A uuid when the device sent none, and `created_at` = time of ingest when absent."""
    return {
        "uuid": event.get("uuid") or str(uuid.uuid4()),
        "created_at": event.get("created_at") or now.isoformat(timespec="milliseconds"),
    }


def report_delay_hours(event: dict) -> float | None:
    """Hours from the test (`start_time`) to its report (`created_at`); None without both."""
    start, created = event.get("start_time"), event.get("created_at")
    if not start or not created:
        return None
    return (from_iso(created) - from_iso(start)).total_seconds() / 3600


CDX = Dataset(
    name="cdx",
    endpoints=Endpoints.under("/events", id_label="uuid"),
    doc="Diagnostic test events (the CDX Query Events API).",
    id_field="uuid",
    tiebreak_field="uuid",
    time_field="start_time",
    institution_field="institution_id",
    default_order=("-start_time",),
    prepare=prepare,
    # created_at is set at ingest when absent, so every event has one of the two.
    partition_fields=("start_time", "created_at"),
    receipt_field="created_at",
    fields=(
        Field(
            "uuid",
            Identifier(),
            (Match("uuid", doc="event uuid"),),
            doc="1 to 512 bytes (Elasticsearch's limit on an id); generated when absent",
        ),
        Field(
            "created_at",
            Date(),
            (
                Bound("created_at_since", op="gte", doc="created_at >= value"),
                Bound("created_at_until", op="lte", doc="created_at <= value"),
            ),
            date_groups("created_at"),
            doc="defaults to the time of ingest",
        ),
        Field(
            "start_time",
            Date(),
            (
                Bound("since", op="gte", doc="start_time >= value"),
                Bound("until", op="lte", doc="start_time <= value"),
            ),
            date_groups("start_time"),
            client_clock=True,
        ),
        Field(
            "assay_name",
            Keyword(),
            (Match("assay_name", wildcard=True, doc="`*` is a wildcard: GX1*"),),
            (Terms("assay_name"),),
            rates=True,
        ),
        Field(
            "age",
            Integer(minimum=0),
            (
                Match("age"),
                Bound("min_age", op="gte", doc="age >= value"),
                Bound("max_age", op="lte", doc="age <= value"),
            ),
            (AgeRanges("age"),),
            stats=True,
        ),
        Field("gender", Keyword(), (Match("gender"),), (Terms("gender"),), rates=True),
        Field(
            "device_id", KeywordOrInteger(), (Match("device"),), (Terms("device"),), rates=True, distinct=True
        ),
        Field("device_serial_number", Keyword()),
        Field("laboratory_id", Long(), (Match("laboratory"),), (Terms("laboratory"),), distinct=True),
        Field("institution_id", Long(), (Match("institution"),), (Terms("institution"),), distinct=True),
        Field(
            "location_id",
            Long(),
            (Hierarchy("location", ancestors="parent_locations", doc="the place or any descendant"),),
            (Terms("location"),),
            distinct=True,
        ),
        Field("parent_locations", LongList(), doc="ancestors of location_id, root first"),
        Field(
            "system_user",
            Keyword(),
            (Match("system_user"),),
            (Terms("system_user"),),
            rates=True,
            distinct=True,
        ),
        Field(
            "test_type",
            Keyword(),
            (Match("test_type"),),
            (Terms("test_type", values=TEST_TYPES),),
            rates=True,
        ),
        Field("error_code", Integer(), (Match("error_code"),), (Terms("error_code"),)),
        Field("error_description", Keyword()),
        Field(
            "results",
            Nested(keys=RESULT_KEYS),
            (Match("condition"), Match("result")),
            (
                EntryKey("condition", entry_keys=RESULT_KEYS),
                EntryKey("result", entry_keys=RESULT_KEYS, values=RESULTS),
            ),
            rates=True,
            doc="given together, condition and result must hold on the same entry",
        ),
        Field("pii", StoredObject(), pii=True, doc="stored, never returned"),
        Field("custom_fields", StoredObject(), doc="stored and returned as given, not searchable"),
        CLOCK_CORRECTION,
    ),
    extra_groups=(
        AdminLevel("admin_level", field="location_id", key="location", ancestors="parent_locations"),
    ),
    derived_fields=(
        Field(
            "report_delay_hours",
            Double(),
            groups=(NumericRanges("report_delay_hours"),),
            server_side=True,
            stats=True,
            compute=report_delay_hours,
            doc="created_at - start_time, in hours (set at ingest when both are known)",
        ),
    ),
)
