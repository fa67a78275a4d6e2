"""API keys are cached per process for a few seconds: a revoked key stops working within that time."""

from __future__ import annotations

import time
from importlib.resources import files
from typing import Any

from pitchin_core.auth import Caller, KnownKeys, issue_key
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
