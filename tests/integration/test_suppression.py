"""Small-count suppression on a real node: the operator's path (`flask tokens create
--min-count`), the bounds of `min_count`, and what a suppressed answer may publish.

The proof that no hidden count can be worked out of an answer is in test_disclosure.py.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import auth, empty_index

# Three events: fewer than any k, so a suppressed answer must not give their number away.
FEW = [
    {"uuid": f"s{i}", "age": age, "gender": gender, "institution_id": 7, "start_time": "2024-03-02T10:00:00Z"}
    for i, (age, gender) in enumerate([(5, "female"), (15, "female"), (15, "male")])
]
# Twenty more in institution 8: females 12 (two lacking an age), males 8.
MANY = [
    {
        "uuid": f"m{i}",
        "gender": "female" if i < 12 else "male",
        "institution_id": 8,
        "start_time": "2024-03-02T10:00:00Z",
        **({} if i in (0, 1) else {"age": 20 + i}),
    }
    for i in range(20)
]


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    response = app.test_client().post(
        "/events?refresh=wait_for", json=FEW + MANY, headers=auth(tokens["ingest"])
    )
    assert response.status_code == 201, response.json


def query(client, secret, **body):
    response = client.post("/events/query", json=body, headers=auth(secret))
    assert response.status_code == 200, response.json
    return response.json


def created(runner, *args):
    result = runner.invoke(args=["tokens", "create", "--name", "dash", "--scopes", "query", *args])
    return result, (json.loads(result.output) if result.exit_code == 0 else None)


def test_tokens_create_min_count_binds_every_answer_of_the_token(runner, client):
    """As an operator runs it: the CLI's --min-count is stored and then applies to each query."""
    result, token = created(runner, "--min-count", "5")
    assert result.exit_code == 0, result.output
    assert token["min_count"] == 5
    listed = runner.invoke(args=["tokens", "list"]).output.splitlines()
    assert json.loads(next(line for line in listed if token["id"] in line))["min_count"] == 5
    answer = query(client, token["secret"], group_by="gender", institution=7, min_count=3)
    assert answer["suppressed"]["min_count"] == 5  # the token's k; the request cannot lower it
    assert [row["count"] for row in answer["events"]] == [None, None]  # 2 females, 1 male
    assert answer["total_count"] is None


@pytest.mark.parametrize("value", ["0", "1", "2", "1000001", str(2**64)])
def test_tokens_create_refuses_a_min_count_that_protects_nobody_or_overflows(runner, value):
    result, _ = created(runner, "--min-count", value)
    assert result.exit_code == 2
    assert "--min-count" in result.output and "3<=x<=1000000" in result.output


def test_tokens_create_help_states_the_rule(runner):
    text = " ".join(runner.invoke(args=["tokens", "create", "--help"]).output.split())
    assert "--min-count INTEGER RANGE" in text
    assert "3<=x<=1000000" in text
    assert "every answer to the token" in text


@pytest.mark.parametrize("value", [0, 1, 2, 1_000_001, 2**64, 2**70, -(2**64)])
def test_min_count_out_of_range_is_a_400_naming_it(client, tokens, value):
    for response in (
        client.get(f"/events?group_by=gender&min_count={value}", headers=auth(tokens["query"])),
        client.post(  # raw JSON text: the test client's encoder refuses integers beyond 64 bits
            "/events/query",
            data=json.dumps({"group_by": "gender", "min_count": value}),
            content_type="application/json",
            headers=auth(tokens["query"]),
        ),
        client.get(f"/api/2/events/?group_by=event_type&min_count={value}", headers=auth(tokens["query"])),
    ):
        assert response.status_code == 400, response.json
        assert "min_count" in json.dumps(response.json["error"]["details"])


def test_the_largest_min_count_is_accepted(client, tokens):
    answer = query(client, tokens["query"], group_by="gender", institution=7, min_count=1_000_000)
    assert answer["suppressed"]["min_count"] == 1_000_000
    assert all(row["count"] is None for row in answer["events"])


def test_a_token_bound_to_min_count_may_not_fetch_single_events(app, client):
    _, secret = app.extensions["tokens"].create("k-anon-fetch", ["query"], min_count=5)
    response = client.get("/events/s0", headers=auth(secret))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_tokens_store_refuses_a_min_count_out_of_range(app):
    for value in (2, 1_000_001):
        with pytest.raises(ValueError, match="min_count"):
            app.extensions["tokens"].create("bad", ["query"], min_count=value)


