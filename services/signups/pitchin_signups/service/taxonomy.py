"""The skills taxonomy a federation owns, and the check every skill a request names goes through."""

from __future__ import annotations

from pitchin_core.auth import Caller
from pitchin_core.db import Conn
from pitchin_core.errors import Forbidden
from pitchin_core.uow import Transactions
from pitchin_signups import storage
from pitchin_signups.domain.taxonomy import DEFAULT_SKILLS, check_known


async def known_skills(conn: Conn, federation_id: str) -> dict[str, str]:
    """The federation's own taxonomy, or the default one until it set its own."""
    return await storage.federation_skills(conn, federation_id) or dict(DEFAULT_SKILLS)


async def check_skills(conn: Conn, federation_id: str, slugs: list[str], field: str) -> None:
    check_known(slugs, await known_skills(conn, federation_id), field)


async def skills(uow: Transactions, caller: Caller) -> dict[str, str]:
    async with uow(caller.tenant, readonly=True) as tx:
        return await known_skills(tx.conn, caller.federation_id)


async def replace(uow: Transactions, caller: Caller, skills: dict[str, str]) -> dict[str, str]:
    if caller.role != "federation-staff":
        raise Forbidden("Only federation staff own the skills taxonomy.")
    async with uow(caller.tenant) as tx:
        await storage.replace_skills(tx.conn, caller.federation_id, skills)
    return skills
