"""`flask import` of an exported clock-corrected event (service/ingest/clock.py): the correction
is made again from what the export kept, and anything the service could not have made is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from service.ingest.clock import clock_skew, correct_clock, corrected_again, restored_clock

FIELDS = ("start_time", "client_time")

#: Client times as clients write them: offsets up to ±18:00, fractions, no offset at all.
offsets = st.one_of(st.none(), st.integers(-18 * 60, 18 * 60).map(lambda m: timezone(timedelta(minutes=m))))
moments = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31))
forms = st.sampled_from(["seconds", "milliseconds", "microseconds"])


def written(moment: datetime, offset, form: str) -> str:
    local = moment if offset is None else moment.replace(tzinfo=UTC).astimezone(offset)
    return local.isoformat(timespec=form)


times = st.builds(written, moments, offsets, forms)
instants = moments.map(lambda moment: moment.replace(tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(start=times, sent=instants, received=instants, other=st.text(max_size=5))
def test_an_exported_correction_is_made_again_exactly(start, sent, received, other):
    try:
        first = correct_clock(
            {"uuid": "u", "start_time": start, "note": other}, FIELDS, clock_skew(sent.isoformat(), received)
        )
    except ValidationError:  # carried off the calendar: never stored, never exported
        return
    client, skew = restored_clock(first, FIELDS)
    assert client == {"uuid": "u", "start_time": start, "note": other}
    assert corrected_again(client, FIELDS, skew, first) == first


def corrected() -> dict:
    skew = clock_skew("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, 5, tzinfo=UTC))
    return correct_clock({"uuid": "u", "start_time": "2024-02-29T23:59:00+01:00"}, FIELDS, skew)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c.pop("offset_ms"), "exactly"),
        (lambda c: c.update(extra=1), "exactly"),
        (lambda c: c.update(original={"uuid": "v"}), "original may only hold"),
        (lambda c: c.update(original="2024-01-01"), "original may only hold"),
        (lambda c: c.update(sent_at="yesterday"), "ISO 8601"),
        (lambda c: c.update(received_at=17), "ISO 8601"),
        (lambda c: c.update(offset_ms=c["offset_ms"] + 1), "offset_ms must be"),
    ],
)
def test_a_correction_the_service_could_not_have_made_is_refused(change, named):
    event = corrected()
    change(event["clock_correction"])
    with pytest.raises(ValidationError) as refused:
        restored_clock(event, FIELDS)
    assert named in refused.value.messages["clock_correction"][0]


def test_an_edited_time_is_refused_by_name():
    event = {**corrected(), "start_time": "2024-03-01T00:00:00.000Z"}
    client, skew = restored_clock(event, FIELDS)
    with pytest.raises(ValidationError) as refused:
        corrected_again(client, FIELDS, skew, event)
    assert refused.value.messages == {
        "clock_correction": ["start_time is not the original time plus offset_ms."]
    }
