"""CDX queries on a real node: every filter, ordering, paging, grouping (docs/api.md §4)."""

from __future__ import annotations

import pytest

from tests.conftest import auth, empty_index

EVENTS = [
    {
        "uuid": "e1",
        "start_time": "2020-03-02T10:00:00Z",
        "age": 5,
        "gender": "male",
        "institution_id": 1,
        "laboratory_id": 10,
        "device_id": "dev-a",
        "location_id": 111,
        "parent_locations": [1, 11],
        "assay_name": "GX1-a",
        "test_type": "specimen",
        "system_user": "u1",
        "results": [{"condition": "mtb", "result": "positive"}, {"condition": "rif", "result": "negative"}],
        "pii": {"name": "Ann"},
        "custom_fields": {"x": None, "y": [1, {"z": None}]},
    },
    {
        "uuid": "e2",
        "start_time": "2020-03-03T23:30:00Z",
        "age": 12,
        "gender": "female",
        "institution_id": 1,
        "device_id": 17,
        "location_id": 112,
        "parent_locations": [1, 11],
        "assay_name": "GX2",
        "test_type": "qc",
        "results": [{"condition": "mtb", "result": "negative"}],
    },
    {
        "uuid": "e3",
        "start_time": "2012-12-31T12:00:00Z",
        "age": 30,
        "gender": "unknown",
        "institution_id": 2,
        "location_id": 21,
        "parent_locations": [2],
        "results": [{"condition": "flu"}],
        "error_code": 7,
    },
    {
        "uuid": "e4",
        "start_time": "2021-01-10T00:30:00Z",
        "institution_id": 2,
        "location_id": 2,
        "results": [],
    },
    {
        "uuid": "e5",
        "start_time": "2020-03-04T08:00:00Z",
        "age": 40,
        "gender": "male",
        "institution_id": 3,
        "assay_name": "GX1-b",
        "results": [{"result": "positive"}],
        "created_at": "2020-03-05T00:00:00Z",
    },
]


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    response = app.test_client().post("/events?refresh=wait_for", json=EVENTS, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json
    return response.json


def uuids(client, tokens, query: str) -> list[str]:
    response = client.get(f"/events?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    assert response.json["total_count"] == len(response.json["events"])
    return sorted(event["uuid"] for event in response.json["events"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["e1", "e2", "e3", "e4", "e5"]),
        ("gender=male", ["e1", "e5"]),
        ("gender=male,female", ["e1", "e2", "e5"]),
        ("gender=unknown", ["e3"]),
        ("gender=null", ["e4"]),
        ("gender=not(null)", ["e1", "e2", "e3", "e5"]),
        ("gender=null,female", ["e2", "e4"]),
        ("gender=male&gender=female", ["e1", "e2", "e5"]),
        ("assay_name=GX1*", ["e1", "e5"]),
        ("assay_name=GX2,GX1-b", ["e2", "e5"]),
        ("assay_name=*-b", ["e5"]),
        ("institution=1", ["e1", "e2"]),
        ("institution=2,3", ["e3", "e4", "e5"]),
        ("laboratory=10", ["e1"]),
        ("laboratory=null", ["e2", "e3", "e4", "e5"]),
        ("device=dev-a", ["e1"]),
        ("device=17", ["e2"]),
        ("location=1", ["e1", "e2"]),
        ("location=11", ["e1", "e2"]),
        ("location=112", ["e2"]),
        ("location=2", ["e3", "e4"]),
        ("location=null", ["e5"]),
        ("system_user=u1", ["e1"]),
        ("test_type=qc,specimen", ["e1", "e2"]),
        ("uuid=e1,e3", ["e1", "e3"]),
        ("error_code=7", ["e3"]),
        ("error_code=null", ["e1", "e2", "e4", "e5"]),
        ("age=5,30", ["e1", "e3"]),
        ("age=null", ["e4"]),
        ("min_age=12", ["e2", "e3", "e5"]),
        ("max_age=12", ["e1", "e2"]),
        ("min_age=6&max_age=30", ["e2", "e3"]),
        ("since=2020-03-03T23:30:00Z", ["e2", "e4", "e5"]),
        ("until=2020-03-03T23:30:00Z", ["e1", "e2", "e3"]),
        ("since=2020-03-01&until=2020-03-31", ["e1", "e2", "e5"]),
        ("created_at_until=2020-12-31", ["e5"]),
        ("created_at_since=2021-01-01", ["e1", "e2", "e3", "e4"]),
        ("condition=mtb", ["e1", "e2"]),
        ("result=positive", ["e1", "e5"]),
        ("condition=mtb&result=positive", ["e1"]),
        ("condition=rif&result=positive", []),
        ("condition=rif&result=negative", ["e1"]),
        ("condition=null", ["e4", "e5"]),
        ("condition=null,flu", ["e3", "e4", "e5"]),
        ("condition=not(null)", ["e1", "e2", "e3"]),
        ("result=null", ["e3", "e4"]),
        ("condition=null&result=positive", ["e5"]),
        ("gender=male&institution=3", ["e5"]),
    ],
)
def test_filters(client, tokens, query, expected):
    assert uuids(client, tokens, query) == expected


def test_event_comes_back_as_ingested_without_pii(client, tokens):
    event = client.get("/events/e1", headers=auth(tokens["query"])).json
    expected = {key: value for key, value in EVENTS[0].items() if key != "pii"}
    assert {key: event[key] for key in expected} == expected
    assert "pii" not in event and "derived" not in event
    assert set(event) == set(expected) | {"created_at"}


def test_pii_appears_in_no_response(client, tokens):
    headers = auth(tokens["query"])
    for path in ("/events", "/events/e1", "/events?group_by=gender", "/events?uuid=e1"):
        assert b"Ann" not in client.get(path, headers=headers).data, path


def test_missing_event_is_404(client, tokens):
    response = client.get("/events/nope", headers=auth(tokens["query"]))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("age", ["e1", "e2", "e3", "e5", "e4"]),
        ("-age", ["e5", "e3", "e2", "e1", "e4"]),
        ("gender,-age", ["e2", "e5", "e1", "e3", "e4"]),
        ("-start_time", ["e4", "e5", "e2", "e1", "e3"]),
        ("institution,uuid", ["e1", "e2", "e3", "e4", "e5"]),
    ],
)
def test_order_by(client, tokens, order, expected):
    events = client.get(f"/events?order_by={order}", headers=auth(tokens["query"])).json["events"]
    assert [event["uuid"] for event in events] == expected


