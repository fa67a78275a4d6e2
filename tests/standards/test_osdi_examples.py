"""The OSDI specification's own example requests, as OSDI clients send them (no servers).

The fixtures in osdi_examples/ are the request bodies of the "Scenarios" of person_signup.md
and record_attendance.md in github.com/opensupporter/osdi-docs (commit ea51c38, 2019-04-17),
with the Jekyll include helper_action_examples.md expanded where the page includes it, and
nothing else changed. tests/e2e/test_osdi_examples.py posts them to the running helpers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pitchin_core.contracts.ingest import IngestRsvpMadeV1
from pitchin_core.ingest import Registration, envelope_from_structured, validate
from pitchin_signups.ingest.osdi import (
    PersonSignupHelper,
    RecordAttendanceHelper,
    attendance_data,
    e164,
    missing_profile,
    person_signup_data,
)

EXAMPLES = Path(__file__).parent / "osdi_examples"
REG = Registration("/osdi/tool", "fed-a", ("org-a",), False, None, 10.0, 5)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ATTENDANCES = ["record_attendance", "record_attendance_ticketed", "record_attendance_unauthenticated"]


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def test_the_phone_number_the_examples_send_as_a_json_number_is_read_as_e164() -> None:
    helper = PersonSignupHelper.model_validate(example("person_signup"))
    assert helper.person.phone_numbers[0].number == "19876543210"
    assert e164("19876543210") == "+19876543210"
    assert e164("+44 7700 900123") == "+447700900123" and e164("0044 (7700) 900-123") == "+447700900123"
    assert e164("call me") is None and e164("0") is None


def test_the_person_signup_example_is_a_pending_profile_not_a_refusal() -> None:
    helper = PersonSignupHelper.model_validate(example("person_signup"))
    # The example names no skill, no hours and no consent wording: it cannot be a knowledge donor yet.
    assert missing_profile(helper) == [
        "add_tags (skill:<slug>[:<level>])",
        "person.custom_fields.hours_per_week",
        "person.custom_fields.consent_wording_version",
    ]


def test_the_person_signup_example_with_what_pitch_in_needs_is_a_valid_sign_up() -> None:
    body = example("person_signup")
    body["add_tags"] = [*body["add_tags"], "skill:web-development:advanced"]
    body["person"]["custom_fields"] = {"hours_per_week": 3, "consent_wording_version": "2026-01"}
    helper = PersonSignupHelper.model_validate(body)
    assert missing_profile(helper) == []
    data = person_signup_data(helper, REG, NOW)
    assert data["phone"] == "+19876543210" and data["external_id"] == "foreign_system:1"
    assert data["name"] == "Labadie Edwin" and data["place"]["city"] == "New Dudley"
    envelope = envelope_from_structured(
        {"id": "x", "source": REG.source, "type": "org.pitchin.ingest.person-signed-up.v1", "specversion": "1.0"}
        | {"data": data}
    )
    assert validate(envelope, REG).data.external_id == "foreign_system:1"


@pytest.mark.parametrize("name", ATTENDANCES)
def test_each_record_attendance_example_is_a_valid_rsvp(name: str) -> None:
    helper = RecordAttendanceHelper.model_validate(example(name))
    event_type, data = attendance_data(helper, "evt_known", REG, NOW)
    assert event_type == "org.pitchin.ingest.rsvp-made.v1"
    assert data["email"] == "test-3@example.com" and data["updated_at"] == "2014-03-18T11:02:15+00:00"
    envelope = envelope_from_structured(
        {"id": "x", "source": REG.source, "type": event_type, "specversion": "1.0", "data": data}
    )
    rsvp = validate(envelope, REG).data
    assert isinstance(rsvp, IngestRsvpMadeV1) and rsvp.event_id == "evt_known"


def test_one_attendance_id_per_event_even_when_the_tool_reuses_its_identifiers() -> None:
    # The examples give every attendance the identifiers ["foreign_system:1"]: the same person
    # at two events is two RSVPs, not one "unchanged" RSVP pointing at the first event.
    helper = RecordAttendanceHelper.model_validate(example("record_attendance"))
    _, first = attendance_data(helper, "evt_one", REG, NOW)
    _, second = attendance_data(helper, "evt_two", REG, NOW)
    _, again = attendance_data(helper, "evt_one", REG, NOW)
    assert first["external_id"] != second["external_id"] and first["external_id"] == again["external_id"]
