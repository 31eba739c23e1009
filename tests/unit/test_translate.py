"""Query string → Elasticsearch body, as tables; no server needed."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from service.datasets.cdx import CDX
from service.datasets.roundware import ROUNDWARE
from service.engine import shape, suppression
from service.engine.groups import ABSENT, JOINER, BucketOptions, format_bucket
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
        # Integers sort as longs, so 2^31-1 never ties with a missing age (fields.Integer); a
        # number's missing value is named, not `_last` (fields.missing_last_as_long).
        {"age": {"order": "asc", "missing": 2**63 - 1, "numeric_type": "long"}},
        {"gender": {"order": "desc", "missing": "_last"}},
        {"uuid": {"order": "asc"}},
    ]
    dates = search_body(CDX, parse(order_by="-start_time,created_at"), page_size=10)["sort"]
    assert dates[:2] == [
        {"start_time": {"order": "desc", "missing": -(2**63)}},
        {"created_at": {"order": "asc", "missing": 2**63 - 1}},
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
    assert admin.source(BucketOptions()) == {
        "terms": {"field": "derived.admin_level_1", "missing_bucket": True}
    }
    single = Schema().load({"group_by": {"age": [[21]]}})
    assert single.groups[0].ranges == ((21, None),)


def test_filter_datetimes_without_an_offset_are_utc_whatever_the_time_zone():
    summer = parse(
        since="2024-07-01", until="2024-07-01T12:00:00Z", group_by="day(start_time)", time_zone="Europe/Paris"
    )
    assert filter_query(CDX, summer.filters)["bool"]["filter"] == [
        {"range": {"start_time": {"gte": "2024-07-01"}}},
        {"range": {"start_time": {"lte": "2024-07-01T12:00:00Z"}}},
    ]
    utc = query_schema(ROUNDWARE)().load({"server_time": "2024-03-31"})
    assert filter_query(ROUNDWARE, utc.filters)["bool"]["filter"] == [
        {"range": {"server_time": {"gte": "2024-03-31T00:00:00+00:00", "lt": "2024-04-01T00:00:00+00:00"}}}
    ]


def bucket(count, **keys):
    return {"key": keys, "doc_count": count}


def test_rows_from_buckets_iso_week_and_nulls():
    params = parse(group_by="gender,week(start_time)")
    monday_2012_12_31 = 1356912000000
    counts = shape.add_buckets(params, [bucket(3, g0="f", g1=monday_2012_12_31), bucket(2, g0=None, g1=None)])
    assert shape.rows(params, counts) == [
        {"gender": None, "start_time": None, "count": 2},
        {"gender": "f", "start_time": "2013-W01", "count": 3},
    ]


def ranges_of(*counts, **sub):
    """A `range` aggregation's answer: one bucket per requested range, in request order."""
    return {"buckets": [{"key": str(i), "doc_count": n, **sub} for i, n in enumerate(counts)]}


def test_age_ranges_nest_a_range_aggregation_under_the_composite():
    params = Schema().load({"group_by": ["gender", {"age": [[0, 5], [65, None], [0, 5]]}], "stats": "age"})
    groups = group_body(CDX, params)["aggs"]["groups"]
    assert groups["composite"]["sources"] == [{"g0": {"terms": {"field": "gender", "missing_bucket": True}}}]
    nested = groups["aggs"]["g1"]
    assert nested["range"] == {
        "field": "age",
        "ranges": [{"key": "0", "from": 0, "to": 5}, {"key": "1", "from": 65}],  # duplicates dropped
    }
    assert set(nested["aggs"]) == {"stats:age", "percentiles:age"}


def test_age_ranges_alone_are_one_filter_bucket():
    params = Schema().load({"group_by": {"age": [[0, 10]]}})
    groups = group_body(CDX, params)["aggs"]["groups"]
    assert groups["filter"] == {"match_all": {}}
    assert groups["aggs"]["g0"]["range"]["ranges"] == [{"key": "0", "from": 0, "to": 10}]


def test_age_range_rows_come_from_range_buckets_and_empty_ones_are_dropped():
    params = Schema().load({"group_by": ["gender", {"age": [[0, 10], [5, 15], [70, None]]}]})
    buckets = [
        {**bucket(9, g0="f"), "g1": ranges_of(3, 2, 0)},
        {**bucket(1, g0="m"), "g1": ranges_of(0, 1, 0)},
    ]
    assert shape.rows(params, shape.add_buckets(params, buckets)) == [
        {"gender": "f", "age": [0, 10], "count": 3},
        {"gender": "f", "age": [5, 15], "count": 2},
        {"gender": "m", "age": [5, 15], "count": 1},
    ]
    alone = Schema().load({"group_by": {"age": [[0, 10]]}})
    (single,) = shape.buckets_of({"doc_count": 4, "g0": ranges_of(4)})
    assert shape.rows(alone, shape.add_buckets(alone, [single])) == [{"age": [0, 10], "count": 4}]


def test_entry_rows_split_and_absent_keys_are_null():
    params = parse(group_by="condition,result")
    entry = JOINER.join(["mtb", ABSENT])
    counts = shape.add_buckets(params, [bucket(2, g0=entry), bucket(1, g0=None)])
    assert shape.rows(params, counts) == [
        {"condition": None, "result": None, "count": 1},
        {"condition": "mtb", "result": None, "count": 2},
    ]


def test_rows_order_by_count():
    params = parse(group_by="gender", order_by="-count")
    counts = shape.add_buckets(params, [bucket(1, g0="a"), bucket(5, g0="b")])
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


