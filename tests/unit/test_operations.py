"""The pure parts of operations: monthly index names, retention ages, event files, CLI filters."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from service import formats as files
from service.cli import retention
from service.datasets import CDX, ROUNDWARE
from service.engine.params import load_pairs, query_schema
from service.engine.values import NULL
from service.ids import compose, time_of

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("document", "index"),
    [
        ({"start_time": "2024-03-02T10:00:00Z", "created_at": "2026-01-01"}, "p-cdx-2024.03"),
        ({"start_time": "2024-03-01T01:00:00+02:00"}, "p-cdx-2024.02"),  # the UTC month
        ({"start_time": "2024-12-31T23:30:00"}, "p-cdx-2024.12"),  # no offset: UTC
        ({"start_time": None, "created_at": "2025-07-04"}, "p-cdx-2025.07"),
        ({"start_time": "2024-01-31T23:30-02:00"}, "p-cdx-2024.02"),
        ({"start_time": "2024-01-31T23:30:00.5-00:00"}, "p-cdx-2024.01"),
        ({"start_time": "2024-05-01T00:00:00+0000"}, "p-cdx-2024.05"),
        ({"start_time": "2024-05-01T00:00:00.123z"}, "p-cdx-2024.05"),
        # Corrected for the client's clock: the month of the time as the client wrote it.
        (
            {
                "start_time": "2024-02-01T00:00:30.000Z",
                "clock_correction": {"original": {"start_time": "2024-01-31T23:59:59-00:00"}},
            },
            "p-cdx-2024.01",
        ),
    ],
)
def test_cdx_events_land_in_the_month_of_their_own_time(document, index):
    assert CDX.index_for("p-", document) == index


def test_roundware_index_follows_the_id_time():
    event_id = compose(int(datetime(2026, 11, 30, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000), 3, 1)
    assert time_of(event_id) == datetime(2026, 11, 30, 23, 59, 59, 999000, tzinfo=UTC)
    prepared = ROUNDWARE.prepared({"session_id": 1, "event_type": "x"}, NOW, lambda: event_id)
    assert prepared["server_time"] == "2026-11-30T23:59:59.999Z"
    assert ROUNDWARE.index_for("p-", prepared) == "p-roundware-2026.11"
    assert ROUNDWARE.index_name("p-", ROUNDWARE.time_of_id(str(event_id))) == "p-roundware-2026.11"
    with pytest.raises(ValueError):
        time_of(2**60)


def test_month_of_index_only_reads_monthly_names():
    assert CDX.month_of_index("p-", "p-cdx-2024.03") == (2024, 3)
    for name in (
        "p-cdx",
        "p-cdx-legacy",
        "p-cdx-2024.3",
        "p-cdx-2024.03x",
        "q-cdx-2024.03",
        "p-roundware-2024.03",
    ):
        assert CDX.month_of_index("p-", name) is None, name


@pytest.mark.parametrize(
    ("age", "cutoff"),
    [
        ("10d", datetime(2026, 3, 21, 12, 0, tzinfo=UTC)),
        ("2w", datetime(2026, 3, 17, 12, 0, tzinfo=UTC)),
        ("1m", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),  # day clamped to the month's end
        ("13m", datetime(2025, 2, 28, 12, 0, tzinfo=UTC)),
        ("1y", datetime(2025, 3, 31, 12, 0, tzinfo=UTC)),
        (" 3M ", datetime(2025, 12, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_retention_cutoff(age, cutoff):
    assert retention.cutoff(age, NOW) == cutoff


@pytest.mark.parametrize("age", ["", "6", "m", "-1m", "6 months", "1.5y", "99999y", "999999d", "9999999999w"])
def test_retention_refuses_other_ages(age):
    with pytest.raises(ValueError):
        retention.cutoff(age, NOW)


def test_months_at_the_calendar_ends_expire_or_stay():
    names = ["p-cdx-0001.01", "p-cdx-9999.12"]
    assert retention.expired(CDX, "p-", names, NOW) == ["p-cdx-0001.01"]


def test_only_whole_months_older_than_the_cutoff_expire():
    names = ["p-cdx-2025.12", "p-cdx-2026.01", "p-cdx-2026.02", "p-cdx-legacy", "p-cdx", "p-cdx-2024.11"]
    before = datetime(2026, 2, 1, tzinfo=UTC)
    assert retention.expired(CDX, "p-", names, before) == ["p-cdx-2024.11", "p-cdx-2025.12", "p-cdx-2026.01"]
    assert retention.expired(CDX, "p-", names, before.replace(day=2)) == [
        "p-cdx-2024.11",
        "p-cdx-2025.12",
        "p-cdx-2026.01",
    ]
    assert retention.expired(CDX, "p-", names, datetime(2026, 1, 31, 23, tzinfo=UTC)) == [
        "p-cdx-2024.11",
        "p-cdx-2025.12",
    ]


def test_ndjson_lines_are_numbered_and_broken_ones_kept_in_place():
    lines = list(files.read_ndjson(['{"a": 1}\n', "\n", "{oops\n", '{"b": 2}\n']))
    assert [(line.number, line.item, bool(line.broken)) for line in lines] == [
        (1, {"a": 1}, False),
        (3, None, True),
        (4, {"b": 2}, False),
    ]
    (numbers, batch), (numbers2, batch2) = files.batches(lines, 2)
    assert numbers == [1, 3] and batch.items == [{"a": 1}, None] and list(batch.broken) == [1]
    assert numbers2 == [4] and batch2.items == [{"b": 2}] and batch2.broken == {}


def test_csv_cells_are_typed_by_the_registry_and_round_trip():
    events = [
        {
            "uuid": "17",  # a keyword stays text even when it looks like a number
            "age": 31,
            "device_id": "dev-a",
            "parent_locations": [1, 12],
            "results": [{"condition": "mtb", "result": "positive"}],
            "custom_fields": {"a": None, "b": "x,y"},
            "start_time": "2024-03-02T10:00:00Z",
            "gender": None,  # absent in CSV
        },
        {"uuid": "u2", "device_id": 17, "error_description": 'said "no"\nthen left'},
    ]
    stream = io.StringIO()
    assert files.write_events(stream, [events], "csv", CDX) == 2
    assert stream.getvalue().splitlines()[0] == ",".join(files.csv_columns(CDX))
    assert "pii" not in files.csv_columns(CDX)
    read = [line.item for line in files.read_csv(io.StringIO(stream.getvalue()), CDX)]
    assert read == [{k: v for k, v in event.items() if v is not None} for event in events]


def test_cli_filters_read_like_the_query_string():
    schema = query_schema(CDX)()
    params = load_pairs(schema, [("gender", "male,female"), ("gender", "null"), ("since", "2024-01-01")])
    assert params.filters == {"gender": ["male", "female", NULL], "since": "2024-01-01"}
    assert load_pairs(schema, [("order_by", "-age")]).order == (("age", True),)
