"""The ingest fast path never accepts what the schema would refuse or change."""

from __future__ import annotations

import json
import random
import re

import orjson
import pytest
from marshmallow import ValidationError

from bench.data import World, event
from service.datasets import DATASETS
from service.datasets.cdx import CDX
from service.engine.fields import Date
from service.ingest.validation import PLAIN_DATE, EventLoader

LOADERS = {name: EventLoader(dataset) for name, dataset in DATASETS.items()}

TRICKY = [
    {"age": True},
    {"age": 5.0},
    {"age": "5"},
    {"age": -1},
    {"age": 0},
    {"age": None},
    {"gender": None},
    {"gender": 3},
    {"gender": "x" * 1024},
    {"gender": "x" * 1025},
    {"device_id": 17},
    {"device_id": 2**64 - 1},
    {"device_id": -(2**63)},
    {"device_id": False},
    {"device_id": 1.5},
    {"start_time": "2024-03-02"},
    {"start_time": "2024-03-02T10:00:00.123456+05:30"},
    {"start_time": "2020-13-45"},
    {"start_time": "2024-02-30T10:00:00Z"},
    {"start_time": 1700000000},
    {"parent_locations": [1, 2]},
    {"parent_locations": [1, True]},
    {"parent_locations": []},
    {"parent_locations": 3},
    {"results": []},
    {"results": [{}]},
    {"results": [{"condition": "mtb"}]},
    {"results": [{"condition": None}]},
    {"results": [{"condition": "mtb", "extra": 1}]},
    {"results": {"condition": "mtb"}},
    {"results": ["mtb"]},
    {"custom_fields": {"a": None, "b": [1]}},
    {"custom_fields": [1, 2]},
    {"pii": {"name": "x"}},
    {"colour": "red"},
    {"session_id": 1, "event_type": "x", "tag_ids": "3,8"},
    {"session_id": 1, "event_type": "x", "latitude": "45.5", "longitude": 3},
    {"session_id": 1, "event_type": "x", "latitude": 45, "longitude": -180},
    {"session_id": 1, "event_type": "x", "latitude": -90.0, "longitude": 180.0},
    {"session_id": 1, "event_type": "x", "latitude": 90.000001},
    {"session_id": 1, "event_type": "x", "longitude": -180.5},
    {"session_id": 1, "event_type": "x", "latitude": True},
    {"session_id": 1, "event_type": "x", "latitude": None, "tag_ids": None},
    {"session_id": 1, "event_type": "x", "tag_ids": [3, 8]},
    {"session_id": 1, "event_type": "x", "tag_ids": []},
    {"session_id": 1, "event_type": "x", "tag_ids": [3, "8"]},
    {"session_id": 1, "event_type": "x", "tag_ids": [3, 8.0]},
    {"session_id": 1, "event_type": "x", "tag_ids": [2**63 - 1]},
    {"session_id": 1, "event_type": "x", "tag_ids": [2**63]},
    {"session_id": 1, "event_type": "x", "tag_ids": [True]},
    {"session_id": None, "event_type": "x"},
    {"event_type": "x"},
    {"session_id": 1, "event_type": "x", "data": "{}"},
    # At the limits of Elasticsearch's types and of the calendar.
    {"age": 2**31 - 1},
    {"age": 2**31},
    {"error_code": -(2**31) - 1},
    {"institution_id": 2**63},
    {"institution_id": -(2**63)},
    {"institution_id": 2.0**64},
    {"parent_locations": [1, 2**63]},
    {"session_id": 2**63, "event_type": "x"},
    {"uuid": ""},
    {"uuid": "€" * 170 + "ab"},
    {"uuid": "€" * 171},
    {"start_time": "0001-01-01T00:00:00-18:00"},
    {"start_time": "0001-01-01T00:00:00+18:00"},
    {"start_time": "9999-12-31T23:59:59.999-18:00"},
    {"start_time": "2024-01-01T00:00:00+18:01"},
    {"start_time": "2024-01-01T00:00:00+01:75"},
    {"custom_fields": {"a": [[[{}]]]}},
    {"custom_fields": {"a": json.loads("[" * 199 + "1" + "]" * 199)}},  # 200 levels
    {"custom_fields": {"a": json.loads("[" * 200 + "1" + "]" * 200)}},
    {"pii": json.loads('{"a":' * 201 + "1" + "}" * 201)},
]


