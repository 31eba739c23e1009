"""An attacker's view of suppressed answers, for the tests of the promise (README, "For
dashboards", `min_count`): no hidden count can be read, or worked out exactly, from the figures
one answer (or all pages of one cursor walk) publishes.

Two proofs per answer, over the events behind it:

- `linear_leaks`: exact linear algebra (fractions) over cells (the kinds of event the groups
  tell apart): no nonzero combination of hidden counts (so no hidden count, nor any sum of
  them) lies in the span of the published figures: shown rows, totals, the summary, and the
  counts statistics carry. Cells of a row published as 0, or left out, are known empty and
  dropped first (counts are never negative).
- `unproven`: integer bounds too (a hidden row holds at least 1 event; one that is linked to
  no other hidden row holds at most k-1; the attacker knows the rule): for every hidden figure
  and every sum of hidden rows, another set of events gives the very same answer, markers,
  statistics and row order included, with a different value. Answers are computed by a
  reference grouping in Python fed to the service's own suppression; the tests first check
  it against the node.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from fractions import Fraction

from service.engine import suppression
from service.engine.params import QueryParams


@dataclass(frozen=True)
class Dim:
    """A row key as the reference groups it: `one` value per event, a set of values (`many`,
    an event in several rows), or `ranges` of the event's age (which may overlap)."""

    key: str
    kind: str = "one"
    ranges: tuple = ()
    declared: tuple = ()  # values fill=zero adds
    nullable: bool = True  # whether an event may lack it (a `null` row)

    def choices(self, event: dict) -> list:
        value = event.get(self.key)
        if self.kind == "one":
            return [value]
        if self.kind == "many":
            return sorted(value, key=order)
        return [bounds for bounds in self.ranges if inside(value, bounds)]

    def domain(self, seen) -> list:
        if self.kind == "ranges":
            return list(self.ranges)
        return sorted(set(seen) | set(self.declared), key=order)

    def sort_key(self, value):
        return (True, self.ranges.index(value)) if self.kind == "ranges" else order(value)

    def matches(self, cell_value, row_value) -> bool:
        if self.kind == "one":
            return cell_value == row_value
        if self.kind == "many":
            return row_value in cell_value
        return inside(cell_value, row_value)


def order(value):
    return (value is not None, value if value is not None else 0)


def inside(age, bounds) -> bool:
    low, high = bounds
    return age is not None and (low is None or age >= low) and (high is None or age < high)


@dataclass(frozen=True)
class Scenario:
    params: QueryParams
    k: int
    dims: tuple[Dim, ...]

    @property
    def stats(self) -> tuple[str, ...]:
        return self.params.stats


# -- the reference: rows, and the answer the service's suppression makes of them -------------


def reference_rows(events: list[dict], sc: Scenario) -> list[dict]:
    groups: dict[tuple, list | None] = {}
    for event in events:
        for combo in itertools.product(*(dim.choices(event) for dim in sc.dims)):
            groups.setdefault(combo, []).append(event)
    if sc.params.fill:
        seen = [{combo[i] for combo in groups} for i in range(len(sc.dims))]
        domains = [dim.domain(values) for dim, values in zip(sc.dims, seen, strict=True)]
        for combo in itertools.product(*domains):
            groups.setdefault(combo, None)  # a filled row: no statistics
    rows = []
    for combo in sorted(groups, key=lambda c: [dim.sort_key(v) for dim, v in zip(sc.dims, c, strict=True)]):
        members = groups[combo]
        row = {dim.key: list(v) if dim.kind == "ranges" else v for dim, v in zip(sc.dims, combo, strict=True)}
        row["count"] = len(members or ())
        if sc.stats:
            row["stats"] = {name: stats_of(members, name) for name in sc.stats}
        rows.append(row)
    return rows


def stats_of(events: list[dict] | None, name: str) -> dict | None:
    """As Elasticsearch's stats; `percentiles` holds every value, so equal answers mean equal
    distributions (comparisons with the node leave percentiles out)."""
    if events is None:
        return None
    values = sorted(float(e[name]) for e in events if e.get(name) is not None)
    total = float(sum(values))
    return {
        "count": len(values),
        "min": values[0] if values else None,
        "max": values[-1] if values else None,
        "sum": total,
        "avg": total / len(values) if values else None,
        "percentiles": tuple(values),
    }


