"""Matching's use cases: one function per command, one transaction each.

Every transaction opens through the service's unit of work (`Matching.uow`), for the
tenant it acts on. Every write takes the federation's matching lock first (a
transaction-scoped advisory lock), then row locks: one order everywhere, so use cases
never deadlock, and offers in a federation are made one transaction at a time, which
keeps each donor's cap exact. The state change and its events commit together (outbox).
The in-memory index is not written here: it follows the tables' committed rows, whichever
process wrote them (`follow.py`), and catches up before each ranking.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import NeedClosedV1, NeedFilledV1, NeedOpenedV1, NeedStatus, NeedUpdatedV1
from pitchin_core.contracts.matching import (
    AssignmentCompletedV1,
    AssignmentConfirmedV1,
    AssignmentReleasedV1,
    NeedEscalatedV1,
    OfferAcceptedV1,
    OfferCancelledV1,
    OfferDeclinedV1,
    OfferExpiredV1,
    OfferMadeV1,
    ScoreComponent,
)
from pitchin_core.db import Conn
from pitchin_core.errors import Conflict, NotFound
from pitchin_core.uow import Tenant, Transaction, UnitOfWork
from pitchin_matching import storage
from pitchin_matching.domain.assignment import Demand
from pitchin_matching.domain.budget import WEEK_SECONDS, AskBudget, spare_asks
from pitchin_matching.domain.donors import WITHDRAWN_VERSION, DonorProfile, profile_of, supersedes
from pitchin_matching.domain.escalation import Escalation, describe, next_step_at, widened
from pitchin_matching.domain.needs import NeedState, need_of, need_supersedes
from pitchin_matching.domain.policy import PolicyDocument
from pitchin_matching.domain.ranking import Policy, explain, rank, slots_of
from pitchin_matching.domain.tokens import TokenClaims, sign
from pitchin_matching.follow import IndexFollower
from pitchin_matching.index import DonorIndex
from pitchin_matching.planning import Pass, Waiting, need_policy, plan_pass, rank_waiting

TOKEN_GRACE = timedelta(days=7)


class OfferClosed(Conflict):
    """An answer to an offer that was already answered, expired or cancelled."""

    default_title = "Offer no longer open"
    default_kind = "/problems/offer-closed"


@dataclass
class Matching:
    """What the use cases work with: the unit of work, the in-memory index and a few settings."""

    uow: UnitOfWork
    index: DonorIndex
    token_secret: str
    public_base_url: str
    max_needs_per_pass: int = 200
    retry_seconds: float = 60.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    follower: IndexFollower = field(init=False)

    def __post_init__(self) -> None:
        self.follower = IndexFollower(self.uow, self.index)


async def policy_of(conn: Conn, federation_id: str, now: datetime) -> Policy:
    return (await settings_of(conn, federation_id, now))[0]


async def settings_of(conn: Conn, federation_id: str, now: datetime) -> tuple[Policy, Escalation]:
    """A federation's matching policy and escalation rules, as stored or by default."""
    document = PolicyDocument.model_validate(await storage.get_policy(conn, federation_id) or {})
    return document.to_policy(now), document.escalation.to_rules()


# --- donors and needs: the read model, and what a change of it causes -------------------------


