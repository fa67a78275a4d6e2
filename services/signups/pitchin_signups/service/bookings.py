"""Places at events: what signups knows of scheduling's events, booking, cancelling, checking in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Histogram

from pitchin_core.auth import Caller
from pitchin_core.contracts.bookings import (
    BookingCancelledV1,
    BookingConfirmedV1,
    BookingFacts,
    BookingOfferAcceptedV1,
    BookingOfferDeclinedV1,
    BookingOfferedV1,
    BookingOfferExpiredV1,
    BookingWaitlistedV1,
)
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.scheduling import EventCreatedV1, EventFacts, EventSnapshot
from pitchin_core.contracts.topics import topic_for
from pitchin_core.errors import Conflict, FieldError, Invalid, NotFound
from pitchin_core.group_commit import GroupCommit
from pitchin_core.telemetry import Metrics, current_traceparent
from pitchin_core.uow import AMBIENT, RequestClaim, Tenant, Transaction, Transactions, UnitOfWork
from pitchin_signups import storage
from pitchin_signups.domain.bookings import (
    NOT_BOOKABLE,
    OFFER_RULE,
    BookingRefused,
    BookingRequest,
    EventForBooking,
    OfferNotOpen,
    check_can_book,
    status_after,
)
from pitchin_signups.service import attendance, new_id

# Events ---------------------------------------------------------------------------------------


async def learn_event(uow: Transactions, event: CloudEvent, data: EventCreatedV1 | EventSnapshot) -> bool:
    """Keep what bookings need of scheduling's event: times, capacity, registration, status.

    Created and the snapshots (published, updated) carry the whole registration. A capacity
    raised frees places: they are offered to the waitlist in the same transaction.
    """
    details: dict[str, object] = {
        "capacity": data.capacity,
        "booking_deadline": data.booking_deadline,
        "waitlist": data.waitlist,
        "waitlist_offer_seconds": data.waitlist_offer_seconds,
    }
    return await _learn(uow, event, data, data.status.value, details)


async def learn_event_fact(uow: Transactions, event: CloudEvent, data: EventFacts) -> bool:
    """Keep an event's times and title from any other fact about it, and its status when the fact moves it."""
    return await _learn(uow, event, data, status_after(data), None)


