"""Who may publish: registrations, their credentials, the cached registry, and what staff see.

Every consuming service keeps its own copy of the registrations (`publishers`, one row per
source), as it does API keys; signups holds the credentials and tells the others the scope
(`pitchin.publishers.v1`, `learn_publisher`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from pitchin_core.auth import hash_key
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.db import Conn
from pitchin_core.signing import new_webhook_secret

REGISTRY_TTL_SECONDS = 5.0
ACCEPTED_OUTCOMES = ("applied", "forwarded")
REJECTED_OUTCOME = "rejected"


@dataclass(frozen=True)
class Registration:
    source: str
    federation_id: str
    organisations: tuple[str, ...]
    any_organisation: bool
    signing_secret: str | None
    rate_per_second: float
    burst: int

    def may_publish_for(self, organisation_id: str | None) -> bool:
        if self.any_organisation:
            return True
        return organisation_id is not None and organisation_id in self.organisations


@dataclass(frozen=True)
class Credentials:
    """What a publisher is given once: the API key and the Standard Webhooks signing secret."""

    source: str
    key: str
    signing_secret: str


def new_publisher_key() -> str:
    return "pub_" + secrets.token_urlsafe(32)


class SourceTaken(Exception):
    """The source is registered to another federation: a source names one system of one federation."""

    def __init__(self, source: str) -> None:
        super().__init__(f"{source!r} is registered to another federation")
        self.source = source


async def register_publisher(
    conn: Conn,
    *,
    source: str,
    federation_id: str,
    organisations: Sequence[str] = (),
    any_organisation: bool = False,
    key: str | None = None,
    signing_secret: str | None = None,
    rate_per_second: float = 50.0,
    burst: int = 200,
    label: str = "",
    own_federation_only: bool = False,
) -> Credentials:
    """Register (or re-register, replacing credentials and scope) a publishing system in this schema.

    Re-registering rotates: the old key and secret stop working, a revoked registration is active
    again, `created_at` stays. With `own_federation_only` (the staff API) a source registered to
    another federation is left as it is and `SourceTaken` raised; without it (the test harness)
    the source moves.
    """
    key = key or new_publisher_key()
    signing_secret = signing_secret or new_webhook_secret()
    registered = await conn.fetchval(
        "INSERT INTO publishers (source, federation_id, organisations, any_organisation, key_hash, signing_secret,"
        " rate_per_second, burst, label) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (source) DO UPDATE SET federation_id = EXCLUDED.federation_id,"
        " organisations = EXCLUDED.organisations, any_organisation = EXCLUDED.any_organisation,"
        " key_hash = EXCLUDED.key_hash, signing_secret = EXCLUDED.signing_secret,"
        " rate_per_second = EXCLUDED.rate_per_second, burst = EXCLUDED.burst, label = EXCLUDED.label,"
        " revoked_at = NULL"
        " WHERE NOT $10::boolean OR publishers.federation_id = EXCLUDED.federation_id"
        " RETURNING true",
        source,
        federation_id,
        list(organisations),
        any_organisation,
        hash_key(key),
        signing_secret,
        rate_per_second,
        burst,
        label,
        own_federation_only,
    )
    if not registered:
        raise SourceTaken(source)
    return Credentials(source, key, signing_secret)


async def revoke_publisher(conn: Conn, *, source: str, federation_id: str, now: datetime) -> bool:
    """Revoke a federation's publisher (again: no change); False when it has no such source.

    Every `Registry` stops answering for it within its cache time (5 s).
    """
    found = await conn.fetchval(
        "UPDATE publishers SET revoked_at = coalesce(revoked_at, $3) WHERE source = $1 AND federation_id = $2"
        " RETURNING true",
        source,
        federation_id,
        now,
    )
    return bool(found)


async def learn_publisher(conn: Conn, fact: PublisherRegisteredV1 | PublisherRevokedV1) -> None:
    """Keep this schema's copy of a registration made in signups (scope only: credentials stay there)."""
    if isinstance(fact, PublisherRevokedV1):
        await conn.execute(
            "UPDATE publishers SET revoked_at = coalesce(revoked_at, $2) WHERE source = $1",
            fact.source,
            fact.revoked_at,
        )
        return
    await conn.execute(
        "INSERT INTO publishers (source, federation_id, organisations, any_organisation, rate_per_second, burst,"
        " label, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (source) DO UPDATE SET federation_id = EXCLUDED.federation_id,"
        " organisations = EXCLUDED.organisations, any_organisation = EXCLUDED.any_organisation,"
        " key_hash = NULL, signing_secret = NULL, rate_per_second = EXCLUDED.rate_per_second,"
        " burst = EXCLUDED.burst, label = EXCLUDED.label, revoked_at = NULL",
        fact.source,
        fact.federation_id,
        list(fact.organisations),
        fact.any_organisation,
        fact.rate_per_second,
        fact.burst,
        fact.label,
        fact.registered_at,
    )


