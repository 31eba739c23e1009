"""Roundware id layout and ordering, and the slot lease against an in-memory store (on a real
node: tests/integration/test_roundware.py, and a worker SIGKILLed in tests/reliability)."""

from __future__ import annotations

from elastic_transport import ApiResponseMeta, HttpHeaders
from elasticsearch import ConflictError

from service.ids import (
    EPOCH_MS,
    LEASE_MARGIN,
    LEASE_SECONDS,
    MAX_SEQUENCE,
    SLOTS,
    TIME_BITS,
    IdGenerator,
    compose,
    decompose,
)


class FixedSlot(IdGenerator):
    """A generator whose slot lease always holds, with a hand-driven clock."""

    def __init__(self, times):
        super().__init__(es=None, index="unused", clock=lambda: times[0])
        self.slot, self.lease_valid_until = 5, float("inf")


def test_layout_round_trips_and_stays_below_2_53():
    last_millisecond = EPOCH_MS + 2**TIME_BITS - 1  # in 2094
    event_id = compose(last_millisecond, 63, MAX_SEQUENCE)
    assert event_id == 2**53 - 1
    assert decompose(event_id) == (last_millisecond, 63, MAX_SEQUENCE)


def test_ids_are_unique_and_increasing_even_when_the_clock_steps_back():
    times = [1_800_000_000.0]
    generator = FixedSlot(times)
    ids = [generator.next_id() for _ in range(10)]
    times[0] -= 5  # the clock steps back five seconds
    ids += [generator.next_id() for _ in range(10)]
    times[0] += 60
    ids += [generator.next_id() for _ in range(10)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {decompose(i)[1] for i in ids} == {5}


def test_sequence_overflow_moves_to_the_next_millisecond():
    times = [1_800_000_000.0]
    generator = FixedSlot(times)
    first = [generator.next_id() for _ in range(MAX_SEQUENCE + 1)]
    assert len({decompose(i)[0] for i in first}) == 1
    times[0] += 0.001
    after = generator.next_id()
    assert decompose(after)[0] == decompose(first[-1])[0] + 1


class LeaseStore:
    """The few document calls the lease makes, kept in memory with `_seq_no` compare-and-swap."""

    def __init__(self, delay=None):
        self.docs: dict[str, tuple[int, dict]] = {}
        self.seq = 0
        #: Called inside each write, to let the clock move while a request is in flight.
        self.delay = delay or (lambda: None)

    def options(self, **_):
        return self

    @property
    def indices(self):
        return self

    def exists(self, index):
        return True

    def _write(self, doc_id, document):
        self.delay()
        self.seq += 1
        self.docs[doc_id] = (self.seq, dict(document))
        return {"_seq_no": self.seq, "_primary_term": 1}

    def create(self, index, id, document, refresh=False):
        if id in self.docs:
            raise ConflictError("exists", ApiResponseMeta(409, "1.1", HttpHeaders(), 0.0, None), {})
        return self._write(id, document)

    def get(self, index, id):
        seq, source = self.docs[id]
        return {"_seq_no": seq, "_primary_term": 1, "_source": source}

    def index(self, index, id, document, if_seq_no, if_primary_term):
        if self.docs.get(id, (None,))[0] != if_seq_no:
            raise ConflictError("changed", ApiResponseMeta(409, "1.1", HttpHeaders(), 0.0, None), {})
        return self._write(id, document)


def generators(times, count, store):
    return [IdGenerator(store, "leases", clock=lambda: times[0]) for _ in range(count)]


def test_a_killed_workers_slot_is_not_taken_while_its_ids_could_repeat():
    """SIGKILL: no release, no renewal. The slot stays leased until every id the dead worker
    could have issued is at least twice LEASE_MARGIN in the past."""
    times, store = [1_800_000_000.0], LeaseStore()
    all_slots = set(range(SLOTS))
    dead, *others = generators(times, SLOTS, store)
    dead.next_id()
    dead_slot = dead.slot
    last_possible = dead.lease_valid_until  # the dead worker issues nothing after this
    # Every other slot taken: a newcomer could only get the dead worker's.
    for generator in others:
        generator.next_id()
    assert {g.slot for g in [dead, *others]} == all_slots
    newcomer = IdGenerator(store, "leases", clock=lambda: times[0])
    times[0] = last_possible + LEASE_MARGIN + 1  # still within the lease's end + margin
    for generator in others:  # the live workers renew theirs
        assert generator._renew()
    try:
        newcomer.next_id()
        raise AssertionError("took a slot still leased")
    except RuntimeError:
        pass
    times[0] = last_possible + 2 * LEASE_MARGIN + 0.001
    for generator in others:
        assert generator._renew()
    first = newcomer.next_id()
    assert newcomer.slot == dead_slot
    assert decompose(first)[0] >= (last_possible + 2 * LEASE_MARGIN) * 1000


def test_a_slow_renewal_does_not_stretch_the_lease():
    """A renewal answered 25 s after it was sent still ends when the document says it does."""
    times = [1_800_000_000.0]
    store = LeaseStore()
    generator = IdGenerator(store, "leases", clock=lambda: times[0])
    generator.next_id()
    store.delay = lambda: times.__setitem__(0, times[0] + 25)
    asked_at = times[0]
    assert generator._renew()
    (expires_ms,) = [doc["expires_ms"] for _, doc in store.docs.values()]
    assert expires_ms == int((asked_at + LEASE_SECONDS) * 1000)
    assert generator.lease_valid_until * 1000 <= expires_ms - LEASE_MARGIN * 1000


def test_a_released_slot_waits_the_margin_after_the_last_id():
    times, store = [1_800_000_000.0], LeaseStore()
    leaving, *others = generators(times, SLOTS, store)
    last = leaving.next_id()
    for generator in others:
        generator.next_id()
    leaving.release()
    newcomer = IdGenerator(store, "leases", clock=lambda: times[0])
    times[0] += 1
    try:
        newcomer.next_id()
        raise AssertionError("took a just-released slot within the margin")
    except RuntimeError:
        pass
    times[0] += LEASE_MARGIN
    for generator in others:
        assert generator._renew()
    assert decompose(newcomer.next_id())[0] > decompose(last)[0] + LEASE_MARGIN * 1000
