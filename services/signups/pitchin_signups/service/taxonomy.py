"""The skills taxonomy a federation owns, and the check every skill a request names goes through."""

from __future__ import annotations

from cachetools import TTLCache

from pitchin_core.auth import Caller
from pitchin_core.db import Conn
from pitchin_core.errors import Forbidden
from pitchin_core.uow import Transactions
from pitchin_signups import storage
from pitchin_signups.domain.taxonomy import DEFAULT_SKILLS, check_known

# How long a process trusts the taxonomy it read: a change made through another process
# is seen by sign-ups within this long; one made through this process at once.
TAXONOMY_TTL_SECONDS = 5.0


class Taxonomies:
    """Each federation's taxonomy as this process last read it, for the sign-up path.

    Sign-ups read the taxonomy on every request; it changes a few times a year.
    """

    def __init__(self, ttl: float = TAXONOMY_TTL_SECONDS) -> None:
        self._cache: TTLCache[str, dict[str, str]] = TTLCache(maxsize=10_000, ttl=ttl)

    async def of(self, conn: Conn, federation_id: str) -> dict[str, str]:
        found = self._cache.get(federation_id)
        if found is None:
            found = self._cache[federation_id] = await known_skills(conn, federation_id)
        return found

    def forget(self, federation_id: str) -> None:
        self._cache.pop(federation_id, None)


async def known_skills(conn: Conn, federation_id: str) -> dict[str, str]:
    """The federation's own taxonomy, or the default one until it set its own."""
    return await storage.federation_skills(conn, federation_id) or dict(DEFAULT_SKILLS)


async def check_skills(
    conn: Conn, federation_id: str, slugs: list[str], field: str, taxonomies: Taxonomies | None = None
) -> None:
    taxonomy = await (taxonomies.of(conn, federation_id) if taxonomies else known_skills(conn, federation_id))
    check_known(slugs, taxonomy, field)


async def skills(uow: Transactions, caller: Caller) -> dict[str, str]:
    async with uow(caller.tenant, readonly=True) as tx:
        return await known_skills(tx.conn, caller.federation_id)


async def replace(
    uow: Transactions, caller: Caller, skills: dict[str, str], taxonomies: Taxonomies | None = None
) -> dict[str, str]:
    if caller.role != "federation-staff":
        raise Forbidden("Only federation staff own the skills taxonomy.")
    async with uow(caller.tenant) as tx:
        await storage.replace_skills(tx.conn, caller.federation_id, skills)
        if taxonomies is not None:
            tx.after_commit(lambda: taxonomies.forget(caller.federation_id))
    return skills
