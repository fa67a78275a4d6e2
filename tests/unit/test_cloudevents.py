from datetime import UTC, datetime

import pytest

from pitchin_core.contracts.cloudevents import (
    CloudEvent,
    InvalidCloudEvent,
    from_kafka,
    to_kafka_headers,
    to_kafka_value,
)


def _event() -> CloudEvent:
    return CloudEvent(
        id="7c1e",
        source="/pitchin/signups",
        type="org.pitchin.donor.registered.v1",
        data={"donor_id": "don_1"},
        time=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        subject="donors/don_1",
        tenant="fed-wm/org-unite-42",
    )


def test_binary_mode_round_trip_keeps_every_attribute() -> None:
    event = _event()
    headers = to_kafka_headers(event)
    assert ("ce_specversion", b"1.0") in headers
    assert ("ce_time", b"2026-11-23T12:00:00Z") in headers
    assert ("content-type", b"application/json") in headers
    back = from_kafka(headers, to_kafka_value(event))
    assert back == event
    assert back.federation_id == "fed-wm"
    assert back.organisation_id == "org-unite-42"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: [x for x in h if x[0] != "ce_id"], "ce_id is missing"),
        (lambda h: [x for x in h if x[0] != "ce_type"], "ce_type is missing"),
        (lambda h: [*h[:1], ("ce_source", b"\xff\xfe"), *h[2:]], "not valid UTF-8"),
        (lambda h: [("ce_specversion", b"0.3"), *h[1:]], "is not 1.0"),
        (lambda h: [*h, ("content-type", b"text/plain")], "is not JSON"),
    ],
)
def test_a_broken_header_is_named(mutate, message) -> None:  # type: ignore[no-untyped-def]
    headers = to_kafka_headers(_event())
    with pytest.raises(InvalidCloudEvent, match=message):
        from_kafka(mutate(headers), b"{}")


@pytest.mark.parametrize(
    ("value", "message"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (None, "no value"), (b"\xff", "not valid JSON")],
)
def test_bad_data_is_named(value: bytes | None, message: str) -> None:
    with pytest.raises(InvalidCloudEvent, match=message):
        from_kafka(to_kafka_headers(_event()), value)


def test_time_without_offset_is_refused() -> None:
    headers = [h for h in to_kafka_headers(_event()) if h[0] != "ce_time"] + [("ce_time", b"2026-11-23T12:00:00")]
    with pytest.raises(InvalidCloudEvent, match="UTC offset"):
        from_kafka(headers, b"{}")
