"""API keys' life cycle: federation staff issue, list, rotate and revoke keys.

Signups owns the keys. Each change is published as a fact on pitchin.keys.v1 in the same
transaction (the outbox), and every other service keeps its copy from the facts
(`pitchin_core.runtime` subscribes them all), so a key issued or revoked here is known or
refused everywhere within a few seconds and nobody copies keys by hand.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from pitchin_core.auth import Caller, KeyRecord, find_keys, hash_key, keep_key, key_prefix, new_key
from pitchin_core.contracts.keys import ApiKeyIssuedV1, ApiKeyRevokedV1
from pitchin_core.errors import NotFound
from pitchin_core.uow import Tenant, Transaction, Transactions
from pitchin_signups.domain.api_keys import (
    DEFAULT_LIFETIME_DAYS,
    KeyRequest,
    KeyRotation,
    expiry,
    may_issue,
    may_manage_keys,
    overlap_end,
)


class NoSuchKey(NotFound):
    def __init__(self, key_id: uuid.UUID) -> None:
        super().__init__("API key", str(key_id))


async def listing(uow: Transactions, caller: Caller) -> list[KeyRecord]:
    """The federation's keys, newest first: their ids, prefixes, scope, expiry and last use."""
    may_manage_keys(caller)
    async with uow(caller.tenant, readonly=True) as tx:
        return await find_keys(tx.conn, caller.federation_id)


async def issue(uow: Transactions, caller: Caller, request: KeyRequest, now: datetime) -> tuple[KeyRecord, str]:
    """A new key: shown once in the answer, only its hash kept and published."""
    may_issue(caller, request.role)
    async with uow(caller.tenant) as tx:
        return await _issue(
            tx,
            federation_id=caller.federation_id,
            organisation_id=request.organisation_id,
            role=request.role,
            label=request.label,
            expires_at=expiry(now, request.expires_in_days),
            issued_by=_issuer(caller),
            now=now,
        )


async def issue_first(
    uow: Transactions,
    *,
    federation_id: str,
    organisation_id: str | None,
    role: str,
    label: str,
    now: datetime,
    key: str | None = None,
    lifetime_days: int = DEFAULT_LIFETIME_DAYS,
) -> tuple[KeyRecord, str]:
    """A key issued by the platform itself, for a federation that has no staff key yet (the
    operator's command `python -m pitchin_signups.keys`, `make run`'s demo, the test stack)."""
    async with uow(Tenant(federation_id)) as tx:
        return await _issue(
            tx,
            federation_id=federation_id,
            organisation_id=organisation_id,
            role=role,
            label=label,
            expires_at=expiry(now, lifetime_days),
            issued_by="platform",
            now=now,
            key=key,
        )


async def rotate(
    uow: Transactions, caller: Caller, key_id: uuid.UUID, rotation: KeyRotation, now: datetime
) -> tuple[KeyRecord, str]:
    """A successor with the same scope; the old key ends now or after the overlap asked for."""
    may_manage_keys(caller)
    async with uow(caller.tenant) as tx:
        old = await _one(tx, caller, key_id)
        may_issue(caller, old.role)
        ends = overlap_end(now, rotation.old_key_works_for_seconds)
        if old.revoked_at is None or old.revoked_at > ends:
            await _revoke(tx, old, ends)
        return await _issue(
            tx,
            federation_id=old.federation_id,
            organisation_id=old.organisation_id,
            role=old.role,
            label=old.label,
            expires_at=expiry(now, rotation.expires_in_days or DEFAULT_LIFETIME_DAYS),
            issued_by=_issuer(caller),
            now=now,
        )


async def revoke(uow: Transactions, caller: Caller, key_id: uuid.UUID, now: datetime) -> KeyRecord:
    """The key stops working everywhere within 5 s. Revoking again changes nothing."""
    may_manage_keys(caller)
    async with uow(caller.tenant) as tx:
        key = await _one(tx, caller, key_id)
        if key.revoked_at is not None and key.revoked_at <= now:
            return key
        return await _revoke(tx, key, now)


async def _one(tx: Transaction, caller: Caller, key_id: uuid.UUID) -> KeyRecord:
    found = await find_keys(tx.conn, caller.federation_id, key_id)
    if not found:
        raise NoSuchKey(key_id)
    return found[0]


async def _issue(
    tx: Transaction,
    *,
    federation_id: str,
    organisation_id: str | None,
    role: str,
    label: str,
    expires_at: datetime,
    issued_by: str,
    now: datetime,
    key: str | None = None,
) -> tuple[KeyRecord, str]:
    key = key or new_key()
    record = KeyRecord(
        key_id=uuid.uuid4(),
        key_hash=hash_key(key),
        federation_id=federation_id,
        organisation_id=organisation_id,
        role=role,
        label=label,
        key_prefix=key_prefix(key),
        expires_at=expires_at,
        revoked_at=None,
        issued_by=issued_by,
        created_at=now,
    )
    await keep_key(tx.conn, record)
    await tx.emit(ApiKeyIssuedV1(**_fact_fields(record), issued_at=now), key=str(record.key_id))
    return record, key


async def _revoke(tx: Transaction, key: KeyRecord, at: datetime) -> KeyRecord:
    revoked = replace(key, revoked_at=at)
    await keep_key(tx.conn, revoked)
    await tx.emit(ApiKeyRevokedV1(**_fact_fields(revoked)), key=str(key.key_id))
    return revoked


def _fact_fields(record: KeyRecord) -> dict[str, object]:
    return {
        "federation_id": record.federation_id,
        "organisation_id": record.organisation_id,
        "key_id": record.key_id,
        "key_hash": record.key_hash,
        "role": record.role,
        "label": record.label,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
    }


def _issuer(caller: Caller) -> str:
    return caller.role
