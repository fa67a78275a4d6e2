"""API keys are cached per process for a few seconds: a revoked key stops working within that time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

from pitchin_core.auth import Caller, KnownKeys, hash_key, issue_key
from tests.e2e.helpers import eventually_async


async def test_a_revoked_key_stops_working_once_the_cache_forgets_it(open_service_database: Any) -> None:
    db = await open_service_database("signups", files("pitchin_signups") / "migrations")
    key = await issue_key(db.pool, federation_id="fed-a", organisation_id="org-1", role="organiser")
    keys = KnownKeys(ttl=0.5)
    assert await keys.caller(db.pool, "pk_never_issued") is None
    assert await keys.caller(db.pool, key) == Caller("fed-a", "org-1", "organiser")

    await db.pool.execute("UPDATE api_keys SET revoked_at = now()")
    revoked_at = time.monotonic()
    # Within the time to live the process still trusts what it found (no round trip per request)...
    assert await keys.caller(db.pool, key) is not None

    # ...and once it passed, the revocation holds.
    async def refused() -> bool:
        return await keys.caller(db.pool, key) is None

    await eventually_async(refused, timeout=5, interval=0.05, what="the revoked key refused")
    assert time.monotonic() - revoked_at >= 0.4


async def test_a_key_ends_at_its_expiry_or_revocation_even_while_cached(open_service_database: Any) -> None:
    db = await open_service_database("signups", files("pitchin_signups") / "migrations")
    soon = datetime.now(UTC) + timedelta(seconds=0.6)
    expiring = await issue_key(db.pool, federation_id="fed-a", organisation_id=None, role="federation-staff")
    rotated = await issue_key(db.pool, federation_id="fed-a", organisation_id=None, role="federation-staff")
    await db.pool.execute("UPDATE api_keys SET expires_at = $2 WHERE key_hash = $1", hash_key(expiring), soon)
    # A rotated key's revocation lies ahead: it works until then, beside its successor.
    await db.pool.execute("UPDATE api_keys SET revoked_at = $2 WHERE key_hash = $1", hash_key(rotated), soon)
    keys = KnownKeys(ttl=60)  # cached far longer than either key lives
    assert await keys.caller(db.pool, expiring) is not None
    assert await keys.caller(db.pool, rotated) is not None

    async def both_refused() -> bool:
        return await keys.caller(db.pool, expiring) is None and await keys.caller(db.pool, rotated) is None

    await eventually_async(both_refused, timeout=5, interval=0.05, what="both keys refused at their end")
    assert datetime.now(UTC) >= soon


async def test_finding_a_key_notes_its_last_use_and_a_role_the_code_does_not_know_is_nobody(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", files("pitchin_signups") / "migrations")
    key = await issue_key(db.pool, federation_id="fed-a", organisation_id="org-1", role="organiser")
    unknown_role = await issue_key(db.pool, federation_id="fed-a", organisation_id=None, role="superuser")
    assert await db.pool.fetchval("SELECT last_used_at FROM api_keys WHERE key_hash = $1", hash_key(key)) is None
    keys = KnownKeys()
    before = datetime.now(UTC)
    assert await keys.caller(db.pool, key) is not None
    used = await db.pool.fetchval("SELECT last_used_at FROM api_keys WHERE key_hash = $1", hash_key(key))
    assert used is not None and used >= before
    assert await keys.caller(db.pool, unknown_role) is None
