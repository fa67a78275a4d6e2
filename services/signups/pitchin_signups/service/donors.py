"""Knowledge donors: sign-up (one by one or from a spreadsheet), change, withdrawal, and reading them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.donors import (
    DonorConfirmationRequestedV1,
    DonorRegisteredV1,
    DonorUpdatedV1,
    DonorWithdrawnV1,
    Lending,
    may_ask,
)
from pitchin_core.db import Conn
from pitchin_core.errors import Conflict, DomainError, FieldError, NotFound
from pitchin_core.outbox import StagedEvent
from pitchin_core.uow import Transactions
from pitchin_signups import person_keys, storage
from pitchin_signups.domain import csv_import
from pitchin_signups.domain.donors import (
    DonorChanges,
    DonorSignup,
    PendingState,
    SignupRefused,
    check_confirmable,
    confirmation_requested,
    held_signup,
    register,
    token_hash,
    updated,
)
from pitchin_signups.domain.taxonomy import UnknownSkill, check_known
from pitchin_signups.service import new_id, visible_to
from pitchin_signups.service.taxonomy import Taxonomies, check_skills, known_skills


def _registered(caller: Caller, signup: DonorSignup, now: datetime) -> DonorRegisteredV1:
    """The sign-up as the caller's: their federation, and their organisation when they act for one."""
    return register(
        signup,
        donor_id=new_id("don"),
        federation_id=caller.federation_id,
        caller_organisation=caller.organisation_id,
        now=now,
    )


async def sign_up(
    uow: Transactions, caller: Caller, signup: DonorSignup, now: datetime, taxonomies: Taxonomies | None = None
) -> DonorRegisteredV1:
    """A knowledge donor signs up: the row and its outbox event are written in one statement."""
    donor = _registered(caller, signup, now)
    async with uow(caller.tenant) as tx:
        await check_skills(tx.conn, caller.federation_id, [s.skill for s in donor.skills], "skills", taxonomies)
        registered = tx.stage(donor, key=donor.donor_id, subject=f"donors/{donor.donor_id}")
        if not await storage.insert_donor(tx.conn, donor, registered):
            raise _already_signed_up()
        tx.emitted_by_sql(registered.event_id)
    return donor


def _already_signed_up() -> Conflict:
    return Conflict(
        "A donor with this email has already signed up in this federation.",
        title="Already signed up",
        kind="/problems/duplicate",
        errors=[FieldError("email", "already signed up")],
    )


async def ask_to_confirm(
    uow: Transactions,
    caller: Caller,
    signup: DonorSignup,
    now: datetime,
    public_base_url: str,
    taxonomies: Taxonomies | None = None,
) -> DonorConfirmationRequestedV1:
    """A sign-up made on a public page (double opt-in): checked exactly as `sign_up` checks it
    (the same refusals, "already signed up" included), then held, and the person asked by email
    to confirm. Nothing is registered until `confirm`; a newer request for the same address
    replaces the older, and expired ones are cleared here as new ones arrive."""
    donor = _registered(caller, signup, now)
    token = secrets.token_urlsafe(32)
    requested = confirmation_requested(
        donor, pending_id=new_id("pnd"), token=token, public_base_url=public_base_url, now=now
    )
    async with uow(caller.tenant) as tx:
        await check_skills(tx.conn, caller.federation_id, [s.skill for s in donor.skills], "skills", taxonomies)
        if await storage.donor_email_taken(tx.conn, caller.federation_id, donor.email):
            raise _already_signed_up()
        await storage.forget_expired_signups(tx.conn, now)
        await storage.hold_signup(
            tx.conn,
            pending_id=requested.pending_id,
            federation_id=caller.federation_id,
            email=donor.email,
            token_hash=token_hash(token),
            signup=held_signup(signup, donor).model_dump_json(),
            now=now,
            expires_at=requested.expires_at,
        )
        await tx.emit(requested, key=requested.pending_id, subject=f"pending-signups/{requested.pending_id}")
    return requested


