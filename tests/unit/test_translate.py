"""Query string → Elasticsearch body, as tables; no server needed."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from service.datasets.cdx import CDX
from service.engine import shape
from service.engine.groups import ABSENT, JOINER
from service.engine.params import query_schema
from service.engine.translate import filter_query, group_body, search_body

Schema = query_schema(CDX)


def parse(**args):
    """As webargs reads a query string where each parameter occurs once."""
    return Schema().load(args)


def filters_of(**args):
    return filter_query(CDX, parse(**args).filters)["bool"]["filter"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"gender": "male"}, [{"terms": {"gender": ["male"]}}]),
        ({"institution": "1,2"}, [{"terms": {"institution_id": [1, 2]}}]),
        ({"since": "2020-01-01"}, [{"range": {"start_time": {"gte": "2020-01-01"}}}]),
        ({"until": "2020-01-01T10:00:00Z"}, [{"range": {"start_time": {"lte": "2020-01-01T10:00:00Z"}}}]),
        ({"created_at_since": "2020-01-01"}, [{"range": {"created_at": {"gte": "2020-01-01"}}}]),
        (
            {"min_age": "5", "max_age": "10"},
            [{"range": {"age": {"gte": 5}}}, {"range": {"age": {"lte": 10}}}],
        ),
        ({"gender": "null"}, [{"bool": {"must_not": [{"exists": {"field": "gender"}}]}}]),
        ({"gender": "not(null)"}, [{"exists": {"field": "gender"}}]),
        (
            {"gender": "null,male"},
            [
                {
                    "bool": {
                        "should": [
                            {"terms": {"gender": ["male"]}},
                            {"bool": {"must_not": [{"exists": {"field": "gender"}}]}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
            ],
        ),
        ({"assay_name": "GX1*"}, [{"wildcard": {"assay_name": {"value": "GX1*"}}}]),
        ({"assay_name": "a?b*"}, [{"wildcard": {"assay_name": {"value": "a\\?b*"}}}]),
        (
            {"location": "7"},
            [
                {
                    "bool": {
                        "should": [{"terms": {"location_id": [7]}}, {"terms": {"parent_locations": [7]}}],
                        "minimum_should_match": 1,
                    }
                }
            ],
        ),
        ({"device": "17"}, [{"terms": {"device_id": ["17"]}}]),
        (
            {"condition": "mtb", "result": "positive"},
            [
                {
                    "nested": {
                        "path": "results",
                        "query": {
                            "bool": {
                                "filter": [
                                    {"terms": {"results.condition": ["mtb"]}},
                                    {"terms": {"results.result": ["positive"]}},
                                ]
                            }
                        },
                    }
                }
            ],
        ),
    ],
)
def test_filters(args, expected):
    assert filters_of(**args) == expected


def test_null_on_every_entry_filter_also_matches_events_without_entries():
    (clause,) = filters_of(condition="null")
    should = clause["bool"]["should"]
    assert should[1] == {"bool": {"must_not": [{"nested": {"path": "results", "query": {"match_all": {}}}}]}}


def test_institution_scope_always_applies():
    query = filter_query(CDX, parse(gender="f").filters, institutions=(3,))
    assert {"terms": {"institution_id": [3]}} in query["bool"]["filter"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"gendre": "f"}, "Unknown field"),
        ({"age": "old"}, "Not a valid value"),
        ({"since": "yesterday"}, "Not a valid value"),
        ({"page_size": "-1"}, "greater than or equal"),
        ({"offset": "-5"}, "greater than or equal"),
        ({"group_by": "colour"}, "Unknown group 'colour'"),
        ({"order_by": "colour"}, "Cannot order by 'colour'"),
        ({"time_zone": "Mars/Base"}, "Unknown time zone"),
        ({"assay_name": "*a*a*a*a*a*"}, "Not a valid value"),
    ],
)
def test_bad_parameters_are_refused_naming_them(args, message):
    with pytest.raises(ValidationError) as error:
        parse(**args)
    assert message in str(error.value.messages)
    assert set(error.value.messages) <= set(args) | {"order_by"}


def test_page_body_sorts_with_a_unique_tiebreak():
    body = search_body(CDX, parse(order_by="age,-gender"), page_size=10)
    assert body["sort"] == [
        {"age": {"order": "asc", "missing": "_last"}},
        {"gender": {"order": "desc", "missing": "_last"}},
        {"uuid": {"order": "asc"}},
    ]
    assert body["track_total_hits"] is True
    assert search_body(CDX, parse(), page_size=0) == {
        "query": {"match_all": {}},
        "track_total_hits": True,
        "size": 0,
    }


def test_group_body_is_one_composite_with_a_source_per_group():
    params = parse(group_by="gender,week(start_time)", time_zone="+05:30")
    body = group_body(CDX, params)
    sources = body["aggs"]["groups"]["composite"]["sources"]
    assert sources[0] == {"g0": {"terms": {"field": "gender", "missing_bucket": True}}}
    histogram = sources[1]["g1"]["date_histogram"]
    assert histogram["calendar_interval"] == "week"
    assert histogram["time_zone"] == "+05:30"
    assert body["track_total_hits"] is True
    assert group_body(CDX, params, after={"g0": "x"})["track_total_hits"] is False


def test_condition_and_result_group_on_whole_entries():
    params = parse(group_by="condition,result")
    (source,) = group_body(CDX, params)["aggs"]["groups"]["composite"]["sources"]
    assert source["g0"]["terms"]["field"] == "derived.results_entry"


def test_group_by_objects_in_json():
    params = Schema().load({"group_by": [{"age": [[0, 10], {"from": 10}]}, {"admin_level": 1}]})
    age, admin = params.groups
    assert age.ranges == ((0, 10), (10, None))
    assert admin.source("UTC") == {"terms": {"field": "derived.admin_level_1", "missing_bucket": True}}
    single = Schema().load({"group_by": {"age": [[21]]}})
    assert single.groups[0].ranges == ((21, None),)


def bucket(count, **keys):
    return {"key": keys, "doc_count": count}


def test_rows_from_buckets_iso_week_and_nulls():
    params = parse(group_by="gender,week(start_time)")
    monday_2012_12_31 = 1356912000000
    counts = shape.add_buckets(
        params, [bucket(3, g0="f", g1=monday_2012_12_31), bucket(2, g0=None, g1=None)], {}
    )
    assert shape.rows(params, counts) == [
        {"gender": "f", "week(start_time)": "2013-W01", "count": 3},
        {"gender": None, "week(start_time)": None, "count": 2},
    ]


def test_age_ranges_sum_exact_ages_and_drop_the_rest():
    params = Schema().load({"group_by": {"age": [[0, 10], [5, 15]]}})
    counts = shape.add_buckets(
        params, [bucket(1, g0=3), bucket(2, g0=7), bucket(4, g0=40), bucket(8, g0=None)], {}
    )
    assert shape.rows(params, counts) == [{"age": [0, 10], "count": 3}, {"age": [5, 15], "count": 2}]


def test_entry_rows_split_and_absent_keys_are_null():
    params = parse(group_by="condition,result")
    entry = JOINER.join(["mtb", ABSENT])
    counts = shape.add_buckets(params, [bucket(2, g0=entry), bucket(1, g0=None)], {})
    assert shape.rows(params, counts) == [
        {"condition": "mtb", "result": None, "count": 2},
        {"condition": None, "result": None, "count": 1},
    ]


def test_rows_order_by_count():
    params = parse(group_by="gender", order_by="-count")
    counts = shape.add_buckets(params, [bucket(1, g0="a"), bucket(5, g0="b")], {})
    assert [row["gender"] for row in shape.rows(params, counts)] == ["b", "a"]


def test_cursor_round_trip_and_belongs_to_its_query():
    params = parse(gender="f")
    fingerprint = shape.fingerprint(CDX, params)
    cursor = shape.encode_cursor([123, "abc"], fingerprint)
    assert shape.decode_cursor(cursor, fingerprint) == [123, "abc"]
    with pytest.raises(ValueError):
        shape.decode_cursor(cursor, shape.fingerprint(CDX, parse(gender="m")))
    with pytest.raises(ValueError):
        shape.decode_cursor("!!!", fingerprint)


def test_age_ranges_beside_other_groups_are_a_range_under_each_bucket():
    params = Schema().load({"group_by": ["gender", {"age": [[0, 10], [5, None], [None, 3]]}]})
    groups = group_body(CDX, params)["aggs"]["groups"]
    assert [next(iter(source)) for source in groups["composite"]["sources"]] == ["g0"]
    assert groups["aggs"] == {
        "ranged": {
            "range": {
                "field": "age",
                "ranges": [{"key": "0", "from": 0, "to": 10}, {"key": "1", "from": 5}, {"key": "2", "to": 3}],
            }
        }
    }
    ranged = {
        "buckets": [{"key": "0", "doc_count": 4}, {"key": "1", "doc_count": 0}, {"key": "2", "doc_count": 1}]
    }
    counts = shape.add_buckets(params, [{**bucket(9, g0="f"), "ranged": ranged}], {})
    assert shape.rows(params, counts) == [
        {"gender": "f", "age": [0, 10], "count": 4},
        {"gender": "f", "age": [None, 3], "count": 1},
    ]