def test_paging_and_count_only(client, tokens):
    headers = auth(tokens["query"])
    page = client.get("/events?order_by=age&page_size=2&offset=1", headers=headers).json
    assert page["total_count"] == 5
    assert [event["uuid"] for event in page["events"]] == ["e2", "e3"]
    count = client.get("/events?page_size=0&gender=male", headers=headers).json
    assert count == {"total_count": 2, "events": []}


def test_cursor_pages_through_everything(client, tokens):
    headers, seen, cursor = auth(tokens["query"]), [], None
    while True:
        query = "order_by=age&page_size=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/events?{query}", headers=headers).json
        seen += [event["uuid"] for event in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["e1", "e2", "e3", "e5", "e4"]


def test_a_cursor_is_never_ignored(client, tokens):
    """A cursor continues a page of page_size rows: with offset, with the count only, or on
    grouped rows without page_size (which come all at once) it would be ignored: a 400."""
    headers = auth(tokens["query"])
    plain = client.get("/events?order_by=age&page_size=2", headers=headers).json["next_cursor"]
    grouped_cursor = client.get("/events?group_by=gender&page_size=2", headers=headers).json["next_cursor"]
    for query, named in [
        (f"order_by=age&page_size=2&offset=1&cursor={plain}", "offset"),
        (f"order_by=age&page_size=0&cursor={plain}", "cursor"),
        (f"group_by=gender&cursor={grouped_cursor}", "cursor"),
        (f"group_by=gender&page_size=0&cursor={grouped_cursor}", "cursor"),
    ]:
        response = client.get(f"/events?{query}", headers=headers)
        assert response.status_code == 400, (query, response.json)
        assert named in response.json["error"]["details"]["fields"], query
    rest = client.get(f"/events?group_by=gender&page_size=10&cursor={grouped_cursor}", headers=headers).json
    assert [row["gender"] for row in rest["events"]] == ["male", "unknown"]


def test_cursor_of_another_query_is_400(client, tokens):
    headers = auth(tokens["query"])
    cursor = client.get("/events?page_size=1", headers=headers).json["next_cursor"]
    response = client.get(f"/events?page_size=1&gender=male&cursor={cursor}", headers=headers)
    assert response.status_code == 400
    assert "cursor" in response.json["error"]["message"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("gendre=male", ["gendre"]),
        ("page_size=1001", ["page_size"]),
        ("offset=-1", ["offset"]),
        ("offset=9990&page_size=50", ["offset"]),
        ("group_by=colour", ["group_by"]),
        ("order_by=colour", ["order_by"]),
        ("group_by=gender&order_by=age", ["order_by"]),
        ("time_zone=Nowhere/City&group_by=day(start_time)", ["time_zone"]),
        ("since=not-a-date", ["since"]),
        ("age=abc", ["age"]),
        # Accepted, then without effect: refused by name instead.
        ("group_by=gender&cursor=abc", ["cursor"]),
        ("order_by=age&page_size=0", ["order_by"]),
        ("offset=5&page_size=0", ["offset"]),
        ("group_by=gender&page_size=0&stats=age", ["stats"]),
        ("group_by=gender&page_size=0&fill=zero", ["fill"]),
        ("order_by=age,-age", ["order_by"]),
        ("group_by=gender&order_by=-count,count", ["order_by"]),
        # A parameter of one value given twice: one of the two would be dropped.
        ("since=2020-01-01&since=2021-01-01", ["since"]),
        ("page_size=1&page_size=2", ["page_size"]),
        ("group_by=day(start_time)&time_zone=UTC&time_zone=Europe/Paris", ["time_zone"]),
    ],
)
def test_bad_parameters_are_400_naming_them(client, tokens, query, names):
    response = client.get(f"/events?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert error["code"] == "validation_error"
    text = error["message"] + str(error.get("details"))
    for name in names:
        assert name in text


def test_unknown_parameter_lists_the_valid_ones(client, tokens):
    details = client.get("/events?gendre=male", headers=auth(tokens["query"])).json["error"]["details"]
    assert "gender" in details["valid"] and "group_by" in details["valid"]


def test_json_body_query_forms(client, tokens):
    headers = auth(tokens["query"])
    body = {"gender": ["male", None], "order_by": ["-age"]}
    posted = client.post("/events/query", json=body, headers=headers).json
    assert [event["uuid"] for event in posted["events"]] == ["e5", "e1", "e4"]
    with_get = client.open("/events", method="GET", json=body, headers=headers).json
    assert with_get == posted
    unknown = client.post("/events/query", json={"gendre": "x"}, headers=headers)
    assert unknown.status_code == 400
    assert "gendre" in unknown.json["error"]["message"]


def test_a_json_null_filter_value_is_the_null_value(client, tokens):
    """`{"gender": null}` means what `?gender=null` and `{"gender": [null]}` mean: events lacking
    the field (docs/api.md §4.2), not a 400."""
    headers = auth(tokens["query"])
    for body in ({"gender": None}, {"gender": [None]}, {"location": None, "error_code": [None, 7]}):
        response = client.post("/events/query", json=body, headers=headers)
        assert response.status_code == 200, (body, response.json)
    assert uuids_of(client.post("/events/query", json={"gender": None}, headers=headers)) == ["e4"]
    with_get = client.open("/events", method="GET", json={"gender": None}, headers=headers)
    assert uuids_of(with_get) == ["e4"]
    assert uuids_of(client.post("/events/query", json={"condition": None}, headers=headers)) == ["e4", "e5"]
    assert client.post("/events/query", json={"since": None}, headers=headers).status_code == 400


def uuids_of(response) -> list[str]:
    assert response.status_code == 200, response.json
    return sorted(event["uuid"] for event in response.json["events"])


def test_a_body_and_a_query_string_together_are_400_naming_the_query_string(client, tokens):
    """One place holds a query's parameters: with a body, query-string ones would be dropped."""
    headers = auth(tokens["query"])
    body = {"order_by": ["-age"]}
    for response in (
        client.open("/events?gender=male&page_size=1", method="GET", json=body, headers=headers),
        client.post("/events/query?gender=male&page_size=1", json=body, headers=headers),
        client.post("/events/query?gender=male&page_size=1", headers=headers),
    ):
        assert response.status_code == 400, response.json
        error = response.json["error"]
        assert error["code"] == "validation_error"
        assert set(error["details"]["fields"]) == {"gender", "page_size"}
        assert "gender" in error["message"] and "page_size" in error["message"]


def test_endpoints_reading_the_query_string_refuse_a_body(client, tokens):
    headers = auth(tokens["query"])
    for path in ("/events/export", "/api/2/events/export"):
        response = client.open(path, method="GET", json={"gender": "male"}, headers=headers)
        assert response.status_code == 400, (path, response.json)
        assert "body" in response.json["error"]["details"]["fields"], path
    # Listing endpoints read a JSON body as their query, roundware's too (a name it lacks: 400).
    response = client.open("/api/2/events/", method="GET", json={"gender": "male"}, headers=headers)
    assert response.status_code == 400 and "gender" in response.json["error"]["details"]["fields"]
    response = client.open("/api/2/events/", method="GET", json={"event_type": "none"}, headers=headers)
    assert response.status_code == 200 and response.json == []
    assert client.open("/events/export", method="GET", data=" ", headers=headers).status_code == 200
    # Roundware's list reads a JSON body as cdx's does: an unknown key in it is refused by name.
    response = client.open("/api/2/events/", method="GET", json={"gender": "male"}, headers=headers)
    assert response.status_code == 400 and list(response.json["error"]["details"]["fields"]) == ["gender"]


def grouped(client, tokens, query="", body=None):
    headers = auth(tokens["query"])
    if body is not None:
        response = client.post("/events/query", json=body, headers=headers)
    else:
        response = client.get(f"/events?{query}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_group_by_gender_with_null_row(client, tokens):
    result = grouped(client, tokens, "group_by=gender")
    assert result["total_count"] == 5
    assert result["exact"] is True
    assert result["events"] == [
        {"gender": None, "count": 1},
        {"gender": "female", "count": 1},
        {"gender": "male", "count": 2},
        {"gender": "unknown", "count": 1},
    ]


def test_group_by_result_counts_events_not_entries(client, tokens):
    rows = grouped(client, tokens, "group_by=result")["events"]
    assert rows == [
        {"result": None, "count": 2},
        {"result": "negative", "count": 2},
        {"result": "positive", "count": 2},
    ]


def test_group_by_condition_and_result_pairs_keys_of_the_same_entry(client, tokens):
    rows = grouped(client, tokens, "group_by=condition,result")["events"]
    assert rows == [
        {"condition": None, "result": None, "count": 1},
        {"condition": None, "result": "positive", "count": 1},
        {"condition": "flu", "result": None, "count": 1},
        {"condition": "mtb", "result": "negative", "count": 1},
        {"condition": "mtb", "result": "positive", "count": 1},
        {"condition": "rif", "result": "negative", "count": 1},
    ]


def test_group_by_with_filters_and_count_order(client, tokens):
    result = grouped(client, tokens, "group_by=institution&order_by=-count&gender=not(null)")
    assert result["total_count"] == 4
    assert result["events"] == [
        {"institution": 1, "count": 2},
        {"institution": 2, "count": 1},
        {"institution": 3, "count": 1},
    ]


def test_group_by_age_ranges(client, tokens):
    ranges = [[0, 10], [10, 15], [None, 5], {"from": 16, "to": 21}, {"to": 6}, [21]]
    rows = grouped(client, tokens, body={"group_by": [{"age": ranges}]})["events"]
    assert rows == [
        {"age": [0, 10], "count": 1},
        {"age": [10, 15], "count": 1},
        {"age": [None, 6], "count": 1},
        {"age": [21, None], "count": 2},
    ]


def test_group_by_age_ranges_single_object_with_another_group(client, tokens):
    body = {"group_by": [{"age": [[0, 100]]}, "gender"]}
    rows = grouped(client, tokens, body=body)["events"]
    assert rows == [
        {"age": [0, 100], "gender": "female", "count": 1},
        {"age": [0, 100], "gender": "male", "count": 2},
        {"age": [0, 100], "gender": "unknown", "count": 1},
    ]


def test_age_ranges_beside_other_groups_match_the_ranges_alone(client, tokens):
    """Beside other groups, ranges are counted by a `range` under each composite bucket; the
    counts must be those of the ranges summed from exact ages, overlaps and open ends included."""
    ranges = [[0, 10], [10, 15], [None, 5], {"from": 16, "to": 21}, {"to": 6}, [21]]
    alone = grouped(client, tokens, body={"group_by": [{"age": ranges}]})["events"]
    beside = grouped(client, tokens, body={"group_by": ["gender", {"age": ranges}, "institution"]})["events"]
    assert all(list(row) == ["gender", "age", "institution", "count"] for row in beside)
    summed = {}
    for row in beside:
        summed[tuple(row["age"])] = summed.get(tuple(row["age"]), 0) + row["count"]
    assert summed == {tuple(row["age"]): row["count"] for row in alone}


def test_group_by_admin_levels(client, tokens):
    level0 = grouped(client, tokens, body={"group_by": {"admin_level": 0}})["events"]
    assert level0 == [
        {"location": None, "count": 1},
        {"location": 1, "count": 2},
        {"location": 2, "count": 2},
    ]
    level1 = grouped(client, tokens, body={"group_by": [{"admin_level": 1}]})["events"]
    assert level1 == [
        {"location": None, "count": 2},
        {"location": 11, "count": 2},
        {"location": 21, "count": 1},
    ]


def test_group_by_location_and_exact_age(client, tokens):
    rows = grouped(client, tokens, "group_by=location&location=11")["events"]
    assert rows == [{"location": 111, "count": 1}, {"location": 112, "count": 1}]
    rows = grouped(client, tokens, "group_by=age&max_age=12")["events"]
    assert rows == [{"age": 5, "count": 1}, {"age": 12, "count": 1}]


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("year(start_time)", {"2012": 1, "2020": 3, "2021": 1}),
        ("month(start_time)", {"2012-12": 1, "2020-03": 3, "2021-01": 1}),
        ("week(start_time)", {"2013-W01": 1, "2020-W10": 3, "2021-W01": 1}),
        (
            "day(start_time)",
            {"2012-12-31": 1, "2020-03-02": 1, "2020-03-03": 1, "2020-03-04": 1, "2021-01-10": 1},
        ),
    ],
)
def test_date_buckets(client, tokens, group, expected):
    rows = grouped(client, tokens, f"group_by={group}")["events"]
    assert {row["start_time"]: row["count"] for row in rows} == expected


