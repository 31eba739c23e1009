"""Surveillance answers on cdx, on a real node: rates with Wilson intervals, distinct counts,
top N with the rest merged, period comparison and the reporting delay, each checked against
values computed here from the ingested events, alone and with filters, time_zone, cursor
pages and min_count."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import auth, empty_index

CONDITIONS = ["mtb", "rif", "hiv", "flu", "covid", "hcv", "hbv", "malaria"]
RESULTS = ["positive", "negative", "negative", "indeterminate"]
Z = 1.959963984540054


def make_events(count: int = 360) -> list[dict]:
    """Events over March and April 2024 (two monthly indices), several entries each."""
    rng = random.Random(20240301)
    events = []
    for i in range(count):
        start = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 61 * 24 * 60))
        created = start + timedelta(minutes=rng.choice([20, 300, 1300, 1800, 3000, 4800, 6000, 12000]))
        event = {
            "uuid": f"a{i:04d}",
            "start_time": start.isoformat().replace("+00:00", "Z"),
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "age": rng.randrange(0, 90),
            "institution_id": rng.choice([1, 2, 3]),
            # Skewed so that laboratories rank clearly, with ties further down.
            "laboratory_id": min(rng.randrange(1, 30), rng.randrange(1, 30)),
            "device_id": rng.choice([f"dev-{rng.randrange(60)}", rng.randrange(1000, 1040)]),
            "location_id": rng.randrange(100, 140),
            "system_user": f"user-{rng.randrange(12)}",
            "test_type": rng.choice(["qc", "specimen", "specimen"]),
            "results": [],
        }
        for condition in rng.sample(CONDITIONS, rng.choice([0, 1, 1, 1, 2, 3])):
            entry = {"condition": condition}
            if rng.random() < 0.9:
                entry["result"] = rng.choice(RESULTS)
            event["results"].append(entry)
        gender = rng.choice(["female", "male", "male", None])
        if gender:
            event["gender"] = gender
        if i % 17 == 0:
            del event["laboratory_id"]
        events.append(event)
    return events


def earlier_events(count: int = 60) -> list[dict]:
    """A year before: March and April 2023, for compare=year."""
    rng = random.Random(2023)
    events = []
    for i in range(count):
        start = datetime(2023, 3, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 61 * 24 * 60))
        event = {
            "uuid": f"y{i:04d}",
            "start_time": start.isoformat().replace("+00:00", "Z"),
            "created_at": (start + timedelta(hours=rng.randrange(1, 100))).isoformat(),
            "institution_id": rng.choice([1, 2, 3]),
            "system_user": f"user-{rng.randrange(14)}",
            "results": [{"condition": rng.choice(CONDITIONS), "result": rng.choice(RESULTS)}],
            "test_type": "specimen",
        }
        if rng.random() < 0.7:
            event["gender"] = rng.choice(["female", "male"])
        events.append(event)
    return events


#: More devices in one institution than distinct counts are exact for.
MANY = [
    {
        "uuid": f"m{i:04d}",
        "institution_id": 9,
        "device_id": f"many-{i}",
        "start_time": "2024-05-02T10:00:00Z",
        "created_at": "2024-05-02T12:00:00Z",
        "results": [],
    }
    for i in range(1100)
]
#: Reported without a test time: no reporting delay.
UNTIMED = [
    {"uuid": f"u{i}", "institution_id": 1, "created_at": "2024-03-05T00:00:00Z", "results": []}
    for i in range(5)
]

EVENTS = make_events() + earlier_events() + UNTIMED + MANY


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    client = app.test_client()
    for batch in (EVENTS[:1000], EVENTS[1000:]):
        response = client.post("/events?refresh=wait_for", json=batch, headers=auth(tokens["ingest"]))
        assert response.status_code == 201, response.json


def get(client, tokens, query: str, token="query") -> dict:
    response = client.get(f"/events?{query}", headers=auth(tokens[token]))
    assert response.status_code == 200, response.json
    return response.json


def post(client, tokens, body: dict, token="query") -> dict:
    response = client.post("/events/query", json=body, headers=auth(tokens[token]))
    assert response.status_code == 200, response.json
    return response.json


def refused(client, tokens, query: str) -> dict:
    response = client.get(f"/events?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 400, response.json
    return response.json["error"]["details"]["fields"]


def all_pages(client, tokens, query: str, size: int) -> list[dict]:
    rows, cursor = [], None
    while True:
        page = get(client, tokens, f"{query}&page_size={size}" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["events"]) <= size
        rows += page["events"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def wilson_reference(x: int, n: int) -> list[float]:
    """The Wilson interval in its other textbook form: (2np + z² ± z√(z² + 4np(1 - p))) / 2(n + z²)."""
    p = x / n
    root = Z * math.sqrt(Z * Z + 4 * n * p * (1 - p))
    return [(2 * n * p + Z * Z - root) / (2 * (n + Z * Z)), (2 * n * p + Z * Z + root) / (2 * (n + Z * Z))]


def check_rate(found: dict, numerator: int, denominator: int) -> None:
    assert (found["numerator"], found["denominator"]) == (numerator, denominator)
    if not denominator:
        assert found["value"] is None and found["ci95"] is None
        return
    assert found["value"] == pytest.approx(numerator / denominator, abs=1e-12)
    low, high = wilson_reference(numerator, denominator)
    assert found["ci95"][0] == pytest.approx(max(0.0, low), abs=1e-9)
    assert found["ci95"][1] == pytest.approx(min(1.0, high), abs=1e-9)


def has_result(event: dict, value: str, condition=None) -> bool:
    return any(
        entry.get("result") == value and (condition is None or entry.get("condition") in condition)
        for entry in event["results"]
    )


# -- rates ----------------------------------------------------------------------------------


def test_rates_per_row_with_wilson_intervals(client, tokens):
    rows = get(client, tokens, "group_by=gender&rate=result:positive,test_type:qc")["events"]
    assert [row["gender"] for row in rows] == [None, "female", "male"]
    for row in rows:
        mine = [e for e in EVENTS if e.get("gender") == row["gender"]]
        assert row["count"] == len(mine)
        check_rate(row["rate"]["result:positive"], sum(has_result(e, "positive") for e in mine), len(mine))
        check_rate(row["rate"]["test_type:qc"], sum(e.get("test_type") == "qc" for e in mine), len(mine))
        assert list(row["rate"]) == ["result:positive", "test_type:qc"]


def test_rate_of_the_whole_answer_beside_the_total(client, tokens):
    whole = get(client, tokens, "page_size=0&rate=result:positive&institution=2")
    mine = [e for e in EVENTS if e["institution_id"] == 2]
    assert whole["total_count"] == len(mine)
    check_rate(whole["rate"]["result:positive"], sum(has_result(e, "positive") for e in mine), len(mine))
    listed = get(client, tokens, "page_size=3&rate=gender:female&institution=2")
    assert len(listed["events"]) == 3
    check_rate(listed["rate"]["gender:female"], sum(e.get("gender") == "female" for e in mine), len(mine))


def test_a_condition_filter_holds_on_the_rate_entry(client, tokens):
    """condition=mtb&rate=result:positive is MTB positivity: the positive entry is the MTB one."""
    rows = get(client, tokens, "condition=mtb,rif&group_by=institution&rate=result:positive")["events"]
    for row in rows:
        mine = [
            e
            for e in EVENTS
            if e["institution_id"] == row["institution"]
            and any(entry["condition"] in ("mtb", "rif") for entry in e["results"])
        ]
        assert row["count"] == len(mine)
        positive = sum(has_result(e, "positive", ("mtb", "rif")) for e in mine)
        assert positive < sum(has_result(e, "positive") for e in mine)  # other entries are left out
        check_rate(row["rate"]["result:positive"], positive, len(mine))


def test_rows_by_condition_count_the_result_of_that_conditions_entry(client, tokens):
    rows = get(client, tokens, "group_by=condition&rate=result:positive")["events"]
    by_condition = {row["condition"]: row for row in rows}
    for condition in CONDITIONS:
        mine = [e for e in EVENTS if any(entry["condition"] == condition for entry in e["results"])]
        row = by_condition[condition]
        assert row["count"] == len(mine)
        check_rate(
            row["rate"]["result:positive"],
            sum(has_result(e, "positive", (condition,)) for e in mine),
            len(mine),
        )
    empty = by_condition[None]  # events without entries
    check_rate(empty["rate"]["result:positive"], 0, sum(not e["results"] for e in EVENTS))


def test_rows_by_whole_entries_and_a_rate_of_the_other_key(client, tokens):
    rows = get(client, tokens, "group_by=condition,result&rate=condition:hiv,result:negative")["events"]
    for row in rows:
        if row["condition"] is None:
            continue
        mine = [
            e
            for e in EVENTS
            if any(
                x["condition"] == row["condition"] and x.get("result") == row["result"] for x in e["results"]
            )
        ]
        assert row["count"] == len(mine), row
        # condition:hiv in a row keyed by a result: events with an (hiv, that result) entry.
        hiv = sum(
            any(x["condition"] == "hiv" and x.get("result") == row["result"] for x in e["results"])
            for e in mine
        )
        check_rate(row["rate"]["condition:hiv"], hiv, len(mine))
        negative = sum(has_result(e, "negative", (row["condition"],)) for e in mine)
        check_rate(row["rate"]["result:negative"], negative, len(mine))


def test_rates_in_local_days_and_cursor_pages(client, tokens):
    query = "group_by=day(start_time),gender&time_zone=America/Bogota&rate=result:positive&institution=1"
    whole = get(client, tokens, query)["events"]
    zone = ZoneInfo("America/Bogota")
    expected = defaultdict(list)
    for e in EVENTS:
        if e["institution_id"] == 1:
            start = e.get("start_time")
            day = start and datetime.fromisoformat(start).astimezone(zone).date().isoformat()
            expected[(day, e.get("gender"))].append(e)
    assert {(row["start_time"], row["gender"]) for row in whole} == set(expected)
    for row in whole:
        mine = expected[(row["start_time"], row["gender"])]
        check_rate(row["rate"]["result:positive"], sum(has_result(e, "positive") for e in mine), len(mine))
    assert all_pages(client, tokens, query, 7) == whole


def test_rates_under_min_count(client, tokens):
    k = 12
    result = get(
        client, tokens, f"group_by=system_user,gender&rate=result:positive,test_type:qc&min_count={k}"
    )
    assert result["suppressed"]["rows"] > 0
    small_numerators = small_complements = 0
    for row in result["events"]:
        mine = [
            e
            for e in EVENTS
            if e.get("system_user") == row["system_user"] and e.get("gender") == row["gender"]
        ]
        for label, numerator in (
            ("result:positive", sum(has_result(e, "positive") for e in mine)),
            ("test_type:qc", sum(e.get("test_type") == "qc" for e in mine)),
        ):
            found = row["rate"][label]
            if len(mine) < k:
                assert row["count"] is None
                assert found == {"numerator": None, "denominator": None, "value": None, "ci95": None}
            elif 0 < numerator < k or 0 < len(mine) - numerator < k:  # having or lacking: small
                small_numerators += 0 < numerator < k
                small_complements += 0 < len(mine) - numerator < k
                assert found == {"numerator": None, "denominator": len(mine), "value": None, "ci95": None}
            else:
                check_rate(found, numerator, len(mine))
    assert small_numerators > 0 and small_complements > 0
    whole = get(client, tokens, "page_size=0&rate=test_type:qc&min_count=500&institution=1")
    assert whole["total_count"] is None and whole["rate"]["test_type:qc"]["value"] is None


@pytest.mark.parametrize(
    "query",
    [
        "group_by=gender&rate=age:31",  # not a keyword field
        "group_by=gender&rate=laboratory:3",
        "group_by=gender&rate=result",  # no value
        "group_by=gender&rate=result:",
        "group_by=gender&rate=nothing:x",
        "group_by=gender&rate=result:positive&page_size=0",  # no rows to rate
    ],
)
def test_a_rate_that_cannot_apply_is_a_400_naming_it(client, tokens, query):
    assert list(refused(client, tokens, query)) == ["rate"]


def test_rates_in_a_json_body(client, tokens):
    body = {"group_by": ["gender"], "rate": ["result:positive", "gender:female"], "institution": [3]}
    rows = post(client, tokens, body)["events"]
    assert (
        rows
        == get(client, tokens, "group_by=gender&rate=result:positive,gender:female&institution=3")["events"]
    )


# -- distinct counts ------------------------------------------------------------------------

DISTINCT = {
    "device": "device_id",
    "laboratory": "laboratory_id",
    "location": "location_id",
    "institution": "institution_id",
    "system_user": "system_user",
}


def distinct_of(events: list[dict], name: str) -> int:
    return len({str(e[DISTINCT[name]]) for e in events if e.get(DISTINCT[name]) is not None})


def test_distinct_counts_per_row_against_sets(client, tokens):
    names = ",".join(DISTINCT)
    rows = get(client, tokens, f"group_by=test_type,gender&distinct={names}")["events"]
    assert rows
    for row in rows:
        mine = [
            e for e in EVENTS if e.get("test_type") == row["test_type"] and e.get("gender") == row["gender"]
        ]
        assert row["count"] == len(mine)
        for name in DISTINCT:
            expected = distinct_of(mine, name)
            if expected <= 1000:
                assert row["distinct"][name] == {"count": expected, "exact": True}
            else:  # the devices of institution 9: an estimate
                assert row["distinct"][name]["exact"] is False
                assert row["distinct"][name]["count"] == pytest.approx(expected, rel=0.02)


def test_distinct_of_the_whole_answer_and_past_the_exact_limit(client, tokens):
    whole = get(client, tokens, "page_size=0&distinct=device,system_user&institution=2")
    mine = [e for e in EVENTS if e["institution_id"] == 2]
    assert whole["distinct"] == {
        "device": {"count": distinct_of(mine, "device"), "exact": True},
        "system_user": {"count": distinct_of(mine, "system_user"), "exact": True},
    }
    # 1,100 devices in institution 9: past the 1,000 counted exactly, an estimate.
    many = get(client, tokens, "group_by=institution&distinct=device&institution=9,3")["events"]
    assert many[1]["institution"] == 9 and many[1]["distinct"]["device"]["exact"] is False
    assert abs(many[1]["distinct"]["device"]["count"] - 1100) <= 22
    small = [e for e in EVENTS if e["institution_id"] == 3]
    assert many[0]["distinct"]["device"] == {"count": distinct_of(small, "device"), "exact": True}
    assert (
        get(client, tokens, "page_size=0&distinct=device&institution=9")["distinct"]["device"]["exact"]
        is False
    )


def test_distinct_with_local_weeks_cursor_pages_and_min_count(client, tokens):
    query = (
        "group_by=week(start_time),institution&time_zone=Asia/Kolkata&distinct=device,location"
        "&since=2024-03-01"
    )
    whole = get(client, tokens, query)["events"]
    zone = ZoneInfo("Asia/Kolkata")
    expected = defaultdict(list)
    for e in EVENTS:
        start = e.get("start_time")
        if start and start >= "2024-03-01":
            year, week, _ = datetime.fromisoformat(start).astimezone(zone).isocalendar()
            expected[(f"{year}-W{week:02d}", e["institution_id"])].append(e)
    assert {(row["start_time"], row["institution"]) for row in whole} == set(expected)
    for row in whole:
        mine = expected[(row["start_time"], row["institution"])]
        assert row["distinct"]["device"]["count"] == distinct_of(mine, "device")
        assert row["distinct"]["location"]["count"] == distinct_of(mine, "location")
    assert all_pages(client, tokens, query, 4) == whole
    k = 15
    hidden = get(client, tokens, f"{query}&min_count={k}")
    for shown, row in zip(hidden["events"], whole, strict=True):
        if row["count"] < k:
            assert shown["count"] is None and shown["distinct"] == {"device": None, "location": None}
        else:
            assert shown == row
    assert hidden["suppressed"]["rows"] == sum(row["count"] < k for row in whole) > 0


@pytest.mark.parametrize(
    "query",
    [
        "group_by=gender&distinct=gender",
        "group_by=gender&distinct=results",
        "group_by=gender&distinct=device&page_size=0",
    ],
)
def test_a_distinct_count_that_cannot_apply_is_a_400_naming_it(client, tokens, query):
    assert list(refused(client, tokens, query)) == ["distinct"]


# -- top N with the rest merged -------------------------------------------------------------


def ranked(values: Counter, size: int) -> tuple[list, list]:
    """(kept, merged): the `size` values with most events, ties by key."""
    order = sorted(values, key=lambda value: (-values[value], value))
    return order[:size], order[size:]


def test_top_laboratories_with_the_rest_merged(client, tokens):
    labs = Counter(e["laboratory_id"] for e in EVENTS if e.get("laboratory_id") is not None)
    kept, merged = ranked(labs, 5)
    rows = get(client, tokens, "group_by=laboratory&top=laboratory:5")["events"]
    lacking = sum(e.get("laboratory_id") is None for e in EVENTS)
    assert rows == [
        {"laboratory": None, "count": lacking},
        *[{"laboratory": lab, "count": labs[lab]} for lab in sorted(kept)],
        {"laboratory": {"other": len(merged)}, "count": sum(labs[lab] for lab in merged)},
    ]
    # Against a sort of the full rows.
    full = get(client, tokens, "group_by=laboratory")["events"]
    by_count = sorted(
        (row for row in full if row["laboratory"] is not None), key=lambda r: (-r["count"], r["laboratory"])
    )
    assert sorted(row["laboratory"] for row in by_count[:5]) == sorted(kept)


def test_top_crossed_with_other_keys_rates_distinct_and_stats(client, tokens):
    query = (
        "group_by=laboratory,gender&top=laboratory:4&rate=result:positive&distinct=device&stats=age"
        "&institution=1,2,3"
    )
    rows = get(client, tokens, query)["events"]
    mine = [e for e in EVENTS if e["institution_id"] in (1, 2, 3)]
    kept, merged = ranked(Counter(e["laboratory_id"] for e in mine if e.get("laboratory_id") is not None), 4)
    expected = defaultdict(list)
    for e in mine:
        lab = e.get("laboratory_id")
        expected[(lab if lab is None or lab in kept else "other", e.get("gender"))].append(e)
    assert len(rows) == len(expected)
    for row in rows:
        lab = row["laboratory"]
        if isinstance(lab, dict):
            assert lab == {"other": len(merged)}
            lab = "other"
        group = expected[(lab, row["gender"])]
        assert row["count"] == len(group), row
        check_rate(row["rate"]["result:positive"], sum(has_result(e, "positive") for e in group), len(group))
        assert row["distinct"]["device"] == {"count": distinct_of(group, "device"), "exact": True}
        ages = [e["age"] for e in group if "age" in e]
        assert (row["stats"]["age"]["count"], row["stats"]["age"]["min"]) == (
            len(ages),
            min(ages, default=None),
        )
    assert rows[-1]["laboratory"] == {"other": len(merged)}  # merged rows come last
    assert all_pages(client, tokens, query, 3) == rows


def test_top_of_a_multi_valued_key_counts_events_once(client, tokens):
    """An event with two merged conditions counts once in the `other` row (and may also count
    in a kept condition's row, as it does in every row of its conditions)."""
    conditions = Counter(
        x["condition"] for e in EVENTS for x in {x["condition"]: x for x in e["results"]}.values()
    )
    kept, merged = ranked(conditions, 3)
    rows = get(client, tokens, "group_by=condition&top=condition:3")["events"]
    other = sum(any(x["condition"] in merged for x in e["results"]) for e in EVENTS)
    assert rows == [
        {"condition": None, "count": sum(not e["results"] for e in EVENTS)},
        *[{"condition": c, "count": conditions[c]} for c in sorted(kept)],
        {"condition": {"other": len(merged)}, "count": other},
    ]
    assert other < sum(conditions[c] for c in merged)  # the sum would count some events twice


def test_top_over_whole_entries_keeps_each_row_to_one_entry(client, tokens):
    rows = get(client, tokens, "group_by=condition,result&top=condition:2&rate=result:positive")["events"]
    conditions = Counter(
        x["condition"] for e in EVENTS for x in {x["condition"]: x for x in e["results"]}.values()
    )
    kept, merged = ranked(conditions, 2)
    for row in rows:
        condition, result = row["condition"], row["result"]
        group = (
            set(kept if condition is None else [condition])
            if not isinstance(condition, dict)
            else set(merged)
        )
        if condition is None:
            continue
        mine = [
            e
            for e in EVENTS
            if any(x["condition"] in group and x.get("result") == result for x in e["results"])
        ]
        assert row["count"] == len(mine), row
        positive = sum(
            any(x["condition"] in group and x.get("result") == "positive" for x in e["results"]) for e in mine
        )
        check_rate(row["rate"]["result:positive"], positive, len(mine))
    assert {row["condition"]["other"] for row in rows if isinstance(row["condition"], dict)} == {len(merged)}


def test_top_rows_under_min_count_and_with_filters(client, tokens):
    k = 30
    # until=2024-04-20: the whole of 20 April, as Elasticsearch reads it.
    query = f"group_by=laboratory&top=laboratory:6&min_count={k}&since=2024-03-10&until=2024-04-20"
    result = get(client, tokens, query)
    mine = between("2024-03-10", "2024-04-20T23:59:59.999Z")
    labs = Counter(e["laboratory_id"] for e in mine if e.get("laboratory_id") is not None)
    kept, merged = ranked(labs, 6)
    counts = {lab: labs[lab] for lab in kept} | {"other": sum(labs[lab] for lab in merged)}
    counts[None] = sum(e.get("laboratory_id") is None for e in mine)
    # A kept laboratory hidden hides the merged row too: the ranking would bound it.
    hidden = {key for key, n in counts.items() if 0 < n < k}
    if hidden - {None, "other"}:
        hidden.add("other")
    for row in result["events"]:
        key = "other" if isinstance(row["laboratory"], dict) else row["laboratory"]
        assert row["count"] == (None if key in hidden else counts[key])
    assert result["suppressed"]["rows"] == len(hidden) > 0


@pytest.mark.parametrize(
    "query",
    [
        "top=laboratory:3",  # no group_by
        "group_by=gender&top=laboratory:3",  # not grouped
        "group_by=day(start_time)&top=start_time:3",  # dates
        "group_by=laboratory&top=laboratory:0",
        "group_by=laboratory&top=laboratory:1001",
        "group_by=laboratory&top=laboratory",
        "group_by=laboratory&top=laboratory:x",
        "group_by=laboratory&top=laboratory:3&page_size=0",
    ],
)
def test_a_top_that_cannot_apply_is_a_400_naming_it(client, tokens, query):
    assert list(refused(client, tokens, query)) == ["top"]


def test_top_over_age_ranges_is_a_400_naming_it(client, tokens):
    body = {"group_by": [{"age": [[0, 10], [10, None]]}], "top": "age:1"}
    response = client.post("/events/query", json=body, headers=auth(tokens["query"]))
    assert response.status_code == 400 and list(response.json["error"]["details"]["fields"]) == ["top"]


# -- period comparison ----------------------------------------------------------------------


def between(low: str, high: str, key=lambda e: True) -> list[dict]:
    return [e for e in EVENTS if e.get("start_time") and low <= e["start_time"] <= high and key(e)]


def test_compare_previous_against_two_separate_queries(client, tokens):
    query = "group_by=system_user&since=2024-04-01T00:00:00Z&until=2024-04-10T23:59:59.999Z"
    rows = get(client, tokens, f"{query}&compare=previous")["events"]
    current = {row["system_user"]: row["count"] for row in get(client, tokens, query)["events"]}
    before = "group_by=system_user&since=2024-03-22T00:00:00Z&until=2024-03-31T23:59:59.999Z"
    previous = {row["system_user"]: row["count"] for row in get(client, tokens, before)["events"]}
    assert {row["system_user"] for row in rows} == set(current) | set(previous)
    for row in rows:
        now, then = current.get(row["system_user"], 0), previous.get(row["system_user"], 0)
        assert (row["count"], row["previous"], row["change"]) == (
            now,
            {"count": then},
            (now - then) / then if then else None,
        )
    expected = Counter(e.get("system_user") for e in between("2024-03-22", "2024-03-31T23:59:59.999Z"))
    assert previous == dict(expected)


def test_compare_with_the_same_dates_a_year_earlier(client, tokens):
    query = "group_by=gender&since=2024-03-01&until=2024-04-30T23:59:59Z&compare=year"
    rows = get(client, tokens, query)["events"]
    now = Counter(e.get("gender") for e in between("2024-03-01", "2024-04-30T23:59:59Z"))
    then = Counter(e.get("gender") for e in between("2023-03-01", "2023-04-30T23:59:59Z"))
    assert sum(then.values()) == 60
    assert rows == [
        {"gender": g, "count": now[g], "previous": {"count": then[g]}, "change": (now[g] - then[g]) / then[g]}
        for g in (None, "female", "male")
    ]


def test_rows_only_in_the_previous_period_come_with_count_0(client, tokens):
    query = "group_by=system_user&since=2024-03-15T00:00:00Z&until=2024-03-15T05:59:59.999Z&compare=previous"
    rows = get(client, tokens, query)["events"]
    now = Counter(e.get("system_user") for e in between("2024-03-15T00:00:00Z", "2024-03-15T05:59:59.999Z"))
    then = Counter(e.get("system_user") for e in between("2024-03-14T18:00:00Z", "2024-03-14T23:59:59.999Z"))
    only_before = set(then) - set(now)
    assert only_before
    by_user = {row["system_user"]: row for row in rows}
    assert set(by_user) == set(now) | set(then)
    for user in only_before:
        assert by_user[user] == {
            "system_user": user,
            "count": 0,
            "previous": {"count": then[user]},
            "change": -1.0,
        }


def test_compare_of_the_whole_answer_with_rates_min_count_and_pages(client, tokens):
    bounds = "since=2024-04-01&until=2024-04-30T23:59:59.999Z"
    whole = get(client, tokens, f"page_size=0&{bounds}&compare=previous&rate=result:positive")
    now, then = (
        len(between("2024-04-01", "2024-04-30T23:59:59.999Z")),
        len(between("2024-03-02", "2024-03-31T23:59:59.999Z")),
    )
    assert whole["total_count"] == now and whole["previous"] == {"count": then}
    assert whole["change"] == pytest.approx((now - then) / then)
    query = f"group_by=laboratory,gender&{bounds}&compare=previous&top=laboratory:8"
    rows = get(client, tokens, query)["events"]
    assert all_pages(client, tokens, query, 5) == rows
    k = 6
    hidden = get(client, tokens, f"{query}&min_count={k}")["events"]
    kept_hidden = any(0 < row["count"] < k and isinstance(row["laboratory"], int) for row in rows)
    for shown, row in zip(hidden, rows, strict=True):
        merged = isinstance(row["laboratory"], dict) and kept_hidden  # hidden beside a kept one
        small_now, small_then = 0 < row["count"] < k or merged, 0 < row["previous"]["count"] < k
        assert shown["count"] == (None if small_now else row["count"])
        assert shown["previous"]["count"] == (None if small_then else row["previous"]["count"])
        assert shown["change"] == (None if small_now or small_then else row["change"])
    assert any(0 < row["previous"]["count"] < k <= row["count"] for row in rows)


@pytest.mark.parametrize(
    "query",
    [
        "group_by=gender&compare=previous",  # no bounds
        "group_by=gender&since=2024-03-01&compare=previous",  # one bound
        # Not the main time:
        "group_by=gender&created_at_since=2024-03-01&created_at_until=2024-04-01&compare=year",
        "group_by=day(start_time)&since=2024-03-01&until=2024-04-01&compare=previous",  # a date group
        "group_by=gender&since=2024-03-01&until=2024-04-01&compare=month",
        "group_by=gender&since=2024-04-01&until=2024-03-01&compare=previous",  # empty period
        "group_by=gender&since=2024-03-01&until=2024-04-01&compare=previous&page_size=0",
    ],
)
def test_a_compare_that_cannot_apply_is_a_400_naming_it(client, tokens, query):
    assert list(refused(client, tokens, query)) == ["compare"]


# -- reporting delay ------------------------------------------------------------------------


def delay_hours(event: dict) -> float | None:
    if not event.get("start_time") or not event.get("created_at"):
        return None
    start, created = (datetime.fromisoformat(event[name]) for name in ("start_time", "created_at"))
    return (created - start).total_seconds() / 3600


def test_reporting_delay_stats(client, tokens):
    rows = get(client, tokens, "group_by=institution&stats=report_delay_hours")["events"]
    for row in rows:
        delays = [
            d
            for e in EVENTS
            if e["institution_id"] == row["institution"]
            if (d := delay_hours(e)) is not None
        ]
        stats = row["stats"]["report_delay_hours"]
        if not delays:
            assert stats["count"] == 0
            continue
        assert (stats["count"], stats["min"], stats["max"]) == (len(delays), min(delays), max(delays))
        assert stats["avg"] == pytest.approx(sum(delays) / len(delays))
    event = client.get("/events/a0001", headers=auth(tokens["query"])).json
    assert "report_delay_hours" not in event and "derived" not in event  # derived: never returned


def test_reporting_delay_ranges_crossed_with_a_group_and_age_ranges_unchanged(client, tokens):
    ranges = [[0, 24], [24, 72], [72, None], [0.25, 0.5]]
    body = {"group_by": ["gender", {"report_delay_hours": ranges}], "since": "2024-01-01"}
    rows = post(client, tokens, body)["events"]
    expected = Counter()
    for e in EVENTS:
        delay = delay_hours(e)
        if delay is None or (e.get("start_time") or "") < "2024-01-01":
            continue
        for low, high in ranges:
            if low <= delay and (high is None or delay < high):
                expected[(e.get("gender"), (low, high))] += 1
    assert {(row["gender"], tuple(row["report_delay_hours"])): row["count"] for row in rows} == expected
    ages = post(client, tokens, {"group_by": [{"age": [[0, 18], [18, None]]}]})["events"]
    assert sum(row["count"] for row in ages) == sum("age" in e for e in EVENTS)
    for bad in ({"report_delay_hours": [["a", 2]]}, {"age": [[0.5, 2]]}):
        response = client.post("/events/query", json={"group_by": [bad]}, headers=auth(tokens["query"]))
        assert response.status_code == 400 and "group_by" in response.json["error"]["details"]["fields"]
    assert list(refused(client, tokens, "group_by=report_delay_hours")) == ["group_by"]


def test_top_with_zero_fill_and_ordered_by_count(client, tokens):
    query = "group_by=laboratory,test_type&top=laboratory:3&fill=zero&institution=2&gender=female"
    rows = get(client, tokens, query)["events"]
    mine = [e for e in EVENTS if e["institution_id"] == 2 and e.get("gender") == "female"]
    kept, merged = ranked(Counter(e["laboratory_id"] for e in mine if e.get("laboratory_id") is not None), 3)
    labs = [*sorted(kept), {"other": len(merged)}]
    if any(e.get("laboratory_id") is None for e in mine):
        labs = [None, *labs]
    assert [(row["laboratory"], row["test_type"]) for row in rows] == [
        (lab, kind) for lab in labs for kind in ("qc", "specimen")
    ]
    for row in rows:
        lab = row["laboratory"]
        group = merged if isinstance(lab, dict) else [lab]
        assert row["count"] == sum(
            e.get("laboratory_id") in group and e["test_type"] == row["test_type"] for e in mine
        )
    ordered = get(client, tokens, "group_by=laboratory&top=laboratory:3&order_by=-count")["events"]
    assert [row["count"] for row in ordered] == sorted((row["count"] for row in ordered), reverse=True)


def test_a_page_of_rows_with_many_sub_buckets_takes_several_searches(client, tokens):
    """Two distinct fields make each row cost about 2,000 buckets: a page of 35 rows is more
    than one search may return (Elasticsearch's bucket limit), so it comes in two."""
    query = "group_by=location&distinct=device,system_user"
    whole = get(client, tokens, query)["events"]
    assert len(whole) > 35
    first = get(client, tokens, f"{query}&page_size=35")
    assert first["events"] == whole[:35] and first["next_cursor"]
    assert all_pages(client, tokens, query, 35) == whole
    for row in whole:
        mine = [e for e in EVENTS if e.get("location_id") == row["location"]]
        assert row["distinct"]["system_user"]["count"] == distinct_of(mine, "system_user")


def test_top_with_local_weeks_and_cursor_pages(client, tokens):
    query = (
        "group_by=week(start_time),laboratory&time_zone=Pacific/Auckland&top=laboratory:3&since=2024-03-01"
    )
    rows = get(client, tokens, query)["events"]
    mine = between("2024-03-01", "9999")
    kept, _ = ranked(Counter(e["laboratory_id"] for e in mine if e.get("laboratory_id") is not None), 3)
    zone = ZoneInfo("Pacific/Auckland")
    expected = Counter()
    for e in mine:
        year, week, _ = datetime.fromisoformat(e["start_time"]).astimezone(zone).isocalendar()
        lab = e.get("laboratory_id")
        expected[(f"{year}-W{week:02d}", "other" if lab is not None and lab not in kept else lab)] += 1
    found = {
        (row["start_time"], "other" if isinstance(row["laboratory"], dict) else row["laboratory"]): row[
            "count"
        ]
        for row in rows
    }
    assert found == dict(expected)
    assert all_pages(client, tokens, query, 5) == rows


def test_merged_rows_are_hidden_beside_a_hidden_row_of_a_kept_value_on_every_page(client, tokens):
    """The ranking bounds merged values by kept ones: beside a kept value's hidden row, the
    merged rows' counts could pin it, so they are hidden too, on whichever page they come."""
    k = 9
    query = f"group_by=laboratory,test_type&top=laboratory:4&min_count={k}"
    labs = Counter(e["laboratory_id"] for e in EVENTS if e.get("laboratory_id") is not None)
    kept, _ = ranked(labs, 4)
    counts = Counter(
        (e.get("laboratory_id") if e.get("laboratory_id") in (None, *kept) else "other", e.get("test_type"))
        for e in EVENTS
    )
    assert any(0 < n < k for (lab, _), n in counts.items() if lab not in (None, "other"))  # a kept row hidden
    assert all(n >= k for (lab, _), n in counts.items() if lab == "other")  # merged rows big enough alone
    whole = get(client, tokens, query)
    paged = all_pages(client, tokens, query, 3)
    for rows in (whole["events"], paged):
        for row in rows:
            lab = "other" if isinstance(row["laboratory"], dict) else row["laboratory"]
            n = counts[(lab, row["test_type"])]
            hidden = lab == "other" or 0 < n < k
            assert row["count"] == (None if hidden else n), row
    assert whole["total_count"] is None and whole["suppressed"]["count"] is None
