"""Small-count suppression (README, "For dashboards"): pure, over a shaped answer.

The promise: no count of 1 to k-1 events can be read, or worked out exactly, from the figures
one answer publishes (rows, totals, the `suppressed` summary, statistics), nor from all pages
of one cursor walk. Statistical agencies keep it by complementary suppression: besides the
small rows (primary), hide the rows and totals that would give them away. Here:

- A row of 1 to k-1 events is hidden (`"count": null, "suppressed": true`).
- Among range rows (`age`, and any numeric field grouped by ranges: reporting delays) alike
  but for their range (a family), a row sharing values (ages) that may hold
  events with a hidden row, directly or through other such rows, is hidden too, whatever its
  count: shown, overlapping ranges would pin a hidden one ([0, 20] and [0, 10] shown give
  [10, 20] away), or bound it exactly together with the knowledge that a hidden row holds 1 to
  k-1 events. Ages in a range of the family known to be empty (a count of 0, or left out) link
  nothing.
- Hidden rows are marked alike: telling the small ones apart would bound them, and bounds
  can pin counts ([0, 5), [5, ...) and both together, all under k = 3, are 1, 1 and 2).
- A total (`total_count`, `suppressed.count`) is shown only when it tells nothing the shown
  rows do not: nothing is hidden, the answer holds every row, and they add up to it.
- Statistics are shown only when the events having the field and those lacking it are each 0
  or at least k, over a count that is shown.
"""

from __future__ import annotations

import bisect
import itertools
import math

from .groups import NumericRanges
from .params import QueryParams


def suppress_answer(result: dict, min_count: int, params: QueryParams, also_hidden=None) -> dict:
    """The answer as a request (or token) with `min_count` k may see it; `also_hidden(row)`
    names further rows to hide whatever their count (engine/analytics.py: `top`'s merged rows)."""
    listing = params.grouped and params.page_size != 0
    if listing:
        rows, summary = suppress(result["events"], min_count, params, also_hidden)
    else:
        rows, summary = result["events"], summary_of(min_count, 0)
    whole = not params.cursor and not result.get("next_cursor")
    total = shown_total(result["total_count"], rows, summary["rows"], min_count, listing, whole)
    answer = {**result, "events": rows, "suppressed": summary, "total_count": total}
    if "stats" in result:
        answer["stats"] = {name: shown_stats(s, total, min_count) for name, s in result["stats"].items()}
    return answer


def suppress(
    result_rows: list[dict], min_count: int, params: QueryParams | None = None, also_hidden=None
) -> tuple[list[dict], dict]:
    """(rows, summary): small rows hidden, the rows that would give them away hidden too, and
    statistics withheld where they would publish a small count. Never mutates a row (shaped
    rows are cached)."""
    hidden = {i for i, row in enumerate(result_rows) if small(row["count"], min_count)}
    if also_hidden is not None:
        hidden |= {i for i, row in enumerate(result_rows) if also_hidden(row)}
    if hidden and params is not None:
        hidden |= overlapping(result_rows, hidden, params)
    rows = [
        hide(row) if i in hidden else with_stats_shown(row, min_count) for i, row in enumerate(result_rows)
    ]
    if hidden and params is not None and any(name == "count" for name, _ in params.order):
        rows = ordered(rows, params)
    return rows, summary_of(min_count, len(hidden))


def small(count: int, min_count: int) -> bool:
    return 0 < count < min_count


def summary_of(min_count: int, hidden_rows: int) -> dict:
    """How many rows are hidden; their events only when none is (a sum of hidden counts is
    one of them when only one is hidden)."""
    return {"min_count": min_count, "rows": hidden_rows, "count": None if hidden_rows else 0}


def hide(row: dict) -> dict:
    hidden = {**row, "count": None, "suppressed": True}
    if "stats" in row:
        hidden["stats"] = dict.fromkeys(row["stats"])
    return hidden


def with_stats_shown(row: dict, min_count: int) -> dict:
    if not row.get("stats"):
        return row
    stats = {name: shown_stats(s, row["count"], min_count) for name, s in row["stats"].items()}
    return {**row, "stats": stats}


def shown_stats(stats: dict | None, count: int | None, min_count: int) -> dict | None:
    """One field's figures over `count` events, or None where they would publish a small
    count: of the events having the field (its `count`) or of those lacking it."""
    if stats is None or count is None:
        return None
    having = stats["count"]
    return None if small(having, min_count) or small(count - having, min_count) else stats


def shown_total(total: int, rows: list[dict], hidden_rows: int, min_count: int, listing: bool, whole: bool):
    """The total, or None. Alone (a count only) it is shown unless small. Beside rows it is
    shown only when it adds nothing to them: nothing hidden (else total minus the shown rows
    is the hidden sum), every row in this answer (a cursor page cannot know of later pages'
    hidden rows), and the rows add up to it (else the difference counts events in several
    rows, or in none, and may be small)."""
    if not listing:
        return None if small(total, min_count) else total
    if hidden_rows or not whole or total != sum(row["count"] for row in rows):
        return None
    return total


