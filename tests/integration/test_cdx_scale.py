"""Grouped rows are exact and complete at high cardinality; totals are exact past 10,000."""

from __future__ import annotations

import json
import time

from tests.conftest import auth

DEVICES = 50_000
TWICE = 1_000  # the first devices get a second event, so counts are not all 1


def test_group_by_50000_distinct_values_is_complete_and_exact(client, tokens, fresh_cdx):
    events = [{"device_id": f"d{i:05d}", "assay_name": "scale"} for i in range(DEVICES)]
    events += [{"device_id": f"d{i:05d}", "assay_name": "scale"} for i in range(TWICE)]
    for start in range(0, len(events), 5_000):
        body = "\n".join(json.dumps(event) for event in events[start : start + 5_000])
        response = client.post(
            "/events?refresh=wait_for",
            data=body,
            content_type="application/x-ndjson",
            headers=auth(tokens["ingest"]),
        )
        assert response.status_code == 201, response.json
        assert response.json["stored"] == min(5_000, len(events) - start)

    started = time.monotonic()
    result = client.get("/events?group_by=device&assay_name=scale", headers=auth(tokens["query"])).json
    print(f"\ngroup_by over {DEVICES} values: {time.monotonic() - started:.2f}s")
    rows = result["events"]
    assert result["total_count"] == DEVICES + TWICE
    assert len(rows) == DEVICES
    counts = {row["device"]: row["count"] for row in rows}
    assert len(counts) == DEVICES
    assert all(counts[f"d{i:05d}"] == (2 if i < TWICE else 1) for i in range(DEVICES))
    assert sum(counts.values()) == DEVICES + TWICE

    plain = client.get("/events?page_size=1&assay_name=scale", headers=auth(tokens["query"])).json
    assert plain["total_count"] == DEVICES + TWICE
