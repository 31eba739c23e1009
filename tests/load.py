"""Load and fault tools for the reliability scenarios (tests/reliability, and the short outage in
tests/integration): the service under gunicorn on loopback, steady clients that keep a ledger of
every event they sent and every answer they got, and the checks of that ledger against the index.

Everything here talks to 127.0.0.1 only, and every loop is bounded in time.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import urllib3

from scripts.served import GunicornService

ROOT = Path(__file__).resolve().parent.parent
#: Answers a client may get while Elasticsearch is away or pushing back (with Retry-After).
PUSHBACK = (429, 503)
#: No answer at all (connection refused or reset, timeout): the outcome is unknown.
NO_ANSWER = 0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    body: object = None


class HttpClient:
    """JSON over HTTP to a real server (thread-safe; one pool of connections)."""

    def __init__(self, base_url: str, secret: str, timeout: float = 30):
        self.base_url, self.secret = base_url, secret
        self.pool = urllib3.PoolManager(
            maxsize=32, retries=False, timeout=urllib3.Timeout(connect=3, read=timeout)
        )

    def request(self, method: str, path: str, body=None) -> Answer:
        headers = {"Authorization": f"token {self.secret}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        try:
            response = self.pool.request(method, self.base_url + path, body=data, headers=headers)
        except urllib3.exceptions.HTTPError:
            return Answer(NO_ANSWER, {})
        return Answer(response.status, dict(response.headers), _json(response.data))


class WsgiClient:
    """The same interface over the Flask test client (in process, no server)."""

    def __init__(self, app, secret: str):
        self.app, self.secret = app, secret

    def request(self, method: str, path: str, body=None) -> Answer:
        headers = {"Authorization": f"token {self.secret}"}
        response = self.app.test_client().open(path, method=method, json=body, headers=headers)
        return Answer(response.status_code, dict(response.headers), _json(response.data))


def _json(data: bytes):
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None


def cdx_event(institution: int | None = None) -> dict:
    return {
        "uuid": str(uuid.uuid4()),
        "start_time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "institution_id": institution or random.randint(1, 5),
        "gender": random.choice(["female", "male", "unknown"]),
        "age": random.randint(0, 90),
        "results": [{"condition": "mtb", "result": random.choice(["positive", "negative"])}],
        "pii": {"name": "never returned"},
    }


@dataclass
class Ledger:
    """Every event sent, every answer, and anything the promise forbids (`anomalies`)."""

    events: dict[str, dict] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    #: Events the service said it did not store (429/503 answers, rejected items).
    refused: set[str] = field(default_factory=set)
    #: Of those, the ones Elasticsearch explicitly rejected (429): these must not be stored.
    rejected: set[str] = field(default_factory=set)
    #: Events whose request got no answer: stored or not, nobody knows.
    unknown: set[str] = field(default_factory=set)
    statuses: Counter = field(default_factory=Counter)
    #: The error codes of the 429 / 503 answers.
    codes: Counter = field(default_factory=Counter)
    requests: int = 0
    failed_at: list[float] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, events: list[dict], answer: Answer) -> None:
        uuids = [event["uuid"] for event in events]
        with self.lock:
            self.requests += 1
            self.statuses[answer.status] += 1
            for event in events:
                self.events.setdefault(event["uuid"], event)
            if answer.status in (200, 201, 207):
                ids = answer.body["ids"]
                for sent, stored in zip(uuids, ids, strict=True):
                    if stored is None:
                        self.refused.add(sent)
                    else:
                        self.acknowledged.add(sent)
                for error in answer.body["errors"]:
                    if error["status"] == "retry":
                        self.rejected.add(uuids[error["index"]])
                if answer.status == 207:
                    self.failed_at.append(time.monotonic())
                return
            self.failed_at.append(time.monotonic())
            if answer.status in PUSHBACK:
                if int(answer.headers.get("Retry-After", "0")) <= 0:
                    self.anomalies.append(f"{answer.status} without Retry-After")
                if not (isinstance(answer.body, dict) and "error" in answer.body):
                    self.anomalies.append(f"{answer.status} not in the error shape: {answer.body!r:.200}")
                else:
                    self.codes[answer.body["error"]["code"]] += 1
                self.refused.update(uuids)
                if answer.status == 429:
                    self.rejected.update(uuids)
            elif answer.status == NO_ANSWER:
                self.unknown.update(uuids)
            else:
                self.anomalies.append(f"{answer.status}: {answer.body!r:.300}")

    @property
    def pending(self) -> set[str]:
        return (set(self.events) - self.acknowledged) if self.events else set()

    def degraded_seconds(self) -> float:
        return (self.failed_at[-1] - self.failed_at[0]) if self.failed_at else 0.0


class Ingesters:
    """`threads` clients, each posting a batch of `batch` new cdx events every `interval` s."""

    def __init__(self, client, ledger: Ledger, threads=4, batch=5, interval=0.05, path="/events"):
        self.client, self.ledger = client, ledger
        self.threads, self.batch, self.interval, self.path = threads, batch, interval, path
        self.stopping = threading.Event()
        self.workers: list[threading.Thread] = []

    def __enter__(self) -> Ingesters:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self.workers.append(worker)
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(60)

    def _run(self) -> None:
        while not self.stopping.is_set():
            events = [cdx_event() for _ in range(self.batch)]
            self.ledger.record(events, self.client.request("POST", self.path, events))
            self.stopping.wait(self.interval)


#: What dashboards ask while a cluster's nodes fail or restart (the node-loss and rolling-restart
#: scenarios): a count, a grouping, a page and a date grouping of some institutions.
CLUSTER_QUERIES = [
    "/events?page_size=0",
    "/events?group_by=gender,result",
    "/events?page_size=20&order_by=-start_time",
    "/events?institution=1,2&group_by=day(start_time)",
]


class Queriers:
    """One client cycling through `paths` (GETs) every `interval` s; any answer but 200, or
    429/503 with Retry-After, is an anomaly."""

    def __init__(self, client, paths: list[str], interval=0.2):
        self.client, self.paths, self.interval = client, paths, interval
        self.statuses: Counter = Counter()
        self.answered_at: list[float] = []
        self.failed_at: list[float] = []
        self.anomalies: list[str] = []
        self.stopping = threading.Event()

    def __enter__(self) -> Queriers:
        self.worker = threading.Thread(target=self._run, daemon=True)
        self.worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.worker.join(60)

    def _run(self) -> None:
        turn = 0
        while not self.stopping.is_set():
            path = self.paths[turn % len(self.paths)]
            answer = self.client.request("GET", path)
            self.statuses[answer.status] += 1
            if answer.status == 200:
                self.answered_at.append(time.monotonic())
            else:
                self.failed_at.append(time.monotonic())
                if answer.status not in PUSHBACK or int(answer.headers.get("Retry-After", "0")) <= 0:
                    self.anomalies.append(f"GET {path}: {answer.status} {answer.body!r:.200}")
            turn += 1
            self.stopping.wait(self.interval)


def retry_until_stored(client, ledger: Ledger, deadline_seconds: float = 180, batch: int = 500) -> None:
    """What a well-behaved device does: post again every event not acknowledged, honouring
    Retry-After, until each one is (a duplicate answer counts: it was stored before)."""
    deadline = time.monotonic() + deadline_seconds
    while ledger.pending and time.monotonic() < deadline:
        waiting = sorted(ledger.pending)[:batch]
        events = [ledger.events[u] for u in waiting]
        answer = client.request("POST", "/events", events)
        ledger.record(events, answer)
        if answer.status in PUSHBACK:
            time.sleep(min(int(answer.headers.get("Retry-After", "1")), 2))
        elif answer.status == NO_ANSWER:
            time.sleep(0.5)


def found_in_index(es, index: str, uuids) -> set[str]:
    """Which of `uuids` are documents of the dataset index `index` (any of its monthly
    indices, `index*`), after a refresh."""
    pattern, found, uuids = f"{index}*", set(), sorted(uuids)
    # The checking side waits as long as it takes: the app's client may have a short timeout
    # (2 s in the freeze scenario), which a loaded machine just after a fault can exceed.
    es = es.options(request_timeout=60)
    es.indices.refresh(index=pattern)
    for start in range(0, len(uuids), 5000):
        chunk = uuids[start : start + 5000]
        response = es.search(index=pattern, query={"ids": {"values": chunk}}, size=len(chunk), source=False)
        found |= {hit["_id"] for hit in response["hits"]["hits"]}
    return found


def document_count(es, index: str) -> int:
    """Documents in the dataset index `index` (all its monthly indices)."""
    es.indices.refresh(index=f"{index}*")
    return es.count(index=f"{index}*")["count"]


def wait_until_up(base: str, timeout: float = 120) -> None:
    """Until the service at `base` answers `/health`; the last connection error after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=30):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def wait_until(predicate, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class Served(GunicornService):
    """The service under gunicorn for a fault scenario: `workers` processes of `threads`
    threads, no access log, a short Elasticsearch timeout, up as soon as the process answers
    (`/health`)."""

    def __init__(self, es_url: str, prefix: str, log_dir: Path, workers: int = 2, threads: int = 8, **env):
        settings = {"WEB_CONCURRENCY": workers, "GUNICORN_THREADS": threads, "ACCESS_LOG": "/dev/null"}
        settings.update(ES_REQUEST_TIMEOUT=10, **env)
        super().__init__(es_url, prefix, Path(log_dir) / "gunicorn.log", settings, ready_path="/health")
        self.log_path = Path(log_dir) / f"gunicorn-{self.port}.log"


def figures(name: str, **values) -> dict:
    """Print a scenario's figures on one line (pytest -s shows them) and keep them for docs."""
    line = f"[{name}] " + ", ".join(f"{key}={value}" for key, value in values.items())
    print("\n" + line, flush=True)
    out = ROOT / ".local" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "figures.jsonl", "ab") as log:
        record = {"scenario": name, "at": datetime.now(UTC).isoformat(), **values}
        log.write(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    return values


def run_fault(client, fault, mend, *, before=5.0, during=20.0, after=5.0, threads=4, batch=5, interval=0.05):
    """Clients ingest steadily; `fault()` breaks Elasticsearch, `during` seconds later `mend()`
    repairs it. Returns the ledger and the timings (seconds)."""
    ledger = Ledger()
    with Ingesters(client, ledger, threads, batch, interval):
        time.sleep(before)
        broken = time.monotonic()
        fault()
        time.sleep(during)
        mend()
        mended = time.monotonic()
        acknowledged = len(ledger.acknowledged)
        wait_until(lambda: len(ledger.acknowledged) > acknowledged, 120, step=0.1)
        recovered = time.monotonic()
        time.sleep(after)
    timings = {
        "fault_s": round(mended - broken, 1),
        "recovery_after_repair_s": round(recovered - mended, 1),
        "degraded_s": round(ledger.degraded_seconds(), 1),
    }
    return ledger, timings


def settle(ledger: Ledger, client, es, index: str, retry_seconds: float = 180) -> dict:
    """The promise, checked: nothing forbidden was answered, every acknowledged event is in the
    index, and once the clients retried what was not acknowledged, every event sent is stored
    exactly once. Returns the figures (asserting on the way)."""
    es = es.options(request_timeout=60)  # the checks wait; the app's own timeout may be short
    assert not ledger.anomalies, ledger.anomalies[:10]
    acknowledged = set(ledger.acknowledged)
    found = found_in_index(es, index, acknowledged)
    lost = acknowledged - found
    assert not lost, f"{len(lost)} acknowledged events are not in the index: {sorted(lost)[:5]}"
    during = {
        "sent": len(ledger.events),
        "requests": ledger.requests,
        "statuses": dict(sorted(ledger.statuses.items())),
        "acknowledged": len(acknowledged),
        "found": len(found),
        "lost": len(lost),
        "refused": len(ledger.refused - acknowledged),
        "no_answer": len(ledger.unknown - acknowledged),
    }
    retried = len(ledger.pending)
    retry_until_stored(client, ledger, retry_seconds)
    assert not ledger.pending, f"{len(ledger.pending)} events still not stored after retrying"
    assert not ledger.anomalies, ledger.anomalies[:10]
    everything = set(ledger.events)
    stored = found_in_index(es, index, everything)
    total = document_count(es, index)
    assert stored == everything
    assert total == len(everything), f"{total} documents for {len(everything)} events: a duplicate"
    return {**during, "retried": retried, "stored_after_retry": len(stored), "documents": total}
