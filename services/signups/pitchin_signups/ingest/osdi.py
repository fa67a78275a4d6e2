"""OSDI helpers, so organising tools that speak OSDI can point at Pitch In without new code.

`POST /v1/osdi/person_signup` (the OSDI person signup helper) and
`POST /v1/osdi/events/{event_id}/record_attendance` (the record attendance helper) are
translated onto the public ingest contract (person-signed-up, rsvp-made / rsvp-cancelled)
and decided by the same pipeline as `POST /v1/ingest`. Which OSDI fields are mapped and
which ignored: docs/ingest.md, "OSDI helpers". Authenticated by the publisher's key in
`OSDI-API-Token` (OSDI's header) or `Authorization: Bearer`.

What real OSDI clients send is taken as sent (the specification's own example requests are
test fixtures, posted unchanged: tests/standards/osdi_examples/): a phone number may be a
JSON number, unknown fields are ignored, and a person who names no skill, no weekly hours or
no consent wording is not refused: Pitch In cannot make them a knowledge donor (matching
needs skills and hours, and nothing is processed without the wording they agreed to), so the
answer is 202 `pending-profile`, saying what is missing and where the person completes it,
and nothing about them is stored. A record_attendance for an event Pitch In does not know
answers 404.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pitchin_core.auth import checks_credential
from pitchin_core.contracts.common import SkillLevel
from pitchin_core.contracts.ingest import IngestPersonSignedUpV1, IngestRsvpCancelledV1, IngestRsvpMadeV1
from pitchin_core.http import Problem
from pitchin_core.ingest import Envelope, Registration, external_event_id
from pitchin_signups import storage
from pitchin_signups.ingest.routes import decide, pipeline_of, publisher_by_key, read_body, respond

router = APIRouter(prefix="/v1/osdi", tags=["osdi"])
DECLINED = {"declined", "cancelled", "canceled"}
_M = TypeVar("_M", bound=BaseModel)
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OsdiEmail(_Open):
    address: str
    primary: bool = False


class OsdiPhone(_Open):
    number: str
    primary: bool = False
    sms_capable: bool | None = None

    @field_validator("number", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        # The OSDI examples send the number as a JSON number (19876543210): the same digits.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def e164(number: str) -> str | None:
    """The number in E.164 (`+<digits>`), or None when it cannot be read as one.

    OSDI numbers carry their country code (OSDI's examples: 19876543210, a US number), with or
    without `+` and with spaces, dashes, dots or brackets: only a `00` prefix is taken as `+`.
    """
    digits = re.sub(r"[\s().-]", "", number)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif not digits.startswith("+"):
        digits = "+" + digits
    return digits if _E164.match(digits) else None


class OsdiAddress(_Open):
    locality: str | None = None
    region: str | None = None
    country: str | None = None
    primary: bool = False


class OsdiPerson(_Open):
    identifiers: list[str] = Field(default_factory=list)
    given_name: str | None = None
    family_name: str | None = None
    email_addresses: list[OsdiEmail] = Field(default_factory=list)
    phone_numbers: list[OsdiPhone] = Field(default_factory=list)
    postal_addresses: list[OsdiAddress] = Field(default_factory=list)
    languages_spoken: list[str] = Field(default_factory=list)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    modified_date: datetime | None = None


_T = TypeVar("_T", OsdiEmail, OsdiPhone, OsdiAddress)


class PersonSignupHelper(_Open):
    person: OsdiPerson
    add_tags: list[str] = Field(default_factory=list)


class RecordAttendanceHelper(_Open):
    person: OsdiPerson
    status: str = "accepted"
    identifiers: list[str] = Field(default_factory=list)
    modified_date: datetime | None = None
    # When the person answered (OSDI's examples send this rather than modified_date).
    action_date: datetime | None = None

    @property
    def moment(self) -> datetime | None:
        return self.modified_date or self.action_date


def _primary(items: list[_T]) -> _T | None:
    return next((i for i in items if i.primary), items[0] if items else None)


def _usable(ident: str) -> bool:
    """An OSDI identifier (`<system>:<id>`) that fits the contract's external id as it is."""
    return bool(ident) and len(ident) <= 80 and ident[0].isalnum() and all(c.isalnum() or c in "._:-" for c in ident)


def _external_id(identifiers: list[str], fallback: str) -> str:
    named = next((ident for ident in identifiers if _usable(ident)), None)
    return named or "osdi-" + hashlib.sha256(fallback.encode()).hexdigest()[:32]


def _attendance_id(identifiers: list[str], event_ref: str, address: str) -> str:
    named = next((ident for ident in identifiers if _usable(ident)), address)
    return "osdi-rsvp-" + hashlib.sha256(f"{event_ref}|{named}".encode()).hexdigest()[:32]


def _organisation(registration: Registration, fields: dict[str, Any]) -> str | None:
    named = fields.get("organisation_id")
    if isinstance(named, str) and named:
        return named
    return registration.organisations[0] if len(registration.organisations) == 1 else None


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "y")