async def _learn(
    uow: Transactions,
    event: CloudEvent,
    data: EventCreatedV1 | EventFacts,
    status: str | None,
    details: dict[str, object] | None,
) -> bool:
    async with uow(Tenant(data.federation_id, data.organisation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        changed = await storage.apply_event_facts(tx.conn, data, status=status, details=details)
        if changed and details is not None:
            rows = await storage.offer_free_places(tx.conn, data.event_id, datetime.now(UTC), _offer_meta(tx.source))
            tx.emitted_by_sql(*(r["outbox_id"] for r in rows))
        return True


async def of_event(uow: Transactions, caller: Caller, event_id: str, status: str | None) -> dict[str, Any]:
    """An event's bookings, for its organisation (or federation staff)."""
    async with uow(caller.tenant, readonly=True) as tx:
        event = await storage.get_known_event(tx.conn, event_id)
        if event is None or not caller.can_act_for(event["federation_id"], event["organisation_id"]):
            raise NotFound("event", event_id)
        rows = await storage.list_bookings(tx.conn, event_id, status)
    return {
        "event_id": event_id,
        "capacity": event["capacity"],
        "confirmed": event["confirmed"],
        "waitlisted": event["waitlisted"],
        "offered": event["offered"],  # places held for open offers (their deadlines: the items')
        "items": [dict(r) for r in rows],
    }


async def places(uow: Transactions, caller: Caller, event_id: str) -> dict[str, Any]:
    """An event's places and waitlist as counts (kept with every booking): what a public page shows.

    Any key of the event's federation may read them; the people behind them stay with `of_event`.
    """
    async with uow(caller.tenant, readonly=True) as tx:
        event = await storage.get_known_event(tx.conn, event_id)
    if event is None or event["federation_id"] != caller.federation_id:
        raise NotFound("event", event_id)
    return {
        "event_id": event_id,
        "capacity": event["capacity"],
        "confirmed": event["confirmed"],
        "waitlisted": event["waitlisted"],
        "offered": event["offered"],  # held for the waitlist: a new booking does not get them
    }


# Bookings ----------------------------------------------------------------------------------------

_TOPIC = topic_for(BookingConfirmedV1).name


@dataclass(frozen=True)
class Booked:
    """A booking as its event stored it: `payload` is the event's JSON, also the HTTP answer."""

    booking_id: str
    status: str
    position: int | None
    payload: str
    replayed: bool = False  # the answer to an earlier attempt with the same Idempotency-Key

    def event(self) -> BookingConfirmedV1 | BookingWaitlistedV1:
        if self.status == "confirmed":
            return BookingConfirmedV1.model_validate_json(self.payload)
        return BookingWaitlistedV1.model_validate_json(self.payload)


# An attempt: the id its event will have in the outbox, and the JSON the booking call takes.
Attempt = tuple[uuid.UUID, str]


def _booking_item(request: BookingRequest, claim: RequestClaim | None) -> Attempt:
    """One attempt as the booking call takes it; checked (by `BookingRequest`) before it joins a batch."""
    traceparent, tracestate = current_traceparent()
    outbox_id = uuid.uuid4()
    item: dict[str, Any] = {
        "booking_id": new_id("bkg"),
        "outbox_id": str(outbox_id),
        "name": request.name,
        "email": request.email.lower(),
        "donor_id": request.donor_id,
        "language": request.language,
        "traceparent": traceparent,
        "tracestate": tracestate,
        "claim": None,
    }
    if claim is not None:
        item["claim"] = {"caller": claim.caller_key_hash, "key": claim.key, "fingerprint": claim.fingerprint}
    return outbox_id, json.dumps(item)


def _booking_meta(source: str) -> str:
    return json.dumps(
        {
            "topic": _TOPIC,
            "source": source,
            "confirmed_type": BookingConfirmedV1.event_type,
            "waitlisted_type": BookingWaitlistedV1.event_type,
            "refused_statuses": list(NOT_BOOKABLE),
        }
    )


def _outcome(row: asyncpg.Record, event_id: str, now: datetime) -> Booked:
    """What one attempt came to; every outcome but a booking is the domain error it means."""
    outcome = row["outcome"]
    if outcome in ("booked", "replay"):
        replayed = outcome == "replay"
        return Booked(row["booking_id"], row["status"], row["waitlist_position"], row["payload"], replayed)
    if outcome == "key_reused":
        raise Invalid(
            [FieldError("Idempotency-Key", "used for a different request")],
            title="Idempotency-Key",
            detail="This Idempotency-Key was used for a different request",
        )
    if outcome == "duplicate":
        raise Conflict(
            "This person already has a place or a waitlist spot.",
            title="Already booked",
            errors=[FieldError("email", "already booked")],
        )
    if outcome == "full":
        raise Conflict(
            "Every place is taken and this event keeps no waitlist.",
            title="Event full",
            errors=[FieldError("event_id", "full")],
        )
    if outcome == "refused":
        check_can_book(
            EventForBooking(event_id, row["starts_at"], row["booking_deadline"], row["event_status"], True), now
        )
        raise BookingRefused("event_id", "the event does not take bookings now")  # the rules disagree: still no
    raise NotFound("event", event_id)


async def book(uow: Transactions, caller: Caller, event_id: str, request: BookingRequest, now: datetime) -> Booked:
    """A place if one is free, else a waitlist position, in the caller's transaction (ingest's).

    The same call as a rush's batches (`BookingDesk`), with one attempt in it.
    """
    outbox_id, item = _booking_item(request, None)
    async with uow(caller.tenant) as tx:
        [row] = await storage.book_many(tx.conn, event_id, caller.federation_id, now, _booking_meta(tx.source), [item])
        booked = _outcome(row, event_id, now)
        tx.emitted_by_sql(outbox_id)
    return booked


class BookingDesk:
    """Bookings over HTTP: the attempts for one event that arrive together are booked together.

    One call per batch (group commit, `pitchin_core.group_commit`): one lock of the event row,
    one commit flush and one outbox insert for up to `max_batch` attempts, in arrival order,
    so positions stay exact. An attempt that sent an `Idempotency-Key` has its answer stored
    in the same call.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        max_batch: int = 2000,
        clock: Callable[[], datetime] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock or (lambda: datetime.now(UTC))
        registry = metrics.registry if metrics else CollectorRegistry()
        self.service = metrics.service if metrics else "signups"
        # What group commit does under load: how many attempts share a call, and how long a call takes.
        self.batch_size = Histogram(
            "pitchin_booking_batch_size",
            "Booking attempts answered by one call (group commit per event).",
            ["service"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
            registry=registry,
        )
        self.call_seconds = Histogram(
            "pitchin_booking_call_seconds",
            "Duration of one booking call: lock, book the batch, commit.",
            ["service"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.batches: GroupCommit[tuple[str, str], Attempt, asyncpg.Record] = GroupCommit(
            self._call, max_batch=max_batch
        )
        self._meta = _booking_meta(uow.source)

    async def book(self, caller: Caller, event_id: str, request: BookingRequest) -> Booked:
        shared = AMBIENT.get()
        claim = shared if isinstance(shared, RequestClaim) else None
        if claim is not None:
            claim.taken_by_use_case = True  # stored by the batch, with the booking
        row = await self.batches.submit((caller.federation_id, event_id), _booking_item(request, claim))
        return _outcome(row, event_id, self.clock())

    async def _call(self, key: tuple[str, str], attempts: Sequence[Attempt]) -> list[asyncpg.Record]:
        federation_id, event_id = key
        items = [item for _, item in attempts]
        self.batch_size.labels(self.service).observe(len(items))
        with self.call_seconds.labels(self.service).time():
            async with self.uow(Tenant(federation_id)) as tx:
                rows = await storage.book_many(tx.conn, event_id, federation_id, self.clock(), self._meta, items)
                booked = (oid for (oid, _), r in zip(attempts, rows, strict=True) if r["outcome"] == "booked")
                tx.emitted_by_sql(*booked)
        return rows


async def get(uow: Transactions, caller: Caller, booking_id: str) -> dict[str, Any]:
    """A booking the caller may see (its federation's; an organisation's key: its own events'),
    with its waitlist position while it waits. Another's is not found, not forbidden: ids are not confirmed."""
    async with uow(caller.tenant, readonly=True) as tx:
        row = await storage.get_booking(tx.conn, booking_id)
        if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
            raise NotFound("booking", booking_id)
        body = dict(row)
        if row["status"] == "waitlisted":
            body["position"] = await storage.waitlist_position(tx.conn, row["event_id"], row["waitlist_seq"])
    return body


def _offer_meta(source: str, **more: object) -> str:
    """What every call that may offer freed places takes (migration 007), with `more` of its own."""
    traceparent, tracestate = current_traceparent()
    return json.dumps(
        {
            "topic": _TOPIC,
            "source": source,
            "offered_type": BookingOfferedV1.event_type,
            "refused_statuses": list(NOT_BOOKABLE),
            "offer_rule": OFFER_RULE.as_json(),
            "traceparent": traceparent,
            "tracestate": tracestate,
            **more,
        }
    )


# The event each kind of row the offer calls return stands for.
_STAGED: dict[str, type[BookingFacts]] = {
    "cancelled": BookingCancelledV1,
    "offered": BookingOfferedV1,
    "accepted": BookingOfferAcceptedV1,
    "declined": BookingOfferDeclinedV1,
    "expired": BookingOfferExpiredV1,
}


def _staged(tx: Transaction, rows: Sequence[asyncpg.Record]) -> list[BookingFacts]:
    """The events a call staged in the outbox, as their contracts; the relay is woken for them."""
    tx.emitted_by_sql(*(r["outbox_id"] for r in rows))
    return [_STAGED[r["kind"]].model_validate_json(r["payload"]) for r in rows]


async def cancel(uow: Transactions, caller: Caller, booking_id: str, now: datetime) -> list[BookingFacts]:
    """Cancel a booking; a place it held is offered to the first on the waitlist, in the same call."""
    cancelled_id = uuid.uuid4()
    async with uow(caller.tenant) as tx:
        meta = _offer_meta(
            tx.source,
            cancelled_type=BookingCancelledV1.event_type,
            cancelled_id=str(cancelled_id),
            by_organisation=caller.organisation_id,
        )
        if caller.organisation_id is not None:
            # An organisation's key cancels bookings of its own events only (the SQL call checks the federation).
            found = await storage.get_booking(tx.conn, booking_id)
            if found is None or not caller.can_act_for(found["federation_id"], found["organisation_id"]):
                raise NotFound("booking", booking_id)
        rows = await storage.cancel_booking(tx.conn, booking_id, caller.federation_id, now, meta)
        kinds = [r["kind"] for r in rows]
        if kinds == ["not_found"]:
            raise NotFound("booking", booking_id)
        if kinds == ["already_cancelled"]:
            raise Conflict(f"Booking {booking_id} was cancelled.", title="Already cancelled")
        return _staged(tx, rows)


# Why an answer to an offer changed nothing, as the person reads it.
_NOT_OPEN = {
    "expired": "the offer expired and the place went to the next person on the waitlist",
    "not_offered": "no place is offered to this booking now",
    "refused": "the event does not take bookings now",
}


async def answer_offer(
    uow: Transactions, caller: Caller, booking_id: str, answer: str, now: datetime
) -> list[BookingFacts]:
    """Take the place offered (`accept`) or give up the waitlist spot (`decline`); a declined
    place is offered to the next, in the same call. Accepting twice is answered as the first was."""
    if answer not in ("accept", "decline"):
        raise ValueError(answer)
    answer_id = uuid.uuid4()
    async with uow(caller.tenant) as tx:
        if caller.organisation_id is not None:
            found = await storage.get_booking(tx.conn, booking_id)
            if found is None or not caller.can_act_for(found["federation_id"], found["organisation_id"]):
                raise NotFound("booking", booking_id)
        meta = _offer_meta(
            tx.source,
            accepted_type=BookingOfferAcceptedV1.event_type,
            declined_type=BookingOfferDeclinedV1.event_type,
            answer_id=str(answer_id),
        )
        rows = await storage.answer_offer(tx.conn, booking_id, caller.federation_id, now, answer, meta)
        kind = rows[0]["kind"]
        if kind == "not_found":
            raise NotFound("booking", booking_id)
        if kind == "accepted_before":
            return []
        if kind in _NOT_OPEN:
            raise OfferNotOpen("booking_id", _NOT_OPEN[kind])
        return _staged(tx, rows)


async def expire_due(uow: Transactions, federation_id: str, now: datetime, limit: int) -> list[BookingFacts]:
    """Expire a federation's due offers (of up to `limit` events) and offer the places on, in one transaction.

    The expiry, its event and the next offer commit together: a crash before the commit leaves
    the offer due (the next tick does it), a crash after leaves nothing to redo, so each offer
    expires once across restarts and replicas.
    """
    async with uow(Tenant(federation_id)) as tx:
        meta = _offer_meta(tx.source, expired_type=BookingOfferExpiredV1.event_type)
        return _staged(tx, await storage.expire_offers(tx.conn, federation_id, now, limit, meta))


async def check_in(uow: Transactions, caller: Caller, booking_id: str, now: datetime) -> dict[str, Any]:
    async with uow(caller.tenant) as tx:
        row = await storage.get_booking(tx.conn, booking_id)
        if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
            raise NotFound("booking", booking_id)
        await attendance.on_check_in(tx, booking_id, now)  # a check-in at the door counts as attended (issue 22)
        checked = await storage.check_in(tx.conn, booking_id, now)
        if checked is None:
            raise Conflict(
                f"Booking {booking_id} is {row['status']}; only confirmed places check in.", title="Not confirmed"
            )
    return dict(checked)
