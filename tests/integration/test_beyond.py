"""Dashboards' extras on a real node: grouped cursors, zero-fill, stats, suppression, weeks,
export (docs/api.md §6)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import auth, empty_index

GENDERS = ["female", "male", "other", None]


def make_events(count: int) -> list[dict]:
    events = []
    for i in range(count):
        event = {
            "uuid": f"b{i:04d}",
            "age": i % 50,
            "institution_id": 1 + i % 3,
            "test_type": "qc" if i % 7 == 0 else "specimen",
            "start_time": f"2024-03-{1 + i % 28:02d}T12:00:00Z",
            "results": [{"condition": "mtb", "result": "positive" if i % 5 == 0 else "negative"}],
        }
        if GENDERS[i % 4]:
            event["gender"] = GENDERS[i % 4]
        events.append(event)
    return events


EVENTS = make_events(400)


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    response = app.test_client().post("/events?refresh=wait_for", json=EVENTS, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json


def get(client, tokens, query, token="query"):
    response = client.get(f"/events?{query}", headers=auth(tokens[token]))
    assert response.status_code == 200, response.json
    return response.json


def test_grouped_pages_by_cursor_add_up_to_the_total(client, tokens):
    total = get(client, tokens, "page_size=0")["total_count"]
    whole = get(client, tokens, "group_by=gender,institution")["events"]
    rows, cursor, pages = [], None, 0
    while True:
        page = get(
            client,
            tokens,
            "group_by=gender,institution&page_size=5" + (f"&cursor={cursor}" if cursor else ""),
        )
        assert page["exact"] is True and page["total_count"] == total
        rows += page["events"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3  # 12 rows in pages of 5
    assert rows == whole
    assert sum(row["count"] for row in rows) == total == 400


def test_date_rows_page_by_cursor_keyed_by_their_field(client, tokens):
    whole = get(client, tokens, "group_by=day(start_time),gender&institution=1")["events"]
    rows, cursor = [], None
    while True:
        query = "group_by=day(start_time),gender&institution=1&page_size=7"
        page = get(client, tokens, query + (f"&cursor={cursor}" if cursor else ""))
        rows += page["events"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert rows == whole and len(whole) > 7
    assert all(list(row) == ["start_time", "gender", "count"] for row in rows)


def test_date_rows_with_age_ranges_stats_fill_and_suppression(client, tokens):
    body = {
        "group_by": ["month(start_time)", {"age": [[0, 10], [40, 45]]}],
        "stats": ["age"],
        "fill": "zero",
        "min_count": 41,
        "since": "2024-02-01",
        "until": "2024-03-31",
    }
    response = client.post("/events/query", json=body, headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    rows = response.json["events"]
    assert [(row["start_time"], row["age"]) for row in rows] == [
        ("2024-02", [0, 10]),
        ("2024-02", [40, 45]),
        ("2024-03", [0, 10]),
        ("2024-03", [40, 45]),
    ]
    young = sum(1 for e in EVENTS if e["age"] < 10)
    old = sum(1 for e in EVENTS if 40 <= e["age"] < 45)
    assert rows[0]["count"] == rows[1]["count"] == 0
    assert rows[2]["count"] == young and rows[2]["stats"]["age"]["max"] == 9
    assert rows[3] == {
        "start_time": "2024-03",
        "age": [40, 45],
        "count": None,
        "stats": {"age": None},
        "suppressed": True,
    }
    assert young > 41 > old and response.json["suppressed"] == {"min_count": 41, "rows": 1, "count": None}


def test_grouped_paging_needs_key_order(client, tokens):
    response = client.get(
        "/events?group_by=gender&order_by=-count&page_size=2", headers=auth(tokens["query"])
    )
    assert response.status_code == 400


def test_zero_fill_dates_between_bounds_and_declared_values(client, tokens):
    query = (
        "group_by=test_type,day(start_time)&fill=zero"
        "&since=2024-02-28&until=2024-03-02T23:59:59Z&institution=1"
    )
    rows = get(client, tokens, query)["events"]
    days = ["2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"]
    assert [(row["test_type"], row["start_time"]) for row in rows] == [
        (kind, day) for kind in ("qc", "specimen") for day in days
    ]
    assert [row["count"] for row in rows if row["start_time"] < "2024-03-01"] == [0, 0, 0, 0]
    expected = {}
    for event in EVENTS:
        day = event["start_time"][:10]
        if event["institution_id"] == 1 and day in days:
            expected[(event["test_type"], day)] = expected.get((event["test_type"], day), 0) + 1
    assert {(row["test_type"], row["start_time"]): row["count"] for row in rows if row["count"]} == expected


def test_zero_fill_declared_results(client, tokens):
    rows = get(client, tokens, "group_by=result&fill=zero&uuid=b0001")["events"]
    assert rows == [{"result": "negative", "count": 1}, {"result": "positive", "count": 0}]


def test_zero_fill_crosses_groups_without_declared_values(client, tokens):
    rows = get(client, tokens, "group_by=gender,institution&fill=zero&uuid=b0001,b0002")["events"]
    assert [(row["gender"], row["institution"], row["count"]) for row in rows] == [
        ("male", 2, 1),
        ("male", 3, 0),
        ("other", 2, 0),
        ("other", 3, 1),
    ]


@pytest.mark.parametrize("group_by", ["gender", "location", "age", "condition"])
def test_zero_fill_of_a_group_it_cannot_add_rows_to_is_400(client, tokens, group_by):
    """One group with no declared values, dates or ranges: fill=zero could add no row."""
    response = client.get(f"/events?group_by={group_by}&fill=zero", headers=auth(tokens["query"]))
    assert response.status_code == 400, response.json
    assert list(response.json["error"]["details"]["fields"]) == ["fill"]
    admin = client.post(
        "/events/query", json={"group_by": {"admin_level": 0}, "fill": "zero"}, headers=auth(tokens["query"])
    )
    assert admin.status_code == 400 and "fill" in admin.json["error"]["details"]["fields"]


def test_stats_per_row_and_for_the_whole_result(client, tokens):
    rows = get(client, tokens, "group_by=institution&stats=age")["events"]
    for row in rows:
        ages = [e["age"] for e in EVENTS if e["institution_id"] == row["institution"]]
        stats = row["stats"]["age"]
        assert (stats["count"], stats["min"], stats["max"]) == (len(ages), min(ages), max(ages))
        assert stats["avg"] == pytest.approx(sum(ages) / len(ages))
        assert min(ages) <= stats["percentiles"]["50"] <= max(ages)
    whole = get(client, tokens, "page_size=0&stats=age")
    assert whole["stats"]["age"]["count"] == 400 and whole["stats"]["age"]["max"] == 49
    assert client.get("/events?stats=gender", headers=auth(tokens["query"])).status_code == 400


def test_overlapping_age_ranges_with_stats_and_zero_fill(client, tokens):
    ranges = [[0, 10], [5, 15], [60, None]]
    body = {"group_by": ["institution", {"age": ranges}], "stats": "age", "fill": "zero"}
    response = client.post("/events/query", json=body, headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    rows = response.json["events"]
    assert len(rows) == 3 * len(ranges)  # institutions 1-3 crossed with every range, no age reaches 60
    for row in rows:
        low, high = row["age"]
        ages = [
            e["age"]
            for e in EVENTS
            if e["institution_id"] == row["institution"]
            and low <= e["age"]
            and (high is None or e["age"] < high)
        ]
        assert row["count"] == len(ages)
        stats = row["stats"]["age"]
        if ages:
            assert (stats["count"], stats["min"], stats["max"]) == (len(ages), min(ages), max(ages))
            assert min(ages) <= stats["percentiles"]["50"] <= max(ages)
        else:
            assert stats is None


def test_small_counts_are_suppressed_per_request(client, tokens):
    result = get(client, tokens, "group_by=age&max_age=2&min_count=9&institution=1")
    counts = {}
    for event in EVENTS:
        if event["institution_id"] == 1 and event["age"] <= 2:
            counts[event["age"]] = counts.get(event["age"], 0) + 1
    hidden = {age: n for age, n in counts.items() if n < 9}
    assert hidden  # the data makes some rows small
    for row in result["events"]:
        if row["age"] in hidden:
            assert row["count"] is None and row["suppressed"] is True
        else:
            assert row["count"] == counts[row["age"]]
    # The hidden rows' sum is withheld, and so is the total: either would give it away.
    assert result["suppressed"] == {"min_count": 9, "rows": len(hidden), "count": None}
    assert result["total_count"] is None


def test_token_minimum_cannot_be_lowered(app, client):
    _, secret = app.extensions["tokens"].create("k-anon", ["query"], min_count=200)
    headers = auth(secret)
    result = client.get("/events?group_by=gender&min_count=3", headers=headers).json
    assert all(row["count"] is None for row in result["events"])  # every gender has 100 < 200
    assert result["suppressed"] == {"min_count": 200, "rows": 4, "count": None}
    assert client.get("/events?page_size=0&institution=1", headers=headers).json["total_count"] is None
    assert client.get("/events", headers=headers).status_code == 403
    assert client.get("/events/export", headers=headers).status_code == 403


def test_sunday_weeks(client, tokens):
    monday = get(client, tokens, "group_by=week(start_time)&uuid=b0002")["events"]  # Sun 2024-03-03
    sunday = get(client, tokens, "group_by=week(start_time)&uuid=b0002&week_start=sunday")["events"]
    assert monday == [{"start_time": "2024-W09", "count": 1}]
    assert sunday == [{"start_time": "2024-W10", "count": 1}]
    assert (
        client.get(
            "/events?group_by=week(start_time)&week_start=friday", headers=auth(tokens["query"])
        ).status_code
        == 400
    )


def test_export_ndjson_and_csv(client, tokens):
    response = client.get("/events/export?institution=2&order_by=uuid", headers=auth(tokens["query"]))
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.data.splitlines()]
    expected = [e for e in EVENTS if e["institution_id"] == 2]
    assert [line["uuid"] for line in lines] == [e["uuid"] for e in expected]
    assert {k: lines[0][k] for k in expected[0]} == expected[0]
    table = client.get("/events/export?institution=2&format=csv&order_by=uuid", headers=auth(tokens["query"]))
    rows = list(csv.DictReader(io.StringIO(table.data.decode())))
    assert [row["uuid"] for row in rows] == [e["uuid"] for e in expected]
    assert json.loads(rows[0]["results"]) == expected[0]["results"]
    assert "pii" not in rows[0]


def test_export_names_one_charset(client, tokens):
    # Each streamed answer is closed here, as a server closes it once sent: left open, its
    # generator is collected later, inside another request's context.
    for path in ("/events/export?format=csv", "/api/2/events/export?format=csv"):
        with client.get(path, headers=auth(tokens["query"])) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    with client.get("/events/export", headers=auth(tokens["query"])) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"


def test_export_respects_institution_restriction(client, tokens):
    lines = client.get("/events/export", headers=auth(tokens["inst1"])).data.splitlines()
    assert len(lines) == sum(1 for e in EVENTS if e["institution_id"] == 1)
    assert all(json.loads(line)["institution_id"] == 1 for line in lines)


def test_export_refuses_paging_parameters(client, tokens):
    response = client.get("/events/export?page_size=10", headers=auth(tokens["query"]))
    assert response.status_code == 400