async def confirm(
    uow: Transactions, caller: Caller, token: str, now: datetime, taxonomies: Taxonomies | None = None
) -> DonorRegisteredV1:
    """The person followed the link and confirmed: the held sign-up becomes a donor through
    `sign_up` (so `donor.registered` and the welcome follow as for any sign-up), once.

    A token that is unknown, replaced, used or expired is refused naming `token`; an expired
    row is deleted as it is refused. Any key of the sign-up's federation may carry the token
    (it is the credential); an organisation's key only for its own organisation's sign-ups.
    """
    async with uow(caller.tenant) as tx:
        row = await storage.held_signup(tx.conn, caller.federation_id, token_hash(token))
        signup = DonorSignup.model_validate_json(row["signup"]) if row is not None and row["signup"] else None
        if signup is not None and not caller.can_act_for(caller.federation_id, signup.organisation_id):
            row = None  # another organisation's sign-up: answered as an unknown token
        state = None if row is None else PendingState(row["expires_at"], row["confirmed_at"])
        expired = state is not None and state.confirmed_at is None and state.expires_at <= now
        if row is not None and expired:
            # Deleted in a transaction that commits; the refusal is raised once it has.
            await storage.forget_signup(tx.conn, row["pending_id"])
        else:
            check_confirmable(state, now)
            assert row is not None and signup is not None  # a row with no sign-up is a confirmed one
            donor = await sign_up(tx, caller, signup, now, taxonomies)
            await storage.mark_signup_confirmed(tx.conn, row["pending_id"], donor.donor_id, now)
            return donor
    check_confirmable(state, now)
    raise AssertionError("an expired sign-up is refused above")


async def sign_up_many(
    uow: Transactions, signups: Sequence[tuple[Caller, DonorSignup]], now: datetime
) -> list[DonorRegisteredV1 | DomainError]:
    """Many sign-ups in one transaction, set-based: every donor row and its outbox event in one
    statement, each federation's taxonomy read once. Each is refused alone, with what `sign_up`
    would raise (a rule, an unknown skill, an email already signed up, an earlier one of the
    same batch included), and nothing of a refused one is written."""
    results: list[DonorRegisteredV1 | DomainError] = []
    async with uow() as tx:
        taxonomies: dict[str, dict[str, str]] = {}
        staged: list[tuple[DonorRegisteredV1, StagedEvent]] = []
        for caller, signup in signups:
            try:
                donor = _registered(caller, signup, now)
                if caller.federation_id not in taxonomies:
                    taxonomies[caller.federation_id] = await known_skills(tx.conn, caller.federation_id)
                check_known([s.skill for s in donor.skills], taxonomies[caller.federation_id], "skills")
            except DomainError as refused:
                results.append(refused)
                continue
            results.append(donor)
            staged.append((donor, tx.stage(donor, key=donor.donor_id, subject=f"donors/{donor.donor_id}")))
        inserted = await storage.insert_donors(tx.conn, staged)
        tx.emitted_by_sql(*(registered.event_id for donor, registered in staged if donor.donor_id in inserted))
    return [
        _already_signed_up() if isinstance(r, DonorRegisteredV1) and r.donor_id not in inserted else r for r in results
    ]


def donor_view(row: asyncpg.Record) -> dict[str, Any]:
    return {**{k: row[k] for k in row.keys() if k != "profile"}, **json.loads(row["profile"])}


