"""The `roundware` dataset: client activity events (Roundware's `/api/2/events/`, docs/api.md §5)."""

from __future__ import annotations

from datetime import datetime

from ..engine.dates import from_iso, iso_ms
from ..engine.fields import Coordinate, Date, Double, Keyword, Long, StoredText, Tags
from ..engine.filters import AllOf, Bound, DatePrefix, Match
from ..engine.groups import NumericRanges, Terms
from ..engine.registry import CLOCK_CORRECTION, Dataset, Endpoints, Field, date_groups
from ..ids import time_of


def prepare(event, now: datetime, new_id) -> dict:
    """The service sets `id` and `server_time` (millisecond precision, as stored).

    `server_time` is the id's own millisecond, so the monthly index of an event is known from
    its id alone (a get by id is one real-time get) and the two never disagree.
    """
    event_id = new_id()
    server_time = iso_ms(time_of(event_id))
    return {"id": event_id, "server_time": server_time}


def present(event: dict) -> dict:
    """Tags go back out as Roundware sends them: `"3,8"`."""
    if isinstance(event.get("tag_ids"), list):
        return {**event, "tag_ids": ",".join(str(tag) for tag in event["tag_ids"])}
    return event


def delay_seconds(event: dict) -> float | None:
    """Seconds from the client's clock (`client_time`) to the server's (`server_time`)."""
    client, server = event.get("client_time"), event.get("server_time")
    if not client or not server:
        return None
    return (from_iso(server) - from_iso(client)).total_seconds()


ROUNDWARE = Dataset(
    name="roundware",
    # Existing Roundware clients call these paths and read a bare array and a 201 event.
    endpoints=Endpoints(
        collection="/api/2/events/",
        item="/api/2/events/<int:event_id>/",
        export="/api/2/events/export",
        query="/api/2/events/query",
        bare_list=True,
        created_event=True,
    ),
    doc="Client activity events (the Roundware /api/2/events/ API).",
    id_field="id",
    tiebreak_field="id",
    time_field="server_time",
    default_order=("id",),
    prepare=prepare,
    present=present,
    partition_fields=("server_time",),
    time_of_id=lambda event_id: time_of(int(event_id)),
    fields=(
        Field("id", Long(), (Match("id"),), server_side=True, doc="unique, time-ordered, below 2^53"),
        Field(
            "session_id",
            Long(),
            (Match("session_id"),),
            (Terms("session_id"),),
            required=True,
            distinct=True,
        ),
        Field(
            "event_type",
            Keyword(),
            (Match("event_type"),),
            (Terms("event_type"),),
            required=True,
            rates=True,
        ),
        Field(
            "server_time",
            Date(),
            (
                DatePrefix(
                    "server_time", doc="a full or partial datetime: 2017-04-15 is that day (in time_zone)"
                ),
                Bound("server_time__gt", op="gt", doc="server_time > value (strict)"),
                Bound("server_time__lt", op="lt", doc="server_time < value (strict)"),
            ),
            date_groups("server_time"),
            server_side=True,
            doc="set by the service",
        ),
        Field(
            "client_time",
            Date(),
            (),
            date_groups("client_time"),
            client_clock=True,
            doc="as the client sent it",
        ),
        Field("latitude", Coordinate(limit=90.0), (Match("latitude"),), stats=True),
        Field("longitude", Coordinate(limit=180.0), (Match("longitude"),), stats=True),
        Field(
            "tag_ids",
            Tags(),
            (AllOf("tag_ids", doc="events carrying all of these tags"),),
            (Terms("tag_ids"),),
            distinct=True,
        ),
        Field("data", StoredText()),
        CLOCK_CORRECTION,
    ),
    derived_fields=(
        Field(
            "delay_seconds",
            Double(),
            groups=(NumericRanges("delay_seconds"),),
            server_side=True,
            stats=True,
            compute=delay_seconds,
            doc="server_time - client_time, in seconds (set at ingest when the client sent client_time)",
        ),
    ),
)
