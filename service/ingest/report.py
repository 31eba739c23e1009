"""Outcomes: each bulk item's verdict on one event, and the report a request answers with."""

from __future__ import annotations

from dataclasses import dataclass, field

CREATED, DUPLICATE, INVALID, RETRY, FAILED = "created", "duplicate", "invalid", "retry", "failed"


#: A bulk item of a created document, as `store.BULK_FILTER_PATH` trims it.
CREATED_ITEM = {"create": {"status": 201}}


def item_outcome(item: dict) -> tuple[str, str | None]:
    result = item.get("create") or item.get("index") or {}
    status = result.get("status", 500)
    if status in (200, 201):
        return CREATED, None
    error = result.get("error") or {}
    reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip(": ")
    if status == 409:
        return DUPLICATE, None
    if status == 400:
        return INVALID, reason
    if status == 429:
        return RETRY, reason
    return FAILED, reason


@dataclass
class Report:
    """What happened to each item of one request, in request order."""

    size: int
    ids: dict[int, object] = field(default_factory=dict)
    outcomes: dict[int, str] = field(default_factory=dict)
    errors: dict[int, object] = field(default_factory=dict)

    def not_stored(self, positions: list[int], outcome: str, reason: str) -> None:
        """Events whose `_bulk` failed as a whole (after others of the request were stored)."""
        for position in positions:
            self.outcomes[position] = outcome
            self.errors[position] = {"_elasticsearch": [reason]}

    def count(self, outcome: str) -> int:
        return list(self.outcomes.values()).count(outcome)  # in C: a report is counted ~10 times

    @property
    def rejected(self) -> int:
        return self.size - self.count(CREATED) - self.count(DUPLICATE)

    @property
    def status(self) -> int:
        created, duplicates = self.count(CREATED), self.count(DUPLICATE)
        done = created + duplicates
        if done == self.size:
            return 201 if created else 200
        if done:
            return 207
        if any(self.outcomes.get(i) in (RETRY, FAILED) for i in range(self.size)):
            return 429 if self.count(RETRY) else 503
        return 400

    def body(self) -> dict:
        return {
            "stored": self.count(CREATED),
            "duplicates": self.count(DUPLICATE),
            "rejected": self.rejected,
            "ids": [
                self.ids.get(i) if self.outcomes.get(i) in (CREATED, DUPLICATE) else None
                for i in range(self.size)
            ],
            "errors": [
                {"index": i, "status": self.outcomes.get(i, INVALID), "errors": self.errors[i]}
                for i in sorted(self.errors)
            ],
        }