def answer(events: list[dict], sc: Scenario):
    """The answer (a list of pages for a cursor walk) the service gives over `events`."""
    params, total = sc.params, len(events)
    if not params.grouped:
        result = {"total_count": total, "events": []}
        if params.stats:
            result["stats"] = {name: stats_of(events, name) for name in params.stats}
        return suppression.suppress_answer(result, sc.k, params)
    rows = reference_rows(events, sc) if params.page_size != 0 else []
    if not params.page_size:
        return suppression.suppress_answer(
            {"total_count": total, "events": rows, "exact": True}, sc.k, params
        )
    size = params.page_size
    chunks = [rows[at : at + size] for at in range(0, len(rows), size)]
    if not chunks or len(chunks[-1]) == size:
        chunks.append([])  # a full last page still has a cursor, to an empty page
    pages = []
    for number, chunk in enumerate(chunks):
        more = number < len(chunks) - 1
        page = {"total_count": total, "events": chunk, "exact": True, "next_cursor": "next" if more else None}
        page_params = dataclasses.replace(params, cursor="next" if number else None)
        pages.append(suppression.suppress_answer(page, sc.k, page_params))
    return pages


def normalized(result, percentiles: bool = True):
    """An answer as compared: cursors as present or not; percentiles dropped on request."""
    if isinstance(result, list):
        return [normalized(page, percentiles) for page in result]
    result = {**result, "events": [_row(row, percentiles) for row in result["events"]]}
    if "next_cursor" in result:
        result["next_cursor"] = bool(result["next_cursor"])
    if "stats" in result:
        result["stats"] = _stats(result["stats"], percentiles)
    return result


def _row(row: dict, percentiles: bool) -> dict:
    return {**row, "stats": _stats(row["stats"], percentiles)} if "stats" in row else row


def _stats(stats: dict, percentiles: bool) -> dict:
    if percentiles:
        return stats
    return {name: s and {k: v for k, v in s.items() if k != "percentiles"} for name, s in stats.items()}


# -- what an answer publishes and hides ----------------------------------------------------


def pages_of(result) -> list[dict]:
    return result if isinstance(result, list) else [result]


def listing(sc: Scenario) -> bool:
    return sc.params.grouped and sc.params.page_size != 0


def row_key(row: dict, sc: Scenario) -> tuple:
    return tuple(tuple(row[d.key]) if d.kind == "ranges" else row[d.key] for d in sc.dims)


def hidden_keys(result, sc: Scenario) -> list[tuple]:
    return [row_key(row, sc) for page in pages_of(result) for row in page["events"] if row["count"] is None]


def withheld(result, sc: Scenario) -> list:
    """Every hidden figure: hidden rows (by key); the events lacking a summarised field where
    its statistics are withheld (`("lacking", name)` for the whole answer, `("lacking", name,
    key)` for a shown row); a count-only answer's total (`"total"`)."""
    if not listing(sc):
        figures = ["total"] if result["total_count"] is None else []
        return figures + [("lacking", name) for name, s in result.get("stats", {}).items() if s is None]
    figures = hidden_keys(result, sc)
    for page in pages_of(result):
        for row in page["events"]:
            if row["count"]:
                gone = [name for name, s in row.get("stats", {}).items() if s is None]
                figures += [("lacking", name, row_key(row, sc)) for name in gone]
    return figures


def value(events: list[dict], figure, sc: Scenario, counts: dict) -> int:
    if figure == "total":
        return len(events)
    if figure[0] == "lacking":
        _, name, *key = figure
        return sum(1 for e in events if e.get(name) is None and (not key or key[0] in rows_touched(e, sc)))
    return counts.get(figure, 0)


