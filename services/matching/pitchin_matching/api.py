"""Matching's HTTP routes: parse, authenticate, call the service layer, shape the answers.

Organisers and federation staff authenticate with API keys (tenancy: another federation's
needs, donors, offers and assignments are 404). Donors have no keys: they answer with the
token from their offer email (see `domain.tokens`), given as `?token=`, an `X-Offer-Token`
header or `{"token": ...}` in the body.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from pitchin_core.auth import (
    WEB_FRONT,
    Caller,
    CallerDep,
    StaffDep,
    authenticate,
    checks_credential,
    for_web_front,
    web_front_proof,
)
from pitchin_core.errors import Forbidden, NotFound, Unauthorised
from pitchin_core.links import DONOR_LINK_HEADER, PREFIX, RECORD_PREFIX, opens_donor
from pitchin_matching import hours, service
from pitchin_matching.domain.hours import HoursConfirmation, HoursLog
from pitchin_matching.domain.policy import PolicyDocument
from pitchin_matching.domain.tokens import InvalidToken, TokenClaims, verify
from pitchin_matching.service import Matching

router = APIRouter(prefix="/v1", tags=["matching"])
_optional_bearer = HTTPBearer(auto_error=False)
STAFF = "federation-staff"


class OfferAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str | None = Field(default=None, max_length=500)
    reason: str = Field(default="", max_length=1000)


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1000)


class Completion(BaseModel):
    """Work marked done: the hours the donor actually gave, and the organisation's thanks."""

    model_config = ConfigDict(extra="forbid")
    hours_given: float = Field(gt=0, le=1000, description="Hours the donor gave, to a tenth of an hour.")
    thanks: str = Field(default="", max_length=2000, description="A word of thanks the donor receives and keeps.")


def _matching(request: Request) -> Matching:
    matching: Matching = request.app.state.matching
    return matching


def _claims(matching: Matching, *candidates: str | None) -> TokenClaims:
    token = next((t for t in candidates if t), None)
    if token is None:
        raise Unauthorised("Send the token from your offer email as ?token=, X-Offer-Token or body.")
    try:
        return verify(matching.token_secret, token, datetime.now(UTC).timestamp())
    except InvalidToken as exc:
        raise Unauthorised(f"This link does not work: {exc}.") from exc


async def _offer_tokens(
    token: Annotated[str | None, Query(max_length=500)] = None,
    x_offer_token: Annotated[str | None, Header(max_length=500)] = None,
) -> tuple[str | None, str | None]:
    """The donor's token as sent outside a body: ``?token=`` or an ``X-Offer-Token`` header."""
    return token, x_offer_token


OfferTokens = Annotated[tuple[str | None, str | None], Depends(_offer_tokens)]
OptionalBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]


def _answer_claims(
    matching: Matching, answer: OfferAnswer | None, tokens: tuple[str | None, str | None]
) -> TokenClaims:
    """The claims of the token an answer comes with: in its body first, else the query or header."""
    return _claims(matching, answer.token if answer else None, *tokens)


def _is_organiser_or_staff(caller: Caller) -> None:
    if caller.role not in {STAFF, "organiser"}:
        raise Forbidden("Only organisers and federation staff may do this.")


