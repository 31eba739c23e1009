"""Calendar arithmetic of date buckets, on day ordinals (`date.toordinal()`): pure Python.

A bucket is a number: its first day's ordinal for days and weeks, `year * 12 + month - 1` for
months, the year for years. Elasticsearch's bucket keys are instants, and near the calendar's
ends a time zone can put their local day just outside years 1 to 9999, where `datetime` cannot
go; so days are counted as integers, and only labels are dates. A bucket whose label would fall
outside years 1 to 9999 has none.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = EPOCH.toordinal()
LAST_ORDINAL = date.max.toordinal()
MILLISECOND = timedelta(milliseconds=1)
DAY_MS = 86_400_000
#: The weekday (0 = Monday) a week starts on.
WEEK_STARTS = {"monday": 0, "sunday": 6}


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as Elasticsearch counts it: milliseconds since 1970 (rounded down)."""
    return (moment - EPOCH) // MILLISECOND


#: The last instant of year 9999 in UTC, in milliseconds.
LAST_MS = epoch_ms(datetime.max.replace(tzinfo=UTC))
#: Zone offsets are read no further out than these instants (see `local_day`).
_FIRST_SAFE_MS = epoch_ms(datetime(1, 1, 2, tzinfo=UTC))
_LAST_SAFE_MS = epoch_ms(datetime(9999, 12, 30, tzinfo=UTC))


def local_day(millis: int, zone: tzinfo) -> int:
    """The ordinal of the local day an instant falls on, even a day before year 1 or after
    year 9999 (an ordinal below 1 or above `LAST_ORDINAL`)."""
    if isinstance(zone, timezone):
        offset = zone.utcoffset(None)
    else:
        # No zone changes its offset in the first or last days of the calendar, so reading it
        # a day inside gives the offset of instants datetime cannot hold.
        inside = min(max(millis, _FIRST_SAFE_MS), _LAST_SAFE_MS)
        offset = (EPOCH + inside * MILLISECOND).astimezone(zone).utcoffset()
    return (millis + offset // MILLISECOND) // DAY_MS + EPOCH_ORDINAL


def bucket_of(day: int, interval: str, week_start: str = "monday") -> int | None:
    """The bucket holding a local day; None for a month or year outside years 1 to 9999."""
    if interval == "day":
        return day
    if interval == "week":
        # Ordinal 1, 0001-01-01, is a Monday: (day - 1) % 7 is the weekday.
        return day - (day - 1 - WEEK_STARTS[week_start]) % 7
    if not 1 <= day <= LAST_ORDINAL:
        return None
    when = date.fromordinal(day)
    return when.year if interval == "year" else when.year * 12 + when.month - 1


def label_of(bucket: int, interval: str) -> str | None:
    """`2024`, `2024-03`, `2024-W09` or `2024-03-02`; None outside years 1 to 9999.

    A week is named after the year of its fourth day, and numbered from the first week whose
    fourth day is in that year: the Thursday of an ISO week (ISO week-year), the Wednesday of
    a Sunday-to-Saturday week (epidemiological, MMWR weeks).
    """
    if interval == "year":
        return f"{bucket:04d}" if 1 <= bucket <= 9999 else None
    if interval == "month":
        year, month = divmod(bucket, 12)
        return f"{year:04d}-{month + 1:02d}" if 1 <= year <= 9999 else None
    day = bucket + 3 if interval == "week" else bucket
    if not 1 <= day <= LAST_ORDINAL:
        return None
    when = date.fromordinal(day)
    if interval == "day":
        return when.isoformat()
    return f"{when.year:04d}-W{(when.timetuple().tm_yday - 1) // 7 + 1:02d}"


def bucket_of_label(label: str, interval: str, week_start: str = "monday") -> int:
    """The bucket a label of `label_of` names."""
    if interval == "year":
        return int(label)
    if interval == "month":
        return int(label[:4]) * 12 + int(label[5:7]) - 1
    if interval == "day":
        return date.fromisoformat(label).toordinal()
    year, week = int(label[:4]), int(label[6:])
    first_of_year = date(year, 1, 1).toordinal()
    naming_weekday = (WEEK_STARTS[week_start] + 3) % 7
    first_naming_day = first_of_year + (naming_weekday - (first_of_year - 1)) % 7
    return first_naming_day + 7 * (week - 1) - 3
