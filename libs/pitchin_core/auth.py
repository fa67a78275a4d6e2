"""API-key authentication and the tenant a request acts for."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import asyncpg
from cachetools import TTLCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.keys import ApiKeyIssuedV1, ApiKeyRevokedV1
from pitchin_core.db import Conn
from pitchin_core.errors import Forbidden, Unauthorised
from pitchin_core.gate import CALLER
from pitchin_core.uow import Tenant, Transactions

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])
_bearer = HTTPBearer(auto_error=False, description="An API key issued to a federation or organisation")


@dataclass(frozen=True)
class Caller:
    federation_id: str
    organisation_id: str | None
    role: str

    def can_act_for(self, federation_id: str, organisation_id: str | None) -> bool:
        if federation_id != self.federation_id:
            return False
        return self.organisation_id is None or self.organisation_id == organisation_id

    @property
    def tenant(self) -> Tenant:
        """What this caller's transactions act for (the unit of work sets it for row-level security)."""
        return Tenant(self.federation_id, self.organisation_id)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "pk_" + secrets.token_urlsafe(32)


# The roles a key may hold: the code's list, not the database's (core migration 011), so a new
# role needs no migration in every schema. A key whose role is not here authenticates as nothing.
FEDERATION_STAFF = "federation-staff"
ORGANISER = "organiser"
PLATFORM_OPERATOR = "platform-operator"
PUBLISHER = "publisher"
# The public web front's own key (issue 17): it may call only the routes marked `for_web_front`
# (published events, places, held sign-ups, RSVPs); where a page acts for one person, the route
# checks that person's proof (a signed link the web forwards), not this key.
WEB_FRONT = "web-front"
ROLES: tuple[str, ...] = (FEDERATION_STAFF, ORGANISER, PLATFORM_OPERATOR, PUBLISHER, WEB_FRONT)
_WEB_FRONT_MAY = "__pitchin_web_front_may__"


def for_web_front(endpoint: _Endpoint) -> _Endpoint:
    """Mark a route the web front's key may call; every other route refuses that key (403)."""
    setattr(endpoint, _WEB_FRONT_MAY, True)
    return endpoint


_CREDENTIAL = "__pitchin_credential__"


def checks_credential(what: str) -> Callable[[_Endpoint], _Endpoint]:
    """Mark a route that takes no API key but checks a credential of its own (`what`: e.g. "the
    offer's signed token"): docs/access.md says so instead of calling the route open to anyone."""

    def mark(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _CREDENTIAL, what)
        return endpoint

    return mark


def credential_of(endpoint: object) -> str | None:
    """What `checks_credential` said a route checks, if anything."""
    found = getattr(endpoint, _CREDENTIAL, None)
    return found if isinstance(found, str) else None


def web_front_proof(request: Request, caller: Caller, header: str, opens: Callable[[str, str, float], bool]) -> None:
    """For the web front's key, the person's own signed link (forwarded in `header`) must open this
    resource: `opens(secret, link, now)` with the donor-link secret the service shares with the web."""
    if caller.role != WEB_FRONT:
        return
    secret = getattr(request.app.state.runtime.settings, "donor_link_secret", "")
    link = request.headers.get(header, "")
    if not secret or not link or not opens(secret, link[:500], time.time()):
        raise Forbidden(f"The web front acts for a person only with their signed link ({header}).")


def _only_where_web_front_may(request: Request, caller: Caller) -> Caller:
    if caller.role == WEB_FRONT and not getattr(request.scope.get("endpoint"), _WEB_FRONT_MAY, False):
        raise Forbidden("The web front's key may only read published events and make sign-ups and RSVPs.")
    return caller


def key_prefix(key: str) -> str:
    """What lists show of a key so people can tell theirs apart: never enough to use it."""
    return key[:8]


@dataclass(frozen=True)
class KeyRecord:
    """A key's state as every service's `api_keys` holds it (the fact on pitchin.keys.v1 carries the same)."""

    key_id: uuid.UUID
    key_hash: str
    federation_id: str
    organisation_id: str | None
    role: str
    label: str
    key_prefix: str
    expires_at: datetime | None
    revoked_at: datetime | None
    issued_by: str = ""
    created_at: datetime | None = None
    last_used_at: datetime | None = None


_KEY_COLUMNS = (
    "key_id, key_hash, federation_id, organisation_id, role, label, key_prefix, expires_at, revoked_at,"
    " issued_by, created_at, last_used_at"
)


async def keep_key(conn: Conn | asyncpg.Pool, record: KeyRecord) -> None:
    """Write a key's state, new or changed: the owner's write and every copy's.

    A copy may see a key's facts again (a redelivery) or, across a rotation, the revocation of
    the old key before anything else: each fact carries the whole state, and a revocation once
    set is only ever brought forward, never undone.
    """
    await conn.execute(
        "INSERT INTO api_keys (key_id, key_hash, federation_id, organisation_id, role, label, key_prefix,"
        " expires_at, revoked_at, issued_by, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11, now()))"
        " ON CONFLICT (key_hash) DO UPDATE SET label = excluded.label, expires_at = excluded.expires_at,"
        "   revoked_at = CASE WHEN api_keys.revoked_at IS NULL THEN excluded.revoked_at"
        "                     WHEN excluded.revoked_at IS NULL THEN api_keys.revoked_at"
        "                     ELSE least(api_keys.revoked_at, excluded.revoked_at) END",
        record.key_id,
        record.key_hash,
        record.federation_id,
        record.organisation_id,
        record.role,
        record.label,
        record.key_prefix,
        record.expires_at,
        record.revoked_at,
        record.issued_by,
        record.created_at,
    )