@router.get("/donors/{donor_id}")
async def donor_profile(donor_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    row = await service.donor_profile(_matching(request), caller, donor_id)
    return {**{k: row[k] for k in row.keys() if k != "skills"}, "skills": json.loads(row["skills"])}


@router.get("/needs/{need_id}/candidates")
async def need_candidates(
    need_id: str, caller: CallerDep, request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> dict[str, Any]:
    """The best donors for a need, each score explained component by component."""
    _is_organiser_or_staff(caller)
    return await service.candidates(_matching(request), caller, need_id, limit, datetime.now(UTC))


@router.get("/needs/{need_id}/escalation")
async def need_escalation(need_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    """An urgent need's escalation: each step taken (first wave, widened, reclaimed, stood down)
    and when the next is due, for its organisation and federation."""
    _is_organiser_or_staff(caller)
    return await service.need_escalation(_matching(request), caller, need_id)


@router.get("/needs/{need_id}/offers")
async def need_offers(need_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    """Who was asked about a need and what became of it (assignment ids are offer ids)."""
    need, offers = await service.need_offers(_matching(request), caller, need_id)
    return {"need_id": need_id, "status": need["status"], "offers": [_offer_view(o) for o in offers]}


async def _for_donor(
    request: Request,
    donor_id: str,
    credentials: HTTPAuthorizationCredentials | None,
    *tokens: str | None,
) -> Caller | None:
    """Who asks about a donor: the donor with their own token (None), or an organiser or staff
    key (the caller; the service layer answers 404 for a donor of another federation)."""
    if any(tokens):
        claims = _claims(_matching(request), *tokens)
        if claims.kind != "donor" or claims.subject != donor_id:
            raise NotFound("donor", donor_id, detail=f"Nothing for donor {donor_id} with this token.")
        return None
    caller = await authenticate(request, credentials)
    if caller.role == WEB_FRONT:
        # The web front shows a donor's page only with that donor's signed link (a record link
        # opens only the record), checked here, not taken on the web's word.
        kinds = (PREFIX, RECORD_PREFIX) if request.url.path.endswith("/record") else (PREFIX,)
        web_front_proof(
            request,
            caller,
            DONOR_LINK_HEADER,
            lambda secret, link, now: opens_donor(secret, link, donor_id, now, kinds),
        )
        return caller
    _is_organiser_or_staff(caller)
    return caller


@router.get("/donors/{donor_id}/offers")
@checks_credential("the donor's own token, or a key of their federation")
@for_web_front
async def donor_offers(
    donor_id: str, request: Request, credentials: OptionalBearer, tokens: OfferTokens
) -> dict[str, Any]:
    """A donor's offers: for the donor (a donor token) or their federation (an API key)."""
    caller = await _for_donor(request, donor_id, credentials, *tokens)
    offers = await service.donor_offers(_matching(request), donor_id, caller)
    return {"donor_id": donor_id, "offers": [_offer_view(o) for o in offers]}


@router.get("/donors/{donor_id}/record")
@checks_credential("the donor's own token, or a key of their federation")
@for_web_front
async def donor_record(
    donor_id: str, request: Request, credentials: OptionalBearer, tokens: OfferTokens
) -> dict[str, Any]:
    """What a donor gave: hours, work done and thanks received — for the donor (a donor token)
    or their federation's organisers and staff (an API key): it is what the donor shows them."""
    caller = await _for_donor(request, donor_id, credentials, *tokens)
    return await service.donor_record(_matching(request), donor_id, caller)


@router.get("/offers/{offer_id}")
@checks_credential("the offer's signed token")
async def get_offer(offer_id: str, request: Request, tokens: OfferTokens) -> dict[str, Any]:
    """One offer, for the donor holding its token: what a landing page shows before the donor POSTs
    accept or decline (a GET never answers an offer: mail scanners follow links)."""
    matching = _matching(request)
    return _offer_view(await service.offer_for_token(matching, offer_id, _claims(matching, *tokens)))


@router.post("/offers/{offer_id}/accept")
@checks_credential("the offer's signed token")
async def accept_offer(
    offer_id: str, request: Request, tokens: OfferTokens, answer: OfferAnswer | None = None
) -> dict[str, Any]:
    matching = _matching(request)
    return await service.accept_offer(matching, offer_id, _answer_claims(matching, answer, tokens), datetime.now(UTC))


@router.post("/offers/{offer_id}/decline")
@checks_credential("the offer's signed token")
async def decline_offer(
    offer_id: str, request: Request, tokens: OfferTokens, answer: OfferAnswer | None = None
) -> dict[str, Any]:
    matching = _matching(request)
    claims = _answer_claims(matching, answer, tokens)
    reason = answer.reason if answer else ""
    return await service.decline_offer(matching, offer_id, claims, reason, datetime.now(UTC))


@router.post("/assignments/{assignment_id}/confirm")
async def confirm_assignment(assignment_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    _is_organiser_or_staff(caller)
    return await service.confirm_assignment(_matching(request), caller, assignment_id, datetime.now(UTC))


@router.post("/assignments/{assignment_id}/release")
async def release_assignment(
    assignment_id: str, caller: CallerDep, request: Request, body: Release | None = None
) -> dict[str, Any]:
    _is_organiser_or_staff(caller)
    reason = body.reason if body else ""
    return await service.release_assignment(_matching(request), caller, assignment_id, reason, datetime.now(UTC))


@router.post("/assignments/{assignment_id}/complete")
async def complete_assignment(
    assignment_id: str, body: Completion, caller: CallerDep, request: Request
) -> dict[str, Any]:
    """Mark confirmed work done: the donor's record gains the hours and the thanks, and the donor
    is told (assignment.completed)."""
    _is_organiser_or_staff(caller)
    return await service.complete_assignment(
        _matching(request), caller, assignment_id, body.hours_given, body.thanks, datetime.now(UTC)
    )


# --- hours the donor logs, the organisation confirms (issue 22) ------------------------------


@router.post("/donors/{donor_id}/assignments/{assignment_id}/hours", status_code=201)
@checks_credential("the donor's own token (the web front: their signed link)")
@for_web_front
async def log_hours(
    donor_id: str,
    assignment_id: str,
    body: HoursLog,
    request: Request,
    tokens: OfferTokens,
    authorization: Annotated[str | None, Header(max_length=1000)] = None,
) -> dict[str, Any]:
    """The donor logs hours given on a day of their confirmed work, with a note: they count on the
    record once the organisation confirms them. Only the donor logs their own hours."""
    # The Authorization header is read here, not declared as the bearer scheme: a declared scheme
    # makes the request gate demand an API key of every POST, and a donor has only their token.
    scheme, _, key = (authorization or "").partition(" ")
    credentials = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=key) if key and scheme.lower() == "bearer" else None
    )
    caller = await _for_donor(request, donor_id, credentials, *tokens)
    if caller is not None and caller.role != WEB_FRONT:
        raise Forbidden("Only the donor logs their own hours; the organisation confirms them.")
    return await hours.log_hours(_matching(request), donor_id, assignment_id, body, datetime.now(UTC))


@router.get("/donors/{donor_id}/hours")
@checks_credential("the donor's own token, or a key of their federation")
@for_web_front
async def donor_hours(
    donor_id: str, request: Request, credentials: OptionalBearer, tokens: OfferTokens
) -> dict[str, Any]:
    """A donor's confirmed work with the hours logged on it, confirmed or awaiting confirmation."""
    caller = await _for_donor(request, donor_id, credentials, *tokens)
    return await hours.of_donor(_matching(request), donor_id, caller)


@router.get("/needs/{need_id}/hours")
async def need_hours(need_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    """The hours donors logged on a need's work, for its organisation to confirm or adjust."""
    _is_organiser_or_staff(caller)
    return await hours.of_need(_matching(request), caller, need_id)


@router.post("/hours/{log_id}/confirm")
async def confirm_hours(
    log_id: str, caller: CallerDep, request: Request, body: HoursConfirmation | None = None
) -> dict[str, Any]:
    """Confirm logged hours as logged, or adjusted (`hours`, with a `reason` the donor sees): from now
    they count on the donor's record and in the totals. Only the need's organisation or federation staff."""
    _is_organiser_or_staff(caller)
    confirmation = body or HoursConfirmation()
    return await hours.confirm_hours(_matching(request), caller, log_id, confirmation, datetime.now(UTC))


@router.get("/totals")
async def totals(caller: StaffDep, request: Request) -> dict[str, Any]:
    """Hours given and work done per member organisation of the caller's federation (staff only)."""
    rows = await service.totals(_matching(request), caller)
    return {"organisations": [dict(r) for r in rows]}


@router.get("/policy", response_model=PolicyDocument)
async def get_policy(caller: CallerDep, request: Request) -> Any:
    return await service.policy(_matching(request), caller)


@router.put("/policy", response_model=PolicyDocument)
async def put_policy(policy: PolicyDocument, caller: CallerDep, request: Request) -> Any:
    """Weights, caps, fan-out and offer time to live for the caller's federation (staff only)."""
    if caller.role != STAFF:
        raise Forbidden("Only federation staff may change the matching policy.")
    return await service.set_policy(_matching(request), caller, policy)


@router.post("/rematch")
async def rematch(caller: CallerDep, request: Request) -> dict[str, Any]:
    """Offer the federation's waiting needs again, now (e.g. after a taxonomy or policy change)."""
    if caller.role != STAFF:
        raise Forbidden("Only federation staff may re-match a federation.")
    made = await service.match_waiting(_matching(request), caller.federation_id, datetime.now(UTC), force_all=True)
    return {"offers_made": made}


def _offer_view(row: Any) -> dict[str, Any]:
    view = {
        k: row[k]
        for k in ("offer_id", "need_id", "fight_id", "donor_id", "status", "score", "made_at", "expires_at", "reason")
    }
    view["explanation"] = json.loads(row["explanation"])
    for optional in ("need_title", "assignment_status", *service.OFFERED_NEED_FACTS):
        if optional in row.keys():
            view[optional] = row[optional]
    return view
