"""Two service instances (two gunicorn masters of 2 workers each, as on two hosts) in front of
one cluster, with one index prefix:

- Roundware ids are unique across both (every worker of both leases its own slot), and each
  acknowledged id holds the event posted for it;
- a cdx event posted to both at once (a client retrying on the other host) is stored once: one
  `201`, the others duplicates, one document;
- a token created once works on both, and once revoked stops working on both within
  `TOKEN_CACHE_SECONDS`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from elasticsearch import Elasticsearch

from service.auth import TokenStore
from service.ids import decompose
from tests.load import HttpClient, Served, cdx_event, document_count, figures, wait_until

CACHE_SECONDS = 2


def test_two_instances_share_ids_duplicates_and_tokens(settings, tmp_path):
    prefix = settings.index_prefix.rstrip("-") + "-two-"
    es = Elasticsearch(settings.es_url, request_timeout=60)
    store = TokenStore(es, f"{prefix}tokens")
    token, secret = store.create("both", ["ingest", "query"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = {"TOKEN_CACHE_SECONDS": CACHE_SECONDS}
    a = Served(settings.es_url, prefix, tmp_path / "a", workers=2, **env).start()
    try:
        b = Served(settings.es_url, prefix, tmp_path / "b", workers=2, **env).start()
        try:
            clients = [HttpClient(a.url, secret), HttpClient(b.url, secret)]

            # Roundware ids from both instances at once.
            markers: dict[int, str] = {}
            statuses: Counter = Counter()
            lock = threading.Lock()

            def post_roundware(n: int) -> None:
                marker = uuid.uuid4().hex
                answer = clients[n % 2].request(
                    "POST", "/api/2/events/", {"session_id": 9, "event_type": "two", "data": marker}
                )
                with lock:
                    statuses[answer.status] += 1
                    if answer.status == 201:
                        assert answer.body["id"] not in markers, "an id was issued twice"
                        markers[answer.body["id"]] = marker

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(post_roundware, range(800)))
            assert statuses == Counter({201: 800}), statuses
            es.indices.refresh(index=f"{prefix}roundware*")
            ids = sorted(markers)
            hits = es.search(
                index=f"{prefix}roundware*", query={"ids": {"values": [str(i) for i in ids]}}, size=len(ids)
            )["hits"]["hits"]
            assert {int(h["_id"]): h["_source"]["data"] for h in hits} == markers
            slots = {decompose(i)[1] for i in ids}
            es.indices.refresh(index=f"{prefix}id-leases")
            leases = es.search(index=f"{prefix}id-leases", size=100)["hits"]["hits"]
            owners = {hit["_source"]["owner"] for hit in leases}
            assert len(slots) == 4 and len(owners) == 4, (slots, owners)  # 2 workers on each

            # The same cdx events posted to both instances at once.
            events = [cdx_event() for _ in range(50)]
            outcomes: Counter = Counter()

            def post_everywhere(event: dict) -> None:
                with ThreadPoolExecutor(4) as pool:
                    answers = list(pool.map(lambda c: c.request("POST", "/events", [event]), clients * 2))
                with lock:
                    outcomes.update(answer.status for answer in answers)
                    created = sum(1 for answer in answers if answer.status == 201)
                    assert created == 1, [(x.status, x.body) for x in answers]

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(post_everywhere, events))
            assert outcomes == Counter({201: 50, 200: 150}), outcomes
            assert document_count(es, f"{prefix}cdx") == 50

            # One token, both instances; revoked once, refused by both.
            assert {c.request("GET", "/events?page_size=0").status for c in clients * 4} == {200}
            revoked_at = time.monotonic()
            assert store.revoke(token.id)
            assert wait_until(
                lambda: {c.request("GET", "/events?page_size=0").status for c in clients * 4} == {401},
                CACHE_SECONDS + 5,
                0.1,
            )
            refused_after = time.monotonic() - revoked_at
            errors = a.errors_logged() + b.errors_logged()
        finally:
            b.stop()
    finally:
        a.stop()
    figures(
        "two-instances",
        roundware_posts=sum(statuses.values()),
        roundware_ids=len(markers),
        slots_used=sorted(slots),
        cdx_events=len(events),
        cdx_posts=sum(outcomes.values()),
        cdx_statuses=dict(outcomes),
        documents=50,
        revocation_refused_by_both_after_s=round(refused_after, 2),
    )
    assert not errors, errors[:5]
    assert refused_after <= CACHE_SECONDS + 1