def small_published(result, sc: Scenario) -> list:
    """Published figures that are, or differ by, a count of 1 to k-1 events: a shown count,
    the events having or lacking a summarised field, a total beside rows it does not equal."""
    small = lambda n: 0 < n < sc.k  # noqa: E731
    found = []
    for page in pages_of(result):
        shown = [row for row in page["events"] if row["count"] is not None]
        total = page["total_count"]
        counted = [(row["count"], row.get("stats", {})) for row in shown] + [(total, page.get("stats", {}))]
        for count, stats in counted:
            if count is not None and small(count):
                found.append(("count", count))
            for name, s in stats.items():
                if s is not None and (small(s["count"]) or count is None or small(count - s["count"])):
                    found.append(("stats", name, count, s["count"]))
        if listing(sc) and total is not None and total != sum(row["count"] for row in shown):
            found.append(("total beside rows", total))
    return found


# -- proof 1: exact linear algebra ----------------------------------------------------------


def cell_values(events: list[dict], sc: Scenario) -> list[list]:
    """Per dimension (then per summarised field outside them: has it or not), the values a
    cell may take: enough kinds of event to tell every row, total and statistic apart."""
    values = []
    for dim in sc.dims:
        if dim.kind == "ranges":
            ends = {end for bounds in dim.ranges for end in bounds if end is not None and end > 0}
            values.append([*sorted({0} | ends), None])  # each atom by its lowest age, or no age
            continue
        seen = row_values(dim, events)
        if dim.kind == "one":
            values.append(seen)
        else:  # sets of values; lacking the field is a set of its own
            known = [v for v in seen if v is not None]
            sets = [frozenset(c) for n in range(1, len(known) + 1) for c in itertools.combinations(known, n)]
            values.append(sets + [frozenset([None])] * (None in seen))
    for _ in extra_fields(sc):
        values.append([True, False])
    return values


def extra_fields(sc: Scenario) -> list[str]:
    return [name for name in sc.stats if name not in {d.key for d in sc.dims}]


def has_field(cell: tuple, name: str, sc: Scenario) -> bool:
    keys = [d.key for d in sc.dims]
    if name in keys:
        return cell[keys.index(name)] is not None
    return cell[len(keys) + extra_fields(sc).index(name)]


def in_row(cell: tuple, key: tuple, sc: Scenario) -> bool:
    return all(d.matches(c, v) for d, c, v in zip(sc.dims, cell, key, strict=False))


class Cells:
    """Published and hidden figures as vectors over cells ({cell: coefficient})."""

    def __init__(self, events: list[dict], sc: Scenario):
        self.sc = sc
        self.cells = list(itertools.product(*cell_values(events, sc)))
        self.published: list[dict] = []
        self.hidden: list[dict] = []
        self.empty: set[int] = set()

    def where(self, test) -> dict:
        return {i: 1 for i, cell in enumerate(self.cells) if test(cell)}

    def row(self, key: tuple, having: str | None = None) -> dict:
        return self.where(lambda c: in_row(c, key, self.sc) and self.has(c, having))

    def has(self, cell: tuple, having: str | None) -> bool:
        return having is None or has_field(cell, having, self.sc)

    def everything(self, having: str | None = None) -> dict:
        return self.where(lambda c: self.has(c, having))

    def add(self, vector: dict, shown: bool) -> None:
        (self.published if shown else self.hidden).append(vector)

    def leak(self) -> str | None:
        published = [trim(v, self.empty) for v in self.published]
        hidden = [trim(v, self.empty) for v in self.hidden]
        if any(not vector for vector in hidden):
            return "a hidden figure's every cell is known to be empty"
        if rank(published) + rank(hidden) != rank(published + hidden):
            return "a combination of hidden figures lies in the span of the published ones"
        return None


def trim(vector: dict, empty: set) -> dict:
    return {i: c for i, c in vector.items() if i not in empty}


