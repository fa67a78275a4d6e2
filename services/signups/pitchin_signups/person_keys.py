"""The data keys that seal people's personal fields on Kafka (pitchin_core.personal), held here.

Signups' own relay and consumers read the table directly (`LocalKeys`); the other services ask
the internal routes below with their service token, once per relay pass or consumer batch. An
erasure destroys the person's keys in the request's own transaction (`destroy`).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pitchin_core.contracts.common import Identifier
from pitchin_core.db import Conn
from pitchin_core.erasure import rows
from pitchin_core.errors import Unauthorised
from pitchin_core.personal import (
    MAX_KEYS_ASKED,
    PERSON_KEYS_PATH,
    KeysUnavailable,
    SealingKey,
    Subject,
    service_of_token,
)

# The services that may ask (signups reads its own table).
ASKING_SERVICES = frozenset({"matching", "notifications", "scheduling"})
MAX_ASKED = MAX_KEYS_ASKED  # callers ask in chunks of this (RemoteKeys)

_LIVE_AND_ERASED = (
    "SELECT w.federation_id, w.subject, k.key_id::text AS key_id, k.secret,"
    " (SELECT max(d.destroyed_at) FROM person_keys d WHERE d.federation_id = w.federation_id"
    "  AND d.subject = w.subject AND d.destroyed_at IS NOT NULL) AS erased_at"
    " FROM unnest($1::text[], $2::text[]) AS w(federation_id, subject)"
    " JOIN person_keys k ON k.federation_id = w.federation_id AND k.subject = w.subject AND k.destroyed_at IS NULL"
)


async def sealing_keys(conn: Conn, subjects: Collection[Subject]) -> dict[Subject, SealingKey]:
    """Each subject's live key, made (with a new random secret) if it has none."""
    wanted = sorted(set(subjects))
    federations, names = [f for f, _ in wanted], [s for _, s in wanted]
    found = await conn.fetch(_LIVE_AND_ERASED, federations, names)
    keys = {(r["federation_id"], r["subject"]): r for r in found}
    missing = [s for s in wanted if s not in keys]
    if missing:
        await conn.execute(
            "INSERT INTO person_keys (key_id, federation_id, subject, secret)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[])"
            " ON CONFLICT (federation_id, subject) WHERE destroyed_at IS NULL DO NOTHING",
            [uuid.uuid4() for _ in missing],
            [f for f, _ in missing],
            [s for _, s in missing],
            [os.urandom(32) for _ in missing],
        )
        found = await conn.fetch(_LIVE_AND_ERASED, [f for f, _ in missing], [s for _, s in missing])
        keys.update({(r["federation_id"], r["subject"]): r for r in found})
    if len(keys) < len(wanted):
        # Erased between the insert and the read: the next pass finds the new state.
        raise KeysUnavailable("a person's key was destroyed while it was being looked up")
    return {s: SealingKey(r["key_id"], bytes(r["secret"]), r["erased_at"]) for s, r in keys.items()}


def _uuids(key_ids: Collection[str]) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    for key_id in key_ids:
        try:
            found.append(uuid.UUID(key_id))
        except ValueError:
            continue  # not a key this table could hold: it opens as erased
    return found


async def opening_keys(conn: Conn, key_ids: Collection[str]) -> dict[str, bytes | None]:
    found = await conn.fetch(
        "SELECT key_id::text AS key_id, secret FROM person_keys WHERE key_id = ANY($1::uuid[])", _uuids(key_ids)
    )
    secrets = {r["key_id"]: (bytes(r["secret"]) if r["secret"] is not None else None) for r in found}
    return {key_id: secrets.get(key_id) for key_id in key_ids}


async def destroy(conn: Conn, federation_id: str, subjects: Sequence[str], now: datetime) -> int:
    """Destroy the subjects' live keys (and mark those that had none): the count destroyed."""
    destroyed = await conn.execute(
        "UPDATE person_keys SET secret = NULL, destroyed_at = $3"
        " WHERE federation_id = $1 AND subject = ANY($2::text[]) AND destroyed_at IS NULL",
        federation_id,
        list(subjects),
        now,
    )
    await conn.execute(
        "INSERT INTO person_keys (key_id, federation_id, subject, secret, destroyed_at)"
        " SELECT gen_random_uuid(), $1, s, NULL, $3 FROM unnest($2::text[]) s WHERE NOT EXISTS"
        " (SELECT 1 FROM person_keys k WHERE k.federation_id = $1 AND k.subject = s AND k.destroyed_at = $3)",
        federation_id,
        list(subjects),
        now,
    )
    return rows(destroyed)


class LocalKeys:
    """The key store of signups' own relay and consumers: its table, as its background identity."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def sealing_keys(self, subjects: Collection[Subject]) -> dict[Subject, SealingKey]:
        async with self._pool().acquire() as conn, conn.transaction():
            return await sealing_keys(conn, subjects)

    async def opening_keys(self, key_ids: Collection[str]) -> dict[str, bytes | None]:
        async with self._pool().acquire() as conn:
            return await opening_keys(conn, key_ids)


# --- the internal routes ---------------------------------------------------------------------

router = APIRouter(prefix=PERSON_KEYS_PATH, include_in_schema=False)
NO_STORE = {"cache-control": "no-store"}


class AskedSubject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    federation_id: Identifier
    subject: str = Field(min_length=3, max_length=200)


class SealingAsked(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subjects: list[AskedSubject] = Field(max_length=MAX_ASKED)


class OpeningAsked(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_ids: list[str] = Field(max_length=MAX_ASKED)


def _service(request: Request) -> str:
    """The asking service, from its bearer token (pitchin_core.personal.service_token)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    secret: str = request.app.state.runtime.settings.person_keys_secret
    service = service_of_token(secret, token) if scheme.lower() == "bearer" else None
    if service not in ASKING_SERVICES:
        raise Unauthorised("This route takes a service token for person keys.")
    return service


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    return pool


@router.post("/seal")
async def seal(asked: SealingAsked, request: Request) -> JSONResponse:
    """Live keys for a relay pass, made where missing, with when each subject was last erased."""
    _service(request)
    async with _pool(request).acquire() as conn, conn.transaction():
        keys = await sealing_keys(conn, [(s.federation_id, s.subject) for s in asked.subjects])
    body: list[dict[str, Any]] = [
        {
            "federation_id": federation_id,
            "subject": subject,
            "key_id": key.key_id,
            "key": base64.b64encode(key.secret).decode("ascii"),
            "erased_at": key.erased_at.isoformat() if key.erased_at else None,
        }
        for (federation_id, subject), key in keys.items()
    ]
    return JSONResponse({"keys": body}, headers=NO_STORE)


@router.post("/open")
async def open_keys(asked: OpeningAsked, request: Request) -> JSONResponse:
    """The secrets of the keys a consumer batch was sealed with; null for a destroyed key."""
    _service(request)
    async with _pool(request).acquire() as conn:
        found = await opening_keys(conn, asked.key_ids)
    body = {k: (base64.b64encode(v).decode("ascii") if v is not None else None) for k, v in found.items()}
    return JSONResponse({"keys": body}, headers=NO_STORE)
