"""API-key authentication and the tenant a request acts for."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from cachetools import TTLCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pitchin_core.db import Conn
from pitchin_core.errors import Forbidden, Unauthorised
from pitchin_core.gate import CALLER
from pitchin_core.uow import Tenant

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


async def issue_key(
    conn: Conn | asyncpg.Pool,
    *,
    federation_id: str,
    organisation_id: str | None,
    role: str,
    label: str = "",
    key: str | None = None,
) -> str:
    key = key or new_key()
    await conn.execute(
        "INSERT INTO api_keys (key_hash, federation_id, organisation_id, role, label) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (key_hash) DO NOTHING",
        hash_key(key),
        federation_id,
        organisation_id,
        role,
        label,
    )
    return key


# How long a process trusts an API key it found: a revoked key stops working within this long.
KEY_TTL_SECONDS = 5.0


class KnownKeys:
    """The API keys this process found lately, so a request costs no database round trip for its key.

    Only keys found are kept (a key issued a moment ago works at once); a revocation takes
    effect in every process within `ttl` seconds.
    """

    def __init__(self, ttl: float = KEY_TTL_SECONDS) -> None:
        self._found: TTLCache[str, Caller] = TTLCache(maxsize=100_000, ttl=ttl)

    async def caller(self, pool: asyncpg.Pool, key: str) -> Caller | None:
        digest = hash_key(key)
        found = self._found.get(digest)
        if found is None:
            row = await pool.fetchrow(
                "SELECT federation_id, organisation_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                digest,
            )
            if row is None:
                return None
            found = self._found[digest] = Caller(row["federation_id"], row["organisation_id"], row["role"])
        return found


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    found = request.scope.get(CALLER)  # the request gate checked the key before the body was read
    if isinstance(found, Caller):
        return found
    if credentials is None:
        raise Unauthorised("Send an API key as 'Authorization: Bearer <key>'.")
    runtime = request.app.state.runtime
    caller = await runtime.api_keys.caller(runtime.pool, credentials.credentials)
    if caller is None:
        raise Unauthorised("This API key is not known or was revoked.")
    assert isinstance(caller, Caller)
    return caller


CallerDep = Annotated[Caller, Depends(authenticate)]


async def federation_staff(caller: CallerDep) -> Caller:
    """The caller, if it holds a federation staff key (checked before the request body is)."""
    if caller.role != "federation-staff" or caller.organisation_id is not None:
        raise Forbidden(f"Only a federation staff key may do this (this key's role: {caller.role}).")
    return caller


StaffDep = Annotated[Caller, Depends(federation_staff)]
