"""Small-count suppression, pure: the rule's cases, and the proofs of tests/disclosure.py over
random families of overlapping age ranges (tests/integration/test_disclosure.py runs them on
a real node)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.datasets.cdx import CDX
from service.engine import suppression
from service.engine.groups import AgeRanges
from service.engine.params import query_schema
from tests.disclosure import Dim, Scenario, answer, linear_leaks, small_published, unproven

Schema = query_schema(CDX)
#: Random families; `make reliability` raises it.
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "250"))


def rows_of(ranges, counts, **body):
    params = Schema().load({"group_by": [{"age": ranges}], **body})
    pairs = zip(ranges, counts, strict=True)
    rows = [{"age": list(r), "count": n} for r, n in pairs if n or body.get("fill")]
    return rows, params


def counts(rows):
    return [(row["age"], row["count"], row.get("suppressed")) for row in rows]


def test_a_range_bounding_hidden_ones_exactly_is_hidden_too():
    """[0, 20] and [10, 30] hold 2 each (k=3): linearly independent of [0, 30] = 4, yet 2 + 2 =
    4 + (ages 10-19) with each at most 2 pins both. Sharing ages, all three are hidden."""
    rows, params = rows_of([[0, 30], [0, 20], [10, 30]], [4, 2, 2])
    hidden, summary = suppression.suppress(rows, 3, params)
    assert counts(hidden) == [([0, 30], None, True), ([0, 20], None, True), ([10, 30], None, True)]
    assert summary == {"min_count": 3, "rows": 3, "count": None}


def test_ages_known_to_be_empty_link_nothing():
    """[0, 10] hidden and [5, 20] shown share only ages 5-9, which [5, 10] (left out: no
    events) says are empty; and a zero-filled row links nothing either."""
    for fill in ({}, {"fill": "zero"}):
        rows, params = rows_of([[0, 10], [5, 20], [5, 10]], [2, 6, 0], **fill)
        assert counts(suppression.suppress(rows, 3, params)[0])[:2] == [
            ([0, 10], None, True),
            ([5, 20], 6, None),
        ]


def test_each_family_is_its_own():
    params = Schema().load({"group_by": ["gender", {"age": [[0, 10], [0, 20]]}]})
    rows = [
        {"gender": "female", "age": [0, 10], "count": 2},
        {"gender": "female", "age": [0, 20], "count": 7},
        {"gender": "male", "age": [0, 10], "count": 5},
        {"gender": "male", "age": [0, 20], "count": 7},
    ]
    shown, _ = suppression.suppress(rows, 3, params)
    assert [(row["count"], row.get("suppressed")) for row in shown] == [
        (None, True),
        (None, True),
        (5, None),
        (7, None),
    ]


def test_ordered_by_count_hidden_rows_come_last_in_key_order():
    params = Schema().load({"group_by": "gender", "order_by": "-count"})
    rows = [{"gender": g, "count": n} for g, n in [("a", 9), ("c", 7), ("d", 2), ("b", 1)]]
    shown, _ = suppression.suppress(rows, 3, params)
    assert [(row["gender"], row["count"]) for row in shown] == [("a", 9), ("c", 7), ("b", None), ("d", None)]


def test_a_total_beside_rows_is_shown_only_when_they_add_up_to_it():
    params = Schema().load({"group_by": "result"})
    rows = [{"result": "negative", "count": 5}, {"result": "positive", "count": 4}]
    assert suppression.suppress_answer({"total_count": 9, "events": rows}, 3, params)["total_count"] == 9
    # One event in both rows: 8 events, and 9 - 8 = 1 would be a small count.
    assert suppression.suppress_answer({"total_count": 8, "events": rows}, 3, params)["total_count"] is None


def test_statistics_publish_no_small_count():
    stats = {"count": 8, "min": 1.0, "max": 9.0, "sum": 40.0, "avg": 5.0, "percentiles": {}}
    assert suppression.shown_stats(stats, 8, 3) == stats
    assert suppression.shown_stats(stats, 10, 3) is None  # 2 lack the field
    assert suppression.shown_stats(stats, None, 3) is None  # over a withheld count
    assert suppression.shown_stats({**stats, "count": 2}, 20, 3) is None


ENDS = [None, 0, 5, 10, 15, 20]
AGES = [None, 0, 3, 5, 7, 10, 12, 15, 18, 20, 25]
#: The other key of a family: one value per event, or a set (an event in several rows).
OTHERS = {
    "gender": (Dim("gender", nullable=False), st.sampled_from(["f", "m"])),
    "result": (
        Dim("result", "many"),
        st.sampled_from([frozenset(s) for s in (["p"], ["n"], ["p", "n"], [None])]),
    ),
}


@st.composite
def families(draw):
    other = draw(st.sampled_from(sorted(OTHERS)))
    ranges = draw(st.lists(st.tuples(st.sampled_from(ENDS), st.sampled_from(ENDS)), min_size=2, max_size=4))
    ranges = [(low, high) for low, high in ranges if low is None or high is None or low < high]
    events = draw(
        st.lists(
            st.fixed_dictionaries({other: OTHERS[other][1], "age": st.sampled_from(AGES)}),
            min_size=4,
            max_size=30,
        )
    )
    body = {"group_by": [other, {"age": [list(r) for r in dict.fromkeys(ranges)] or [[0, 5]]}]}
    if draw(st.booleans()):
        body["fill"] = "zero"
    if draw(st.booleans()):
        body["stats"] = "age"
    return events, body, other, draw(st.integers(3, 5))


def family(ranges, ages, k, **body):
    events = [{"gender": "f", "age": age} for age in ages]
    return events, {"group_by": ["gender", {"age": ranges}], **body}, "gender", k


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(families())
# All three under k = 3: told apart from complementary ones, they would be 1, 1 and 2.
@example(family([[None, 5], [5, None], [None, None]], [0, 10], 3))
# [0, 30] = 4 beside two rows of 2 it covers: 2 + 2 = 4 + (ages 10-19) pins them.
@example(family([[0, 30], [0, 20], [10, 30]], [0, 0, 25, 25], 3, stats="age"))
# [0, 20] and [0, 10] shown would pin [10, 20].
@example(family([[0, 20], [0, 10], [10, 20]], [1, 2, 3, 12], 3, fill="zero"))
def test_no_hidden_count_of_random_ranges_can_be_worked_out(family):
    events, body, other, k = family
    params = Schema().load(body)
    ranged = next(group for group in params.groups if isinstance(group, AgeRanges))
    sc = Scenario(params=params, k=k, dims=(OTHERS[other][0], Dim("age", "ranges", ranged.ranges)))
    result = answer(events, sc)
    assert small_published(result, sc) == []
    assert linear_leaks(result, events, sc) is None
    assert unproven(events, sc) == []
