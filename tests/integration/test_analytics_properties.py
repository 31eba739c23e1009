"""Property test of the surveillance answers (docs/api.md §6.8-6.12) over HTTP on a real node.

Hypothesis combines `rate`, `distinct`, `top` and `compare` with groupings, filters,
`time_zone`, `min_count`, cursor pages and JSON bodies, and checks what must hold whatever
the combination: never a 5xx, a 400 names a parameter; a rate's numerator is at most its
denominator, which is its row's count, and its Wilson interval holds its value; a distinct
count is at most its row's count and exact below its cut-off; `top` keeps at most N values;
cursor pages concatenate to the unpaged rows; under `min_count` no shown figure (count,
numerator, the events without the value, previous count) is 1 to k-1.
The example count comes from ANALYTICS_PROPERTY_EXAMPLES (make reliability raises it).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import auth, empty_index
from tests.integration.test_analytics_cdx import earlier_events, make_events

EXAMPLES = int(os.environ.get("ANALYTICS_PROPERTY_EXAMPLES", "60"))
GROUPS = ["gender", "laboratory", "institution", "test_type", "condition", "result", "week(start_time)"]
RATES = ["result:positive", "gender:male", "test_type:qc", "condition:mtb", "device:dev-3"]
DISTINCT = ["device", "laboratory", "location", "institution", "system_user"]
BOUNDS = {"since": "2024-03-01", "until": "2024-04-30"}


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    client = app.test_client()
    events = make_events() + earlier_events()
    response = client.post("/events?refresh=wait_for", json=events, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json


@st.composite
def queries(draw) -> dict:
    groups = draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))
    query: dict = {}
    if groups:
        query["group_by"] = groups
    if draw(st.booleans()):
        query["rate"] = draw(st.lists(st.sampled_from(RATES), min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        query["distinct"] = draw(st.lists(st.sampled_from(DISTINCT), min_size=1, max_size=2, unique=True))
    plain = [g for g in groups if "(" not in g]
    if plain and draw(st.booleans()):
        query["top"] = f"{draw(st.sampled_from(plain))}:{draw(st.integers(1, 4))}"
    dated = any("(" in g for g in groups)
    if not dated and draw(st.booleans()):
        query["compare"] = draw(st.sampled_from(["previous", "year"]))
        query |= BOUNDS
    elif draw(st.booleans()):
        query["since"] = "2024-03-15"
    if dated and draw(st.booleans()):
        query["time_zone"] = draw(st.sampled_from(["America/New_York", "+05:30", "Europe/Berlin"]))
    if draw(st.booleans()):
        query["min_count"] = draw(st.integers(3, 12))
    if groups and draw(st.booleans()):
        query["page_size"] = draw(st.integers(1, 7))
    if draw(st.booleans()):
        query["institution"] = [draw(st.integers(1, 3))]
    return query


def ask(client, tokens, query: dict):
    return client.post("/events/query", json=query, headers=auth(tokens["query"]))


def walk(client, tokens, query: dict, pages: int) -> list[dict] | None:
    """Every row of a cursor walk of at most `pages` pages (None if a page is refused)."""
    rows, cursor = [], None
    for _ in range(pages):
        page = ask(client, tokens, {**query, **({"cursor": cursor} if cursor else {})})
        if page.status_code != 200:
            return None
        rows += page.json["events"]
        cursor = page.json.get("next_cursor")
        if not cursor:
            return rows
    raise AssertionError("a cursor walk did not end")


def shown_small(value, k: int) -> bool:
    return isinstance(value, int) and 0 < value < k


def check_figures(row: dict, query: dict) -> None:
    k = query.get("min_count")
    count = row.get("count")
    for name, rate in (row.get("rate") or {}).items():
        if rate is None or rate.get("numerator") is None:
            continue
        assert rate["denominator"] == count or count is None, (name, row)
        assert 0 <= rate["numerator"] <= rate["denominator"], (name, row)
        if rate["denominator"]:
            low, high = rate["ci95"]
            assert low - 1e-12 <= rate["value"] <= high + 1e-12, (name, row)
        if k:
            assert not shown_small(rate["numerator"], k), (name, row)
            assert not shown_small(rate["denominator"] - rate["numerator"], k), (name, row)
    for name, distinct in (row.get("distinct") or {}).items():
        if distinct is None or distinct.get("count") is None:
            continue
        if count is not None:
            assert distinct["count"] <= count, (name, row)
        if distinct["count"] < 1000:
            assert distinct["exact"] is True, (name, row)
    if k:
        assert not shown_small(count, k), row
        previous = (row.get("previous") or {}).get("count")
        assert not shown_small(previous, k), row


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=queries())
def test_surveillance_answers_keep_their_invariants(client, tokens, query):
    response = ask(client, tokens, query)
    assert response.status_code < 500, (query, response.json)
    if response.status_code != 200:
        error = response.json["error"]
        assert error["code"] and error["message"], (query, error)
        assert error.get("details", {}).get("fields"), (query, error)  # names the parameter
        return
    answer = response.json
    for row in answer["events"] if query.get("group_by") else [answer]:
        check_figures(row, query)
    if "top" in query:
        key, size = query["top"].split(":")
        kept = {repr(row[key]) for row in answer["events"] if not isinstance(row[key], dict) and row[key]}
        if "page_size" not in query:
            assert len(kept) <= int(size), (query, kept)
    if "page_size" in query:
        unpaged = {name: value for name, value in query.items() if name != "page_size"}
        everything = ask(client, tokens, unpaged)
        if everything.status_code != 200:
            return
        # One page per `page_size` rows of the unpaged answer, and the last one empty at most
        # (page_size=1 over the 208 rows of condition x laboratory takes 209 pages).
        pages = -(-len(everything.json["events"]) // query["page_size"]) + 1
        walked = walk(client, tokens, query, pages)
        if walked is not None:
            assert walked == everything.json["events"], query
