"""An export of 200,000 events streams in constant memory."""

from __future__ import annotations

import resource
import time
import tracemalloc

from elasticsearch import helpers

from service.datasets.cdx import CDX
from tests.conftest import auth

EVENTS = 200_000


def documents(prefix: str):
    for i in range(EVENTS):
        event = {
            "uuid": f"x{i:06d}",
            "gender": "female" if i % 2 else "male",
            "age": i % 90,
            "assay_name": "export",
        }
        event["results"] = [{"condition": "mtb", "result": "negative"}]
        document = CDX.to_document(event)
        yield {
            "_op_type": "create",
            "_index": CDX.index_for(prefix, document),
            "_id": event["uuid"],
            "_source": document,
        }


def test_export_of_200000_events_keeps_memory_flat(app, client, es, settings, tokens, fresh_cdx):
    stored, errors = helpers.bulk(
        es, documents(settings.index_prefix), chunk_size=5_000, refresh="wait_for", raise_on_error=False
    )
    assert (stored, errors) == (EVENTS, [])

    tracemalloc.start()
    started, lines, size, seen_first, seen_last, samples = time.monotonic(), 0, 0, None, None, []
    response = client.get(
        "/events/export?assay_name=export&order_by=uuid", headers=auth(tokens["query"]), buffered=False
    )
    assert response.status_code == 200
    for chunk in response.response:
        for line in chunk.splitlines():
            lines += 1
            seen_first = seen_first or line
            seen_last = line
        size += len(chunk)
        samples.append(tracemalloc.get_traced_memory()[0])
    response.close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    elapsed = time.monotonic() - started
    print(
        f"\nexported {lines} events ({size / 1e6:.1f} MB) in {elapsed:.1f}s; "
        f"peak Python allocations while streaming: {peak / 1e6:.1f} MB; "
        f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB"
    )
    assert lines == EVENTS
    assert b'"uuid":"x000000"' in seen_first and b'"uuid":"x199999"' in seen_last
    # Constant memory: what is held stays at a few pages however far the export has gone.
    half = len(samples) // 2
    print(
        f"held in the first half: at most {max(samples[:half]) / 1e6:.1f} MB; "
        f"second: {max(samples[half:]) / 1e6:.1f} MB"
    )
    assert max(samples[half:]) <= 2 * max(samples[:half]) + 1e6
    assert peak < 32e6
