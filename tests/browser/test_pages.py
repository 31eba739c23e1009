"""/docs and /explore in real headless Chromium, against the service on a loopback port and a
real Elasticsearch node, with events ingested here."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import auth

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
WAIT = 30


@pytest.fixture(scope="module")
def tag():
    return f"browser-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stored(app, tokens, tag):
    """Events only these tests' filter (`system_user=<tag>`) sees: 4 female, 3 male, 1 without
    gender, over three days with a gap (2024-03-03) that fill=zero shows."""
    plan = [
        ("2024-03-01", "female", 8),
        ("2024-03-01", "female", 25),
        ("2024-03-01", "female", 41),
        ("2024-03-01", "male", 33),
        ("2024-03-02", "female", 12),
        ("2024-03-02", "male", 29),
        ("2024-03-02", "male", 30),
        ("2024-03-04", None, 70),
    ]
    events = [
        {"start_time": f"{day}T10:00:00Z", "age": age, "system_user": tag, "test_type": "specimen"}
        | ({"gender": gender} if gender else {})
        for day, gender, age in plan
    ]
    response = app.test_client().post("/events?refresh=wait_for", json=events, headers=auth(tokens["full"]))
    assert response.status_code == 201, response.json
    return events


def wait(browser, condition, timeout=WAIT):
    return WebDriverWait(browser, timeout).until(condition)


# -- /docs --------------------------------------------------------------------------------------


def test_docs_render_every_operation_and_try_a_call_with_the_token(
    browser, live_server, client, tokens, stored, tag, screenshot
):
    spec = client.get("/openapi.json").json
    documented = {
        (method.upper(), path)
        for path, methods in spec["paths"].items()
        for method in methods
        if method in HTTP_METHODS
    }
    browser.get(f"{live_server}/docs")
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(documented))
    blocks = browser.find_elements(By.CSS_SELECTOR, ".opblock")
    rendered = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in blocks
    }
    assert rendered == documented
    assert "/docs" in {path for _, path in rendered}

    # Authorize with the bare secret: it is sent as `token <secret>` and kept for the tab.
    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    modal = wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".dialog-ux .modal-ux"))
    modal.find_element(By.CSS_SELECTOR, "input").send_keys(tokens["query"])
    modal.find_element(By.CSS_SELECTOR, "button.authorize").click()
    wait(browser, lambda b: "Authorized" in modal.text)
    modal.find_element(By.CSS_SELECTOR, "button.btn-done").click()

    operation = browser.find_element(By.ID, "operations-cdx-get_events")
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    description = wait(browser, lambda b: operation.find_element(By.CSS_SELECTOR, ".opblock-description"))
    # Descriptions are Markdown, rendered: `page_size` is code, not backticks.
    assert "page_size" in [code.text for code in description.find_elements(By.TAG_NAME, "code")]
    assert "`" not in description.text
    operation.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    for name, value in (("system_user", tag), ("group_by", "gender")):
        operation.find_element(By.CSS_SELECTOR, f"tr[data-param-name='{name}'] input").send_keys(value)
    operation.find_element(By.CSS_SELECTOR, ".execute").click()
    answer = ".live-responses-table .response"
    status = wait(
        browser, lambda _: operation.find_element(By.CSS_SELECTOR, f"{answer} .response-col_status")
    )
    assert status.text == "200"
    body = operation.find_element(By.CSS_SELECTOR, f"{answer} .response-col_description pre").text
    assert '"total_count": 8' in body
    curl = operation.find_element(By.CSS_SELECTOR, ".curl-command").text
    assert f"Authorization: token {tokens['query']}" in curl
    screenshot("docs")


# -- /explore -----------------------------------------------------------------------------------


def open_explorer(browser, live_server, token: str = "", dataset: str = "cdx"):
    browser.get(f"{live_server}/explore")
    wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "body[data-ready=true]"))
    browser.find_element(By.ID, "forget").click()
    if token:
        browser.find_element(By.ID, "token").send_keys(token)
    Select(browser.find_element(By.ID, "dataset")).select_by_value(dataset)


def add_filter(browser, name: str, value: str) -> None:
    browser.find_element(By.ID, "add-filter").click()
    row = browser.find_elements(By.CSS_SELECTOR, ".filter-row")[-1]
    Select(row.find_element(By.CSS_SELECTOR, "select")).select_by_value(name)
    row.find_element(By.CSS_SELECTOR, "input").send_keys(value)


def add_group(browser, value: str, extra: str = "") -> None:
    browser.find_element(By.ID, "add-group").click()
    row = browser.find_elements(By.CSS_SELECTOR, ".group-row")[-1]
    Select(row.find_element(By.CSS_SELECTOR, "select")).select_by_value(value)
    if extra:
        row.find_element(By.CSS_SELECTOR, "input").send_keys(extra)


def run_query(browser) -> str:
    browser.find_element(By.ID, "run").click()
    status = browser.find_element(By.ID, "status")
    wait(browser, lambda b: status.text and status.text != "running…")
    return status.text


def table(browser) -> list[list[str]]:
    head = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#rows thead th")]
    rows = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, "#rows tbody tr")
    ]
    return [head, *rows]


def chart(browser) -> dict:
    return browser.execute_script(
        "const chart = Chart.getChart(document.getElementById('chart'));"
        "return {type: chart.config.type, labels: chart.data.labels,"
        " series: chart.data.datasets.map(d => ({label: d.label, data: d.data}))};"
    )


def shown_url_path(browser) -> str:
    url = urlsplit(browser.find_element(By.ID, "url").get_attribute("value"))
    return f"{url.path}?{url.query}"


def test_explorer_groups_by_a_value_and_charts_the_counts(
    browser, live_server, client, tokens, stored, tag, screenshot
):
    open_explorer(browser, live_server, tokens["query"])
    add_filter(browser, "system_user", tag)
    add_group(browser, "gender")
    assert run_query(browser).startswith("200")

    path = shown_url_path(browser)
    assert path == f"/events?system_user={tag}&group_by=gender"
    answer = client.get(path, headers=auth(tokens["query"])).json
    rows = answer["events"]
    assert [row["count"] for row in rows] == [1, 4, 3]  # null, female, male
    assert table(browser) == [
        ["gender", "count"],
        *[["null" if row["gender"] is None else row["gender"], str(row["count"])] for row in rows],
    ]
    assert browser.find_element(By.ID, "total").text == "8"
    assert browser.find_element(By.ID, "exact").text == "yes"
    drawn = chart(browser)
    assert drawn["type"] == "bar"
    assert drawn["labels"] == ["null", "female", "male"]
    assert [series["data"] for series in drawn["series"]] == [[row["count"] for row in rows]]

    curl = browser.find_element(By.ID, "curl").get_attribute("value")
    assert curl == (
        f"""curl -H "Authorization: token $TOKEN" '{live_server}/events?system_user={tag}&group_by=gender'"""
    )
    # The token is kept for the tab, and never written into a URL or the command.
    assert browser.execute_script("return sessionStorage.getItem('events-service.token')") == tokens["query"]
    assert tokens["query"] not in browser.current_url + curl + path
    screenshot("explore-values")


def test_explorer_charts_date_groups_over_time(browser, live_server, client, tokens, stored, tag, screenshot):
    open_explorer(browser, live_server, tokens["query"])
    add_filter(browser, "system_user", tag)
    add_group(browser, "day(start_time)")
    add_group(browser, "gender")
    Select(browser.find_element(By.ID, "opt-fill")).select_by_value("zero")
    browser.find_element(By.ID, "opt-time_zone").send_keys("Europe/Paris")
    browser.find_element(By.CSS_SELECTOR, "#opt-stats input[value=age]").click()
    assert run_query(browser).startswith("200")
    assert chart(browser)["type"] == "bar"
    Select(browser.find_element(By.ID, "chart-type")).select_by_value("line")

    path = shown_url_path(browser)
    assert "group_by=day(start_time),gender" in path and "time_zone=Europe/Paris" in path
    rows = client.get(path, headers=auth(tokens["query"])).json["events"]
    date_key = next(key for key in rows[0] if key not in ("gender", "count", "stats", "suppressed"))
    drawn = chart(browser)
    assert drawn["type"] == "line"
    assert drawn["labels"] == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]  # 03 filled
    for series in drawn["series"]:
        gender = None if series["label"] == "null" else series["label"]
        expected = {row[date_key]: row["count"] for row in rows if row["gender"] == gender}
        assert series["data"] == [expected.get(day, 0) for day in drawn["labels"]], series["label"]
    assert sum(sum(series["data"]) for series in drawn["series"]) == 8
    assert "stats.age.avg" in table(browser)[0]
    screenshot("explore")


def test_explorer_picks_the_date_key_by_its_values(browser, live_server, tokens, stored):
    """Rows of date groups are about to be keyed by the field (`start_time`), not the grouping's
    name: whichever the rows carry, the time axis is the key whose values are dates."""
    open_explorer(browser, live_server, tokens["query"])
    for rows in (
        [{"start_time": "2024-03-02", "location": 2024, "count": 1}],
        [{"day(start_time)": "2024-03-02", "location": 2024, "count": 1}],
        [{"location": 2024, "week(created_at)": "2024-W09", "count": 1}],
    ):
        keys = [key for key in rows[0] if key != "count"]
        picked = browser.execute_script("return Explorer.pickDateKey(arguments[0], arguments[1])", rows, keys)
        assert picked == next(key for key in rows[0] if key not in ("location", "count"))
    only_numbers = [{"location": 2024, "count": 1}, {"location": 1203, "count": 2}]
    picked = browser.execute_script("return Explorer.pickDateKey(arguments[0], ['location'])", only_numbers)
    assert picked is None


def test_explorer_sends_age_ranges_as_a_json_query(browser, live_server, client, tokens, stored, tag):
    open_explorer(browser, live_server, tokens["query"])
    add_filter(browser, "system_user", tag)
    add_group(browser, "ranges:age", "0-30, 30-")
    assert run_query(browser).startswith("200")
    body = {"system_user": tag, "group_by": [{"age": [[0, 30], [30, None]]}]}
    shown = browser.find_element(By.ID, "url").get_attribute("value")
    assert shown.startswith(f"POST {live_server}/events/query")
    curl = browser.find_element(By.ID, "curl").get_attribute("value")
    assert """-d '{"system_user":""" in curl
    rows = client.post("/events/query", json=body, headers=auth(tokens["query"])).json["events"]
    assert [row["count"] for row in rows] == [4, 4]
    assert table(browser)[1:] == [["0\u201330", "4"], ["30+", "4"]]  # 0-30 with an en dash
    assert chart(browser)["series"][0]["data"] == [4, 4]


