"""A dashboard on another origin, in real Chromium: the service's answers reach pages of the
origins in CORS_ORIGINS (preflight, token header, exposed headers, ETag revalidation by the
browser's cache) and are withheld from any other origin's pages."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from werkzeug.serving import make_server

from service import create_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]

FETCH = """
const [url, token, done] = arguments;
fetch(url, {headers: {Authorization: "token " + token}})
  .then(async (r) => done({status: r.status, total: r.headers.get("X-Total-Count"),
                           etag: r.headers.get("ETag"), requestId: r.headers.get("X-Request-ID")}))
  .catch((e) => done({error: String(e)}));
"""


class Statuses:
    """WSGI middleware noting each answer's status as it goes on the wire."""

    def __init__(self, app):
        self.app, self.seen = app, []

    def __call__(self, environ, start_response):
        def noting(status, headers, *args):
            self.seen.append((environ["REQUEST_METHOD"], int(status.split()[0])))
            return start_response(status, headers, *args)

        return self.app(environ, noting)


@pytest.fixture(scope="module")
def api_origin(settings, es, live_server):
    """The API on a second port, allowing only the pages of `live_server` (another origin)."""
    app = create_app(replace(settings, cors_origins=live_server))
    app.wsgi_app = Statuses(app.wsgi_app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app.wsgi_app.seen
    server.shutdown()
    thread.join(timeout=10)


def test_pages_of_an_allowed_origin_read_answers_and_others_cannot(browser, live_server, api_origin, tokens):
    origin, seen = api_origin
    url = f"{origin}/api/2/events/?page_size=1"
    browser.get(f"{live_server}/health")  # a page of the allowed origin
    answer = browser.execute_async_script(FETCH, url, tokens["query"])
    assert answer["status"] == 200, answer
    assert answer["total"] is not None and answer["etag"] and answer["requestId"]
    assert seen == [("OPTIONS", 200), ("GET", 200)]  # the preflight, then the query
    # Asked again, the browser's cache revalidates with If-None-Match: 304 on the wire, the
    # page still sees its 200 and the body, from the cache.
    again = browser.execute_async_script(FETCH, url, tokens["query"])
    assert again["status"] == 200 and again["etag"] == answer["etag"]
    assert seen[-1] == ("GET", 304)

    port = live_server.rsplit(":", 1)[1]
    browser.get(f"http://localhost:{port}/health")  # the same server, but another origin
    refused = browser.execute_async_script(FETCH, url, tokens["query"])
    assert "error" in refused and "Failed to fetch" in refused["error"], refused
