"""Workers SIGKILLed mid-request under gunicorn (`gunicorn.conf.py`), while clients post cdx
batches (200 events; 100 in `make test`), single cdx events (which share group-commit `_bulk`s) and single
roundware events.

Requests in flight on the dead worker get no answer; nothing acknowledged is lost; the clients'
retries store each cdx event once (by uuid); gunicorn replaces each dead worker; the dead
worker's Roundware id slot stays leased (not reused while its ids could repeat), and every
acknowledged roundware id holds the event it was given for. `make test` kills twice in about
10 s; `make reliability` five times (`WORKER_KILL_FULL=1`); either kills again, up to 4 more
times, until a kill has cut a single POST in flight.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter

from elasticsearch import Elasticsearch

from service.ids import decompose
from tests.load import NO_ANSWER, HttpClient, Ingesters, Ledger, Served, figures, settle, wait_until

FULL = os.environ.get("WORKER_KILL_FULL") == "1"
KILLS = 5 if FULL else 2
#: A kill lands between single POSTs now and then (they take a few ms, and clients pause 10 ms):
#: up to this many more kills are made until one has cut a group-commit request in flight.
EXTRA_KILLS = 4
BETWEEN_KILLS = 6.0 if FULL else 3.0


class RoundwarePosters:
    """Clients posting single roundware events, each carrying a marker of its own in `data`."""

    def __init__(self, client, threads=2):
        self.client, self.threads = client, threads
        self.stored: dict[int, str] = {}  # id → marker
        self.statuses: Counter = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def __enter__(self):
        self.workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for worker in self.workers:
            worker.join(60)

    def _run(self):
        while not self.stopping.is_set():
            marker = uuid.uuid4().hex
            answer = self.client.request(
                "POST", "/api/2/events/", {"session_id": 7, "event_type": "kill", "data": marker}
            )
            with self.lock:
                self.statuses[answer.status] += 1
                if answer.status == 201:
                    self.stored[answer.body["id"]] = marker
            self.stopping.wait(0.02)


def merged(*ledgers: Ledger) -> Ledger:
    """One ledger of several clients' (their events share one index)."""
    total = Ledger()
    for ledger in ledgers:
        total.events.update(ledger.events)
        for name in ("acknowledged", "refused", "rejected", "unknown"):
            getattr(total, name).update(getattr(ledger, name))
        total.statuses.update(ledger.statuses)
        total.requests += ledger.requests
        total.failed_at += ledger.failed_at
        total.anomalies += ledger.anomalies
    return total


def lease_owners(es: Elasticsearch, prefix: str) -> dict[int, dict]:
    """slot → its lease document."""
    index = f"{prefix}id-leases"
    es.indices.refresh(index=index)
    found = es.search(index=index, size=100)["hits"]["hits"]
    return {int(hit["_id"].removeprefix("slot-")): hit["_source"] for hit in found}


def test_workers_killed_mid_request_lose_nothing(settings, tokens, tmp_path, es):
    prefix = settings.index_prefix.rstrip("-") + "-kill-"
    from tests.reliability.conftest import make_token

    secret = make_token([settings.es_url], prefix)
    served = Served(settings.es_url, prefix, tmp_path, workers=2).start()
    try:
        client = HttpClient(served.url, secret)
        ledger = Ledger()
        batch_ledger = Ledger()
        kills = []
        with (
            Ingesters(client, ledger, threads=6, batch=1, interval=0.01),
            Ingesters(
                client,
                batch_ledger,
                threads=2 if FULL else 1,
                batch=200 if FULL else 100,
                interval=0 if FULL else 0.1,
            ),
            RoundwarePosters(client) as roundware,
        ):
            time.sleep(2)
            while len(kills) < KILLS or (not ledger.statuses[NO_ANSWER] and len(kills) < KILLS + EXTRA_KILLS):
                before = served.worker_pids()
                owners = lease_owners(es, prefix)
                victim = before[len(kills) % len(before)]
                victim_slots = [slot for slot, doc in owners.items() if f":{victim}:" in doc["owner"]]
                os.kill(victim, signal.SIGKILL)
                kills.append({"pid": victim, "slots": victim_slots, "at_ms": int(time.time() * 1000)})
                assert wait_until(
                    lambda b=before, v=victim: (
                        len(served.worker_pids()) == 2 and v not in served.worker_pids()
                    ),
                    30,
                    0.1,
                ), "the killed worker was not replaced"
                time.sleep(BETWEEN_KILLS)
        workers_after = served.worker_pids()
        # Every dead worker's slot is still leased to it: not reused while its ids could repeat.
        owners = lease_owners(es, prefix)
        for kill in kills:
            for slot in kill["slots"]:
                assert f":{kill['pid']}:" in owners[slot]["owner"], (kill, owners[slot])
                assert owners[slot]["expires_ms"] > kill["at_ms"], (kill, owners[slot])
        # No id issued after a kill in a dead worker's slot (by anyone).
        for event_id in roundware.stored:
            millis, slot, _ = decompose(event_id)
            for kill in kills:
                assert not (slot in kill["slots"] and millis > kill["at_ms"] + 1000), (event_id, kill)
        # Every acknowledged roundware id holds its own event.
        es.indices.refresh(index=f"{prefix}roundware*")
        ids = sorted(roundware.stored)
        found = {}
        for start in range(0, len(ids), 1000):
            chunk = [str(i) for i in ids[start : start + 1000]]
            hits = es.search(index=f"{prefix}roundware*", query={"ids": {"values": chunk}}, size=len(chunk))
            found.update({int(h["_id"]): h["_source"].get("data") for h in hits["hits"]["hits"]})
        wrong = {i: m for i, m in roundware.stored.items() if found.get(i) != m}
        assert not wrong, f"{len(wrong)} roundware ids do not hold their event"
        single_unanswered = ledger.statuses[NO_ANSWER]
        single_statuses, batch_statuses = dict(ledger.statuses), dict(batch_ledger.statuses)
        result = settle(merged(ledger, batch_ledger), client, es, f"{prefix}cdx")
        errors = [line for line in served.errors_logged() if "WORKER TIMEOUT" not in line]
    finally:
        served.stop()
    figures(
        "worker-kill" + ("" if FULL else "-short"),
        kills=len(kills),
        workers_after=len(workers_after),
        single_statuses=single_statuses,
        batch_statuses=batch_statuses,
        sent=result["sent"],
        acknowledged=result["acknowledged"],
        found=result["found"],
        lost=result["lost"],
        no_answer=result["no_answer"],
        stored_after_retry=result["stored_after_retry"],
        documents=result["documents"],
        roundware_statuses=dict(roundware.statuses),
        roundware_ids=len(roundware.stored),
        dead_slots_still_leased=sum(len(k["slots"]) for k in kills),
    )
    assert not errors, errors[:5]
    assert single_unanswered > 0, "no group-commit request was in flight on a killed worker"
    assert len(workers_after) == 2