def missing_profile(helper: PersonSignupHelper) -> list[str]:
    """What a knowledge donor needs that this OSDI person does not say (empty when nothing)."""
    person, fields = helper.person, helper.person.custom_fields
    missing = []
    if _primary(person.email_addresses) is None:
        missing.append("person.email_addresses")
    if not any(tag.startswith("skill:") for tag in helper.add_tags):
        missing.append("add_tags (skill:<slug>[:<level>])")
    if fields.get("hours_per_week") in (None, ""):
        missing.append("person.custom_fields.hours_per_week")
    if fields.get("consent_wording_version") in (None, ""):
        missing.append("person.custom_fields.consent_wording_version")
    return missing


def person_signup_data(helper: PersonSignupHelper, registration: Registration, now: datetime) -> dict[str, Any]:
    """The OSDI person signup helper as the data of an `ingest.person-signed-up.v1`."""
    person, fields = helper.person, helper.person.custom_fields
    email = _primary(person.email_addresses)
    phone = _primary(person.phone_numbers)
    address = _primary(person.postal_addresses)
    skills, causes = [], []
    for tag in helper.add_tags:
        kind, _, rest = tag.partition(":")
        if kind == "skill":
            slug, _, level = rest.partition(":")
            skills.append({"skill": slug, "level": level or SkillLevel.beginner.value})
        elif kind == "cause":
            causes.append(rest)
    name = " ".join(p for p in (person.given_name, person.family_name) if p) or (email.address if email else "")
    purposes = [p.strip() for p in str(fields.get("consent_purposes", "matching")).split(",") if p.strip()]
    data: dict[str, Any] = {
        "federation_id": registration.federation_id,
        "organisation_id": _organisation(registration, fields),
        "external_id": _external_id(person.identifiers, email.address.lower() if email else json.dumps(fields)),
        "updated_at": (person.modified_date or now).isoformat(),
        "name": name,
        "email": email.address if email else None,
        "skills": skills,
        "availability": {
            "hours_per_week": fields.get("hours_per_week"),
            "time_zone": fields.get("time_zone", "Europe/London"),
        },
        "place": {
            "remote": _truthy(fields.get("remote"), True),
            "city": address.locality if address else None,
            "country": address.country if address else None,
        },
        "languages": person.languages_spoken or ["en"],
        "causes": causes,
        "union_member": _truthy(fields.get("union_member"), False),
        "consent": {
            "wording_version": fields.get("consent_wording_version"),
            "purposes": purposes,
            "agreed_at": fields.get("consent_agreed_at", (person.modified_date or now).isoformat()),
        },
    }
    number = e164(phone.number) if phone is not None else None
    # A number that cannot be read as E.164 is left out: the phone is optional, the person is not.
    if phone is not None and number is not None:
        data["phone"] = number
        data["contact"] = {"email": True, "sms": bool(phone.sms_capable and _truthy(fields.get("sms_opt_in"), False))}
    return data


def attendance_data(
    helper: RecordAttendanceHelper, event_ref: str, registration: Registration, now: datetime
) -> tuple[str, dict[str, Any]]:
    """The record attendance helper as an `ingest.rsvp-made.v1` (or `rsvp-cancelled.v1` when declined)."""
    person = helper.person
    email = _primary(person.email_addresses)
    address = email.address.lower() if email else ""
    data: dict[str, Any] = {
        "federation_id": registration.federation_id,
        "organisation_id": _organisation(registration, person.custom_fields),
        # One attendance is one person at one event: the tool's attendance id alone is not enough,
        # as OSDI's examples give the same identifiers to attendances of different events.
        "external_id": _attendance_id(helper.identifiers, event_ref, address),
        "updated_at": (helper.moment or now).isoformat(),
    }
    if helper.status.lower() in DECLINED:
        return IngestRsvpCancelledV1.event_type, data
    if event_ref.startswith("external:"):
        data["event_external_id"] = event_ref.removeprefix("external:")
    else:
        data["event_id"] = event_ref
    name = " ".join(p for p in (person.given_name, person.family_name) if p) or address
    data.update(name=name, email=address or None)
    languages = person.languages_spoken
    if languages:
        data["language"] = languages[0]
    return IngestRsvpMadeV1.event_type, data


