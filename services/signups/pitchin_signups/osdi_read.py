"""The OSDI read side: people, events and their attendances as OSDI resources (HAL), read-only.

OSDI clients that posted people and attendances through the helpers (ingest/osdi.py) read
them back here, as the specification's own responses are shaped (github.com/opensupporter/
osdi-docs, people.md, events.md, attendances.md): `application/hal+json`, each resource with
`identifiers` and `_links` (`self` and its `osdi:` relations), a collection with its items in
`_embedded` and their links in `_links`, paged by `page` and `per_page` with `next` and
`previous` links.

Scoped like the other routes (docs/access.md): any API key, narrowed by role and organisation
by the same use cases (`donors.find`, `donors.get`, `bookings.of_event`, `bookings.get`); an
organisation's key sees its own organisation's people and events only. The web front's narrow
key may not call them. A donor is a `person`; a booking is an `attendance` (confirmed:
"accepted", waitlisted: "tentative", cancelled: "cancelled"; `attended` once checked in).

A people page is read as `page * per_page` rows in registration order (the listing is keyed, not
counted), so a people collection gives no `total_records`; attendances (an event's bookings, read
whole by `bookings.of_event`) give it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from pitchin_core.auth import CallerDep
from pitchin_core.errors import NotFound
from pitchin_core.uow import UnitOfWork
from pitchin_signups import storage
from pitchin_signups.service import bookings, donors

router = APIRouter(prefix="/v1/osdi", tags=["osdi"])
# Where the `osdi:` link relations are defined (HAL curies): the specification's own pages.
CURIES = [{"name": "osdi", "href": "https://opensupporter.github.io/osdi-docs/{rel}", "templated": True}]
IDENTIFIER_PREFIX = "pitchin"
ORIGIN_SYSTEM = "Pitch In"
MAX_PEOPLE_READ = 10_000  # page * per_page: deeper pages of the whole pool are for an export, not paging
ATTENDANCE_STATUS = {"confirmed": "accepted", "waitlisted": "tentative", "cancelled": "cancelled"}

# What every answer here is, for the OpenAPI document: a HAL resource (a collection is one too).
HAL_RESOURCE: dict[str, Any] = {
    "type": "object",
    "required": ["_links"],
    "properties": {
        "identifiers": {"type": "array", "items": {"type": "string"}},
        "_links": {
            "type": "object",
            "required": ["self"],
            "additionalProperties": True,
            "properties": {
                "self": {"type": "object", "required": ["href"], "properties": {"href": {"type": "string"}}}
            },
        },
        "_embedded": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object"}}},
    },
}
HAL: dict[int | str, dict[str, Any]] = {200: {"content": {"application/hal+json": {"schema": HAL_RESOURCE}}}}


class HalResponse(JSONResponse):
    media_type = "application/hal+json"


Page = Annotated[int, Query(ge=1, description="The page, from 1")]
PerPage = Annotated[int, Query(ge=1, le=100, description="Resources per page")]


def _uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.runtime.uow
    return uow


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/v1/osdi"


def _href(url: str) -> dict[str, str]:
    return {"href": url}


def _hal(body: dict[str, Any]) -> HalResponse:
    return HalResponse(body)


def _date(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def person(base: str, donor: dict[str, Any]) -> dict[str, Any]:
    """A donor as an OSDI person: Pitch In keeps one name, given names before the last word."""
    name = donor.get("name") or ""
    given, _, family = name.rpartition(" ") if " " in name else (name, "", "")
    resource: dict[str, Any] = {
        "identifiers": [f"{IDENTIFIER_PREFIX}:{donor['donor_id']}"],
        "origin_system": ORIGIN_SYSTEM,
        "given_name": given or None,
        "family_name": family or None,
        "email_addresses": [{"address": donor["email"], "primary": True}] if donor.get("email") else [],
        "created_date": _date(donor.get("registered_at")),
        "modified_date": _date(donor.get("updated_at") or donor.get("registered_at")),
        "custom_fields": {"pitchin_status": donor.get("status")},
        "_links": {"self": _href(f"{base}/people/{donor['donor_id']}")},
    }
    if donor.get("phone"):
        resource["phone_numbers"] = [{"number": donor["phone"], "primary": True}]
    # OSDI leaves out what a system does not know (an erased donor's name, a one-word name's family).
    return {field: value for field, value in resource.items() if value is not None}


def attendance(base: str, event_id: str, booking: dict[str, Any]) -> dict[str, Any]:
    """A booking as an OSDI attendance of its event, linked to its person when the booker is a donor."""
    moments = [booking.get(k) for k in ("created_at", "confirmed_at", "cancelled_at", "checked_in_at")]
    links: dict[str, Any] = {
        "self": _href(f"{base}/events/{event_id}/attendances/{booking['booking_id']}"),
        "osdi:event": _href(f"{base}/events/{event_id}"),
    }
    if booking.get("donor_id"):
        links["osdi:person"] = _href(f"{base}/people/{booking['donor_id']}")
    return {
        "identifiers": [f"{IDENTIFIER_PREFIX}:{booking['booking_id']}"],
        "origin_system": ORIGIN_SYSTEM,
        "created_date": _date(booking["created_at"]),
        "modified_date": _date(max(m for m in moments if m is not None)),
        "status": ATTENDANCE_STATUS.get(booking["status"], booking["status"]),
        "attended": booking.get("checked_in_at") is not None,
        "_links": links,
    }


def collection(
    url: str, relation: str, items: list[dict[str, Any]], page: int, per_page: int, has_next: bool
) -> dict[str, Any]:
    """A page of resources as OSDI collections are shaped (`osdi:<relation>` in `_links` and `_embedded`)."""
    links: dict[str, Any] = {
        "self": _href(f"{url}?page={page}&per_page={per_page}"),
        f"osdi:{relation}": [item["_links"]["self"] for item in items],
        "curies": CURIES,
    }
    if has_next:
        links["next"] = _href(f"{url}?page={page + 1}&per_page={per_page}")
    if page > 1:
        links["previous"] = _href(f"{url}?page={page - 1}&per_page={per_page}")
    return {"per_page": per_page, "page": page, "_links": links, "_embedded": {f"osdi:{relation}": items}}


@router.get("", summary="OSDI API entry point", response_class=HalResponse, responses=HAL)
async def entry_point(caller: CallerDep, request: Request) -> HalResponse:
    """Where an OSDI client starts: the collections Pitch In offers to read."""
    base = _base(request)
    return _hal(
        {
            "motd": "Pitch In: knowledge donors, events and attendances (read-only; write through the helpers)",
            "vendor_name": "Pitch In",
            "product_name": "Pitch In",
            "osdi_version": "1.1",
            "_links": {
                "self": _href(base),
                "osdi:people": _href(f"{base}/people"),
                "osdi:person_signup": _href(f"{base}/person_signup"),
                "curies": CURIES,
            },
        }
    )


@router.get("/people", summary="OSDI people (the donors this key may see)", response_class=HalResponse, responses=HAL)
async def people(caller: CallerDep, request: Request, page: Page = 1, per_page: PerPage = 25) -> HalResponse:
    """The donors this key may see (an organisation's own, or the federation's), as OSDI people, paged."""
    base = _base(request)
    wanted = page * per_page
    if wanted > MAX_PEOPLE_READ:
        raise NotFound("page", str(page), detail=f"page: beyond the first {MAX_PEOPLE_READ} people")
    rows = await donors.find(_uow(request), caller, skill=None, status=None, after=None, limit=wanted + 1)
    items = [person(base, row) for row in rows[(page - 1) * per_page : wanted]]
    return _hal(collection(f"{base}/people", "people", items, page, per_page, len(rows) > wanted))


@router.get("/people/{donor_id}", summary="OSDI person", response_class=HalResponse, responses=HAL)
async def one_person(donor_id: str, caller: CallerDep, request: Request) -> HalResponse:
    """A donor as an OSDI person (`donor_id`, as in the person's `identifiers` after `pitchin:`)."""
    return _hal(person(_base(request), await donors.get(_uow(request), caller, donor_id)))


@router.get(
    "/events/{event_id}", summary="OSDI event (its title, start and places)", response_class=HalResponse, responses=HAL
)
async def event(event_id: str, caller: CallerDep, request: Request) -> HalResponse:
    """An event as OSDI reads it, for its organisation (or federation staff), as its bookings are."""
    base = _base(request)
    # The same scope as the event's bookings: its organisation's keys, or the federation's staff.
    async with _uow(request)(caller.tenant, readonly=True) as tx:
        row = await storage.get_known_event(tx.conn, event_id)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise NotFound("event", event_id)
    return _hal(
        {
            "identifiers": [f"{IDENTIFIER_PREFIX}:{event_id}"],
            "origin_system": ORIGIN_SYSTEM,
            "title": row["title"],
            "start_date": _date(row["starts_at"]),
            "status": "cancelled" if row["status"] == "cancelled" else "confirmed",
            "capacity": row["capacity"],
            "total_accepted": row["confirmed"],
            "_links": {
                "self": _href(f"{base}/events/{event_id}"),
                "osdi:attendances": _href(f"{base}/events/{event_id}/attendances"),
                "osdi:record_attendance_helper": _href(f"{base}/events/{event_id}/record_attendance"),
            },
        }
    )


@router.get(
    "/events/{event_id}/attendances", summary="OSDI attendances of an event", response_class=HalResponse, responses=HAL
)
async def attendances(
    event_id: str, caller: CallerDep, request: Request, page: Page = 1, per_page: PerPage = 25
) -> HalResponse:
    """An event's bookings as OSDI attendances, paged, for its organisation (or federation staff)."""
    base = _base(request)
    booked = await bookings.of_event(_uow(request), caller, event_id, None)
    rows: list[dict[str, Any]] = booked["items"]
    items = [attendance(base, event_id, row) for row in rows[(page - 1) * per_page : page * per_page]]
    body = collection(
        f"{base}/events/{event_id}/attendances", "attendances", items, page, per_page, len(rows) > page * per_page
    )
    total_pages = -(-len(rows) // per_page)
    return _hal({"total_pages": total_pages, "total_records": len(rows), **body})


@router.get(
    "/events/{event_id}/attendances/{booking_id}", summary="OSDI attendance", response_class=HalResponse, responses=HAL
)
async def one_attendance(event_id: str, booking_id: str, caller: CallerDep, request: Request) -> HalResponse:
    """One booking of the event as an OSDI attendance."""
    booking = await bookings.get(_uow(request), caller, booking_id)
    if booking["event_id"] != event_id:
        raise NotFound("attendance", booking_id)
    return _hal(attendance(_base(request), event_id, booking))
