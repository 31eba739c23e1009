"""A seeded synthetic CDX dataset with realistic cardinalities.

Hundreds of institutions with a few laboratories each, thousands of devices, a 4-level location
tree (country → region → district → facility; events sit on facilities and carry their
ancestors in `parent_locations`), 1-3 results per event and two years of `start_time`. The same
seed and position always give the same event, so every run (and both sides of a comparison)
sees identical documents.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.datasets.cdx import CDX

START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 2 * 365 * 24 * 3600
CONDITIONS = ("mtb", "rif", "inh", "covid", "flu_a", "flu_b", "rsv", "hiv")
RESULTS = ("positive", "negative", "indeterminate", "error")
GENDERS = ("female", "male", "other", "unknown")
ASSAYS = tuple(f"GX{kind}-{n}" for kind in ("1", "2", "4") for n in ("MTB", "RIF", "FLU", "HIV", "CV"))
TEST_TYPES = ("specimen", "specimen", "specimen", "qc")
#: Fan-out per level below the root: 6 countries, 8 regions each, 8 districts, 6 facilities.
FANOUT = (6, 8, 8, 6)
INSTITUTIONS, LABS_PER_INSTITUTION, DEVICES = 400, 3, 6_000
CHUNK = 1_000  # events drawn from one seeded generator, so any chunk is reproducible alone


@dataclass(frozen=True)
class World:
    """The fixed entities events refer to: places, institutions, laboratories, devices."""

    facilities: tuple[tuple[int, tuple[int, ...]], ...]  # (location_id, ancestors root first)
    labs: tuple[tuple[int, int, int], ...]  # (laboratory_id, institution_id, facility index)
    devices: tuple[tuple[object, str, int], ...]  # (device_id, serial, lab index)

    @classmethod
    def make(cls, seed: int) -> World:
        rng = random.Random(seed)
        facilities, next_id = [], 1
        countries = list(range(next_id, next_id + FANOUT[0]))
        next_id += FANOUT[0]
        for country in countries:
            for _ in range(FANOUT[1]):
                region, next_id = next_id, next_id + 1
                for _ in range(FANOUT[2]):
                    district, next_id = next_id, next_id + 1
                    for _ in range(FANOUT[3]):
                        facilities.append((next_id, (country, region, district)))
                        next_id += 1
        labs = tuple(
            (1000 + institution * 10 + n, institution, rng.randrange(len(facilities)))
            for institution in range(1, INSTITUTIONS + 1)
            for n in range(LABS_PER_INSTITUTION)
        )
        devices = tuple(
            # Device ids are kept as given: most are strings, older devices send integers.
            (
                f"GX-{n:05d}" if n % 5 else 90_000 + n,
                f"SN{rng.getrandbits(40):010x}",
                rng.randrange(len(labs)),
            )
            for n in range(DEVICES)
        )
        return cls(tuple(facilities), labs, devices)


def event(rng: random.Random, world: World) -> dict:
    device_id, serial, lab_index = world.devices[rng.randrange(len(world.devices))]
    lab_id, institution_id, facility_index = world.labs[lab_index]
    location_id, ancestors = world.facilities[facility_index]
    start = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    created = start + timedelta(seconds=rng.randrange(60, 6 * 3600))
    event = {
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "start_time": start.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "assay_name": rng.choice(ASSAYS),
        "device_id": device_id,
        "device_serial_number": serial,
        "laboratory_id": lab_id,
        "institution_id": institution_id,
        "location_id": location_id,
        "parent_locations": list(ancestors),
        "system_user": f"user{rng.randrange(2000)}",
        "test_type": rng.choice(TEST_TYPES),
        "results": [
            {"condition": condition, "result": rng.choice(RESULTS)}
            for condition in rng.sample(CONDITIONS, rng.randint(1, 3))
        ],
        "pii": {"patient_id": f"P{rng.getrandbits(32):08x}"},
        "custom_fields": {"cartridge_lot": f"L{rng.randrange(500)}", "note": None},
    }
    if rng.random() < 0.95:  # some devices do not record age or gender
        event["age"] = min(int(rng.expovariate(1 / 35)), 105)
    if rng.random() < 0.97:
        event["gender"] = rng.choice(GENDERS)
    if rng.random() < 0.03:
        event["error_code"] = rng.choice((2008, 5006, 5007))
        event["error_description"] = "cartridge error"
    return event


class Dataset:
    """Event number `n` of a seeded stream, with the document Elasticsearch stores for it."""

    def __init__(self, seed: int):
        self.seed = seed
        self.world = World.make(seed)

    def events(self, start: int, count: int) -> list[dict]:
        out = []
        for chunk in range(start // CHUNK, (start + count - 1) // CHUNK + 1):
            rng = random.Random(f"{self.seed}:{chunk}")
            block = [event(rng, self.world) for _ in range(CHUNK)]
            low = max(start, chunk * CHUNK) - chunk * CHUNK
            high = min(start + count, (chunk + 1) * CHUNK) - chunk * CHUNK
            out += block[low:high]
        return out


def document(event: dict) -> dict:
    """What the service stores for `event` (derived grouping keys included), by its own code."""
    return CDX.to_document(event)


def batch_sizes(rng: random.Random, total: int, low: int = 500, high: int = 5_000) -> list[int]:
    sizes = []
    while total > 0:
        size = min(rng.randint(low, high), total)
        sizes.append(size)
        total -= size
    return sizes
