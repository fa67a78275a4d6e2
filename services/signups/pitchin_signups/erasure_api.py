"""Signups' erasure routes (issue 19): federation staff ask for a person by email or donor id,
and the person asks from their own page (the web front forwarding their signed link)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pitchin_core.auth import FEDERATION_STAFF, WEB_FRONT, CallerDep, StaffDep, for_web_front, web_front_proof
from pitchin_core.contracts.common import Email, Identifier
from pitchin_core.erasure import PersonHasher, person_hasher
from pitchin_core.errors import Forbidden
from pitchin_core.links import BOOKING_LINK_HEADER, DONOR_LINK_HEADER, opens_booking, opens_donor
from pitchin_core.subject_access import router_for
from pitchin_core.uow import UnitOfWork
from pitchin_signups.service import erasure
from pitchin_signups.service.erasure import PersonToErase

router = APIRouter(prefix="/v1", tags=["privacy"])


class ErasureAsked(BaseModel):
    """Who to forget: their email, or the id of their donor record."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    donor_id: Identifier | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ErasureAsked:
        if (self.email is None) == (self.donor_id is None):
            raise ValueError("give either email or donor_id")
        return self


class ErasureAccepted(BaseModel):
    """An erasure request taken: the other services erase their part; `Location` shows how far."""

    model_config = ConfigDict(extra="allow")

    request_id: str = Field(description="The request, as `GET /v1/erasure-requests/{request_id}` names it")
    status: str = Field(description="Where it stands: done once every service has reported")


ACCEPTED_DOC: dict[int | str, dict[str, Any]] = {202: {"model": ErasureAccepted}}


def _uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.runtime.uow
    return uow


def _hasher(request: Request) -> PersonHasher:
    return person_hasher(request.app.state.runtime.settings)


def _accepted(view: dict[str, Any]) -> Response:
    """202 at once: the other services erase their part within the minute; the request shows how far."""
    return JSONResponse(
        jsonable_encoder(view),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/v1/erasure-requests/{view['request_id']}", "Cache-Control": "no-store"},
    )


@router.post("/erasure-requests", status_code=status.HTTP_202_ACCEPTED, responses=ACCEPTED_DOC)
async def ask_erasure(asked: ErasureAsked, caller: StaffDep, request: Request) -> Response:
    """Forget a person, by email or donor id, in every service. Answered at once; staff only."""
    person = PersonToErase(email=asked.email, donor_id=asked.donor_id)
    view = await erasure.request(
        _uow(request), caller, person, _hasher(request), datetime.now(UTC), asked_by=FEDERATION_STAFF
    )
    return _accepted(view)


@router.get("/erasure-requests/{request_id}")
async def erasure_progress(request_id: str, caller: StaffDep, request: Request) -> dict[str, Any]:
    """How far a request is, per service: done when every service has reported. Staff only."""
    return await erasure.get(_uow(request), caller, request_id)


def _person_or_staff(caller_role: str) -> str:
    if caller_role == WEB_FRONT:
        return "person"
    if caller_role == FEDERATION_STAFF:
        return FEDERATION_STAFF
    raise Forbidden("Only the person (through their own page) or federation staff may ask for an erasure.")


@router.post("/donors/{donor_id}/erasure-request", status_code=status.HTTP_202_ACCEPTED, responses=ACCEPTED_DOC)
@for_web_front
async def donor_asks_erasure(donor_id: str, caller: CallerDep, request: Request) -> Response:
    """A donor asks to be forgotten from their own page (the web front, with their link); or staff for them."""
    asked_by = _person_or_staff(caller.role)
    web_front_proof(
        request, caller, DONOR_LINK_HEADER, lambda secret, link, now: opens_donor(secret, link, donor_id, now)
    )
    view = await erasure.request(
        _uow(request), caller, PersonToErase(donor_id=donor_id), _hasher(request), datetime.now(UTC), asked_by=asked_by
    )
    return _accepted({"request_id": view["request_id"], "status": view["status"]})


@router.post("/bookings/{booking_id}/erasure-request", status_code=status.HTTP_202_ACCEPTED, responses=ACCEPTED_DOC)
@for_web_front
async def booker_asks_erasure(booking_id: str, caller: CallerDep, request: Request) -> Response:
    """Someone who booked a place (a donor or not) asks to be forgotten from their booking's page
    (the web front, with the signed booking link); or staff for them."""
    asked_by = _person_or_staff(caller.role)
    web_front_proof(
        request, caller, BOOKING_LINK_HEADER, lambda secret, link, now: opens_booking(secret, link, booking_id, now)
    )
    view = await erasure.request(
        _uow(request),
        caller,
        PersonToErase(booking_id=booking_id),
        _hasher(request),
        datetime.now(UTC),
        asked_by=asked_by,
    )
    return _accepted({"request_id": view["request_id"], "status": view["status"]})


# Subject access (`POST /v1/subject-access`): signups' part, with the ids the other services' parts take.
subject_access = router_for("signups", erasure.export)
