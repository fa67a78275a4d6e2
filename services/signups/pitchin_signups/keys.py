"""Issue a federation's first API key: `python -m pitchin_signups.keys --federation F --role federation-staff`.

A federation with no staff key yet cannot call `POST /v1/api-keys`, so the platform's
operator issues its first key here (the chart, `make run`'s demo and the test stack do the
same). It goes through the same use case as the API: signups keeps the hash and publishes the
key on pitchin.keys.v1, and every other service learns it from there. The key is printed once.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from pitchin_core.auth import ROLES
from pitchin_core.db import create_pool
from pitchin_core.settings import ServiceSettings
from pitchin_core.uow import UnitOfWork
from pitchin_signups.domain.api_keys import DEFAULT_LIFETIME_DAYS, MAX_LIFETIME_DAYS
from pitchin_signups.service import api_keys


async def issue_first_key(
    database_url: str,
    *,
    federation_id: str,
    organisation_id: str | None,
    role: str,
    label: str,
    key: str | None = None,
    lifetime_days: int = DEFAULT_LIFETIME_DAYS,
    schema: str = "signups",
) -> str:
    """Issue a key as the platform, into signups' schema and outbox; returns the key."""
    pool = await create_pool(database_url, schema, size=1)
    try:
        uow = UnitOfWork(lambda: pool, source="/pitchin/signups", consumer="signups")
        _, issued = await api_keys.issue_first(
            uow,
            federation_id=federation_id,
            organisation_id=organisation_id,
            role=role,
            label=label,
            now=datetime.now(UTC),
            key=key,
            lifetime_days=lifetime_days,
        )
        return issued
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--federation", required=True)
    parser.add_argument("--organisation", default=None, help="for an organiser's key")
    parser.add_argument("--role", choices=ROLES, default="federation-staff")
    parser.add_argument("--label", default="first staff key")
    parser.add_argument("--days", type=int, default=DEFAULT_LIFETIME_DAYS, help=f"1 to {MAX_LIFETIME_DAYS}")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= MAX_LIFETIME_DAYS:
        parser.error(f"--days: 1 to {MAX_LIFETIME_DAYS}")
    settings = ServiceSettings(service_name="signups")
    key = asyncio.run(
        issue_first_key(
            settings.database_url,
            federation_id=args.federation,
            organisation_id=args.organisation,
            role=args.role,
            label=args.label,
            lifetime_days=args.days,
            schema=settings.db_schema,
        )
    )
    print(key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