def schema_result(loader: EventLoader, item: dict):
    try:
        return loader.schema.load(item)
    except ValidationError as exc:
        return exc


@pytest.mark.parametrize("item", TRICKY, ids=repr)
@pytest.mark.parametrize("dataset", DATASETS)
def test_fast_path_agrees_with_the_schema(dataset, item):
    loader = LOADERS[dataset]
    expected = schema_result(loader, item)
    if loader.plainly_valid(item):
        assert expected == item  # accepted by the schema, and unchanged by it
    if isinstance(expected, ValidationError):
        with pytest.raises(ValidationError) as raised:
            loader.load(item)
        assert raised.value.messages == expected.messages
    else:
        assert loader.load(item) == expected


def test_realistic_events_take_the_fast_path_unchanged():
    rng, world = random.Random(1), World.make(1)
    loader = LOADERS[CDX.name]
    for _ in range(500):
        item = event(rng, world)
        assert loader.plainly_valid(item)
        assert loader.schema.load(item) == item


def full_path(loader: EventLoader, text: bytes):
    """What an NDJSON line became before msgspec: orjson, then the loader."""
    try:
        return loader.load(orjson.loads(text))
    except ValidationError as exc:
        return exc


@pytest.mark.parametrize("item", TRICKY, ids=repr)
@pytest.mark.parametrize("dataset", DATASETS)
def test_one_pass_decoder_accepts_only_what_the_schema_keeps(dataset, item):
    loader = LOADERS[dataset]
    text = orjson.dumps(item)
    decoded = loader.decode(text)
    if decoded is not None:
        assert decoded == full_path(loader, text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"pii": {"a": 123456789012345678901234567890}}',  # orjson reads it as a float
        b'{"custom_fields": {"a": 18446744073709551615, "b": -9223372036854775809}}',
        b'{"custom_fields": {"a": 9223372036854775807, "b": 1.5, "c": true, "d": null, "e": "x"}}',
        b'{"custom_fields": {"a": {"b": [1]}}}',
        b'{"start_time": "2024-01-01\\n"}',
        b'{"start_time": "2024-02-29T00:00:00Z"}',
        b'{"start_time": "2023-02-29T00:00:00Z"}',
        b'{"start_time": "1900-02-29"}',
        b'{"start_time": "2024-01-01T24:00"}',
        b'{"start_time": "2024-01-01T00:00:60"}',
        b'{"gender": "a", "gender": 3}',
        b'{"results": [{"condition": "x", "condition": null}]}',
        b'{"custom_fields": null, "pii": [1]}',
        b'{"uuid": "\\ud800"}',
        b'{"gender": "\xff"}',
        b'{"device_id": 18446744073709551616}',  # orjson reads a float: refused
        b'{"device_id": -9223372036854775809}',
        b'{"custom_fields": {"a": "\xed\xa0\x80"}}',
        b'{"custom_fields": {"a": 1e999}}',
    ],
)
@pytest.mark.parametrize("dataset", DATASETS)
def test_one_pass_decoder_on_texts(dataset, text):
    loader = LOADERS[dataset]
    decoded = loader.decode(text)
    if decoded is not None:
        assert decoded == full_path(loader, text)


def test_plain_dates_are_a_subset_of_what_the_schema_reads():
    pattern, date = re.compile(PLAIN_DATE), Date()
    rng = random.Random(3)
    parts = [
        ["0000", "0001", "0002", "1900", "2000", "2023", "2024", "9998", "9999"],
        ["-00", "-01", "-02", "-04", "-12", "-13"],
        ["-00", "-01", "-28", "-29", "-30", "-31", "-32"],
        ["", "T00:00", "T23:59:59", "T24:00", "T12:30:60", "T01:02:03.1", "T01:02:03.123456789"],
        ["", "Z", "z", "+00:00", "-18:00", "+18:01", "+1800", "-0530", "+05:60", "\n"],
    ]
    for _ in range(20_000):
        text = "".join(rng.choice(part) for part in parts)
        if pattern.match(text):
            assert date.accepts(text), text


def test_realistic_lines_take_the_one_pass_decoder_unchanged():
    rng, world = random.Random(2), World.make(2)
    loader = LOADERS[CDX.name]
    for _ in range(2_000):
        item = event(rng, world)
        assert loader.decode(orjson.dumps(item)) == item
