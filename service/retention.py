"""Retention: which monthly indices are entirely older than an age (pure; `flask retention` acts).

An index `<prefix><dataset>-YYYY.MM` holds the events of that month, so it may go once the
month's end is older than the age: deleting it is one cheap index delete, never a
delete-by-query. Indices the pattern matches but that are not monthly are never touched.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

from .datasets.registry import Dataset

AGE = re.compile(r"^\s*(\d+)\s*(d|w|m|y)\s*$")
UNITS = "d (days), w (weeks), m (months), y (years)"


def cutoff(age: str, now: datetime) -> datetime:
    """`now` minus `age` (`90d`, `8w`, `6m`, `1y`); ValueError for anything else."""
    found = AGE.match(age.lower())
    if not found:
        raise ValueError(f"Not an age: {age!r}; use a number and one of {UNITS}, e.g. 6m.")
    number, unit = int(found[1]), found[2]
    try:
        if unit in ("d", "w"):
            return now - timedelta(days=number * (7 if unit == "w" else 1))
        months = number * (12 if unit == "y" else 1)
        year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
        day = min(now.day, calendar.monthrange(year, month + 1)[1])
        return now.replace(year=year, month=month + 1, day=day)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"The age {age!r} reaches before year 1.") from exc


def month_end(year: int, month: int) -> datetime:
    """The first instant after a month (UTC); for December 9999, which has none, its last."""
    if (year, month) == (9999, 12):
        return datetime.max.replace(tzinfo=UTC)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def month_span(year: int, month: int) -> tuple[datetime, datetime]:
    """The first instant of a month and the first after it (UTC)."""
    return datetime(year, month, 1, tzinfo=UTC), month_end(year, month)


def expired(dataset: Dataset, prefix: str, indices: list[str], before: datetime) -> list[str]:
    """The monthly indices whose whole month ended at or before `before`, oldest first."""
    old = []
    for index in sorted(indices):
        month = dataset.month_of_index(prefix, index)
        if month and month_end(*month) <= before:
            old.append(index)
    return old