@pytest.mark.parametrize(
    ("day", "iso", "sunday"),
    [
        ("2012-12-31", "2013-W01", "2013-W01"),  # Monday: ISO week-year 2013; Sun 30th-Sat 5th -> Wed 2nd
        ("2013-01-06", "2013-W01", "2013-W02"),  # Sunday: ISO keeps it in W01; Sunday weeks start W02
        ("2016-01-01", "2015-W53", "2015-W52"),  # Friday: week of Wed 2015-12-30
        ("2017-01-01", "2016-W52", "2017-W01"),  # Sunday: Wed 2017-01-04
    ],
)
def test_week_labels(day, iso, sunday):
    from datetime import datetime

    moment = datetime.fromisoformat(day)
    assert format_bucket(moment, "week") == iso
    assert format_bucket(moment, "week", "sunday") == sunday


def test_sunday_weeks_shift_the_histogram():
    params = parse(group_by="week(start_time)", week_start="sunday")
    (source,) = group_body(CDX, params)["aggs"]["groups"]["composite"]["sources"]
    assert source["g0"]["date_histogram"]["offset"] == "-1d"


def test_sunday_weeks_of_a_named_zone_are_counted_by_local_day():
    params = parse(group_by="week(start_time)", week_start="sunday", time_zone="Europe/Berlin")
    (source,) = group_body(CDX, params)["aggs"]["groups"]["composite"]["sources"]
    histogram = source["g0"]["date_histogram"]
    assert histogram["calendar_interval"] == "day" and "offset" not in histogram
    assert not params.streamable
    assert parse(group_by="week(start_time)", week_start="sunday", time_zone="+01:00").streamable
    # Berlin's local midnights from Sunday 2024-03-24 to Saturday 04-06 (clocks go forward on
    # the 31st, a Sunday): the days of two Sunday weeks, whatever their length.
    midnights = [1711234800000 + day * 86_400_000 - (3_600_000 if day >= 8 else 0) for day in range(14)]
    counts = shape.add_buckets(params, [bucket(1 + day, g0=key) for day, key in enumerate(midnights)])
    name = params.groups[0].key
    assert shape.rows(params, counts) == [
        {name: "2024-W13", "count": sum(range(1, 8))},
        {name: "2024-W14", "count": sum(range(8, 15))},
    ]


def test_zero_fill_crosses_declared_values_and_date_bounds():
    params = parse(
        group_by="test_type,month(start_time)", fill="zero", since="2020-01-15", until="2020-03-01"
    )
    counts = shape.add_buckets(params, [bucket(4, g0="qc", g1=1580515200000)])  # 2020-02
    rows = shape.rows(params, counts, shape.date_bounds(CDX, params))
    assert rows == [
        {"test_type": "qc", "start_time": "2020-01", "count": 0},
        {"test_type": "qc", "start_time": "2020-02", "count": 4},
        {"test_type": "qc", "start_time": "2020-03", "count": 0},
        {"test_type": "specimen", "start_time": "2020-01", "count": 0},
        {"test_type": "specimen", "start_time": "2020-02", "count": 0},
        {"test_type": "specimen", "start_time": "2020-03", "count": 0},
    ]


def test_zero_fill_refuses_an_explosion():
    params = parse(group_by="day(start_time)", fill="zero", since="0001-01-01", until="9999-01-01")
    with pytest.raises(ValueError):
        shape.rows(params, shape.Tally(), shape.date_bounds(CDX, params))


def stats_bucket(count, total, low, high, **keys):
    stats = {"count": count, "min": low, "max": high, "sum": total, "avg": total / count}
    return {
        "key": keys,
        "doc_count": count,
        "stats:age": stats,
        "percentiles:age": {"values": {"50.0": (low + high) / 2}},
    }


def test_stats_merge_exactly_when_rows_fold():
    params = Schema().load({"group_by": "condition", "stats": "age"})
    entry = JOINER.join(["mtb", ABSENT])
    counts = shape.add_buckets(params, [stats_bucket(2, 10, 5, 5, g0=entry)])
    counts = shape.add_buckets(params, [stats_bucket(1, 30, 30, 30, g0=entry)], counts)
    (row,) = shape.rows(params, counts)
    assert row["stats"]["age"] == {
        "count": 3,
        "min": 5,
        "max": 30,
        "sum": 40,
        "avg": 40 / 3,
        "percentiles": {"50": None},
    }


def test_age_range_rows_keep_their_own_percentiles():
    params = Schema().load({"group_by": {"age": [[0, 100]]}, "stats": "age"})
    inner = stats_bucket(3, 40, 5, 30)
    (single,) = shape.buckets_of({"doc_count": 3, "g0": {"buckets": [{**inner, "key": "0"}]}})
    (row,) = shape.rows(params, shape.add_buckets(params, [single]))
    assert row["stats"]["age"]["percentiles"] == {"50": 17.5}


def test_small_counts_are_hidden_and_the_hidden_total_withheld():
    rows, hidden = suppression.suppress(
        [{"g": "a", "count": 2}, {"g": "b", "count": 9}, {"g": "c", "count": 0}], 5
    )
    assert rows == [
        {"g": "a", "count": None, "suppressed": True},
        {"g": "b", "count": 9},
        {"g": "c", "count": 0},
    ]
    assert hidden == {"min_count": 5, "rows": 1, "count": None}  # 2, the one hidden row's count


def test_streamable_only_in_key_order():
    assert parse(group_by="gender,week(start_time)").streamable
    assert not parse(group_by="gender", order_by="-count").streamable
    assert not Schema().load({"group_by": {"age": [[0, 5]]}}).streamable
