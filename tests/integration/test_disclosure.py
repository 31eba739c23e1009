"""The proof of small-count suppression on a real node: for answers on both datasets, with
grouping, overlapping age ranges, fill, stats, multi-valued groups, ordering by count and
cursor walks, no hidden count (nor any sum of them) can be worked out from the published
figures: not by exact linear algebra, nor with the integer bounds the markers give away
(tests/disclosure.py). Every published figure is also checked to be the true one.
"""

from __future__ import annotations

import itertools
import random
from urllib.parse import urlencode

import pytest

from service.api.cdx import CDX_QUERY
from service.api.roundware import RoundwareQuery
from service.engine.groups import AgeRanges
from tests.conftest import auth, empty_index
from tests.disclosure import (
    Dim,
    Scenario,
    answer,
    linear_leaks,
    normalized,
    small_published,
    unproven,
    withheld,
    witness,
)

CDX_DIMS = {
    "gender": Dim("gender"),
    "test_type": Dim("test_type", declared=("qc", "specimen")),
    "result": Dim("result", "many", declared=("negative", "positive")),
}
ROUNDWARE_DIMS = {"event_type": Dim("event_type", nullable=False), "tag_ids": Dim("tag_ids", "many")}
AGES = [1, 3, 6, 8, 9, 12, 14, 17, 19, 22, 25, 28, 33, 41]
RESULTS = [{"positive"}, {"negative"}, {"negative"}, {"positive", "negative"}, {None}]


def cdx_events() -> list[dict]:
    """30 events: 14 female, 12 male, 2 other, 2 without gender; some without age; some with
    two results or none."""
    rng = random.Random(11)
    genders = ["female"] * 14 + ["male"] * 12 + ["other"] * 2 + [None] * 2
    return [
        {
            "gender": gender,
            "age": None if i % 11 == 3 else rng.choice(AGES),
            "result": frozenset(rng.choice(RESULTS)),
            "test_type": "qc" if i % 6 == 0 else "specimen",
        }
        for i, gender in enumerate(genders)
    ]


def roundware_events() -> list[dict]:
    rng = random.Random(5)
    kinds = ["listen"] * 12 + ["start_session"] * 9 + ["stop"] * 2
    tags = [{3}, {8}, {3, 8}, {12}, {None}, {3}]
    return [
        {
            "event_type": kind,
            "tag_ids": frozenset(rng.choice(tags)),
            "latitude": None if i % 7 == 2 else rng.choice([45.5, 46.0, 44.25, 47.75]),
        }
        for i, kind in enumerate(kinds)
    ]


CDX_EVENTS = cdx_events()
ROUNDWARE_EVENTS = roundware_events()


def to_cdx(event: dict, n: int, institution: int) -> dict:
    posted = {
        "uuid": f"d{institution}-{n}",
        "institution_id": institution,
        "start_time": "2024-05-02T10:00:00Z",
        "test_type": event["test_type"],
        "results": [{"condition": "mtb", **({"result": r} if r else {})} for r in event["result"]],
    }
    return posted | {k: event[k] for k in ("gender", "age") if event[k] is not None}


def to_roundware(event: dict, session: int) -> dict:
    posted = {"session_id": session, "event_type": event["event_type"]}
    if event["tag_ids"] != {None}:
        posted["tag_ids"] = sorted(event["tag_ids"])
    if event["latitude"] is not None:
        posted["latitude"] = event["latitude"]
    return posted


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    empty_index(es, settings, "roundware")
    client = app.test_client()
    post_cdx(client, tokens, CDX_EVENTS, 1)
    post_roundware(client, tokens, ROUNDWARE_EVENTS, 77)


