"""The pure pieces of engine/analytics.py: Wilson intervals, rate and top-N aggregations, the
compared period, paging rows computed whole, suppression of the new figures."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from service.datasets.cdx import CDX
from service.datasets.roundware import ROUNDWARE
from service.engine import analytics, shape, suppression
from service.engine.analytics import Other, Rate, TopValues, rounded_up, wilson
from service.engine.groups import ABSENT, JOINER
from service.engine.params import query_schema
from service.engine.translate import BUCKET_BUDGET, composite_size, group_body, search_body

CDX_QUERY = query_schema(CDX)()
ROUNDWARE_QUERY = query_schema(ROUNDWARE)()


def parse(**args):
    return CDX_QUERY.load(args)


# -- Wilson ---------------------------------------------------------------------------------

Z2 = analytics.Z95**2
HALF = analytics.Z95 / (1 + Z2 / 2) * math.sqrt(1 / 8 + Z2 / 16)


@pytest.mark.parametrize(
    ("x", "n", "expected", "within"),
    [
        (12, 80, (0.088, 0.245), 1e-3),  # the issue's example (0.0879, 0.2456), as it rounds
        # Closed forms: x = 0 gives (0, z²/(n + z²)), x = n gives (n/(n + z²), 1), and 1 of 2 is
        # symmetric about 1/2 with half-width z/(1 + z²/2)·√(1/8 + z²/16).
        (0, 10, (0.0, Z2 / (10 + Z2)), 1e-12),
        (10, 10, (10 / (10 + Z2), 1.0), 1e-12),
        (1, 2, (0.5 - HALF, 0.5 + HALF), 1e-12),
    ],
)
def test_wilson_against_reference_values(x, n, expected, within):
    low, high = wilson(x, n)
    assert (low, high) == (pytest.approx(expected[0], abs=within), pytest.approx(expected[1], abs=within))


def test_wilson_matches_the_other_closed_form_to_1e_12():
    z = analytics.Z95
    for n in (1, 3, 17, 80, 1000, 123457):
        for x in {0, 1, n // 3, n // 2, n - 1, n}:
            p = x / n
            root = z * math.sqrt(z * z + 4 * n * p * (1 - p))
            reference = (
                (2 * n * p + z * z - root) / (2 * (n + z * z)),
                (2 * n * p + z * z + root) / (2 * (n + z * z)),
            )
            low, high = wilson(x, n)
            assert low == pytest.approx(max(0.0, reference[0]), abs=1e-12)
            assert high == pytest.approx(min(1.0, reference[1]), abs=1e-12)
            assert 0.0 <= low <= p <= high <= 1.0


def test_a_rate_without_events_has_no_value():
    assert wilson(0, 0) is None
    assert analytics.rate_value(0, 0) == {"numerator": 0, "denominator": 0, "value": None, "ci95": None}


# -- parameters -----------------------------------------------------------------------------


def test_rates_distinct_top_and_compare_are_read_from_the_registry():
    params = parse(group_by="laboratory,condition", rate="result:positive,gender:female,result:positive")
    assert [rate.label for rate in params.rates] == ["result:positive", "gender:female"]
    assert parse(group_by="gender", distinct="device,device,location").distinct == ("device", "location")
    assert parse(group_by="laboratory", top="laboratory:7").top == analytics.Top("laboratory", 7)
    assert set(CDX.rate_groups) == {
        "assay_name",
        "gender",
        "device",
        "system_user",
        "test_type",
        "condition",
        "result",
    }
    assert set(ROUNDWARE.rate_groups) == {"event_type"}
    assert set(CDX.distinct_fields) == {"device", "laboratory", "location", "institution", "system_user"}
    assert set(ROUNDWARE.distinct_fields) == {"session_id", "tag_ids"}


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ({"group_by": "gender", "rate": "age:3"}, "rate"),
        ({"group_by": "gender", "rate": "gender"}, "rate"),
        ({"group_by": "gender", "distinct": "age"}, "distinct"),
        ({"top": "gender:3"}, "top"),
        ({"group_by": "gender", "top": "gender:-1"}, "top"),
        ({"group_by": "gender", "top": "laboratory:2"}, "top"),
        ({"group_by": "week(start_time)", "top": "start_time:2"}, "top"),
        ({"group_by": "gender", "compare": "previous", "until": "2024-01-01"}, "compare"),
        ({"group_by": "gender", "compare": "previous", "since": "2024-01-01"}, "compare"),
    ],
)
def test_parameters_that_cannot_apply_are_refused_by_name(args, name):
    with pytest.raises(ValidationError) as caught:
        parse(**args)
    assert list(caught.value.messages) == [name]


# -- rates in bodies ------------------------------------------------------------------------


def test_a_rate_is_a_filter_under_each_row_and_of_the_whole_answer():
    params = parse(group_by="gender", rate="test_type:qc")
    inner = group_body(CDX, params)["aggs"]["groups"]["aggs"]
    assert inner["rate:0"] == {"filter": {"term": {"test_type": "qc"}}}
    assert search_body(CDX, parse(rate="gender:female"), 0)["aggs"]["rate:0"] == {
        "filter": {"term": {"gender": "female"}}
    }


def test_an_entry_rate_holds_on_the_entry_a_condition_filter_names():
    params = parse(group_by="gender", rate="result:positive", condition="mtb")
    (nested,) = [group_body(CDX, params)["aggs"]["groups"]["aggs"]["rate:0"]["filter"]]
    assert nested == {
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


def test_an_entry_rate_in_rows_keyed_by_the_other_key_reads_whole_entries():
    params = parse(group_by="condition", rate="result:positive")
    assert analytics.lookups(CDX, params) == {"values:condition": CDX.groups["condition"]}
    planned = analytics.plan(CDX, params, {"values:condition": [("hiv", 3), ("mtb", 5), (ABSENT, 1)]})
    filters = group_body(CDX, planned)["aggs"]["groups"]["aggs"]["rate:0"]["filters"]["filters"]
    assert filters == {
        "p0": {"term": {"derived.results_entry": f"hiv{JOINER}positive"}},
        "p1": {"term": {"derived.results_entry": f"mtb{JOINER}positive"}},
        "p2": {"term": {"derived.results_entry": f"{ABSENT}{JOINER}positive"}},
    }
    bucket = {"rate:0": {"buckets": {"p1": {"doc_count": 4}, "p2": {"doc_count": 0}}}}
    rate = planned.rates[0]
    assert analytics.read_numerator(bucket, 0, rate, {"condition": "mtb"}) == 4
    assert analytics.read_numerator(bucket, 0, rate, {"condition": None}) == 0
    assert analytics.read_numerator(bucket, 0, rate, {"condition": "flu"}) == 0  # not a known value


# -- distinct -------------------------------------------------------------------------------


def test_distinct_is_exact_up_to_the_limit_then_an_estimate():
    limit = analytics.DISTINCT_EXACT_LIMIT
    exact = {
        "distinct:device": {
            "buckets": [{"key": f"d{i}", "doc_count": 1} for i in range(limit)],
            "sum_other_doc_count": 0,
        },
        "cardinality:device": {"value": limit - 3},
    }
    assert analytics.distinct_value(analytics.read_distinct(exact, "device")) == {
        "count": limit,
        "exact": True,
    }
    past = {
        "distinct:device": {
            "buckets": [{"key": f"d{i}", "doc_count": 1} for i in range(limit + 1)],
            "sum_other_doc_count": 9,
        },
        "cardinality:device": {"value": limit + 12},
    }
    assert analytics.distinct_value(analytics.read_distinct(past, "device")) == {
        "count": limit + 12,
        "exact": False,
    }
    # Rows folded from several buckets: the union.
    a = (frozenset({"x", "y"}), 2)
    assert analytics.merge_distinct(a, (frozenset({"y", "z"}), 2)) == (frozenset({"x", "y", "z"}), 3)
    assert analytics.merge_distinct(a, (None, 5000))[0] is None


def test_sub_buckets_shrink_the_composite_page_under_elasticsearchs_limit():
    plain = parse(group_by="gender")
    assert composite_size(plain) == 5000
    counted = parse(group_by="gender", distinct="device,location")
    size = composite_size(counted)
    assert size * (2 * (analytics.DISTINCT_EXACT_LIMIT + 2) + 1) <= BUCKET_BUDGET and size >= 25


# -- top N ----------------------------------------------------------------------------------


def test_top_values_become_one_filter_bucket_each_with_the_rest_and_nulls():
    params = parse(group_by="laboratory,gender", top="laboratory:2")
    assert analytics.lookups(CDX, params) == {"top": CDX.groups["laboratory"]}
    counts = [(None, 9), (1, 5), (2, 8), (3, 5), (4, 1)]
    planned = analytics.plan(CDX, params, {"top": counts})
    top = planned.groups[0]
    assert isinstance(top, TopValues) and (top.top, top.others) == ((2, 1), (3, 4))  # ties by key
    filters = top.bucket_aggregation(planned.bucket_options)["filters"]["filters"]
    assert filters == {
        "t0": {"term": {"laboratory_id": 2}},
        "t1": {"term": {"laboratory_id": 1}},
        "null": {"bool": {"must_not": [{"exists": {"field": "laboratory_id"}}]}},
        "other": {
            "bool": {
                "filter": [{"exists": {"field": "laboratory_id"}}],
                "must_not": [{"terms": {"laboratory_id": [2, 1]}}],
            }
        },
    }
    assert [top.bucket_rows(key) for key in ("t0", "null", "other")] == [
        {"laboratory": 2},
        {"laboratory": None},
        {"laboratory": Other(2)},
    ]
    assert sorted([Other(2), None, 2, 1], key=lambda v: top.sort_key("laboratory", v)) == [
        None,
        1,
        2,
        Other(2),
    ]
    assert not planned.streamable and planned.pageable_whole


def test_top_of_a_multi_valued_field_matches_any_merged_value():
    params = ROUNDWARE_QUERY.load({"group_by": "tag_ids", "top": "tag_ids:1"})
    planned = analytics.plan(ROUNDWARE, params, {"top": [(3, 10), (5, 2), (8, 4)]})
    filters = planned.groups[0].filters()
    assert filters["other"] == {"terms": {"tag_ids": [8, 5]}}


def test_top_over_a_whole_entry_crosses_the_other_keys_values():
    params = parse(group_by="condition,result", top="condition:1")
    assert set(analytics.lookups(CDX, params)) == {"top", "values:result"}
    found = {
        "top": [(ABSENT, 2), ("hiv", 3), ("mtb", 7)],
        "values:result": [(ABSENT, 1), ("negative", 4), ("positive", 6)],
    }
    top = analytics.plan(CDX, params, found).groups[0]
    filters = top.filters()
    assert filters["t0:2"] == {"term": {"derived.results_entry": f"mtb{JOINER}positive"}}
    assert filters["other:1"] == {"terms": {"derived.results_entry": [f"hiv{JOINER}negative"]}}
    assert filters["null:0"] == {"term": {"derived.results_entry": f"{ABSENT}{JOINER}{ABSENT}"}}
    assert top.bucket_rows("other:2") == {"condition": Other(1), "result": "positive"}


def test_rows_keyed_other_are_written_as_objects():
    params = analytics.plan(CDX, parse(group_by="laboratory", top="laboratory:1"), {"top": [(1, 3), (2, 1)]})
    tally = shape.Tally({(Other(1),): 1, (1,): 3})
    assert shape.rows(params, tally) == [
        {"laboratory": 1, "count": 3},
        {"laboratory": {"other": 1}, "count": 1},
    ]


# -- compared periods -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-04-20", "2024-04-20T23:59:59.999+00:00"),
        ("2024-04-20T10:00", "2024-04-20T10:00:59.999+00:00"),
        ("2024-04-20T10:00+02:00", "2024-04-20T10:00:59.999+02:00"),
        ("2024-04-20T10:00:05Z", "2024-04-20T10:00:05.999+00:00"),
        ("2024-04-20T10:00:05.250Z", "2024-04-20T10:00:05.250+00:00"),
    ],
)
def test_upper_bounds_are_read_as_elasticsearch_rounds_them(text, expected):
    assert rounded_up(text).isoformat(timespec="milliseconds") == expected


def test_the_previous_period_ends_just_before_this_one_and_lasts_as_long():
    filters = {"since": "2024-04-01", "until": "2024-04-30", "gender": ["male"]}
    moved = analytics.previous_filters(CDX, filters, "previous")
    assert moved == {
        "gender": ["male"],
        "since": "2024-03-02T00:00:00.000+00:00",
        "until": "2024-03-31T23:59:59.999+00:00",
    }
    low, high = analytics.period(CDX, filters)
    before_low, before_high = analytics.period(CDX, moved)
    assert before_high - before_low == high - low and (low - before_high).total_seconds() == 0.001


def test_a_year_earlier_keeps_the_dates():
    moved = analytics.previous_filters(CDX, {"since": "2024-02-29T06:00:00Z", "until": "2024-03-31"}, "year")
    assert moved == {"since": "2023-02-28T06:00:00.000+00:00", "until": "2023-03-31T23:59:59.999+00:00"}


def test_roundware_periods_use_its_strict_bounds_and_partial_days():
    filters = ROUNDWARE_QUERY.load({"server_time": "2026-03-10", "compare": "previous"}).filters
    moved = analytics.previous_filters(ROUNDWARE, filters, "previous")
    assert moved == {
        "server_time__gt": "2026-03-08T23:59:59.999+00:00",
        "server_time__lt": "2026-03-10T00:00:00.000+00:00",
    }
    strict = {"server_time__gt": "2026-03-10T00:00:00.000Z", "server_time__lt": "2026-03-10T00:00:01.000Z"}
    assert analytics.previous_filters(ROUNDWARE, strict, "previous") == {
        "server_time__gt": "2026-03-09T23:59:59.001+00:00",
        "server_time__lt": "2026-03-10T00:00:00.001+00:00",
    }


def test_rows_of_both_periods_are_matched_by_key():
    params = parse(group_by="gender", since="2024-04-01", until="2024-04-30", compare="previous")
    tally = shape.Tally({("female",): 4, ("male",): 2})
    previous = shape.Tally({("female",): 2, ("other",): 3})
    assert shape.rows(params, analytics.add_previous(tally, previous)) == [
        {"gender": "female", "count": 4, "previous": {"count": 2}, "change": 1.0},
        {"gender": "male", "count": 2, "previous": {"count": 0}, "change": None},
        {"gender": "other", "count": 0, "previous": {"count": 3}, "change": -1.0},
    ]


# -- paging rows computed whole, and suppression --------------------------------------------


def test_rows_computed_whole_page_after_the_last_rows_key():
    params = analytics.plan(
        CDX, parse(group_by="laboratory", top="laboratory:2"), {"top": [(1, 3), (2, 2), (3, 1)]}
    )
    rows = [{"laboratory": None}, {"laboratory": 1}, {"laboratory": 2}, {"laboratory": {"other": 1}}]
    page, after = analytics.page_of(params, rows, None, 2)
    assert page == rows[:2] and after == [1]
    page, after = analytics.page_of(params, rows, after, 2)
    assert page == rows[2:] and after is None
    # A row gone since the last page: the next page starts after where it was.
    page, _ = analytics.page_of(params, [rows[0], rows[3]], [1], 2)
    assert page == [rows[3]]


def suppressed(before: dict, k: int, params) -> dict:
    return analytics.suppress_figures(before, suppression.suppress_answer(before, k, params), k, params)


def test_suppression_hides_small_numerators_and_complements_and_small_previous_counts():
    params = parse(group_by="gender", since="2024-01-01", until="2024-02-01", compare="previous")
    params = replace(params, rates=tuple(Rate(label, "gender", label[-1]) for label in ("a:b", "c:d", "e:f")))
    rows = [
        {
            "gender": "f",
            "count": 40,
            "rate": {
                "a:b": analytics.rate_value(3, 40),  # 3 having the value: small
                "c:d": analytics.rate_value(20, 40),
                "e:f": analytics.rate_value(38, 40),  # 2 lacking it: small
            },
            "previous": {"count": 4},
            "change": 9.0,
        },
        {
            "gender": "m",
            "count": 2,
            "rate": {label: analytics.rate_value(1, 2) for label in ("a:b", "c:d", "e:f")},
            "previous": {"count": 50},
            "change": -0.96,
        },
    ]
    before = {"total_count": 42, "events": rows, "exact": True}
    shown, hidden = suppressed(before, 5, params)["events"]
    nothing = {"numerator": None, "denominator": None, "value": None, "ci95": None}
    assert shown["rate"]["a:b"] == shown["rate"]["e:f"] == {**nothing, "denominator": 40}
    assert shown["rate"]["c:d"] == rows[0]["rate"]["c:d"]
    assert shown["previous"] == {"count": None} and shown["change"] is None
    assert hidden["count"] is None and hidden["suppressed"] is True
    assert hidden["rate"] == dict.fromkeys(("a:b", "c:d", "e:f"), nothing)
    assert hidden["previous"] == {"count": 50} and hidden["change"] is None
    assert rows[0]["rate"]["a:b"]["numerator"] == 3  # rows may be shared (the rows cache): not changed


def test_distinct_counts_of_a_hidden_row_are_hidden():
    params = parse(group_by="gender", distinct="device")
    rows = [
        {"gender": "f", "count": 9, "distinct": {"device": {"count": 2, "exact": True}}},
        {"gender": "m", "count": 1, "distinct": {"device": {"count": 1, "exact": True}}},
    ]
    shown, hidden = suppressed({"total_count": 10, "events": rows}, 3, params)["events"]
    assert shown["distinct"] == rows[0]["distinct"] and hidden["distinct"] == {"device": None}


def test_overlapping_delay_ranges_hide_the_rows_and_numerators_they_would_give_away():
    params = CDX_QUERY.load(
        {"group_by": [{"report_delay_hours": [[None, 24], [None, 12], [12, 24]]}], "rate": "gender:f"}
    )

    def row(bounds, count, numerator):
        return {
            "report_delay_hours": bounds,
            "count": count,
            "rate": {"gender:f": analytics.rate_value(numerator, count)},
        }

    # [null, 24) and [null, 12) shown would give [12, 24) away: 30 - 28 = 2. Delays may be
    # negative, so an open lower end does not stop at 0.
    rows = [row([None, 24], 30, 15), row([None, 12], 28, 14), row([12, 24], 2, 1)]
    answer = suppressed({"total_count": 30, "events": rows}, 3, params)["events"]
    assert [row["count"] for row in answer] == [None, None, None]
    # Counts all shown, but 15 - 14 = 1 having the value in [12, 24): that numerator and those
    # that would give it away are hidden.
    rows = [row([None, 24], 48, 15), row([None, 12], 28, 14), row([12, 24], 20, 1)]
    answer = suppressed({"total_count": 48, "events": rows}, 3, params)["events"]
    assert [row["count"] for row in answer] == [48, 28, 20]
    assert [row["rate"]["gender:f"]["numerator"] for row in answer] == [None, None, None]


def test_the_whole_answers_figures_go_with_a_hidden_total():
    before = {
        "total_count": 2,
        "events": [],
        "rate": {"a:b": analytics.rate_value(1, 2)},
        "distinct": {"device": {"count": 1, "exact": True}},
        "previous": {"count": 9},
        "change": -0.78,
    }
    params = parse(page_size=0, rate="gender:f", since="2024-01-01", until="2024-02-01", compare="previous")
    hidden = suppressed(before, 5, params)
    assert hidden["total_count"] is None
    assert hidden["rate"]["a:b"] == {"numerator": None, "denominator": None, "value": None, "ci95": None}
    assert hidden["distinct"] == {"device": None} and hidden["change"] is None
    assert hidden["previous"] == {"count": 9}
    shown = suppressed(
        {**before, "total_count": 40, "rate": {"a:b": analytics.rate_value(38, 40)}}, 5, params
    )
    assert shown["total_count"] == 40 and shown["rate"]["a:b"]["numerator"] is None  # 2 lack it


def test_derived_delays():
    from service.datasets.cdx import report_delay_hours
    from service.datasets.roundware import delay_seconds

    assert (
        report_delay_hours({"start_time": "2024-03-01T10:00:00Z", "created_at": "2024-03-02T16:30:00+02:00"})
        == 28.5
    )
    assert report_delay_hours({"start_time": "2024-03-01T10:00:00Z"}) is None
    assert (
        delay_seconds({"client_time": "2026-01-01T00:00:00", "server_time": "2026-01-01T00:00:01.500Z"})
        == 1.5
    )
    document = CDX.to_document(
        {"uuid": "x", "start_time": "2024-03-01", "created_at": "2024-03-01T06:00:00Z"}
    )
    assert document["derived"]["report_delay_hours"] == 6.0
    assert "report_delay_hours" not in CDX.to_event(document)
    assert datetime(2024, 1, 1, tzinfo=UTC)  # keep the import honest
    assert replace(Rate("a:b", "a", "b"), partner_key="c").partner_key == "c"


def test_the_whole_answer_before_any_index_exists():
    params = parse(rate="gender:female", distinct="device")
    assert analytics.whole_answer(params, {}, 0) == {
        "rate": {"gender:female": {"numerator": 0, "denominator": 0, "value": None, "ci95": None}},
        "distinct": {"device": {"count": 0, "exact": True}},
    }


def test_integer_range_ends_the_type_cannot_hold_are_sent_open():
    params = parse(group_by=[{"age": [[3, 2**31], [0, 10]]}])
    (group,) = params.groups
    ranges = group.bucket_aggregation(params.bucket_options)["range"]["ranges"]
    assert ranges == [{"key": "0", "from": 3}, {"key": "1", "from": 0, "to": 10}]
    assert group.bucket_rows("0") == {"age": [3, 2**31]}  # rows keep the ends as asked


ENTRY_VALUES = st.sampled_from(["mtb", "hiv", "positive", "negative", "", "é"])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.lists(
            st.dictionaries(st.sampled_from(["condition", "result"]), ENTRY_VALUES, max_size=2), max_size=4
        ),
    )
)
def test_entry_keys_derived_in_one_pass_are_their_definition(entries):
    """Each key's list is its distinct values (ABSENT where an entry lacks it), the whole
    entries' list the distinct joined pairs, all sorted; no entries count as one empty entry."""

    event = {"uuid": "x"} if entries is None else {"uuid": "x", "results": entries}
    derived = CDX.derive(event)
    whole = entries or [{}]
    for key in ("condition", "result"):
        assert derived[f"results_{key}"] == sorted({entry.get(key, ABSENT) for entry in whole})
    pairs = {entry.get("condition", ABSENT) + JOINER + entry.get("result", ABSENT) for entry in whole}
    assert derived["results_entry"] == sorted(pairs)
    assert set(derived) <= set(CDX.derived_mapping)  # each is mapped in the template


def test_a_nested_field_must_declare_its_first_entry_keys_group():
    from service.engine.fields import Nested
    from service.engine.groups import EntryKey
    from service.engine.registry import Field

    keys = ("condition", "result")
    Field("results", Nested(keys=keys), groups=(EntryKey("condition", entry_keys=keys),))
    with pytest.raises(ValueError, match="first entry key 'condition'"):
        Field("results", Nested(keys=keys), groups=(EntryKey("result", entry_keys=keys),))