async def _own_donor(conn: Conn, caller: Caller, donor_id: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await storage.get_donor(conn, caller.federation_id, donor_id, for_update=for_update)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise NotFound("donor", donor_id)
    return row


async def get(uow: Transactions, caller: Caller, donor_id: str) -> dict[str, Any]:
    async with uow(caller.tenant, readonly=True) as tx:
        return donor_view(await _own_donor(tx.conn, caller, donor_id))


async def bookings_of(uow: Transactions, caller: Caller, donor_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The bookings made with a donor's email address, for the donor's own page (by their link)."""
    async with uow(caller.tenant, readonly=True) as tx:
        donor = await _own_donor(tx.conn, caller, donor_id)
        rows = await storage.bookings_of_person(tx.conn, donor["federation_id"], donor["email"], limit)
    return [dict(r) for r in rows]


async def find(
    uow: Transactions,
    caller: Caller,
    *,
    skill: str | None,
    status: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A page of the donors the caller may see (an organisation's own, or the whole federation's)."""
    rows = await visible_to(uow, caller, storage.list_donors, skill=skill, status=status, after=after, limit=limit)
    return [{**dict(r), "skills": json.loads(r["skills"] or "[]")} for r in rows]


async def candidate_profiles(
    uow: Transactions, caller: Caller, need_id: str, donor_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Short profiles of the donors an organiser sees as candidates for a need: name, home
    organisation, skills, languages and whether they work remotely; never how to reach them.

    Only active donors of the need's federation whose lending choice lets the need's
    organisation ask them (`may_ask`); others among `donor_ids` are left out, as unknown ones
    are, so the answer tells nobody who exists outside their reach. The caller must be able to
    act for the need (its organisation's organiser, or federation staff): else 404, as for
    `GET /v1/needs/{need_id}`. `lent` is true for a donor whose home is another organisation.
    """
    async with uow(caller.tenant, readonly=True) as tx:
        need = await storage.get_need(tx.conn, caller.federation_id, need_id)
        if need is None or not caller.can_act_for(need["federation_id"], need["organisation_id"]):
            raise NotFound("need", need_id)
        rows = await storage.active_donors_among(tx.conn, need["federation_id"], donor_ids)
    asking = need["organisation_id"]
    profiles = []
    for row in rows:
        lending = Lending.model_validate_json(row["lending"]) if row["lending"] else Lending()
        if not may_ask(lending, row["organisation_id"], asking):
            continue
        profiles.append(
            {
                "donor_id": row["donor_id"],
                "name": row["name"],
                "organisation_id": row["organisation_id"],
                "skills": json.loads(row["skills"] or "[]"),
                "languages": json.loads(row["languages"] or "[]"),
                "remote": row["remote"],
                "lent": row["organisation_id"] is not None and row["organisation_id"] != asking,
            }
        )
    return profiles


async def change(
    uow: Transactions, caller: Caller, donor_id: str, changes: DonorChanges, now: datetime
) -> DonorUpdatedV1:
    async with uow(caller.tenant) as tx:
        row = await _own_donor(tx.conn, caller, donor_id, for_update=True)
        donor = updated(donor_view(row), changes, now=now)
        if changes.skills is not None:
            await check_skills(tx.conn, caller.federation_id, [s.skill for s in changes.skills], "skills")
        try:
            await storage.update_donor(tx.conn, donor)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(
                "Another donor in this federation has this email.",
                title="Email in use",
                errors=[FieldError("email", "already signed up")],
            ) from exc
        await tx.emit(donor, key=donor_id, subject=f"donors/{donor_id}")
    return donor


async def withdraw(uow: Transactions, caller: Caller, donor_id: str, erase: bool, now: datetime) -> DonorWithdrawnV1:
    """Withdraw; with `erase`, remove the person's data here, and through the event everywhere."""
    async with uow(caller.tenant) as tx:
        row = await _own_donor(tx.conn, caller, donor_id, for_update=True)
        if row["erased_at"] is not None:
            raise Conflict(f"Donor {donor_id} was erased on {row['erased_at']:%Y-%m-%d}.", title="Already erased")
        if erase:
            await storage.erase_donor(tx.conn, donor_id, now)
            # Their records on Kafka open as erased from now on (pitchin_core.personal).
            await person_keys.destroy(tx.conn, row["federation_id"], [f"donor:{donor_id}"], now)
        else:
            await storage.withdraw_donor(tx.conn, donor_id, now)
        event = DonorWithdrawnV1(
            federation_id=row["federation_id"],
            organisation_id=row["organisation_id"],
            donor_id=donor_id,
            erase=erase,
            withdrawn_at=now,
        )
        await tx.emit(event, key=donor_id, subject=f"donors/{donor_id}")
    return event


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    already_registered: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


async def import_csv(uow: Transactions, caller: Caller, text: str, now: datetime) -> ImportReport:
    """Valid rows are kept, bad rows reported; a row whose email is known is skipped, so a
    re-run of the same file changes nothing. Each row commits on its own."""
    signups, errors = csv_import.parse(text)
    report = ImportReport(errors=[vars(e) for e in errors])
    async with uow(caller.tenant, readonly=True) as tx:
        known = await known_skills(tx.conn, caller.federation_id)
    for row_number, signup in signups:
        try:
            donor = _registered(caller, signup, now)
            check_known([s.skill for s in donor.skills], known, "skills")
        except SignupRefused as exc:
            report.errors.append({"row": row_number, "field": exc.field, "message": str(exc)})
            continue
        except UnknownSkill as exc:
            report.errors += [{"row": row_number, **e.as_dict()} for e in exc.errors]
            continue
        async with uow(caller.tenant) as tx:
            registered = tx.stage(donor, key=donor.donor_id, subject=f"donors/{donor.donor_id}")
            if await storage.insert_donor(tx.conn, donor, registered):
                tx.emitted_by_sql(registered.event_id)
                report.imported.append(donor.donor_id)
            else:
                report.already_registered.append(row_number)
    report.errors.sort(key=lambda e: (e["row"], e["field"]))
    return report
