"""Sunday weeks around daylight-saving changes, on a real node: each local day, and so each
event, belongs to the Sunday-to-Saturday week of the zone's own calendar (MMWR labels), with
and without `fill=zero`."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import auth, empty_index

#: zone → (institution its events carry, the Sundays of its 2024 changes).
ZONES = {
    "America/New_York": (101, [date(2024, 3, 10), date(2024, 11, 3)]),
    "Europe/Berlin": (102, [date(2024, 3, 31), date(2024, 10, 27)]),
}
#: Local times on every day around a change: midnight's neighbours, the changes' own hours.
TIMES = [time(0, 0), time(0, 30), time(1, 30), time(2, 30), time(3, 30), time(12, 0), time(23, 30)]
AROUND = 8  # days either side of a change


def date_key(name: str) -> str:
    """The key a date grouping's rows carry: its field (`day(start_time)` → `start_time`)."""
    return name[name.index("(") + 1 : -1]


def mmwr(day: date) -> str:
    """Sunday-to-Saturday weeks, each the year of its Wednesday (the definition, spelled out)."""
    wednesday = day + timedelta(days=3 - (day.weekday() + 1) % 7)
    return f"{wednesday.year:04d}-W{(wednesday - date(wednesday.year, 1, 1)).days // 7 + 1:02d}"


def instants(zone: str, sunday: date) -> list[datetime]:
    tz = ZoneInfo(zone)
    days = [sunday + timedelta(days=n) for n in range(-AROUND, AROUND + 1)]
    # 02:30 of a spring change does not exist: it is read as 03:30, so one instant comes twice.
    return sorted({datetime.combine(day, at, tz).astimezone(UTC) for day in days for at in TIMES})


def events() -> list[dict]:
    made = []
    for zone, (institution, sundays) in ZONES.items():
        for sunday in sundays:
            for n, instant in enumerate(instants(zone, sunday)):
                made.append(
                    {
                        "uuid": f"dst-{institution}-{instant.isoformat()}",
                        "start_time": instant.isoformat().replace("+00:00", "Z"),
                        "institution_id": institution,
                        "age": n % 90,
                    }
                )
    return made


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    response = app.test_client().post(
        "/events?refresh=wait_for", json=events(), headers=auth(tokens["ingest"])
    )
    assert response.status_code == 201, response.json


def local_bound(zone: str, day: date, end: bool) -> str:
    at = time(23, 59, 59, 999000) if end else time(0)
    return quote(datetime.combine(day, at, ZoneInfo(zone)).isoformat(timespec="milliseconds"))


def weeks(client, tokens, zone: str, first: date, last: date, extra: str = "") -> list[tuple]:
    institution, _ = ZONES[zone]
    query = (
        f"group_by=week(start_time)&week_start=sunday&time_zone={zone}&institution={institution}"
        f"&since={local_bound(zone, first, False)}&until={local_bound(zone, last, True)}{extra}"
    )
    response = client.get(f"/events?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    return [(row[date_key("week(start_time)")], row["count"]) for row in response.json["events"]]


def expected_weeks(zone: str, first: date, last: date, fill: bool) -> list[tuple]:
    tz = ZoneInfo(zone)
    counts = Counter()
    for sunday in ZONES[zone][1]:
        for instant in instants(zone, sunday):
            local = instant.astimezone(tz).date()
            if first <= local <= last:
                counts[mmwr(local)] += 1
    if fill:
        for ordinal in range(first.toordinal(), last.toordinal() + 1):
            counts.setdefault(mmwr(date.fromordinal(ordinal)), 0)
    return sorted(counts.items())


CASES = [(zone, sunday) for zone, (_, sundays) in ZONES.items() for sunday in sundays]


@pytest.mark.parametrize(("zone", "sunday"), CASES)
def test_sunday_weeks_follow_the_zones_calendar(client, tokens, zone, sunday):
    first, last = sunday - timedelta(days=AROUND), sunday + timedelta(days=AROUND)
    expected = expected_weeks(zone, first, last, fill=False)
    assert len(expected) == 4 and sum(count for _, count in expected) == len(instants(zone, sunday))
    assert weeks(client, tokens, zone, first, last) == expected


@pytest.mark.parametrize(("zone", "sunday"), CASES)
def test_sunday_weeks_zero_filled_around_a_change(client, tokens, zone, sunday):
    first, last = sunday - timedelta(days=3 * AROUND), sunday + timedelta(days=4 * AROUND)
    expected = expected_weeks(zone, first, last, fill=True)
    assert [count for _, count in expected].count(0) >= 4
    assert weeks(client, tokens, zone, first, last, "&fill=zero") == expected


def test_sunday_weeks_of_a_zone_carry_exact_statistics(client, tokens):
    zone = "Europe/Berlin"
    institution = ZONES[zone][0]
    tz = ZoneInfo(zone)
    ages: dict[str, list[int]] = {}
    for event in events():
        if event["institution_id"] == institution:
            local = datetime.fromisoformat(event["start_time"]).astimezone(tz).date()
            ages.setdefault(mmwr(local), []).append(event["age"])
    query = (
        f"group_by=week(start_time)&week_start=sunday&time_zone={zone}&institution={institution}&stats=age"
    )
    response = client.get(f"/events?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    for row in response.json["events"]:
        stats, expected = row["stats"]["age"], ages[row[date_key("week(start_time)")]]
        assert (row["count"], stats["count"]) == (len(expected), len(expected))
        assert (stats["min"], stats["max"], stats["sum"]) == (min(expected), max(expected), sum(expected))


def test_sunday_weeks_of_a_named_zone_come_all_at_once(client, tokens):
    query = "group_by=week(start_time)&week_start=sunday&page_size=2"
    named = client.get(f"/events?{query}&time_zone=America/New_York", headers=auth(tokens["query"]))
    assert named.status_code == 400
    assert "page_size" in named.json["error"]["details"]["fields"]
    for zone in ("UTC", "-05:00"):  # days of 24 hours: one bucket a week, paged by cursor
        paged = client.get(f"/events?{query}&time_zone={zone}", headers=auth(tokens["query"]))
        assert paged.status_code == 200 and paged.json["next_cursor"], paged.json
