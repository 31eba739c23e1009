"""Calendar arithmetic of date buckets (service/engine/dates.py), checked against the standard
library wherever it reaches, and beyond it at the calendar's ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from service.datasets.cdx import CDX
from service.engine import shape
from service.engine.dates import (
    LAST_ORDINAL,
    bucket_of,
    bucket_of_label,
    epoch_ms,
    label_of,
    local_day,
)
from service.engine.groups import MAX_FILLED_ROWS, ParameterError
from service.engine.params import query_schema


def days(first: date, last: date):
    for ordinal in range(first.toordinal(), last.toordinal() + 1):
        yield date.fromordinal(ordinal)


SPANS = [
    (date(1, 1, 1), date(2, 2, 1)),
    (date(2014, 12, 1), date(2017, 2, 1)),
    (date(9998, 11, 1), date(9999, 12, 31)),
]


def mmwr(day: date) -> str:
    """Sunday-to-Saturday weeks, each the year of its Wednesday (the definition, spelled out)."""
    wednesday = day + timedelta(days=3 - (day.weekday() + 1) % 7)
    return f"{wednesday.year:04d}-W{(wednesday - date(wednesday.year, 1, 1)).days // 7 + 1:02d}"


@pytest.mark.parametrize(("first", "last"), SPANS)
def test_labels_agree_with_the_standard_library_and_read_back(first, last):
    """Also where a week starts in year 0 (Sunday 0000-12-31) or ends in year 10000."""
    for day in days(first, last):
        ordinal = day.toordinal()
        expected = {
            ("day", "monday"): day.isoformat(),
            ("month", "monday"): f"{day.year:04d}-{day.month:02d}",
            ("year", "monday"): f"{day.year:04d}",
            ("week", "monday"): "{:04d}-W{:02d}".format(*day.isocalendar()[:2]),
            ("week", "sunday"): mmwr(day),
        }
        for (interval, week_start), label in expected.items():
            bucket = bucket_of(ordinal, interval, week_start)
            assert label_of(bucket, interval) == label, (day, interval, week_start)
            assert bucket_of_label(label, interval, week_start) == bucket


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2024, 3, 10), "2024-W11"),  # a Sunday starts its week
        (date(2024, 3, 9), "2024-W10"),
        (date(2017, 1, 1), "2017-W01"),
        (date(2016, 1, 2), "2015-W52"),
        (date(2015, 1, 1), "2014-W53"),  # MMWR year 2014 had 53 weeks
        (date(1, 1, 1), "0001-W01"),  # its Sunday is 0000-12-31
        (date(9999, 12, 31), "9999-W52"),
    ],
)
def test_sunday_weeks_are_mmwr_weeks(day, label):
    assert label_of(bucket_of(day.toordinal(), "week", "sunday"), "week") == label


@pytest.mark.parametrize(
    ("instant", "zone", "ordinal"),
    [
        ("0001-01-01T02:00:00+00:00", timezone(timedelta(hours=-5)), 0),
        ("0001-01-01T02:00:00+00:00", ZoneInfo("America/New_York"), 0),  # LMT, -4:56
        ("0001-01-01T02:00:00+00:00", timezone(timedelta(hours=5)), 1),
        ("9999-12-31T22:00:00+00:00", timezone(timedelta(hours=5)), LAST_ORDINAL + 1),
        ("9999-12-31T22:00:00+00:00", ZoneInfo("Asia/Tokyo"), LAST_ORDINAL + 1),
        ("9999-12-31T23:59:59.999+00:00", UTC, LAST_ORDINAL),
        ("2024-03-10T04:30:00+00:00", ZoneInfo("America/New_York"), date(2024, 3, 9).toordinal()),
        ("2024-03-10T05:30:00+00:00", ZoneInfo("America/New_York"), date(2024, 3, 10).toordinal()),
        ("1969-12-31T23:59:59.999+00:00", UTC, date(1969, 12, 31).toordinal()),
    ],
)
def test_local_day_reaches_past_the_calendar(instant, zone, ordinal):
    assert local_day(epoch_ms(datetime.fromisoformat(instant)), zone) == ordinal


def test_buckets_beyond_the_calendar_have_no_label():
    assert label_of(0, "day") is None and label_of(LAST_ORDINAL + 1, "day") is None
    assert bucket_of(0, "month") is None and bucket_of(LAST_ORDINAL + 1, "year") is None
    assert label_of(bucket_of(0, "week", "monday"), "week") is None  # Thursday 0000-12-28
    assert label_of(bucket_of(LAST_ORDINAL + 1, "week", "sunday"), "week") == "9999-W52"
    assert label_of(10_000, "year") is None and label_of(10_000 * 12, "month") is None


def fill(since: str, until: str):
    params = query_schema(CDX)().load(
        {"group_by": "test_type,day(start_time)", "fill": "zero", "since": since, "until": until}
    )
    return shape.rows(params, shape.Tally(), shape.date_bounds(CDX, params))


def test_zero_fill_makes_up_to_its_row_limit_and_refuses_one_more():
    first = date(2000, 1, 1)
    last = first + timedelta(days=MAX_FILLED_ROWS // 2 - 1)  # two test types: the limit exactly
    assert len(fill(first.isoformat(), last.isoformat())) == MAX_FILLED_ROWS
    with pytest.raises(ParameterError) as error:
        fill(first.isoformat(), (last + timedelta(days=1)).isoformat())
    assert error.value.parameter == "fill"
