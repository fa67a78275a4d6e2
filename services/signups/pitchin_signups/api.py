"""Signups' HTTP routes: parse, call a use case, answer (pitchin_core.http answers the domain errors)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from pitchin_core.auth import WEB_FRONT, CallerDep, KeyRecord, StaffDep, for_web_front, web_front_proof
from pitchin_core.contracts.bookings import BookingConfirmedV1, BookingWaitlistedV1
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import FightOpenedV1, NeedOpenedV1, NeedStatus, NeedUpdatedV1, Urgency
from pitchin_core.errors import Forbidden, Refused
from pitchin_core.http import Problem
from pitchin_core.ingest import PublisherSummary
from pitchin_core.links import BOOKING_LINK_HEADER, DONOR_LINK_HEADER, RECORD_PREFIX, opens_booking, opens_donor
from pitchin_core.links import PREFIX as DONOR_PREFIX
from pitchin_core.uow import UnitOfWork
from pitchin_signups.domain import attendance as attendance_rules
from pitchin_signups.domain.api_keys import KeyRequest, KeyRotation
from pitchin_signups.domain.bookings import BookingRequest
from pitchin_signups.domain.donors import DonorChanges, DonorSignup
from pitchin_signups.domain.fights import FightDraft, NeedChanges, NeedDraft
from pitchin_signups.domain.publishers import PublisherRegistration
from pitchin_signups.domain.suggestions import suggest
from pitchin_signups.service import api_keys, attendance, bookings, donors, fights, publishers
from pitchin_signups.service import taxonomy as skills_taxonomy

router = APIRouter(prefix="/v1")
Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
Cursor = Annotated[str | None, Query(description="The `next` value of the previous page")]


def _uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.runtime.uow
    return uow


def _now() -> datetime:
    return datetime.now(UTC)


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        moment, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(moment), ident
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400,
            "Bad cursor",
            "cursor: not a value this API returned",
            errors=[{"field": "cursor", "message": "not a value this API returned"}],
        ) from exc


def _page(items: list[dict[str, Any]], limit: int, time_key: str, id_key: str) -> dict[str, Any]:
    next_cursor = None
    if len(items) == limit:
        last = items[-1]
        raw = f"{last[time_key].isoformat()}|{last[id_key]}".encode()
        next_cursor = base64.urlsafe_b64encode(raw).decode()
    return {"items": items, "next": next_cursor}


# Donors -----------------------------------------------------------------------------------


class ConfirmationPending(BaseModel):
    """A sign-up held until the person confirms it from the email just sent to them."""

    pending_id: str = Field(description="The held sign-up; no donor exists yet")
    email: str = Field(description="Where the confirmation link was sent")
    expires_at: datetime = Field(description="The link works until then; after it, sign up again")


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=16, max_length=200, description="The `token` of the emailed confirmation link")


@router.post(
    "/donors",
    status_code=status.HTTP_201_CREATED,
    response_model=DonorRegisteredV1,
    tags=["donors"],
    responses={
        202: {"model": ConfirmationPending, "description": "With `confirm=email`: held, confirmation link sent"}
    },
)
@for_web_front
async def sign_up_donor(
    signup: DonorSignup,
    caller: CallerDep,
    request: Request,
    confirm: Annotated[
        Literal["email"] | None,
        Query(
            description="`email`: double opt-in. The donor is registered only once the person follows"
            " the emailed link (`POST /v1/donors/confirmations`); answered 202. For public pages."
        ),
    ] = None,
) -> Any:
    """A knowledge donor offers what they know. Honours `Idempotency-Key`.

    Organisers and imports register at once (the organisation vouches for the person); a sign-up
    made on a public page is sent with `confirm=email`, refused for the same reasons, and held.
    """
    if caller.role == WEB_FRONT and confirm != "email":
        raise Forbidden("A sign-up from the public web front is held until the person confirms (confirm=email).")
    if confirm == "email":
        settings = request.app.state.runtime.settings
        requested = await donors.ask_to_confirm(
            _uow(request), caller, signup, _now(), settings.public_base_url, request.app.state.taxonomies
        )
        pending = ConfirmationPending(
            pending_id=requested.pending_id, email=requested.email, expires_at=requested.expires_at
        )
        return Response(pending.model_dump_json(), status_code=status.HTTP_202_ACCEPTED, media_type="application/json")
    donor = await donors.sign_up(_uow(request), caller, signup, _now(), request.app.state.taxonomies)
    # The event as built (and validated) by the use case: serialised once, not validated again.
    return Response(
        donor.model_dump_json(),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Location": f"/v1/donors/{donor.donor_id}"},
    )


@router.post(
    "/donors/confirmations",
    status_code=status.HTTP_201_CREATED,
    response_model=DonorRegisteredV1,
    tags=["donors"],
)
@for_web_front
async def confirm_donor(confirmation: Confirmation, caller: CallerDep, request: Request) -> Any:
    """The person confirmed a held sign-up (`confirm=email`): the donor is registered, once.

    A token that is unknown or replaced by a newer sign-up, or expired, is 422 naming `token`; a
    used one is 409. The answer is the `donor.registered` event, as for `POST /v1/donors`.
    """
    donor = await donors.confirm(_uow(request), caller, confirmation.token, _now(), request.app.state.taxonomies)
    return Response(
        donor.model_dump_json(),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Location": f"/v1/donors/{donor.donor_id}"},
    )


@router.get("/donors", tags=["donors"])
async def list_donors(
    caller: CallerDep,
    request: Request,
    limit: Limit = 50,
    cursor: Cursor = None,
    skill: str | None = None,
    donor_status: Annotated[str | None, Query(alias="status")] = None,
) -> dict[str, Any]:
    items = await donors.find(
        _uow(request), caller, skill=skill, status=donor_status, after=_decode_cursor(cursor), limit=limit
    )
    return _page(items, limit, "registered_at", "donor_id")


@router.get("/donors/{donor_id}", tags=["donors"])
@for_web_front
async def get_donor(donor_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    # The web front reads a donor only with that donor's own link (their page, or the record they share).
    web_front_proof(
        request,
        caller,
        DONOR_LINK_HEADER,
        lambda secret, link, now: opens_donor(secret, link, donor_id, now, (DONOR_PREFIX, RECORD_PREFIX)),
    )
    return await donors.get(_uow(request), caller, donor_id)


@router.get("/donors/{donor_id}/bookings", tags=["donors"])
@for_web_front
async def donor_bookings(donor_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    """The places a donor booked with their email, for their own page (the web front, with their link)."""
    web_front_proof(
        request, caller, DONOR_LINK_HEADER, lambda secret, link, now: opens_donor(secret, link, donor_id, now)
    )
    return {"donor_id": donor_id, "items": await donors.bookings_of(_uow(request), caller, donor_id)}


@router.patch("/donors/{donor_id}", response_model=DonorUpdatedV1, tags=["donors"])
async def change_donor(donor_id: str, changes: DonorChanges, caller: CallerDep, request: Request) -> Any:
    return await donors.change(_uow(request), caller, donor_id, changes, _now())


class Withdrawal(BaseModel):
    erase: bool = Field(default=False, description="Also remove their personal data, here and in every service")


@router.post("/donors/{donor_id}/withdraw", response_model=DonorWithdrawnV1, tags=["donors"])
async def withdraw_donor(
    donor_id: str, caller: CallerDep, request: Request, withdrawal: Annotated[Withdrawal | None, Body()] = None
) -> Any:
    erase = withdrawal.erase if withdrawal else False
    return await donors.withdraw(_uow(request), caller, donor_id, erase, _now())


# The largest donors CSV taken at once (the gate refuses a larger body as it streams in).
MAX_CSV_BYTES = 20 * 1024 * 1024


@router.post(
    "/donors/import",
    tags=["donors"],
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_donors(caller: CallerDep, request: Request) -> dict[str, Any]:
    """Donors from a CSV file (columns in `domain/csv_import.py`); per-row errors, valid rows kept."""
    if not request.headers.get("content-type", "").startswith("text/csv"):
        raise Problem(
            415,
            "Send CSV",
            "content-type: send the file as text/csv",
            errors=[{"field": "content-type", "message": "expected text/csv"}],
        )
    body = await request.body()  # bounded while it streams in, by the request gate (MAX_CSV_BYTES)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(422, "Not UTF-8", f"body: byte {exc.start} is not UTF-8; save the sheet as CSV UTF-8") from exc
    report = await donors.import_csv(_uow(request), caller, text, _now())
    return {
        "imported": len(report.imported),
        "donor_ids": report.imported,
        "already_registered_rows": report.already_registered,
        "errors": report.errors,
    }


# Skills taxonomy ------------------------------------------------------------------------------


@router.get("/skills", tags=["skills"])
@for_web_front
async def skills(caller: CallerDep, request: Request) -> dict[str, str]:
    return await skills_taxonomy.skills(_uow(request), caller)


@router.put("/skills", tags=["skills"])
async def replace_skills(
    caller: CallerDep,
    request: Request,
    taxonomy: Annotated[
        dict[
            Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")],
            Annotated[str, Field(min_length=1, max_length=100)],
        ],
        Body(min_length=1),
    ],
) -> dict[str, str]:
    return await skills_taxonomy.replace(_uow(request), caller, taxonomy, request.app.state.taxonomies)


# Fights and needs -----------------------------------------------------------------------------


class OpenedFight(BaseModel):
    fight: FightOpenedV1
    needs: list[NeedOpenedV1]


@router.post("/fights", status_code=status.HTTP_201_CREATED, response_model=OpenedFight, tags=["fights"])
async def open_fight(draft: FightDraft, caller: CallerDep, request: Request, response: Response) -> Any:
    fight, needs = await fights.start(_uow(request), caller, draft, _now())
    response.headers["Location"] = f"/v1/fights/{fight.fight_id}"
    return OpenedFight(fight=fight, needs=needs)


@router.get("/fights", tags=["fights"])
async def list_fights(caller: CallerDep, request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    items = await fights.find(_uow(request), caller, _decode_cursor(cursor), limit)
    return _page(items, limit, "opened_at", "fight_id")


class FightClosing(BaseModel):
    outcome: str = Field(default="", max_length=2000)


@router.post("/fights/{fight_id}/close", tags=["fights"])
async def close_fight(
    fight_id: str, caller: CallerDep, request: Request, closing: Annotated[FightClosing | None, Body()] = None
) -> Any:
    outcome = closing.outcome if closing else ""
    return await fights.close(_uow(request), caller, fight_id, outcome, _now())


@router.post(
    "/fights/{fight_id}/needs", status_code=status.HTTP_201_CREATED, response_model=NeedOpenedV1, tags=["fights"]
)
async def add_need(fight_id: str, draft: NeedDraft, caller: CallerDep, request: Request, response: Response) -> Any:
    need = await fights.add_need(_uow(request), caller, fight_id, draft, _now())
    response.headers["Location"] = f"/v1/needs/{need.need_id}"
    return need


@router.get("/needs", tags=["fights"])
async def list_needs(
    caller: CallerDep,
    request: Request,
    limit: Limit = 50,
    cursor: Cursor = None,
    need_status: Annotated[NeedStatus | None, Query(alias="status")] = None,
    urgency: Urgency | None = None,
) -> dict[str, Any]:
    items = await fights.find_needs(
        _uow(request),
        caller,
        status=need_status.value if need_status else None,
        urgency=urgency.value if urgency else None,
        after=_decode_cursor(cursor),
        limit=limit,
    )
    return _page(items, limit, "opened_at", "need_id")


@router.get("/needs/{need_id}", tags=["fights"])
async def get_need(need_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    return await fights.get_need(_uow(request), caller, need_id)


class CandidateProfilesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    donor_ids: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        max_length=50, description="The candidates matching proposed for the need (at most 50)"
    )


class CandidateSkill(BaseModel):
    skill: str
    level: str


class CandidateProfile(BaseModel):
    """What an organiser may see of a candidate before they say yes: no email, phone or address."""

    donor_id: str
    name: str
    organisation_id: str | None = Field(description="The donor's home organisation; null: the federation's own")
    skills: list[CandidateSkill]
    languages: list[str]
    remote: bool
    lent: bool = Field(description="Their home is another organisation, whose donor they are lent as")


class CandidateProfiles(BaseModel):
    profiles: list[CandidateProfile]


@router.post("/needs/{need_id}/candidate-profiles", response_model=CandidateProfiles, tags=["fights"])
async def candidate_profiles(
    need_id: str, body: CandidateProfilesRequest, caller: CallerDep, request: Request
) -> dict[str, Any]:
    """Short profiles of a need's candidates, for its organiser's page: by name, not by id.

    Only active donors whose lending choice lets the need's organisation ask them are in the
    answer (the others, and unknown ids, are left out); never contact details. For whoever may
    act for the need (as `GET /v1/needs/{need_id}`); an unknown need is 404.
    """
    found = await donors.candidate_profiles(_uow(request), caller, need_id, body.donor_ids)
    return {"profiles": found}


@router.patch("/needs/{need_id}", response_model=NeedUpdatedV1, tags=["fights"])
async def change_need(need_id: str, changes: NeedChanges, caller: CallerDep, request: Request) -> Any:
    return await fights.change_need(_uow(request), caller, need_id, changes, _now())


@router.post("/needs/{need_id}/close", tags=["fights"])
async def close_need(need_id: str, caller: CallerDep, request: Request) -> Any:
    return await fights.close_need(_uow(request), caller, need_id, _now())


class Situation(BaseModel):
    situation: str = Field(min_length=3, max_length=5000, description="What is happening, in your own words")
    deadline: datetime | None = Field(default=None, description="When it happens (e.g. the strike date)")
    remote: bool = True


@router.post("/needs/suggestions", tags=["fights"])
async def suggestions(situation: Situation, caller: CallerDep) -> dict[str, Any]:
    """For organisations that don't know who or how to ask: suggested needs to accept or edit."""
    found = suggest(situation.situation, now=_now(), deadline=situation.deadline, remote=situation.remote)
    return {
        "suggestions": [
            {
                "kit": s.kit,
                "name": s.name,
                "because_you_mentioned": s.because,
                "needs": [n.model_dump(mode="json") for n in s.needs],
            }
            for s in found
        ]
    }