def test_date_rows_are_keyed_by_their_field(client, tokens):
    """As the CDX API's reference implementation: `{"created_at": "2010", "count": 2}`."""
    assert grouped(client, tokens, "group_by=year(created_at)&uuid=e5")["events"] == [
        {"created_at": "2020", "count": 1}
    ]
    expected = [{"created_at": "2020-03-05", "result": "positive", "count": 1}]
    assert grouped(client, tokens, "group_by=day(created_at),result&uuid=e5")["events"] == expected
    body = {"group_by": ["day(created_at)", "result"], "uuid": "e5"}
    assert grouped(client, tokens, body=body)["events"] == expected


def test_grouped_rows_order_by_a_date_key(client, tokens):
    ascending = grouped(client, tokens, "group_by=year(start_time)&order_by=start_time")["events"]
    assert [row["start_time"] for row in ascending] == ["2012", "2020", "2021"]
    descending = grouped(client, tokens, "group_by=year(start_time)&order_by=-start_time")["events"]
    assert [row["start_time"] for row in descending] == ["2021", "2020", "2012"]
    body = {"group_by": ["gender", "year(start_time)"], "order_by": ["-start_time", "gender"]}
    rows = grouped(client, tokens, body=body)["events"]
    assert [(row["start_time"], row["gender"]) for row in rows] == [
        ("2021", None),
        ("2020", "female"),
        ("2020", "male"),
        ("2012", "unknown"),
    ]