def linear_leaks(result, events: list[dict], sc: Scenario) -> str | None:
    """None, or why a combination of hidden figures is determined by the published ones."""
    cells = Cells(events, sc)
    present = set()
    for page in pages_of(result):
        if not listing(sc) or page["total_count"] is not None:
            cells.add(cells.everything(), page["total_count"] is not None)
        for name, s in page.get("stats", {}).items():
            cells.add(cells.everything(having=name), s is not None)
        summed: dict = {}
        for row in page["events"]:
            key = row_key(row, sc)
            present.add(key)
            if row["count"] == 0:
                cells.empty |= set(cells.row(key))
                continue
            cells.add(cells.row(key), row["count"] is not None)
            for name, s in row.get("stats", {}).items():
                cells.add(cells.row(key, having=name), s is not None)
            if row["count"] is None:
                for i, c in cells.row(key).items():
                    summed[i] = summed.get(i, 0) + c
        if page["suppressed"]["count"] is not None and summed:
            cells.add(summed, True)
    if listing(sc):
        for key in itertools.product(*(row_values(d, events) for d in sc.dims)):
            if key not in present:  # left out: no events
                cells.empty |= set(cells.row(key))
    return cells.leak()


def row_values(dim: Dim, events: list[dict]) -> list:
    if dim.kind == "ranges":
        return list(dim.ranges)
    values = {v for e in events for v in dim.choices(e)} | set(dim.declared)
    return sorted(values | {None} if dim.nullable else values, key=order)


def rank(vectors: list[dict]) -> int:
    """Rank of integer vectors over cells, exact; cells alike in every vector are one column."""
    used = sorted(set().union(*vectors)) if vectors else []
    columns = sorted({tuple(v.get(i, 0) for v in vectors) for i in used})
    matrix = [[Fraction(column[r]) for column in columns] for r in range(len(vectors))]
    found = 0
    for col in range(len(columns)):
        pivot = next((r for r in range(found, len(matrix)) if matrix[r][col]), None)
        if pivot is None:
            continue
        matrix[found], matrix[pivot] = matrix[pivot], matrix[found]
        for r in range(len(matrix)):
            if r != found and matrix[r][col]:
                factor = matrix[r][col] / matrix[found][col]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[found], strict=True)]
        found += 1
    return found


# -- proof 2: another set of events, the same answer, a different hidden figure ---------------


def unproven(events: list[dict], sc: Scenario, limit: int = 8) -> list:
    """The hidden figures and sums of hidden rows no witness was found for (none: proven).

    Witnesses are the real events with a few edits (events added or removed) whose answer,
    statistics and percentiles included, is identical."""
    base = normalized(answer(events, sc))
    figures = withheld(base, sc)
    targets = [(f,) for f in figures]
    rows_hidden = hidden_keys(base, sc) if listing(sc) else []
    if len(rows_hidden) > 1:
        sizes = range(2, len(rows_hidden) + 1) if len(rows_hidden) <= limit else [len(rows_hidden)]
        targets += [c for n in sizes for c in itertools.combinations(rows_hidden, n)]
    before = figures_of(events, sc, figures)
    open_targets = set(targets)
    for edited in edits(events, sc, set(figures)):
        if not open_targets:
            break
        after = figures_of(edited, sc, figures)
        moved = {t for t in open_targets if sum(after[f] for f in t) != sum(before[f] for f in t)}
        if moved and normalized(answer(edited, sc)) == base:
            open_targets -= moved
    return sorted(open_targets, key=repr)


def witness(events: list[dict], sc: Scenario, figure) -> list[dict] | None:
    """Events giving the same answer as `events` with another value of one hidden figure."""
    base = normalized(answer(events, sc))
    before = figures_of(events, sc, [figure])[figure]
    for edited in edits(events, sc, set(withheld(base, sc))):
        if figures_of(edited, sc, [figure])[figure] != before and normalized(answer(edited, sc)) == base:
            return edited
    return None


def figures_of(events: list[dict], sc: Scenario, figures: list) -> dict:
    counts = {}
    if listing(sc):
        counts = {row_key(row, sc): row["count"] for row in reference_rows(events, sc)}
    return {f: value(events, f, sc, counts) for f in figures}


#: Edited event sets tried per answer before giving up (a pinned figure has no witness).
MAX_EDITS = 300_000