# Bookings ---------------------------------------------------------------------------------------


@router.post(
    "/events/{event_id}/bookings",
    status_code=status.HTTP_201_CREATED,
    response_model=BookingConfirmedV1 | BookingWaitlistedV1,
    tags=["bookings"],
)
@for_web_front
async def book(event_id: str, booking: BookingRequest, caller: CallerDep, request: Request) -> Any:
    """A place if one is free, else a waitlist position; capacity is enforced in PostgreSQL.

    Attempts for one event that arrive together are booked in one call, in arrival order.
    Honours `Idempotency-Key` (the answer commits with the booking).
    """
    desk: bookings.BookingDesk = request.app.state.booking_desk
    booked = await desk.book(caller, event_id, booking)
    # The stored event is the answer: sent as it is, not validated and serialised again.
    return Response(
        booked.payload,
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Location": f"/v1/bookings/{booked.booking_id}"}
        | ({"Idempotent-Replayed": "true"} if booked.replayed else {}),
    )


@router.get("/events/{event_id}/bookings", tags=["bookings"])
async def event_bookings(
    event_id: str,
    caller: CallerDep,
    request: Request,
    booking_status: Annotated[str | None, Query(alias="status")] = None,
) -> dict[str, Any]:
    return await bookings.of_event(_uow(request), caller, event_id, booking_status)


