"""Roundware id layout and ordering (the lease itself is tested on a real node)."""

from __future__ import annotations

from service.ids import EPOCH_MS, MAX_SEQUENCE, TIME_BITS, IdGenerator, compose, decompose


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
