"""The OSDI read side, read back from the running signups and judged against the OSDI specification's
own response examples.

The fixtures in osdi_examples/responses/ are the first response example of each "Retrieving …"
scenario of people.md, events.md and attendances.md (github.com/opensupporter/osdi-docs, commit
ea51c38), with only what keeps them from being JSON taken out: `//(truncated for brevity)`
comments, the trailing commas they leave, and the `{% include divisions_examples.md %}` Jekyll
lines. A resource of ours passes when every member it has is one the specification's example has
at the same place, with the same JSON type, and it has the HAL members OSDI clients follow.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pitchin_testing.stack import Stack
from tests.conftest import Tenant, new_tenant
from tests.e2e.helpers import bearer, create_event, sign_up, wait_until_signups_knows

pytestmark = pytest.mark.e2e

RESPONSES = Path(__file__).parent / "osdi_examples" / "responses"
HAL_JSON = "application/hal+json"

# Members the specification defines that its examples happen not to show: events.md's field
# table has `capacity` (line 71); a page after the first has a `previous` link.
DEFINED_NOT_SHOWN = {"capacity", "previous"}
# Objects whose members each system names (people.md: custom_fields.[key], "may be prefixed by servers").
FREE_FORM = {"custom_fields"}


def spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((RESPONSES / f"{name}.json").read_text())
    return loaded


def shape_errors(ours: Any, theirs: Any, where: str = "$") -> list[str]:
    """Where `ours` has a member the specification's example does not, or one of another JSON type."""
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{where}: {type(ours).__name__}, the example has an object"]
        errors = []
        for member, value in ours.items():
            if member not in theirs:
                if member not in DEFINED_NOT_SHOWN:
                    errors.append(f"{where}.{member}: not in the specification's example")
                continue
            if member in FREE_FORM:
                errors += [] if isinstance(value, dict) else [f"{where}.{member}: not an object"]
                continue
            errors += shape_errors(value, theirs[member], f"{where}.{member}")
        return errors
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"{where}: {type(ours).__name__}, the example has an array"]
        return (
            [e for i, item in enumerate(ours) for e in shape_errors(item, theirs[0], f"{where}[{i}]")] if theirs else []
        )
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return [] if isinstance(ours, bool) and isinstance(theirs, bool) else [f"{where}: {ours!r} vs {theirs!r}"]
    if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)):
        return []
    return [] if type(ours) is type(theirs) else [f"{where}: {type(ours).__name__}, the example has {theirs!r}"]


def read(url: str, key: str) -> dict[str, Any]:
    answer = httpx.get(url, headers=bearer(key), timeout=15)
    assert answer.status_code == 200, f"{url}: {answer.status_code} {answer.text}"
    assert answer.headers["content-type"] == HAL_JSON
    body: dict[str, Any] = answer.json()
    return body


def test_shape_errors_names_what_the_example_lacks() -> None:
    # The judge itself: a member the example lacks, or one of another type, is named.
    assert shape_errors({"identifiers": ["a:1"], "given_name": "Ana"}, spec("person")) == []
    assert shape_errors({"nickname": "Ana", "given_name": 3}, spec("person")) == [
        "$.nickname: not in the specification's example",
        "$.given_name: int, the example has 'John'",
    ]