@router.get("/events/{event_id}/places", tags=["bookings"])
@for_web_front
async def event_places(event_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    """Places and waitlist as counts, for public pages: O(1), whatever the waitlist's length."""
    return await bookings.places(_uow(request), caller, event_id)


@router.get("/bookings/{booking_id}", tags=["bookings"])
@for_web_front
async def get_booking(booking_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    # The web front opens a booking only with the signed link mailed to the person who booked.
    web_front_proof(
        request, caller, BOOKING_LINK_HEADER, lambda secret, link, now: opens_booking(secret, link, booking_id, now)
    )
    return await bookings.get(_uow(request), caller, booking_id)


@router.post("/bookings/{booking_id}/cancel", tags=["bookings"])
@for_web_front
async def cancel_booking(booking_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    # The web front opens a booking only with the signed link mailed to the person who booked.
    web_front_proof(
        request, caller, BOOKING_LINK_HEADER, lambda secret, link, now: opens_booking(secret, link, booking_id, now)
    )
    events = await bookings.cancel(_uow(request), caller, booking_id, _now())
    return {"events": [{"type": e.event_type, **e.model_dump(mode="json")} for e in events]}


@router.post("/bookings/{booking_id}/offer/{answer}", tags=["bookings"])
@for_web_front
async def answer_booking_offer(
    booking_id: str, answer: Literal["accept", "decline"], caller: CallerDep, request: Request
) -> dict[str, Any]:
    """Take the place offered to this waitlisted booking, or give up the waitlist spot (issue 22).

    A declined place is offered to the next on the waitlist in the same call. 409 when no offer
    is open (expired, answered, never made); accepting again answers with no events.
    """
    # The web front answers only with the signed link mailed to the person offered the place.
    web_front_proof(
        request, caller, BOOKING_LINK_HEADER, lambda secret, link, now: opens_booking(secret, link, booking_id, now)
    )
    events = await bookings.answer_offer(_uow(request), caller, booking_id, answer, _now())
    return {"events": [{"type": e.event_type, **e.model_dump(mode="json")} for e in events]}


@router.post("/bookings/{booking_id}/check-in", tags=["bookings"])
async def check_in(booking_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    return await bookings.check_in(_uow(request), caller, booking_id, _now())


# After the event: attendance, turnout and feedback (issue 22) -------------------------------------


@router.post("/bookings/{booking_id}/attendance", tags=["bookings"])
async def mark_attendance(
    booking_id: str, body: attendance_rules.AttendanceMark, caller: CallerDep, request: Request
) -> dict[str, Any]:
    """The organiser says whether the person with a confirmed place came (`attended` or `no_show`),
    once the event has begun. A check-in at the door already counts as attended; the people who
    came are thanked by email, with a link to say how it was."""
    if body.outcome is attendance_rules.Outcome.unmarked:
        raise Refused("outcome", "a mark is attended or no_show")
    return await attendance.mark_place(_uow(request), caller, booking_id, body.outcome, _now())


@router.get("/events/{event_id}/turnout", tags=["bookings"])
async def event_turnout(event_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    """Confirmed places by what became of them (attended, no-show, unmarked), each place's outcome,
    and the feedback of the people who came: for the event's organisation and federation staff."""
    return await attendance.of_event(_uow(request), caller, event_id)


@router.post("/bookings/{booking_id}/feedback", tags=["bookings"])
@for_web_front
async def give_feedback(
    booking_id: str, body: attendance_rules.Feedback, caller: CallerDep, request: Request
) -> dict[str, Any]:
    """A person who came rates the event from 1 to 5, with a comment if they like (the thank-you's link)."""
    # The web front acts for the person only with the signed link mailed to them for this booking.
    web_front_proof(
        request, caller, BOOKING_LINK_HEADER, lambda secret, link, now: opens_booking(secret, link, booking_id, now)
    )
    return await attendance.give_feedback(_uow(request), caller, booking_id, body, _now())


# Publishing systems ----------------------------------------------------------------------------


class PublisherItem(BaseModel):
    """A registered publishing system (docs/ingest.md) and what it published in the last 24 hours."""

    source: str
    label: str
    organisations: list[str]
    any_organisation: bool
    rate_per_second: float
    burst: int
    created_at: datetime
    revoked_at: datetime | None = Field(description="Set once revoked: its events are refused")
    accepted_24h: int = Field(description="Events first seen in the last 24 hours and applied (or forwarded)")
    rejected_24h: int = Field(description="Events first seen in the last 24 hours and refused")
    last_seen_at: datetime | None = Field(description="When its newest event was first seen")

    @classmethod
    def of(cls, summary: PublisherSummary) -> PublisherItem:
        return cls(**asdict(summary))


class PublisherList(BaseModel):
    items: list[PublisherItem]


class RegisteredPublisher(PublisherItem):
    key: str = Field(description="The publisher API key (`pub_…`): shown once, only its hash is kept")
    signing_secret: str = Field(description="The Standard Webhooks secret (`whsec_…`): shown once")


class PublisherRevocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=500)


@router.get("/publishers", response_model=PublisherList, tags=["publishers"])
async def list_publishers(caller: StaffDep, request: Request) -> Any:
    """The federation's publishing systems: active ones by source, then revoked ones by source. Staff only."""
    found = await publishers.summaries(_uow(request), caller, _now())
    return PublisherList(items=[PublisherItem.of(s) for s in found])


@router.post(
    "/publishers", status_code=status.HTTP_201_CREATED, response_model=RegisteredPublisher, tags=["publishers"]
)
async def register_publisher(
    registration: PublisherRegistration, caller: StaffDep, request: Request, response: Response
) -> Any:
    """Register a publishing system for this federation; its key and signing secret are in this answer only.

    Registering a source of this federation again rotates: a new key and secret, the scope and
    limits given, a revoked one active again. The new key works at once; the old key and secret
    stop working, and the new secret and scope apply, within 5 s (the registry's cache). A
    source of another federation is refused (409). Staff only. The answer is `no-store`: it is
    not kept for an `Idempotency-Key` replay either (the key is stored hashed only), so a retry
    registers again and returns fresh credentials, the earlier ones no longer working.
    """
    response.headers["Cache-Control"] = "no-store"
    summary, credentials = await publishers.register(_uow(request), caller, registration, _now())
    return RegisteredPublisher(
        **PublisherItem.of(summary).model_dump(), key=credentials.key, signing_secret=credentials.signing_secret
    )


@router.post("/publishers/revoke", response_model=PublisherItem, tags=["publishers"])
async def revoke_publisher(revocation: PublisherRevocation, caller: StaffDep, request: Request) -> Any:
    """Revoke a publisher of this federation: its key, signature and Kafka records are refused.

    Takes effect within 5 s: each service caches registrations it has found for that long
    (`pitchin_core.ingest.Registry`). Revoking again changes nothing; register the source again
    to give it new credentials. Staff only; 404 for a source this federation does not have.
    """
    summary = await publishers.revoke(_uow(request), caller, revocation.source, _now())
    return PublisherItem.of(summary)


# API keys -------------------------------------------------------------------------------------


class ApiKeyItem(BaseModel):
    """An API key as staff see it: never the key, nor its hash."""

    key_id: uuid.UUID = Field(description="What the key is named by in this API")
    key_prefix: str = Field(description="The key's first characters, to tell keys apart")
    role: str
    organisation_id: str | None
    label: str
    issued_by: str = Field(description="The role that issued it, or `platform`")
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None = Field(description="When it stopped (or, for a rotated key, stops) working")
    last_used_at: datetime | None = Field(
        description="Its last use as signups saw it (each process notes a key's use at most every 4 s)"
    )
    active: bool = Field(description="Works now: neither revoked nor expired")

    @classmethod
    def of(cls, record: KeyRecord, now: datetime) -> ApiKeyItem:
        fields = {name: getattr(record, name) for name in cls.model_fields if name != "active"}
        ended = [t for t in (record.revoked_at, record.expires_at) if t is not None]
        return cls(**fields, active=all(t > now for t in ended))


class ApiKeyList(BaseModel):
    items: list[ApiKeyItem]


class IssuedApiKey(ApiKeyItem):
    key: str = Field(description="The key (`pk_…`): in this answer only; only its hash is kept")


@router.get("/api-keys", response_model=ApiKeyList, tags=["api-keys"])
async def list_api_keys(caller: CallerDep, request: Request) -> Any:
    """The federation's API keys, newest first, revoked and expired ones included. Staff only."""
    now = _now()
    found = await api_keys.listing(_uow(request), caller)
    return ApiKeyList(items=[ApiKeyItem.of(record, now) for record in found])


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, response_model=IssuedApiKey, tags=["api-keys"])
async def issue_api_key(key_request: KeyRequest, caller: CallerDep, request: Request, response: Response) -> Any:
    """Issue a key for the federation or one member organisation; the key is in this answer only.

    It works at once here and within a few seconds in every other service, and ends at its
    expiry (at most two years). Staff only; only a platform operator issues operators' keys.
    The answer is `no-store` and not kept for an `Idempotency-Key` replay: a retry issues another key.
    """
    response.headers["Cache-Control"] = "no-store"
    now = _now()
    record, key = await api_keys.issue(_uow(request), caller, key_request, now)
    return IssuedApiKey(**ApiKeyItem.of(record, now).model_dump(), key=key)


@router.post(
    "/api-keys/{key_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=IssuedApiKey, tags=["api-keys"]
)
async def rotate_api_key(
    key_id: uuid.UUID,
    caller: CallerDep,
    request: Request,
    response: Response,
    rotation: Annotated[KeyRotation | None, Body()] = None,
) -> Any:
    """A new key with the same role, organisation and label; the old one stops working now, or
    after `old_key_works_for_seconds` (at most 7 days) so an integration can move over. Staff only."""
    response.headers["Cache-Control"] = "no-store"
    now = _now()
    record, key = await api_keys.rotate(_uow(request), caller, key_id, rotation or KeyRotation(), now)
    return IssuedApiKey(**ApiKeyItem.of(record, now).model_dump(), key=key)


@router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyItem, tags=["api-keys"])
async def revoke_api_key(key_id: uuid.UUID, caller: CallerDep, request: Request) -> Any:
    """Revoke a key: refused here at once and by every service within 5 s. Again: unchanged. Staff only."""
    now = _now()
    record = await api_keys.revoke(_uow(request), caller, key_id, now)
    return ApiKeyItem.of(record, now)