async def find_keys(conn: Conn | asyncpg.Pool, federation_id: str, key_id: uuid.UUID | None = None) -> list[KeyRecord]:
    """A federation's keys, newest first (or the one with `key_id`)."""
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE federation_id = $1 AND ($2::uuid IS NULL OR key_id = $2)"
        " ORDER BY created_at DESC, key_id",
        federation_id,
        key_id,
    )
    return [KeyRecord(**dict(row)) for row in rows]


async def issue_key(
    conn: Conn | asyncpg.Pool,
    *,
    federation_id: str,
    organisation_id: str | None,
    role: str,
    label: str = "",
    key: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Write a key into this schema only: signups' use case publishes it to the others
    (pitchin_signups.service.api_keys); service-level tests with no Kafka use this directly."""
    key = key or new_key()
    await keep_key(
        conn,
        KeyRecord(
            key_id=uuid.uuid4(),
            key_hash=hash_key(key),
            federation_id=federation_id,
            organisation_id=organisation_id,
            role=role,
            label=label,
            key_prefix=key_prefix(key),
            expires_at=expires_at,
            revoked_at=None,
        ),
    )
    return key


async def learn_key(uow: Transactions, event: CloudEvent, fact: ApiKeyIssuedV1 | ApiKeyRevokedV1) -> bool:
    """Keep this service's copy of a key issued, rotated or revoked in signups; False for a redelivery."""
    async with uow(Tenant(fact.federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        await keep_key(
            tx.conn,
            KeyRecord(
                key_id=fact.key_id,
                key_hash=fact.key_hash,
                federation_id=fact.federation_id,
                organisation_id=fact.organisation_id,
                role=fact.role,
                label=fact.label,
                key_prefix="",  # lists are signups' (the owner's); a copy only checks keys
                expires_at=fact.expires_at,
                revoked_at=fact.revoked_at,
                issued_by="signups",
                created_at=fact.issued_at if isinstance(fact, ApiKeyIssuedV1) else None,
            ),
        )
        return True


# How long a process trusts an API key it found. A revocation reaches every service over Kafka
# in well under a second, so with 4 s here a revoked key stops working everywhere within 5 s.
KEY_TTL_SECONDS = 4.0


class KnownKeys:
    """The API keys this process found lately, so a request costs no database round trip for its key.

    Only keys found are kept (a key issued a moment ago works at once); a revocation takes
    effect in every process within `ttl` seconds.
    """

    def __init__(self, ttl: float = KEY_TTL_SECONDS) -> None:
        self._found: TTLCache[str, tuple[Caller, datetime | None]] = TTLCache(maxsize=100_000, ttl=ttl)

    async def caller(self, pool: asyncpg.Pool, key: str) -> Caller | None:
        digest = hash_key(key)
        now = datetime.now(UTC)
        found = self._found.get(digest)
        if found is None:
            # Finding a key is also its use: at most once per key, process and `ttl`, so
            # `last_used_at` costs a write per key every few seconds, not one per request.
            row = await pool.fetchrow(
                "UPDATE api_keys SET last_used_at = $2 WHERE key_hash = $1"
                " AND (revoked_at IS NULL OR revoked_at > $2) AND (expires_at IS NULL OR expires_at > $2)"
                " RETURNING federation_id, organisation_id, role, least(revoked_at, expires_at) AS ends_at",
                digest,
                now,
            )
            if row is None or row["role"] not in ROLES:
                return None
            caller = Caller(row["federation_id"], row["organisation_id"], row["role"])
            found = self._found[digest] = (caller, row["ends_at"])
        caller, ends_at = found
        # A key that ends while cached ends on time, not up to `ttl` later.
        if ends_at is not None and ends_at <= now:
            return None
        return caller


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    found = request.scope.get(CALLER)  # the request gate checked the key before the body was read
    if isinstance(found, Caller):
        return _only_where_web_front_may(request, found)
    if credentials is None:
        raise Unauthorised("Send an API key as 'Authorization: Bearer <key>'.")
    runtime = request.app.state.runtime
    caller = await runtime.api_keys.caller(runtime.pool, credentials.credentials)
    if caller is None:
        raise Unauthorised("This API key is not known or was revoked.")
    assert isinstance(caller, Caller)
    return _only_where_web_front_may(request, caller)


CallerDep = Annotated[Caller, Depends(authenticate)]


async def federation_staff(caller: CallerDep) -> Caller:
    """The caller, if it holds a federation staff key (checked before the request body is)."""
    if caller.role != FEDERATION_STAFF or caller.organisation_id is not None:
        raise Forbidden(f"Only a federation staff key may do this (this key's role: {caller.role}).")
    return caller


StaffDep = Annotated[Caller, Depends(federation_staff)]