@pytest.mark.parametrize(
    ("group_by", "named"),
    [
        ("week(start_time),day(start_time)", "start_time"),
        ("gender,gender", "gender"),
        ("condition,result,condition", "condition"),
        (["location", {"admin_level": 1}], "location"),
        (["age", {"age": [[0, 10]]}], "age"),
    ],
)
def test_a_row_key_made_by_two_groups_is_400(client, tokens, group_by, named):
    headers = auth(tokens["query"])
    if isinstance(group_by, str):
        response = client.get(f"/events?group_by={group_by}", headers=headers)
    else:
        response = client.post("/events/query", json={"group_by": group_by}, headers=headers)
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert error["code"] == "validation_error" and "group_by" in error["message"]
    assert named in str(error["details"]["fields"]["group_by"])


def test_time_zone_moves_an_event_across_a_day_boundary(client, tokens):
    utc = grouped(client, tokens, "group_by=day(start_time)&uuid=e2,e4")["events"]
    assert [row["start_time"] for row in utc] == ["2020-03-03", "2021-01-10"]
    east = grouped(client, tokens, "group_by=day(start_time)&uuid=e2,e4&time_zone=%2B02:00")["events"]
    assert [row["start_time"] for row in east] == ["2020-03-04", "2021-01-10"]
    west = grouped(client, tokens, "group_by=day(start_time)&uuid=e2,e4&time_zone=America/New_York")["events"]
    assert [row["start_time"] for row in west] == ["2020-03-03", "2021-01-09"]