@dataclass(frozen=True)
class PublisherSummary:
    """A registration as federation staff see it, with what it published in the last 24 hours.

    The counts are this schema's `ingest_seen`: distinct event ids first seen in the window,
    by their latest outcome (applied or forwarded: accepted; rejected). Refusals before an
    event could be read and attributed (unauthenticated, rate-limited, an unreadable batch, an
    event without `id`) are not events of the source and are not counted.
    """

    source: str
    label: str
    organisations: list[str]
    any_organisation: bool
    rate_per_second: float
    burst: int
    created_at: datetime
    revoked_at: datetime | None
    accepted_24h: int
    rejected_24h: int
    last_seen_at: datetime | None


async def publisher_summaries(
    conn: Conn, federation_id: str, since: datetime, source: str | None = None
) -> list[PublisherSummary]:
    """A federation's publishers (or the one `source`): active ones first, each group by source."""
    rows = await conn.fetch(
        "SELECT p.source, p.label, p.organisations, p.any_organisation, p.rate_per_second, p.burst, p.created_at,"
        " p.revoked_at,"
        " (SELECT count(*) FROM ingest_seen s WHERE s.source = p.source AND s.seen_at > $2"
        "   AND s.outcome = ANY($4::text[])) AS accepted_24h,"
        " (SELECT count(*) FROM ingest_seen s WHERE s.source = p.source AND s.seen_at > $2"
        "   AND s.outcome = $5) AS rejected_24h,"
        " (SELECT max(s.seen_at) FROM ingest_seen s WHERE s.source = p.source) AS last_seen_at"
        " FROM publishers p WHERE p.federation_id = $1 AND ($3::text IS NULL OR p.source = $3)"
        ' ORDER BY p.revoked_at IS NOT NULL, p.source COLLATE "C"',
        federation_id,
        since,
        source,
        list(ACCEPTED_OUTCOMES),
        REJECTED_OUTCOME,
    )
    # The columns are the summary's fields, by name.
    return [PublisherSummary(**{**dict(row), "organisations": list(row["organisations"])}) for row in rows]


# A registration's fields, by name.
_COLUMNS = ", ".join(f.name for f in fields(Registration))


def _registration(row: asyncpg.Record) -> Registration:
    return Registration(**{**dict(row), "organisations": tuple(row["organisations"])})


class Registry:
    """Publisher registrations, cached for a few seconds (a revocation takes effect within 5 s).

    Only hits are cached: a source registered a moment ago is known at once. It reads the
    pool (or a connection) directly rather than through a unit of work: a lookup is one
    cross-tenant SELECT, made before anyone knows whose event it is, and a cache hit must
    not cost a transaction.
    """

    def __init__(self, ttl: float = REGISTRY_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._by_source: dict[str, tuple[float, Registration]] = {}
        self._by_key: dict[str, tuple[float, Registration]] = {}

    async def by_source(self, conn: Conn | asyncpg.Pool, source: str) -> Registration | None:
        return await self._get(self._by_source, source, conn, "source = $1", source)

    async def by_key(self, conn: Conn | asyncpg.Pool, key: str) -> Registration | None:
        digest = hash_key(key)
        return await self._get(self._by_key, digest, conn, "key_hash = $1", digest)

    async def _get(
        self,
        cache: dict[str, tuple[float, Registration]],
        name: str,
        conn: Conn | asyncpg.Pool,
        where: str,
        value: str,
    ) -> Registration | None:
        hit = cache.get(name)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM publishers WHERE {where} AND revoked_at IS NULL", value)
        if row is None:
            cache.pop(name, None)
            return None
        registration = _registration(row)
        cache[name] = (now, registration)
        return registration
