"""Clock skew: a client's own-clock times shifted by how far its clock is behind ours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marshmallow import ValidationError

from ..engine.dates import ISO_DATETIME, OutsideCalendar, iso_ms, utc_instant
from ..errors import ApiError


def clock_skew(sent_at, received_at: datetime) -> dict:
    """The `clock_correction` figures of a batch: `sent_at` and `received_at` in UTC to the
    millisecond, as stored, and `offset_ms`, exactly the one minus the other, so how far the
    client's clock is behind ours reads the same from either (a 400 naming `sent_at` if it is
    unreadable)."""
    try:
        if not isinstance(sent_at, str) or not ISO_DATETIME.match(sent_at):
            raise ValueError(sent_at)
        sent = _to_ms(utc_instant(sent_at))
    except ValueError as exc:
        reason = str(exc) if isinstance(exc, OutsideCalendar) else "Not a valid ISO 8601 datetime."
        raise ApiError(
            400,
            "validation_error",
            "sent_at must be an ISO 8601 datetime.",
            {"fields": {"sent_at": [reason]}},
        ) from exc
    received = _to_ms(received_at.astimezone(UTC))
    return {
        "sent_at": iso_ms(sent),
        "received_at": iso_ms(received),
        "offset_ms": (received - sent) // timedelta(milliseconds=1),
    }


def correct_clock(event: dict, fields: tuple[str, ...], skew: dict) -> dict:
    """Shift the event's client-clock times by `skew`'s offset (to the millisecond, as times are
    stored); keep the originals. A time the shift carries outside years 1 to 9999 is that
    field's error (ValidationError): the event is refused alone, its batch stored."""
    offset = timedelta(milliseconds=skew["offset_ms"])
    original = {name: event[name] for name in fields if event.get(name)}
    corrected, errors = {}, {}
    for name, value in original.items():
        try:
            # In UTC: a local time at a calendar edge may shift past it while its instant does not.
            corrected[name] = iso_ms(utc_instant(value) + offset)
        except OverflowError:
            shift = skew["offset_ms"]
            errors[name] = [f"Corrected by the client's clock offset ({shift} ms) it leaves years 1 to 9999."]
    if errors:
        raise ValidationError(errors)
    return {**event, **corrected, "clock_correction": {**skew, "original": original}}


def _to_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


#: What an exported `clock_correction` holds (`clock_skew`'s figures and the original times).
CORRECTION_KEYS = frozenset(("sent_at", "received_at", "offset_ms", "original"))


def restored_clock(event: dict, fields: tuple[str, ...]) -> tuple[dict, dict]:
    """An exported event whose client clock was corrected → (the event as its client sent it,
    the skew to correct it by again), so `flask import` stores it again exactly as it was.

    Raises ValidationError naming `clock_correction` when it is not a correction the service
    could have made: other keys, an original time of another field, or figures that disagree
    (`offset_ms` must be `received_at` minus `sent_at`). The original times are then validated
    as the event's own, and `corrected_again` checks the event's times against them."""
    correction = event["clock_correction"]
    if not isinstance(correction, dict) or set(correction) != CORRECTION_KEYS:
        raise _refused("Must hold exactly sent_at, received_at, offset_ms and original, as exported.")
    original = correction["original"]
    if not isinstance(original, dict) or not set(original) <= set(fields):
        raise _refused(f"original may only hold the client's own times ({', '.join(fields)}).")
    received = correction["received_at"]
    try:
        if not isinstance(received, str) or not ISO_DATETIME.match(received):
            raise ValueError(received)
        skew = clock_skew(correction["sent_at"], utc_instant(received))
    except (ApiError, ValueError) as exc:
        raise _refused("sent_at and received_at must be ISO 8601 datetimes.") from exc
    if skew != {name: correction[name] for name in ("sent_at", "received_at", "offset_ms")}:
        raise _refused("offset_ms must be received_at minus sent_at, both to the millisecond in UTC.")
    client = {name: value for name, value in event.items() if name != "clock_correction"}
    return {**client, **original}, skew


def corrected_again(event: dict, fields: tuple[str, ...], skew: dict, exported: dict) -> dict:
    """`correct_clock` of a restored event, refused (ValidationError naming `clock_correction`)
    unless it gives back the exported event's times."""
    corrected = correct_clock(event, fields, skew)
    changed = [name for name in fields if corrected.get(name) != exported.get(name)]
    if changed:
        raise _refused(f"{', '.join(changed)} is not the original time plus offset_ms.")
    # In the exported order (the stored one), so an export of the import reads the same.
    return {name: corrected[name] for name in (*exported, *corrected) if name in corrected}


def _refused(reason: str) -> ValidationError:
    return ValidationError({"clock_correction": [reason]})