def post_cdx(client, tokens, events, institution):
    body = [to_cdx(event, n, institution) for n, event in enumerate(events)]
    response = client.post("/events?refresh=wait_for", json=body, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json


def post_roundware(client, tokens, events, session):
    body = [to_roundware(event, session) for event in events]
    response = client.post("/api/2/events/?refresh=wait_for", json=body, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json


def scenario(schema, body: dict, k: int, dims: dict) -> Scenario:
    params = schema.load(body)
    chosen = []
    for group in params.groups:
        if isinstance(group, AgeRanges) and group.ranges:
            chosen.append(Dim(group.key, "ranges", ranges=group.ranges))
        else:
            chosen.append(dims[group.key])
    return Scenario(params=params, k=k, dims=tuple(chosen))


def walk(fetch) -> dict | list[dict]:
    """One answer, or every page of a cursor walk."""
    page = fetch(None)
    if "next_cursor" not in page or not page.get("exact"):
        return page
    pages = [page]
    while page["next_cursor"]:
        page = fetch(page["next_cursor"])
        pages.append(page)
    return pages


def cdx_answer(client, tokens, body: dict, k: int, institution: int = 1):
    def fetch(cursor):
        sent = {**body, "institution": institution, "min_count": k} | ({"cursor": cursor} if cursor else {})
        response = client.post("/events/query", json=sent, headers=auth(tokens["query"]))
        assert response.status_code == 200, response.json
        return response.json

    return walk(fetch)


def roundware_answer(client, tokens, query: dict, k: int, session: int = 77):
    def fetch(cursor):
        sent = {**query, "session_id": session, "min_count": k} | ({"cursor": cursor} if cursor else {})
        response = client.get(f"/api/2/events/?{urlencode(sent)}", headers=auth(tokens["query"]))
        assert response.status_code == 200, response.json
        return response.json

    return walk(fetch)


def prove(node, events: list[dict], sc: Scenario) -> None:
    figures = withheld(node, sc)
    assert figures, "the scenario hides nothing: it proves nothing"
    assert small_published(node, sc) == []
    leak = linear_leaks(node, events, sc)
    assert leak is None, leak
    # Every published figure is the true one (percentiles are estimates: left out).
    assert normalized(node, percentiles=False) == normalized(answer(events, sc), percentiles=False)
    assert unproven(events, sc) == []


RANGES_A = {"age": [[0, 10], [5, 15], [10, 20], [20, None]]}
RANGES_B = {"age": [[0, 30], [0, 15], [15, 30], [30, None]]}
RANGES_C = {"age": [[0, 10], [10, 20], [0, 20]]}
CDX_CASES = [
    pytest.param({"group_by": "gender"}, 3, id="hidden-row"),
    pytest.param({"group_by": "result"}, 11, id="multi-valued"),
    pytest.param({"group_by": ["gender", "result"]}, 3, id="crossed-multi-valued"),
    pytest.param({"group_by": {"age": [[0, 20], [0, 10], [10, 20]]}}, 9, id="ranges-pin-a-third"),
    pytest.param(
        {"group_by": ["gender", RANGES_A], "stats": "age", "fill": "zero"}, 3, id="ranges-stats-fill"
    ),
    pytest.param({"group_by": ["result", RANGES_B]}, 3, id="ranges-multi-valued"),
    pytest.param({"group_by": "gender", "stats": "age"}, 3, id="row-stats"),
    pytest.param({"page_size": 0, "stats": "age"}, 50, id="count-under-k"),
    pytest.param({"page_size": 0, "stats": "age"}, 4, id="count-lacking-field"),  # 3 lack an age
    pytest.param({"group_by": "gender", "page_size": 0}, 50, id="grouped-count-under-k"),
    pytest.param({"group_by": ["gender", "result"], "page_size": 2}, 3, id="cursor-walk"),
    pytest.param(
        {
            "group_by": ["test_type", {"age": [[0, 10], [10, 20], [0, 20], [20, None]]}],
            "fill": "zero",
            "order_by": "-count",
        },
        5,
        id="ranges-fill-order-by-count",
    ),
    pytest.param(
        {"group_by": ["gender", RANGES_C], "order_by": ["count"], "stats": "age"},
        4,
        id="ranges-stats-order-by-count",
    ),
]


@pytest.mark.parametrize("body, k", CDX_CASES)
def test_no_hidden_cdx_count_can_be_worked_out(client, tokens, body, k):
    prove(cdx_answer(client, tokens, body, k), CDX_EVENTS, scenario(CDX_QUERY, body, k, CDX_DIMS))


ROUNDWARE_CASES = [
    pytest.param({"group_by": "tag_ids"}, 3, id="tags"),
    pytest.param({"group_by": "event_type", "stats": "latitude"}, 3, id="row-stats"),
    pytest.param({"group_by": "event_type,tag_ids"}, 3, id="crossed-tags"),
    pytest.param({"group_by": "tag_ids", "page_size": 2}, 3, id="cursor-walk"),
    pytest.param({"group_by": "event_type", "page_size": 0}, 30, id="grouped-count-under-k"),
]


@pytest.mark.parametrize("query, k", ROUNDWARE_CASES)
def test_no_hidden_roundware_count_can_be_worked_out(client, tokens, query, k):
    sc = scenario(RoundwareQuery(), query, k, ROUNDWARE_DIMS)
    prove(roundware_answer(client, tokens, query, k), ROUNDWARE_EVENTS, sc)


#: Institutions for the witnesses' events, one per witness.
INSTITUTIONS = itertools.count(100)
WITNESSED = [
    pytest.param({"group_by": "gender"}, 3, id="hidden-row"),
    pytest.param({"group_by": {"age": [[0, 20], [0, 10], [10, 20]]}}, 9, id="ranges-pin-a-third"),
    pytest.param({"group_by": "result"}, 11, id="multi-valued"),
]


@pytest.mark.parametrize("body, k", WITNESSED)
def test_other_events_give_the_same_answer_on_the_node(client, tokens, body, k):
    """The proof's witnesses are real: posted as another institution, the events that differ
    in each hidden row get an identical answer from the node."""
    sc = scenario(CDX_QUERY, body, k, CDX_DIMS)
    base = cdx_answer(client, tokens, body, k)
    for figure in withheld(base, sc):
        other, institution = witness(CDX_EVENTS, sc, figure), next(INSTITUTIONS)
        assert other is not None, figure
        post_cdx(client, tokens, other, institution)
        assert cdx_answer(client, tokens, body, k, institution=institution) == base