@pytest.mark.parametrize(
    "group_by",
    [
        [{"age": [[0, 10]]}, {"age": [[5, 15]]}],
        ["age", {"age": [[0, 10]]}],
        ["location", {"admin_level": 1}],
        "gender,gender",
    ],
)
def test_a_row_key_grouped_twice_is_a_400_naming_group_by(client, tokens, group_by):
    """Rows hold each key once: two groups of one key made rows that could not be told apart
    (nor their overlaps found, which suppression needs)."""
    response = client.post("/events/query", json={"group_by": group_by}, headers=auth(tokens["query"]))
    assert response.status_code == 400, response.json
    assert "group_by" in json.dumps(response.json["error"]["details"])


def test_whole_answer_stats_over_fewer_than_k_events_are_withheld(client, tokens):
    """page_size=0&stats=age over 3 events: neither the count nor the figures of 3 ages."""
    answer = query(client, tokens["query"], page_size=0, stats="age", min_count=5, institution=7)
    assert answer["total_count"] is None
    assert answer["stats"] == {"age": None}


def test_whole_answer_stats_are_withheld_when_few_events_lack_the_field(client, tokens):
    """20 events, 2 lacking an age: stats.count=18 would publish that 2 lack one."""
    answer = query(client, tokens["query"], page_size=0, stats="age", min_count=3, institution=8)
    assert answer["total_count"] == 20
    assert answer["stats"] == {"age": None}
    shown = query(
        client, tokens["query"], page_size=0, stats="age", min_count=3, institution=8, gender="male"
    )
    assert shown["total_count"] == 8 and shown["stats"]["age"]["count"] == 8


def test_row_stats_are_withheld_when_few_events_of_the_row_lack_the_field(client, tokens):
    answer = query(client, tokens["query"], group_by="gender", stats="age", min_count=3, institution=8)
    rows = {row["gender"]: row for row in answer["events"]}
    assert rows["female"]["count"] == 12 and rows["female"]["stats"] == {"age": None}
    assert rows["male"]["count"] == 8 and rows["male"]["stats"]["age"]["count"] == 8


def test_one_hidden_row_gives_its_count_away_nowhere(client, tokens):
    """Without min_count: 2 females, 1 male. With it, neither the summary nor the total tells."""
    answer = query(client, tokens["query"], group_by="gender", institution=[7, 8], min_count=3)
    rows = {row["gender"]: row for row in answer["events"]}
    assert rows["female"]["count"] == 14
    assert rows["male"] == {"gender": "male", "count": 9}
    answer = query(client, tokens["query"], group_by="gender", institution=7, min_count=3)
    assert answer["suppressed"] == {"min_count": 3, "rows": 2, "count": None}
    assert answer["total_count"] is None


def test_overlapping_ranges_do_not_give_a_third_away(client, tokens):
    """[0, 20] and [0, 10] shown would pin [10, 20]: every range sharing ages with a hidden one
    is hidden too, whatever its count, and marked alike."""
    body = {"group_by": {"age": [[0, 20], [0, 10], [10, 20]]}, "institution": [7, 8], "min_count": 3}
    rows = query(client, tokens["query"], **body)["events"]
    # ages 5, 15, 15 (institution 7) and 22..39 (institution 8): [0,10]=1, [10,20]=2, [0,20]=3
    assert rows == [
        {"age": [0, 20], "count": None, "suppressed": True},
        {"age": [0, 10], "count": None, "suppressed": True},
        {"age": [10, 20], "count": None, "suppressed": True},
    ]


def test_roundware_withholds_x_total_count(app, client, es, settings, tokens):
    empty_index(es, settings, "roundware")
    events = [{"session_id": 90, "event_type": "start_session"}, {"session_id": 90, "event_type": "x"}]
    posted = client.post("/api/2/events/?refresh=wait_for", json=events, headers=auth(tokens["ingest"]))
    assert posted.status_code == 201, posted.json
    url = "/api/2/events/?session_id=90&page_size=0"
    response = client.get(f"{url}&min_count=3", headers=auth(tokens["query"]))
    assert response.status_code == 200 and response.json == []
    assert "X-Total-Count" not in response.headers
    shown = client.get(url, headers=auth(tokens["query"]))
    assert shown.headers["X-Total-Count"] == "2"


def test_a_requests_min_count_on_a_page_of_events_is_a_400_naming_it(client, tokens):
    """A page of events has no counts to hide: the request's own min_count there is refused by
    name (a token's min_count forbids such pages: 403, tested above)."""
    response = client.get("/events?min_count=3", headers=auth(tokens["query"]))
    assert response.status_code == 400
    assert "min_count" in response.json["error"]["details"]["fields"]
    assert client.get("/events?min_count=3&page_size=0", headers=auth(tokens["query"])).status_code == 200
