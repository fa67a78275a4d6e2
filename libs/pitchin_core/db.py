"""PostgreSQL access: one pool per service bound to its own schema, and the migrations runner."""

from __future__ import annotations

import logging
import re
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

log = logging.getLogger(__name__)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def core_migrations() -> Traversable:
    return files("pitchin_core") / "migrations"


class _NoResetConnection(asyncpg.Connection):
    """A pooled connection that skips asyncpg's reset query on release.

    The default (`RESET ALL; UNLISTEN *; pg_advisory_unlock_all(); CLOSE ALL`) is one more
    round trip on every request, 14% of signups' CPU in a profile. Our code keeps no
    session state: settings are per transaction (`SET LOCAL`), advisory locks are
    transaction-scoped (except the outbox relay's session lock, which it releases itself before the
    connection goes back, or closes the connection), and nothing LISTENs.
    An open transaction is still rolled back by asyncpg itself.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(dsn: str, schema: str, size: int = 10) -> asyncpg.Pool:
    _check_schema(schema)
    pool = await asyncpg.create_pool(
        dsn,
        connection_class=_NoResetConnection,
        min_size=1,
        max_size=size,
        server_settings={"search_path": schema, "application_name": f"pitchin-{schema}"},
    )
    assert pool is not None
    return pool


async def migrate(dsn: str, schema: str, service_migrations: Traversable) -> list[str]:
    """Apply pending migrations (core ones first) in one transaction under an advisory lock.

    Replicas starting together, or a Helm migration Job racing a pod, queue on the lock
    instead of applying the same file twice.
    """
    _check_schema(schema)
    applied: list[str] = []
    conn: Conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"pitchin-migrate-{schema}")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for prefix, folder in (("core", core_migrations()), ("service", service_migrations)):
                for entry in sorted(folder.iterdir(), key=lambda e: e.name):
                    if not entry.name.endswith(".sql"):
                        continue
                    version = f"{prefix}/{entry.name}"
                    if version in done:
                        continue
                    await conn.execute(entry.read_text(encoding="utf-8"))
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                    applied.append(version)
    finally:
        await conn.close()
    if applied:
        log.info("applied migrations to %s: %s", schema, ", ".join(applied))
    return applied


def _check_schema(schema: str) -> None:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")


# What a service's SQL functions take: a plain connection or one borrowed from the pool.
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