def test_people_events_and_attendances_read_back_as_the_specification_shows_them(stack: Stack, tenant: Tenant) -> None:
    signups = stack["signups"].url
    osdi = f"{signups}/v1/osdi"
    key = tenant.organiser_key
    donors = [
        sign_up(stack, key, name=f"Ana Maria Organiser{i}", email=f"ana{i}-{uuid.uuid4().hex[:6]}@example.org").json()
        for i in range(3)
    ]
    event = create_event(stack, key, title="Social media training").json()
    event_id = event["event_id"]
    wait_until_signups_knows(stack, key, event_id)
    booked = []
    for i, donor in enumerate(donors):
        answer = httpx.post(
            f"{signups}/v1/events/{event_id}/bookings",
            json={"name": f"Ana Maria Organiser{i}", "email": donor["email"], "donor_id": donor["donor_id"]},
            headers=bearer(key),
            timeout=15,
        )
        assert answer.status_code in (200, 201), answer.text
        booked.append(answer.json()["booking_id"])

    entry = read(osdi, key)
    assert entry["_links"]["osdi:people"]["href"] == f"{osdi}/people"

    # People, two to a page: the third is on page 2, reached by following `next`.
    first = read(f"{osdi}/people?per_page=2", key)
    assert shape_errors(first, spec("people_collection")) == []
    assert (first["page"], first["per_page"], len(first["_embedded"]["osdi:people"])) == (1, 2, 2)
    assert first["_links"]["osdi:people"] == [p["_links"]["self"] for p in first["_embedded"]["osdi:people"]]
    assert first["_links"]["curies"][0]["name"] == "osdi" and "previous" not in first["_links"]
    second = read(first["_links"]["next"]["href"], key)
    assert shape_errors(second, spec("people_collection")) == []
    assert second["page"] == 2 and "next" not in second["_links"]
    assert second["_links"]["previous"]["href"] == first["_links"]["self"]["href"]
    listed = first["_embedded"]["osdi:people"] + second["_embedded"]["osdi:people"]
    assert [p["identifiers"] for p in listed] == [[f"pitchin:{d['donor_id']}"] for d in donors]

    person = read(listed[0]["_links"]["self"]["href"], key)
    assert shape_errors(person, spec("person")) == []
    assert (person["given_name"], person["family_name"]) == ("Ana Maria", "Organiser0")
    assert person["email_addresses"] == [{"address": donors[0]["email"], "primary": True}]
    assert person["phone_numbers"] == [{"number": "+447700900123", "primary": True}]

    osdi_event = read(f"{osdi}/events/{event_id}", key)
    assert shape_errors(osdi_event, spec("event")) == []
    assert (osdi_event["title"], osdi_event["status"], osdi_event["total_accepted"]) == (
        "Social media training",
        "confirmed",
        3,
    )

    attendances = read(osdi_event["_links"]["osdi:attendances"]["href"] + "?per_page=2", key)
    # The example's collection names its links `osdi:submissions` (a slip copied from the submissions
    # page); the relation is the collection's own, as its `_embedded` and the event's link name it.
    example = spec("attendances_collection")
    example["_links"]["osdi:attendances"] = example["_links"].pop("osdi:submissions")
    assert shape_errors(attendances, example) == []
    assert (attendances["total_records"], attendances["total_pages"]) == (3, 2)
    attendance = read(attendances["_embedded"]["osdi:attendances"][0]["_links"]["self"]["href"], key)
    assert shape_errors(attendance, spec("attendance")) == []
    assert attendance["identifiers"] == [f"pitchin:{booked[0]}"]
    assert (attendance["status"], attendance["attended"]) == ("accepted", False)
    assert read(attendance["_links"]["osdi:person"]["href"], key)["identifiers"] == person["identifiers"]
    assert read(attendance["_links"]["osdi:event"]["href"], key)["identifiers"] == [f"pitchin:{event_id}"]

    # Scoped like the other routes: another organisation's key reads none of it.
    neighbour = new_tenant(tenant.federation_id, stack.issue_key)
    for url in (
        person["_links"]["self"]["href"],
        osdi_event["_links"]["self"]["href"],
        attendance["_links"]["self"]["href"],
    ):
        assert httpx.get(url, headers=bearer(neighbour.organiser_key), timeout=15).status_code == 404, url
    theirs = read(f"{osdi}/people", neighbour.organiser_key)
    assert theirs["_embedded"]["osdi:people"] == []
    assert httpx.get(f"{osdi}/people", timeout=15).status_code == 401