async def _once(
    m: Matching, event: CloudEvent, federation_id: str, apply: Callable[[Transaction], Awaitable[None]]
) -> bool:
    """Apply a consumed event once, under its federation's lock; False for a redelivery."""
    async with m.uow(Tenant(federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        await storage.lock_federation(tx.conn, federation_id)
        await apply(tx)
        return True


async def _store_donor(conn: Conn, data: DonorRegisteredV1 | DonorUpdatedV1) -> tuple[DonorProfile, datetime] | None:
    """Store a registration or a newer update: the profile and the registration time kept, or
    None for an update older than the stored one (it changes nothing)."""
    profile = profile_of(data)
    if not supersedes(profile.version, await storage.donor_version(conn, data.donor_id)):
        return None
    registered = data.registered_at if isinstance(data, DonorRegisteredV1) else data.updated_at
    return profile, await storage.upsert_donor(conn, profile, registered)


async def _store_withdrawal(conn: Conn, data: DonorWithdrawnV1) -> None:
    await storage.donor_version(conn, data.donor_id)  # the donor's row lock, as for any other change
    await storage.withdraw_donor(
        conn, data.donor_id, data.federation_id, WITHDRAWN_VERSION, data.erase, data.withdrawn_at
    )


async def _store_need(conn: Conn, data: NeedOpenedV1 | NeedUpdatedV1) -> NeedState | None:
    """Store a need or a newer version of it; None for an older one (it changes nothing)."""
    need = need_of(data)
    if not need_supersedes(need.version, await storage.need_version(conn, need.need_id)):
        return None
    await storage.upsert_need(conn, need)
    return need


async def _store_need_end(conn: Conn, data: NeedFilledV1 | NeedClosedV1) -> str:
    """Store that a need was filled or closed; returns its status now."""
    status = NeedStatus.filled.value if isinstance(data, NeedFilledV1) else data.status.value
    await storage.need_version(conn, data.need_id)  # the need's row lock, as for any other change
    await storage.set_need_status(conn, data.need_id, status)
    return status


async def learn_donor(m: Matching, event: CloudEvent, data: DonorRegisteredV1 | DonorUpdatedV1, now: datetime) -> bool:
    """Apply a registration or a newer update once; an older or repeated one changes nothing."""

    async def apply(tx: Transaction) -> None:
        stored = await _store_donor(tx.conn, data)
        if stored is None:
            return
        profile, _ = stored
        if profile.status != "active":
            offers = await storage.pending_offers_of_donor(tx.conn, data.donor_id)
            await _cancel_offers(tx, m, offers, f"the donor is {profile.status}", now)
            if profile.status == "withdrawn":
                await _release_all(tx, m, data.donor_id, "the donor withdrew", now)
        else:
            await storage.retry_needs_of(tx.conn, data.federation_id)
        await _match(tx, m, data.federation_id, now)

    return await _once(m, event, data.federation_id, apply)


async def withdraw_donor(m: Matching, event: CloudEvent, data: DonorWithdrawnV1, now: datetime) -> bool:
    async def apply(tx: Transaction) -> None:
        await _store_withdrawal(tx.conn, data)
        offers = await storage.pending_offers_of_donor(tx.conn, data.donor_id)
        await _cancel_offers(tx, m, offers, "the donor withdrew", now)
        await _release_all(tx, m, data.donor_id, "the donor withdrew", now)
        await _match(tx, m, data.federation_id, now)

    return await _once(m, event, data.federation_id, apply)


async def learn_need(m: Matching, event: CloudEvent, data: NeedOpenedV1 | NeedUpdatedV1, now: datetime) -> bool:
    async def apply(tx: Transaction) -> None:
        need = await _store_need(tx.conn, data)
        if need is None:
            return
        if need.is_open:
            await _start_escalation(tx, need, now)
            await _match(tx, m, need.federation_id, now, force=[need.need_id])
        else:
            offers = await storage.pending_offers_of_need(tx.conn, need.need_id)
            await _cancel_offers(tx, m, offers, f"the need is {need.status}", now)

    return await _once(m, event, data.federation_id, apply)


async def end_need(m: Matching, event: CloudEvent, data: NeedFilledV1 | NeedClosedV1, now: datetime) -> bool:
    async def apply(tx: Transaction) -> None:
        status = await _store_need_end(tx.conn, data)
        offers = await storage.pending_offers_of_need(tx.conn, data.need_id)
        await _cancel_offers(tx, m, offers, f"the need is {status}", now)

    return await _once(m, event, data.federation_id, apply)


# --- offers ------------------------------------------------------------------------------


def _may_answer(claims: TokenClaims, offer: asyncpg.Record) -> bool:
    if claims.kind == "offer":
        return bool(claims.subject == offer["offer_id"])
    return bool(claims.subject == offer["donor_id"])


async def _tenant_of_offer(m: Matching, offer_id: str, claims: TokenClaims) -> Tenant:
    """The federation an offer belongs to: a donor's token names the offer, not a tenant."""
    async with m.uow(readonly=True) as tx:
        offer = await storage.get_offer(tx.conn, offer_id)
    if offer is None or not _may_answer(claims, offer):
        # The same answer for "no such offer" and "not yours": a token reveals nothing else.
        raise NotFound("offer", offer_id, detail=f"No offer {offer_id} for this token.")
    return Tenant(offer["federation_id"])


async def _lock_offer(conn: Conn, tenant: Tenant, offer_id: str) -> asyncpg.Record:
    await storage.lock_federation(conn, tenant.federation_id)
    locked = await storage.get_offer(conn, offer_id, lock=True)
    assert locked is not None  # offers are never deleted
    return locked


def _refuse_answer(offer: asyncpg.Record, now: datetime) -> None:
    if offer["status"] != "pending":
        raise OfferClosed(f"This offer was already {offer['status']}.")
    if offer["expires_at"] <= now:
        raise OfferClosed("This offer has expired.")


async def accept_offer(m: Matching, offer_id: str, claims: TokenClaims, now: datetime) -> dict[str, Any]:
    tenant = await _tenant_of_offer(m, offer_id, claims)
    async with m.uow(tenant) as tx:
        conn = tx.conn
        offer = await _lock_offer(conn, tenant, offer_id)
        if offer["status"] == "accepted":
            return {"offer_id": offer_id, "status": "accepted", "assignment_id": offer_id}  # a second click
        _refuse_answer(offer, now)
        await storage.answer_offer(conn, offer_id, "accepted", now)
        await storage.insert_assignment(conn, offer, now)
        await _emit(tx, OfferAcceptedV1(**_facts(offer), accepted_at=now), offer)
        need = await storage.get_need(conn, offer["need_id"])
        if need is not None and await storage.active_assignments(conn, offer["need_id"]) >= need["donors_wanted"]:
            # The places are taken: the others asked at the same time are told at once.
            others = await storage.pending_offers_of_need(conn, offer["need_id"])
            await _cancel_offers(tx, m, others, "the need is filled", now)
            if need["escalation_from"] is not None:
                await storage.stop_escalation(conn, offer["need_id"])
                detail = f"the places are filled: {len(others)} other donor(s) stood down and thanked"
                await _escalation_step(tx, need, "stood-down", detail, 0, now)
        return {"offer_id": offer_id, "status": "accepted", "assignment_id": offer_id}


async def decline_offer(m: Matching, offer_id: str, claims: TokenClaims, reason: str, now: datetime) -> dict[str, Any]:
    tenant = await _tenant_of_offer(m, offer_id, claims)
    async with m.uow(tenant) as tx:
        offer = await _lock_offer(tx.conn, tenant, offer_id)
        if offer["status"] == "declined":
            return {"offer_id": offer_id, "status": "declined"}
        _refuse_answer(offer, now)
        await storage.answer_offer(tx.conn, offer_id, "declined", now, reason)
        await _emit(tx, OfferDeclinedV1(**_facts(offer), reason=reason, declined_at=now), offer)
        # The donor has no offer waiting now: needs that found nobody within the budget may ask them.
        await storage.retry_needs_of(tx.conn, offer["federation_id"])
        await _match(tx, m, offer["federation_id"], now, force=[offer["need_id"]], freed=[offer["donor_id"]])
        return {"offer_id": offer_id, "status": "declined"}


async def expire_due(m: Matching, federation_id: str, now: datetime, limit: int = 200) -> int:
    """Expire a federation's due offers and ask the next candidates, in one transaction.

    The expiry, its event and the next offer commit together: a crash before the commit
    leaves the offer pending and due (the next clock tick does it), a crash after leaves
    nothing to redo. So each expiry happens once across restarts and replicas.
    """
    async with m.uow(Tenant(federation_id)) as tx:
        await storage.lock_federation(tx.conn, federation_id)
        due = await storage.claim_due_offers(tx.conn, federation_id, now, limit)
        for offer in due:
            await storage.answer_offer(tx.conn, offer["offer_id"], "expired", now)
            await _emit(tx, OfferExpiredV1(**_facts(offer), expired_at=now), offer)
        if due:
            await storage.retry_needs_of(tx.conn, federation_id)  # their donors may be asked again
            needs, donors = sorted({o["need_id"] for o in due}), sorted({o["donor_id"] for o in due})
            await _match(tx, m, federation_id, now, force=needs, freed=donors)
        return len(due)


async def match_waiting(m: Matching, federation_id: str, now: datetime, force_all: bool = False) -> int:
    """Offers for a federation's waiting needs (the clock's sweep and the rematch command)."""
    async with m.uow(Tenant(federation_id)) as tx:
        await storage.lock_federation(tx.conn, federation_id)
        if force_all:
            await storage.retry_needs_of(tx.conn, federation_id)
        return await _match(tx, m, federation_id, now)


# --- assignments -------------------------------------------------------------------------


async def _open_assignment(conn: Conn, caller: Caller, assignment_id: str) -> asyncpg.Record:
    assignment = await storage.get_assignment(conn, assignment_id)
    if assignment is None or not caller.can_act_for(assignment["federation_id"], assignment["organisation_id"]):
        raise NotFound("assignment", assignment_id)
    await storage.lock_federation(conn, assignment["federation_id"])
    locked = await storage.get_assignment(conn, assignment_id, lock=True)
    assert locked is not None
    return locked


async def confirm_assignment(m: Matching, caller: Caller, assignment_id: str, now: datetime) -> dict[str, Any]:
    async with m.uow(caller.tenant) as tx:
        assignment = await _open_assignment(tx.conn, caller, assignment_id)
        if assignment["status"] in ("confirmed", "completed"):
            return {"assignment_id": assignment_id, "status": assignment["status"]}
        if assignment["status"] == "released":
            raise Conflict("A released assignment cannot be confirmed.", title="Assignment released")
        await storage.confirm_assignment(tx.conn, assignment_id, now)
        await _emit(tx, AssignmentConfirmedV1(**_facts(assignment, "assignment_id"), confirmed_at=now), assignment)
        return {"assignment_id": assignment_id, "status": "confirmed"}


async def release_assignment(
    m: Matching, caller: Caller, assignment_id: str, reason: str, now: datetime
) -> dict[str, Any]:
    async with m.uow(caller.tenant) as tx:
        assignment = await _open_assignment(tx.conn, caller, assignment_id)
        if assignment["status"] == "released":
            return {"assignment_id": assignment_id, "status": "released"}
        if assignment["status"] == "completed":
            raise Conflict("Work marked done cannot be released.", title="Assignment completed")
        await _release(tx, m, assignment, reason, now)
        await _match(tx, m, assignment["federation_id"], now, force=[assignment["need_id"]])
        return {"assignment_id": assignment_id, "status": "released"}


async def complete_assignment(
    m: Matching, caller: Caller, assignment_id: str, hours_given: float, thanks: str, now: datetime
) -> dict[str, Any]:
    """The organisation marks confirmed work done, with the hours given and its thanks.

    Saying it again with the same hours and thanks changes nothing (a retried form); other
    figures for work already marked done are a conflict, not a silent rewrite of the record.
    """
    hours_given = round(hours_given, 1)  # the record keeps tenths of an hour
    async with m.uow(caller.tenant) as tx:
        assignment = await _open_assignment(tx.conn, caller, assignment_id)
        status = assignment["status"]
        if status == "completed":
            same = float(assignment["hours_given"]) == hours_given and assignment["thanks"] == thanks
            if not same:
                raise Conflict("This work was already marked done with other figures.", title="Assignment completed")
            return _completion(assignment_id, hours_given, thanks, assignment["completed_at"])
        if status != "confirmed":
            raise Conflict(
                f"Only confirmed work can be marked done; this one is {status}.", title="Assignment not confirmed"
            )
        need = await storage.get_need(tx.conn, assignment["need_id"])
        await storage.complete_assignment(tx.conn, assignment_id, now, hours_given, thanks)
        completed = AssignmentCompletedV1(
            **_facts(assignment, "assignment_id"),
            need_title=need["title"] if need else "",
            hours_given=hours_given,
            thanks=thanks,
            completed_at=now,
        )
        await _emit(tx, completed, assignment)
        return _completion(assignment_id, hours_given, thanks, now)


def _completion(assignment_id: str, hours_given: float, thanks: str, at: datetime) -> dict[str, Any]:
    return {
        "assignment_id": assignment_id,
        "status": "completed",
        "hours_given": hours_given,
        "thanks": thanks,
        "completed_at": at,
    }


# --- policy ------------------------------------------------------------------------------


async def policy(m: Matching, caller: Caller) -> PolicyDocument:
    async with m.uow(caller.tenant, readonly=True) as tx:
        stored = await storage.get_policy(tx.conn, caller.federation_id)
    return PolicyDocument.model_validate(stored or {})


async def set_policy(m: Matching, caller: Caller, document: PolicyDocument) -> PolicyDocument:
    async with m.uow(caller.tenant) as tx:
        await storage.put_policy(tx.conn, caller.federation_id, document.model_dump(mode="json"))
    return document


# --- reads -------------------------------------------------------------------------------


async def donor_profile(m: Matching, caller: Caller, donor_id: str) -> asyncpg.Record:
    async with m.uow(caller.tenant, readonly=True) as tx:
        row = await storage.donor_with_skills(tx.conn, caller.federation_id, donor_id)
        if row is not None and not await _may_see_donor(tx.conn, caller, donor_id):
            row = None
    if row is None:
        raise NotFound("donor", donor_id, detail=f"Matching knows no donor {donor_id} in this federation.")
    return row


async def _may_see_donor(conn: Any, caller: Caller, donor_id: str) -> bool:
    """Federation staff see every donor of the federation; a member organisation its own donors
    and those matched with its needs (docs: the access table). Others: as if there were none."""
    if caller.organisation_id is None:
        return True
    return await storage.donor_reachable_by(conn, donor_id, caller.federation_id, caller.organisation_id)


async def _donor_tenant(m: Matching, donor_id: str, caller: Caller | None) -> Tenant:
    """Whose data a donor's offers and record are read as: the caller's, or (no caller: the
    donor with their own token) the donor's federation. 404 for a donor of another federation."""
    async with m.uow(caller.tenant if caller else None, readonly=True) as tx:
        federation_id = await storage.donor_federation(tx.conn, donor_id)
        hidden = caller is not None and not await _may_see_donor(tx.conn, caller, donor_id)
    if federation_id is None or hidden or (caller is not None and federation_id != caller.federation_id):
        raise NotFound("donor", donor_id, detail=f"Matching knows no donor {donor_id} in this federation.")
    return caller.tenant if caller is not None else Tenant(federation_id)


async def donor_offers(m: Matching, donor_id: str, caller: Caller | None) -> list[asyncpg.Record]:
    """A donor's offers, for the donor (no caller) or an organiser or staff of their federation."""
    tenant = await _donor_tenant(m, donor_id, caller)
    async with m.uow(tenant, readonly=True) as tx:
        offers = await storage.offers_of_donor(tx.conn, tenant.federation_id, donor_id)
    if caller is not None:
        # An organiser sees the offers of its own organisation's needs only.
        offers = [o for o in offers if caller.can_act_for(o["federation_id"], o["organisation_id"])]
    return offers


async def donor_record(m: Matching, donor_id: str, caller: Caller | None) -> dict[str, Any]:
    """What a donor gave in a federation: total hours, pieces of work done, and the thanks received."""
    tenant = await _donor_tenant(m, donor_id, caller)
    async with m.uow(tenant, readonly=True) as tx:
        rows = await storage.donor_record(tx.conn, tenant.federation_id, donor_id)
        logged = await storage.confirmed_hours_in_progress(tx.conn, tenant.federation_id, donor_id)
    work = [dict(r) for r in rows]
    in_progress = [dict(r) for r in logged]
    # Only confirmed hours count (issue 22): work marked done with its final figure, and the hours
    # the organisation confirmed on work still going on; hours logged and not confirmed do not.
    given = sum(w["hours_given"] or 0.0 for w in work) + sum(p["hours_confirmed"] for p in in_progress)
    return {
        "donor_id": donor_id,
        "hours_given": round(given, 1),
        "completed": len(work),
        "organisations": sorted({w["organisation_id"] for w in [*work, *in_progress] if w["organisation_id"]}),
        "work": work,
        "in_progress": in_progress,
    }


async def offer_for_token(m: Matching, offer_id: str, claims: TokenClaims) -> dict[str, Any]:
    """One offer, for the holder of its offer token or of its donor's token, with what the donor
    is asked to do (the need's title, hours, deadline, urgency): the offer page needs no other key."""
    async with m.uow(readonly=True) as tx:  # the token names the offer; the offer says whose it is
        offer = await storage.get_offer(tx.conn, offer_id)
        if offer is None or claims.subject not in (offer["offer_id"], offer["donor_id"]):
            raise NotFound("offer", offer_id, detail=f"No offer {offer_id} for this token.")
        need = await storage.get_need(tx.conn, offer["need_id"])
    facts = {} if need is None else {"need_title": need["title"], **{k: need[k] for k in OFFERED_NEED_FACTS}}
    return {**dict(offer), **facts}


# What an offer's landing page shows of the need, besides its title.
OFFERED_NEED_FACTS = ("estimated_hours", "deadline", "urgency")


async def need_offers(m: Matching, caller: Caller, need_id: str) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    """A need and who was asked about it, for its organisation or federation."""
    async with m.uow(caller.tenant, readonly=True) as tx:
        need = await storage.get_need(tx.conn, need_id)
        if need is None or not caller.can_act_for(need["federation_id"], need["organisation_id"]):
            raise NotFound("need", need_id)
        return need, await storage.offers_of_need(tx.conn, need_id)


async def totals(m: Matching, caller: Caller) -> list[asyncpg.Record]:
    """Hours given and work done per member organisation of the caller's federation."""
    async with m.uow(caller.tenant, readonly=True) as tx:
        return await storage.hours_by_organisation(tx.conn, caller.federation_id)


async def candidates(m: Matching, caller: Caller, need_id: str, limit: int, now: datetime) -> dict[str, Any]:
    async with m.uow(caller.tenant, readonly=True) as tx:
        row = await storage.get_need(tx.conn, need_id)
        if row is None or not (
            row["federation_id"] == caller.federation_id
            and caller.can_act_for(row["federation_id"], row["organisation_id"])
        ):
            raise NotFound("need", need_id)
        need = storage.need_from_row(row)
        policy = await policy_of(tx.conn, need.federation_id, now)
        offers = {o["donor_id"]: o["status"] for o in await storage.offers_of_need(tx.conn, need_id)}
    await m.ready.wait()
    await m.follower.catch_up()  # what other processes committed up to now, this organiser sees
    query = m.index.query(need, policy, slots_of(policy.collaboration_utc))
    # Everyone who fits, those already asked or past their ask budget too: the organiser sees
    # who was offered (offer_status) and why the others rank where they do.
    ranking = rank(m.index.columns, query, policy, now.timestamp(), limit, budgeted=False)
    listed = []
    for i, r in enumerate(ranking.rows.tolist()):
        value = {name: float(v[i]) for name, v in ranking.values.items()}
        donor_id = m.index.donor_at(r)
        components = explain(m.index.columns, r, value, query, policy, now.timestamp())
        listed.append(
            {
                "donor_id": donor_id,
                "score": round(float(ranking.scores[i]), 3),
                "offer_status": offers.get(donor_id),
                "components": [{"name": c.name, "points": c.points, "why": c.why} for c in components],
            }
        )
    return {
        "need_id": need_id,
        "status": need.status,
        "eligible": ranking.eligible,
        "weights": {name: getattr(policy.weights, name) for name in type(policy.weights).names()},
        "candidates": listed,
    }


# --- internals ---------------------------------------------------------------------------


def _facts(row: asyncpg.Record, id_column: str = "offer_id") -> dict[str, Any]:
    return {
        "federation_id": row["federation_id"],
        "organisation_id": row["organisation_id"],
        "offer_id": row[id_column],
        "need_id": row["need_id"],
        "fight_id": row["fight_id"],
        "donor_id": row["donor_id"],
    }


async def _emit(tx: Transaction, data: EventData, row: asyncpg.Record) -> None:
    """Stage an event about a row of `offers` or of `assignments` (which has an assignment_id, not an
    offer_id): keyed by its need, so a need's events stay in order, about `offers/…` or `assignments/…`."""
    subject = f"assignments/{row['assignment_id']}" if "assignment_id" in row else f"offers/{row['offer_id']}"
    await tx.emit(data, key=row["need_id"], subject=subject)


async def _cancel_offers(
    tx: Transaction, m: Matching, offers: Sequence[asyncpg.Record], reason: str, now: datetime
) -> None:
    for offer in offers:
        await storage.answer_offer(tx.conn, offer["offer_id"], "cancelled", now, reason)
        await _emit(tx, OfferCancelledV1(**_facts(offer), reason=reason, cancelled_at=now), offer)


async def _release(tx: Transaction, m: Matching, assignment: asyncpg.Record, reason: str, now: datetime) -> None:
    await storage.release_assignment(tx.conn, assignment["assignment_id"], now, reason)
    released = AssignmentReleasedV1(**_facts(assignment, "assignment_id"), reason=reason, released_at=now)
    await _emit(tx, released, assignment)


async def _release_all(tx: Transaction, m: Matching, donor_id: str, reason: str, now: datetime) -> None:
    for assignment in await storage.active_assignments_of_donor(tx.conn, donor_id):
        await _release(tx, m, assignment, reason, now)


async def _match(
    tx: Transaction,
    m: Matching,
    federation_id: str,
    now: datetime,
    force: Sequence[str] = (),
    reclaim: bool = True,
    freed: Sequence[str] = (),
) -> int:
    """Make the offers a federation's waiting needs want now, chosen by the global assignment.

    Ranking reads the in-memory index, caught up first: under the federation lock every
    other transaction of this federation has committed, so it ranks from all of them (this
    transaction's own changes reach the index after it commits). Each chosen donor's load,
    ask budget and status are then read from the tables, so the cap and the budget hold
    whatever the index says. Each need ranks and fans out as its escalation step widens it
    (`domain.escalation`); a newcomers' share of the week's offers is kept (`domain.spread`);
    a critical need that finds too few may reclaim donors from normal needs' pending offers.
    `freed`: donors whose offers this transaction answered (the index does not know it yet).
    """
    conn = tx.conn
    policy, rules = await settings_of(conn, federation_id, now)
    rows = await storage.needs_waiting(
        conn, federation_id, now, dict(policy.fan_out), m.max_needs_per_pass, force, rules.more_per_step
    )
    if not rows:
        return 0
    await m.follower.catch_up_within(tx)
    needs = [storage.need_from_row(r) for r in rows]
    asked = await storage.offered_donors(conn, [n.need_id for n in needs])
    waiting = [
        Waiting(need, r["active_assignments"], r["pending_offers"], r["escalation_stage"], asked.get(need.need_id, ()))
        for need, r in zip(needs, rows, strict=True)
    ]
    at = now.timestamp()
    found = rank_waiting(m.index, waiting, policy, rules, at, freed)
    capacity = await _spare(conn, policy, found.donors, now)
    week = await storage.offers_since(conn, federation_id, now - timedelta(seconds=WEEK_SECONDS))
    plan = plan_pass(found, capacity, policy, week, at)
    made = 0
    short: list[str] = []
    for demand in found.demands:
        need = found.needs[demand.need_id]
        donors = plan[demand.need_id]
        if len(donors) < demand.places:
            short.append(demand.need_id)
        for donor in donors:
            components = found.explain(m.index, need.need_id, donor, at)
            score = round(sum(c.points for c in components), 3)
            made += await _make_offer(tx, m, need, donor, score, components, policy, now, donor in found.newcomers)
    if reclaim:
        critical = [d for d in found.demands if d.urgency == "critical" and len(plan[d.need_id]) < d.places]
        reclaimed, still_short, renew = await _reclaim(tx, m, critical, found, plan, asked, policy, rules, now)
        made += reclaimed
        short = [n for n in short if n not in {d.need_id for d in critical}] + still_short
        if renew:
            # The normal needs that lost a donor are asked again at once, never reclaiming in turn.
            made += await _match(tx, m, federation_id, now, force=renew, reclaim=False)
    if short:
        # Found too few: rest until a donor joins or changes (retry_needs_of) or a while passes.
        await storage.postpone_needs(conn, short, now + timedelta(seconds=m.retry_seconds))
    return made


async def _spare(conn: Conn, policy: Policy, donors: Sequence[str], now: datetime) -> dict[str, int]:
    """Offers each active donor may be made now: the load cap and the ask budget, from the tables."""
    loads = await storage.donor_loads(conn, donors)
    statuses = await storage.donor_status(conn, donors)
    budget = policy.ask_budget
    asks = await storage.donor_asks(conn, donors, now - timedelta(seconds=WEEK_SECONDS)) if budget else {}
    capacity: dict[str, int] = {}
    for donor in donors:
        if statuses.get(donor) != "active":
            continue
        spare = policy.max_open_per_donor - loads.get(donor, 0)
        if budget is not None:
            spare = min(spare, spare_asks(*asks.get(donor, (0, 0)), budget))
        capacity[donor] = spare
    return capacity


async def _reclaim(
    tx: Transaction,
    m: Matching,
    demands: Sequence[Demand],
    found: Pass,
    plan: dict[str, list[str]],
    asked: dict[str, set[str]],
    policy: Policy,
    rules: Escalation,
    now: datetime,
) -> tuple[int, list[str], list[str]]:
    """Critical needs that found too few free donors take donors from normal needs' pending offers.

    A donor is reclaimed only when the one pending offer is all that keeps them from being
    asked: the weekly asks and the load cap still hold once that offer is cancelled. The
    donor is told the first offer is withdrawn (with thanks), the critical one is made, and
    the normal need is re-offered. Returns the offers made, the critical needs still short,
    and the needs to re-offer.
    """
    if not demands:
        return 0, [], []
    conn = tx.conn
    at = now.timestamp()
    budget = policy.ask_budget or AskBudget(max_pending=policy.max_open_per_donor, weekly_asks=10**6)
    # One pending offer more than the budget and the cap allow: the one that would be withdrawn.
    loosened = replace(
        policy,
        max_open_per_donor=policy.max_open_per_donor + 1,
        ask_budget=AskBudget(max_pending=budget.max_pending + 1, weekly_asks=budget.weekly_asks),
    )
    collaboration = slots_of(policy.collaboration_utc)
    made, short, renew = 0, [], []
    taken: set[str] = {d for donors in plan.values() for d in donors}
    for demand in demands:
        need = found.needs[demand.need_id]
        row = await storage.get_need(conn, need.need_id)
        stage = row["escalation_stage"] if row is not None else 0
        wider = need_policy(loosened, rules, need.urgency, stage)
        query = m.index.query(need, wider, collaboration)
        exclude = m.index.rows_of({*asked.get(need.need_id, ()), *plan[need.need_id], *taken})
        wanted = demand.places - len(plan[need.need_id])
        ranking = rank(m.index.columns, query, wider, at, limit=wanted * 3 + 5, exclude=exclude)
        ranked = [m.index.donor_at(r) for r in ranking.rows.tolist()]
        holding = await storage.reclaimable_offers(conn, ranked)
        spare = await _spare(conn, loosened, list(holding), now)
        for i, donor in enumerate(ranked):
            if wanted == 0:
                break
            offer = holding.get(donor)
            if offer is None or spare.get(donor, 0) <= 0:
                continue
            reason = "a more urgent need asked for you; thank you, we will ask someone else for this one"
            await _cancel_offers(tx, m, [offer], reason, now)
            value = {k: float(v[i]) for k, v in ranking.values.items()}
            components = explain(m.index.columns, int(ranking.rows[i]), value, query, wider, at)
            score = round(sum(c.points for c in components), 3)
            made += await _make_offer(tx, m, need, donor, score, components, policy, now, value["newcomer"] > 0)
            taken.add(donor)
            renew.append(offer["need_id"])
            wanted -= 1
            if row is not None:
                detail = f"a donor's pending offer for need {offer['need_id']} was withdrawn for this critical need"
                await _escalation_step(tx, row, "reclaimed", detail, demand.places, now)
        if wanted > 0:
            short.append(need.need_id)
    return made, short, sorted(set(renew))


async def _start_escalation(tx: Transaction, need: NeedState, now: datetime) -> None:
    """An escalating need's timer and its first step (the first wave), once per need."""
    policy, rules = await settings_of(tx.conn, need.federation_id, now)
    if not rules.applies(need.urgency):
        return
    if await storage.start_escalation(tx.conn, need.need_id, now, next_step_at(rules, now, need.deadline, 0)):
        row = await storage.get_need(tx.conn, need.need_id)
        assert row is not None
        wanted = math.ceil(need.donors_wanted * policy.fan_out.get(need.urgency, 1.0))
        detail = f"the best-fit {wanted} asked first ({policy.fan_out.get(need.urgency, 1.0):g} per place)"
        await _escalation_step(tx, row, "first-wave", detail, wanted, now)


async def _escalation_step(
    tx: Transaction, need: asyncpg.Record, kind: str, detail: str, offers_wanted: int, now: datetime
) -> None:
    """Record a step of a need's escalation and tell everyone (the organiser sees it)."""
    step = await storage.add_escalation_step(
        tx.conn, need["need_id"], need["federation_id"], kind, detail, offers_wanted, now
    )
    event = NeedEscalatedV1(
        federation_id=need["federation_id"],
        organisation_id=need["organisation_id"],
        need_id=need["need_id"],
        fight_id=need["fight_id"],
        step=step,
        kind=kind,
        detail=detail,
        offers_wanted=offers_wanted,
        at=now,
    )
    await tx.emit(event, key=need["need_id"], subject=f"needs/{need['need_id']}/escalation/{step}")


async def escalate_due(m: Matching, federation_id: str, now: datetime, limit: int = 200) -> int:
    """Take the due escalation steps of a federation's needs and make the offers they want now,
    in one transaction: the timer is the need's row, so each step is taken once across restarts."""
    async with m.uow(Tenant(federation_id)) as tx:
        await storage.lock_federation(tx.conn, federation_id)
        due = await storage.claim_due_escalations(tx.conn, federation_id, now, limit)
        if not due:
            return 0
        policy, rules = await settings_of(tx.conn, federation_id, now)
        for need in due:
            stage = int(need["escalation_stage"]) + 1
            following = next_step_at(rules, need["escalation_from"], need["deadline"], stage)
            await storage.set_escalation(tx.conn, need["need_id"], stage, following)
            wider = widened(policy, rules, need["urgency"], stage)
            wanted = math.ceil(need["donors_wanted"] * wider.fan_out.get(need["urgency"], 1.0))
            await _escalation_step(tx, need, "widened", describe(policy, rules, need["urgency"], stage), wanted, now)
        await _match(tx, m, federation_id, now, force=[n["need_id"] for n in due])
        return len(due)


async def need_escalation(m: Matching, caller: Caller, need_id: str) -> dict[str, Any]:
    """A need's escalation for its organisation or federation: the steps taken, and the next one."""
    async with m.uow(caller.tenant, readonly=True) as tx:
        need = await storage.get_need(tx.conn, need_id)
        if need is None or not caller.can_act_for(need["federation_id"], need["organisation_id"]):
            raise NotFound("need", need_id)
        steps = await storage.escalation_steps(tx.conn, need_id)
    return {
        "need_id": need_id,
        "urgency": need["urgency"],
        "stage": need["escalation_stage"],
        "next_step_at": need["escalate_at"],
        "steps": [dict(s) for s in steps],
    }


async def _make_offer(
    tx: Transaction,
    m: Matching,
    need: NeedState,
    donor_id: str,
    score: float,
    components: Sequence[Any],
    policy: Policy,
    now: datetime,
    newcomer: bool = False,
) -> int:
    offer_id = f"off_{uuid.uuid4().hex[:20]}"
    expires_at = now + timedelta(seconds=policy.offer_ttl_seconds)
    explanation = [ScoreComponent(name=c.name, points=c.points, why=c.why) for c in components]
    inserted = await storage.insert_offer(
        tx.conn,
        offer_id=offer_id,
        need=need,
        donor_id=donor_id,
        score=score,
        explanation=[e.model_dump() for e in explanation],
        made_at=now,
        expires_at=expires_at,
        newcomer=newcomer,
    )
    if not inserted:
        return 0
    token_expiry = int((expires_at + TOKEN_GRACE).timestamp())
    offer_token = sign(m.token_secret, "offer", offer_id, token_expiry)
    donor_token = sign(m.token_secret, "donor", donor_id, token_expiry)
    base = m.public_base_url.rstrip("/")
    made = OfferMadeV1(
        federation_id=need.federation_id,
        organisation_id=need.organisation_id,
        offer_id=offer_id,
        need_id=need.need_id,
        fight_id=need.fight_id,
        donor_id=donor_id,
        need_title=need.title,
        score=score,
        explanation=explanation,
        expires_at=expires_at,
        made_at=now,
        deadline=need.deadline,
        estimated_hours=need.estimated_hours,
        urgency=need.urgency,
        offer_token=offer_token,
        accept_url=f"{base}/v1/offers/{offer_id}/accept?token={quote(offer_token)}",
        decline_url=f"{base}/v1/offers/{offer_id}/decline?token={quote(offer_token)}",
        offers_url=f"{base}/v1/donors/{donor_id}/offers?token={quote(donor_token)}",
    )
    await tx.emit(made, key=need.need_id, subject=f"offers/{offer_id}")
    return 1


# --- rebuild -----------------------------------------------------------------------------

# Per input event type, its change to the read model, the same as when it is first consumed.
_READ_MODEL: dict[type[EventData], Callable[[Conn, Any], Awaitable[object]]] = {
    DonorRegisteredV1: _store_donor,
    DonorUpdatedV1: _store_donor,
    DonorWithdrawnV1: _store_withdrawal,
    NeedOpenedV1: _store_need,
    NeedUpdatedV1: _store_need,
    NeedFilledV1: _store_need_end,
    NeedClosedV1: _store_need_end,
}


async def replay(tx: Transaction, event: CloudEvent, data: EventData) -> None:
    """Apply an input event to the read model only: no offers, no cancellations, no events.

    Used by the rebuild, which replays the topics from the start: what those events caused
    back then (offers, assignments) is already in matching's own tables.
    """
    store = _READ_MODEL.get(type(data))
    if await tx.first_delivery(event) and store is not None:
        await store(tx.conn, data)