async def _publish(
    request: Request, registration: Registration, event_type: str, data: dict[str, Any], stable: bool, body: bytes
) -> Response:
    # With the tool's own modified_date the same request twice is one event; without one it is a new fact.
    ident = "osdi-" + (hashlib.sha256(body).hexdigest()[:40] if stable else uuid.uuid4().hex)
    envelope = Envelope(
        door="http",
        attributes={"id": ident, "source": registration.source, "type": event_type, "specversion": "1.0"},
        data=data,
    )
    return respond(await decide(request, pipeline_of(request), envelope, registration))


async def _registration(request: Request) -> tuple[Registration, bytes]:
    pipeline = pipeline_of(request)
    registration = await publisher_by_key(request, pipeline)
    if registration is None:
        raise Problem(401, "Unauthorised", "Send the publisher key as 'OSDI-API-Token: <key>'.")
    return registration, await read_body(request, pipeline)


def _parse(model: type[_M], body: bytes) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": str(e["msg"])} for e in exc.errors()
        ]
        raise Problem(
            422, "Invalid OSDI request", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
        ) from exc


def _pending_profile(request: Request, missing: list[str]) -> Response:
    """A person Pitch In cannot make a knowledge donor yet: accepted, nothing stored, what to add and where."""
    base = request.app.state.runtime.settings.public_base_url.rstrip("/")
    body = {
        "status": "accepted",
        "outcome": "pending-profile",
        "detail": "Not a knowledge donor yet: Pitch In needs the skills, weekly hours and consent wording the"
        " person agreed to. Nothing about them was stored; they complete their profile at complete_profile_url,"
        " or send this person again with what is missing.",
        "missing": missing,
        "complete_profile_url": f"{base}/donors/signup",
    }
    return JSONResponse(body, status_code=202)


async def _known_event(request: Request, registration: Registration, event_ref: str) -> None:
    """Refuses (404) an attendance of an event this publisher's federation does not have in Pitch In."""
    if event_ref.startswith("external:"):
        event_id = external_event_id(registration.source, event_ref.removeprefix("external:"))
    else:
        event_id = event_ref
    async with request.app.state.runtime.pool.acquire() as conn:
        event = await storage.get_known_event(conn, event_id)
    if event is None or event["federation_id"] != registration.federation_id:
        pipeline_of(request).count("http", "rejected", "not-found")
        raise Problem(
            404,
            "Unknown event",
            f"event_id: {event_ref!r} is not an event of this federation known to Pitch In"
            " (an event just created may take a few seconds to arrive)",
            kind="/problems/ingest/not-found",
            errors=[{"field": "event_id", "message": "no such event"}],
        )


@router.post("/person_signup", status_code=202, summary="OSDI person signup helper")
@checks_credential("a registered publisher's key (OSDI-API-Token)")
async def person_signup(request: Request) -> Response:
    registration, body = await _registration(request)
    helper = _parse(PersonSignupHelper, body)
    missing = missing_profile(helper)
    if missing:
        return _pending_profile(request, missing)
    data = person_signup_data(helper, registration, datetime.now(UTC))
    stable = helper.person.modified_date is not None
    return await _publish(request, registration, IngestPersonSignedUpV1.event_type, data, stable, body)


@router.post("/events/{event_id}/record_attendance", status_code=202, summary="OSDI record attendance helper")
@checks_credential("a registered publisher's key (OSDI-API-Token)")
async def record_attendance(event_id: str, request: Request) -> Response:
    """`event_id` is Pitch In's event id, or `external:<id>` for an event this publisher created."""
    registration, body = await _registration(request)
    helper = _parse(RecordAttendanceHelper, body)
    await _known_event(request, registration, event_id)
    event_type, data = attendance_data(helper, event_id, registration, datetime.now(UTC))
    stable = helper.moment is not None
    return await _publish(request, registration, event_type, data, stable, body + event_id.encode())