def ordered(rows: list[dict], params: QueryParams) -> list[dict]:
    """Rows ordered as asked, with hidden counts ordered as unknown (after the shown ones, in
    key order): their places would otherwise compare hidden counts with each other and with
    shown ones."""
    groups = {key: group for group in params.groups for key in group.keys}
    names = list(groups)
    rows = sorted(rows, key=lambda row: [groups[n].sort_key(n, frozen(row[n])) for n in names])
    for name, descending in reversed(params.order):
        if name != "count":
            rows.sort(key=lambda row, n=name: groups[n].sort_key(n, frozen(row[n])), reverse=descending)
        elif descending:
            rows.sort(key=lambda row: (row["count"] is not None, row["count"] or 0), reverse=True)
        else:
            rows.sort(key=lambda row: (row["count"] is None, row["count"] or 0))
    return rows


def frozen(value):
    return tuple(value) if isinstance(value, list) else value


def overlapping(result_rows: list[dict], hidden: set[int], params: QueryParams) -> set[int]:
    """Rows to hide besides `hidden`: range rows linked to a hidden row of their family."""
    ranged = next((g for g in params.groups if isinstance(g, NumericRanges) and g.ranges), None)
    if ranged is None:
        return set()
    others = [key for group in params.groups for key in group.keys if key != ranged.key]
    families: dict[tuple, list[int]] = {}
    for i, row in enumerate(result_rows):
        families.setdefault(tuple(row[name] for name in others), []).append(i)
    linked = set()
    for members in families.values():
        if hidden.intersection(members):
            linked |= linked_rows(result_rows, members, hidden, ranged)
    return linked


def linked_rows(
    result_rows: list[dict], members: list[int], hidden: set[int], ranged: NumericRanges
) -> set[int]:
    """The family's rows connected to a hidden one by sharing ages not known to be empty."""
    counted = [i for i in members if result_rows[i]["count"]]
    present = {tuple(result_rows[i][ranged.key]) for i in counted}
    empty = [bounds for bounds in ranged.ranges if bounds not in present]
    spans = atom_spans([tuple(result_rows[i][ranged.key]) for i in counted], empty, ranged.lowest)
    linked: set[int] = set()
    for component in components(list(zip(counted, spans, strict=True))):
        if hidden.intersection(component):
            linked |= component
    return linked


def atom_spans(ranges: list[tuple], empty: list[tuple], lowest: float = 0) -> list[tuple[int, int] | None]:
    """Each range as (first, last) of the atoms it covers, numbering only atoms outside every
    empty range (atoms: the pieces all ranges' ends cut the values from `lowest` on into: ages
    0.., delays any number); None if it covers none. Dropping the empty atoms keeps each span
    contiguous, so spans overlap exactly when their ranges share values that may hold events."""
    ends = [interval(bounds, lowest) for bounds in [*ranges, *empty]]
    cuts = sorted({lowest} | {end for pair in ends for end in pair if end != math.inf})

    def atoms(pair):  # the atoms [first, stop) of an interval (both ends are cuts)
        low, high = pair
        return bisect.bisect_left(cuts, low), len(cuts) if high == math.inf else bisect.bisect_left(
            cuts, high
        )

    covered = [0] * (len(cuts) + 1)
    for pair in ends[len(ranges) :]:
        first, stop = atoms(pair)
        covered[first] += 1
        covered[stop] -= 1
    # open_before[j]: atoms before j outside every empty range
    open_before = [0, *itertools.accumulate(int(c == 0) for c in itertools.accumulate(covered[:-1]))]
    spans = []
    for pair in ends[: len(ranges)]:
        first, stop = atoms(pair)
        low, high = open_before[first], open_before[stop]
        spans.append((low, high - 1) if high > low else None)
    return spans


def interval(bounds: tuple, lowest: float = 0) -> tuple:
    """A range's values as [low, high): from `lowest` on (ages from 0); a missing end is open."""
    low, high = bounds
    low = lowest if low is None else max(low, lowest)
    high = math.inf if high is None else max(high, low)
    return low, high


def components(spans: list[tuple[int, tuple[int, int] | None]]) -> list[set[int]]:
    """Rows grouped by overlapping spans, transitively (one sweep in span order)."""
    groups: list[set[int]] = []
    reach = -1
    for row, span in sorted(spans, key=lambda item: item[1] or (math.inf, math.inf)):
        if span is None:
            groups.append({row})
            continue
        first, last = span
        if first > reach or not groups:
            groups.append(set())
        groups[-1].add(row)
        reach = max(reach, last)
    return groups