def test_filter_datetimes_stay_utc_whatever_the_time_zone(client, tokens):
    """docs/api.md: datetimes without an offset are UTC; `time_zone` labels date groups only."""
    query = "group_by=day(start_time)&since=2020-03-04&time_zone=%2B02:00"
    assert (
        grouped(client, tokens, query)["total_count"]
        == grouped(client, tokens, "group_by=gender&since=2020-03-04")["total_count"]
    )
    assert grouped(client, tokens, query)["events"][0] == {"start_time": "2020-03-04", "count": 1}  # e5 only


def test_time_zone_steps_zero_fill_in_its_days(client, tokens):
    query = "group_by=day(start_time)&fill=zero&since=2020-03-04&until=2020-03-05T23:59:59&time_zone=%2B02:00"
    assert grouped(client, tokens, query)["events"] == [
        {"start_time": "2020-03-04", "count": 1},  # e5 at 10:00 local; e2 (23:30Z on the 3rd) is before since
        {"start_time": "2020-03-05", "count": 0},
        {"start_time": "2020-03-06", "count": 0},  # until (23:59:59Z) is 01:59:59 on the 6th there
    ]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("time_zone=Europe/Paris", "time_zone"),
        ("group_by=gender&time_zone=Europe/Paris", "time_zone"),
        ("since=2020-01-01&time_zone=Europe/Paris", "time_zone"),
        ("group_by=day(start_time)&week_start=sunday", "week_start"),
        ("group_by=gender&week_start=monday", "week_start"),
        ("since=2020-01-01&week_start=sunday", "week_start"),
    ],
)
def test_calendar_options_with_nothing_to_apply_to_are_400(client, tokens, query, name):
    response = client.get(f"/events?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 400, response.json
    assert list(response.json["error"]["details"]["fields"]) == [name]
    exported = client.get(
        f"/events/export?{query.replace('group_by', 'gender')}", headers=auth(tokens["query"])
    )
    assert exported.status_code == 400


def test_grouped_count_only(client, tokens):
    assert grouped(client, tokens, "group_by=gender&page_size=0") == {
        "total_count": 5,
        "events": [],
        "exact": True,
    }


def test_restricted_token_sees_only_its_institution(client, tokens):
    headers = auth(tokens["inst1"])
    events = client.get("/events", headers=headers).json
    assert sorted(event["uuid"] for event in events["events"]) == ["e1", "e2"]
    rows = client.get("/events?group_by=institution", headers=headers).json["events"]
    assert rows == [{"institution": 1, "count": 2}]
    assert client.get("/events/e3", headers=headers).status_code == 404
    assert client.get("/events?institution=2", headers=headers).json["total_count"] == 0