def edits(events: list[dict], sc: Scenario, hidden: set):
    """Edited copies of `events`: up to four moves (add an event of some kind, remove one of
    the events), fewest first, keeping only combinations that change no row but hidden ones
    (others cannot give the same answer). Pairs meet in the middle: a move, or a pair of
    moves, is indexed by what it does to the rows that must not change."""
    kinds = {kind: dict(kind) for kind in signatures(events, sc)}
    at = {}
    for index, event in enumerate(events):
        at.setdefault(kind_of(event), []).append(index)
    moves = [(1, kind) for kind in kinds] + [(-1, kind) for kind in at]
    effect = {move: shown_effect(move, sc, hidden) for move in moves}
    singles = {}
    for move in moves:
        singles.setdefault(effect[move], []).append((move,))
    pairs: dict = {}
    for one, two in itertools.combinations(moves, 2):
        if one[1] != two[1]:  # adding and removing one kind is no edit
            pairs.setdefault(combined(effect[one], effect[two]), []).append((one, two))
    tried = 0
    for combo in _zero_sums(singles, pairs):
        edited = _apply(events, combo, kinds, at)
        if edited is not None:
            tried += 1
            if tried > MAX_EDITS:
                return
            yield edited


def _zero_sums(singles: dict, pairs: dict):
    yield from singles.get((), [])
    yield from pairs.get((), [])
    for effect, ones in singles.items():
        for (one,), pair in itertools.product(ones, pairs.get(negated(effect), [])):
            yield (one, *pair)
    for effect, firsts in pairs.items():
        for first, second in itertools.product(firsts, pairs.get(negated(effect), [])):
            yield (*first, *second)


def _apply(events: list[dict], combo: tuple, kinds: dict, at: dict) -> list[dict] | None:
    removed: dict = {}
    for sign, kind in combo:
        if sign < 0:
            removed[kind] = removed.get(kind, 0) + 1
    if any(n > len(at[kind]) for kind, n in removed.items()):
        return None
    dropped = {index for kind, n in removed.items() for index in at[kind][:n]}
    kept = [event for index, event in enumerate(events) if index not in dropped]
    return kept + [kinds[kind] for sign, kind in combo if sign > 0]


def kind_of(event: dict) -> tuple:
    return tuple(sorted(event.items(), key=repr))


def shown_effect(move: tuple, sc: Scenario, hidden: set) -> tuple:
    """What a move does to the rows an answer shows, or leaves out as empty."""
    if not listing(sc):
        return ()
    sign, kind = move
    touched = rows_touched(dict(kind), sc) - hidden
    return tuple(sorted(((key, sign) for key in touched), key=by_key))


def combined(*effects: tuple) -> tuple:
    total: dict = {}
    for effect in effects:
        for key, n in effect:
            total[key] = total.get(key, 0) + n
    return tuple(sorted(((key, n) for key, n in total.items() if n), key=by_key))


def by_key(item: tuple) -> str:
    return repr(item[0])


def negated(effect: tuple) -> tuple:
    return tuple((key, -n) for key, n in effect)


def rows_touched(event: dict, sc: Scenario) -> set:
    return {tuple(combo) for combo in itertools.product(*(d.choices(event) for d in sc.dims))}


def signatures(events: list[dict], sc: Scenario) -> list[tuple]:
    """Every kind of event worth adding: each dimension's values (ages: each atom's lowest and
    those seen, so an event can be changed keeping its age), and each summarised field's
    values seen (or none)."""
    names, options = [], []
    for dim, values in zip(sc.dims, cell_values(events, sc), strict=False):
        names.append(dim.key)
        seen = {e.get(dim.key) for e in events} if dim.kind == "ranges" else set()
        options.append(sorted(set(values) | seen, key=order) if seen else values)
    for name in extra_fields(sc):
        names.append(name)
        options.append(sorted({e.get(name) for e in events}, key=order))
    fixed = {k: v for k, v in events[0].items() if k not in names} if events else {}
    return [
        tuple(sorted({**fixed, **dict(zip(names, combo, strict=True))}.items(), key=repr))
        for combo in itertools.product(*options)
    ]