def test_explorer_shows_api_errors_as_the_api_words_them(browser, live_server, client, tokens, stored):
    open_explorer(browser, live_server, "")
    add_group(browser, "gender")
    assert run_query(browser).startswith("401")
    message = client.get("/events?group_by=gender").json["error"]["message"]
    assert browser.find_element(By.CSS_SELECTOR, "#error .message").text == message

    open_explorer(browser, live_server, tokens["query"])
    browser.find_element(By.ID, "opt-time_zone").send_keys("Mars/Olympus_Mons")
    assert run_query(browser).startswith("400")
    error = client.get("/events?time_zone=Mars/Olympus_Mons", headers=auth(tokens["query"])).json["error"]
    box = browser.find_element(By.ID, "error")
    assert box.is_displayed()
    assert box.find_element(By.CSS_SELECTOR, ".message").text == error["message"]
    assert "Mars/Olympus_Mons" in box.find_element(By.CSS_SELECTOR, ".details").text


def test_explorer_lists_plain_roundware_events_with_their_total(browser, live_server, app, tokens):
    session = int(uuid.uuid4().int % 1_000_000_000)
    events = [{"session_id": session, "event_type": kind} for kind in ("start_session", "play", "play")]
    client = app.test_client()
    response = client.post("/api/2/events/?refresh=wait_for", json=events, headers=auth(tokens["full"]))
    assert response.status_code == 201, response.json
    open_explorer(browser, live_server, tokens["query"], dataset="roundware")
    add_filter(browser, "session_id", str(session))
    assert run_query(browser).startswith("200")
    assert browser.find_element(By.ID, "total").text == "3"  # from X-Total-Count
    assert len(table(browser)) == 4
    assert not browser.find_element(By.ID, "chart-box").is_displayed()
    add_group(browser, "event_type")
    assert run_query(browser).startswith("200")
    assert chart(browser)["labels"] == ["play", "start_session"]
    assert chart(browser)["series"][0]["data"] == [2, 1]
