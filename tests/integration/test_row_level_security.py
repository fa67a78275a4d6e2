"""Row-level security with the services' real roles (issue 17): the runtime role of a service
connects as in production (pitchin_core.db), its transactions act for a tenant through the unit
of work, and PostgreSQL, not the application's WHERE, keeps federations apart.

Uses signups' `skills` table (federation-scoped, no other constraint) as the probe; the
catalogue test covers every tenant table of every service schema.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from pitchin_core.db import app_role, create_pool, migrate, tenant_role
from pitchin_core.uow import Tenant, UnitOfWork, one_transaction
from pitchin_testing.postgres import (
    PostgresServer,
    has_schema,
    migration_dsn,
    prepare_service_schemas,
    service_dsn,
)

SERVICES = [name for name in ("signups", "matching", "notifications", "scheduling", "web") if has_schema(name)]
FED_A, FED_B = "fed-rls-a", "fed-rls-b"


@pytest.fixture(scope="module")
def rls_database(postgres_server: PostgresServer) -> str:
    """A database of its own with every service schema, migrated by the owner role."""
    dsn = postgres_server.create_database(f"pitchin_rls_{uuid.uuid4().hex[:6]}")
    asyncio.run(prepare_service_schemas(dsn, SERVICES))
    return dsn


@pytest.fixture
async def superuser(rls_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(rls_database)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def skills(superuser: asyncpg.Connection) -> dict[str, list[str]]:
    """Two skills in each of two federations, written as the superuser (who bypasses RLS)."""
    made: dict[str, list[str]] = {FED_A: [], FED_B: []}
    for federation in made:
        for _ in range(2):
            slug = f"skill-{uuid.uuid4().hex[:8]}"
            await superuser.execute(
                "INSERT INTO signups.skills (federation_id, slug, label) VALUES ($1, $2, $2)", federation, slug
            )
            made[federation].append(slug)
    return made


@pytest.fixture
async def signups_pool(rls_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(service_dsn(rls_database, "signups"), "signups", size=2)
    try:
        yield pool
    finally:
        await pool.close()


def signups_uow(pool: asyncpg.Pool) -> UnitOfWork:
    return UnitOfWork(pool, source="/pitchin/signups", consumer="signups")


async def visible(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, slugs: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT slug FROM skills WHERE slug = ANY($1::text[])", slugs)
    return {r["slug"] for r in rows}


async def test_the_runtime_role_is_no_owner_and_no_superuser(superuser: asyncpg.Connection) -> None:
    for service in SERVICES:
        role = await superuser.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1",
            app_role(service),
        )
        assert role is not None, f"{app_role(service)} missing"
        assert not any(role.values()), f"{app_role(service)}: {dict(role)}"
        owned = await superuser.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = ANY($1::text[])",
            [app_role(service), tenant_role(service)],
        )
        assert owned == 0


async def test_a_tenant_role_without_the_tenant_set_sees_nothing(
    signups_pool: asyncpg.Pool, skills: dict[str, list[str]]
) -> None:
    every = skills[FED_A] + skills[FED_B]
    async with signups_pool.acquire() as conn, conn.transaction():
        await conn.execute(f'SET LOCAL ROLE "{tenant_role("signups")}"')
        assert await visible(conn, every) == set()
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute("INSERT INTO skills (federation_id, slug, label) VALUES ($1, 'sneaked-in', 'x')", FED_A)


async def test_a_tenant_transaction_cannot_read_or_change_another_tenants_rows(
    signups_pool: asyncpg.Pool, superuser: asyncpg.Connection, skills: dict[str, list[str]]
) -> None:
    every = skills[FED_A] + skills[FED_B]
    uow = signups_uow(signups_pool)
    async with uow(Tenant(FED_A)) as tx:
        assert await tx.conn.fetchval("SELECT current_user") == tenant_role("signups")
        # A WHERE naming the other federation finds nothing: the policy is ANDed with it.
        assert await visible(tx.conn, every) == set(skills[FED_A])
        assert await tx.conn.fetchval("SELECT count(*) FROM skills WHERE federation_id = $1", FED_B) == 0
        assert await tx.conn.execute("UPDATE skills SET label = 'taken' WHERE federation_id = $1", FED_B) == "UPDATE 0"
        assert await tx.conn.execute("DELETE FROM skills WHERE slug = ANY($1::text[])", skills[FED_B]) == "DELETE 0"
    for forbidden in (
        ("INSERT INTO skills (federation_id, slug, label) VALUES ($1, 'planted', 'x')", FED_B),
        ("UPDATE skills SET federation_id = $1 WHERE slug = $2", FED_B, skills[FED_A][0]),
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with uow(Tenant(FED_A)) as tx:
                await tx.conn.execute(*forbidden)
    labels = await superuser.fetch(
        "SELECT federation_id, label FROM signups.skills WHERE slug = ANY($1::text[])", every
    )
    assert (
        sorted((r["federation_id"], r["label"] != "taken") for r in labels) == [(FED_A, True)] * 2 + [(FED_B, True)] * 2
    )


async def test_a_batch_acting_for_many_tenants_sees_each_ones_rows_in_turn(
    signups_pool: asyncpg.Pool, skills: dict[str, list[str]]
) -> None:
    every = skills[FED_A] + skills[FED_B]
    uow = signups_uow(signups_pool)
    seen: list[set[str]] = []
    async with one_transaction():
        for tenant in (Tenant(FED_A), Tenant(FED_B), None, Tenant(FED_A)):
            async with uow(tenant) as tx:
                seen.append(await visible(tx.conn, every))
    # A tenant-less use case (a background look-up) sees every tenant of the service's schema.
    assert seen == [set(skills[FED_A]), set(skills[FED_B]), set(every), set(skills[FED_A])]


async def test_the_runtime_role_cannot_run_ddl_nor_read_another_services_schema(signups_pool: asyncpg.Pool) -> None:
    forbidden = [
        "CREATE TABLE signups.sneaky (id int)",
        "CREATE TABLE public.sneaky (id int)",
        "ALTER TABLE signups.skills DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE signups.skills NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant ON signups.skills",
        "TRUNCATE signups.skills",
        "CREATE SCHEMA sneaky",
        "SELECT count(*) FROM matching.donors",
        "SELECT count(*) FROM notifications.deliveries",
        "SELECT count(*) FROM signups.schema_migrations",
        f'SET ROLE "{app_role("matching")}"',
    ]
    for statement in forbidden:
        async with signups_pool.acquire() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)


async def test_no_tenant_setting_leaks_to_the_next_user_of_a_pooled_connection(
    signups_pool: asyncpg.Pool, skills: dict[str, list[str]]
) -> None:
    every = skills[FED_A] + skills[FED_B]
    uow = signups_uow(signups_pool)
    wrong: list[str] = []
    backends: set[int] = set()

    async def act(i: int) -> None:
        federation = (FED_A, FED_B)[i % 2]
        async with uow(Tenant(federation)) as tx:
            backends.add(await tx.conn.fetchval("SELECT pg_backend_pid()"))
            if await visible(tx.conn, every) != set(skills[federation]):
                wrong.append(f"transaction {i} for {federation}")
        if i % 10 == 0:  # a bare use of the pool in between: no tenant, no tenant role left over
            async with signups_pool.acquire() as conn:
                left = await conn.fetchrow(
                    "SELECT current_user AS who, current_setting('pitchin.federation_id', true) AS federation"
                )
                assert left is not None
                if left["who"] != app_role("signups") or left["federation"]:
                    wrong.append(f"after {i}: {dict(left)}")

    for start in range(0, 400, 16):  # 400 transactions, 16 at a time on a pool of 2
        await asyncio.gather(*(act(i) for i in range(start, start + 16)))
    assert wrong == []
    assert len(backends) == 2, "both pooled connections served both tenants"


async def test_every_tenant_table_has_forced_row_level_security_and_a_policy(superuser: asyncpg.Connection) -> None:
    rows = await superuser.fetch(
        "SELECT n.nspname || '.' || c.relname AS name, c.relrowsecurity AND c.relforcerowsecurity AS forced,"
        " array(SELECT p.polname::text FROM pg_policy p WHERE p.polrelid = c.oid ORDER BY 1) AS policies"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p') AND EXISTS ("
        "  SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname IN ('federation_id', 'organisation_id')"
        "  AND NOT a.attisdropped)",
        SERVICES,
    )
    assert len(rows) >= 40, "the four backends hold some forty tenant tables"
    unguarded = [r["name"] for r in rows if not r["forced"] or r["policies"] != ["across_tenants", "tenant"]]
    assert unguarded == []


async def test_a_table_added_by_a_later_migration_gets_the_policy(rls_database: str, tmp_path: Path) -> None:
    (tmp_path / "001_a_new_table.sql").write_text(
        "CREATE TABLE newcomers (federation_id text NOT NULL, name text NOT NULL);"
        "CREATE TABLE lookup (code text PRIMARY KEY);"
    )
    schema = f"later_{uuid.uuid4().hex[:6]}"
    await migrate(migration_dsn(rls_database), schema, tmp_path)
    conn = await asyncpg.connect(rls_database)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, c.relforcerowsecurity AS forced,"
            " EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant') AS policy"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
            schema,
        )
        guarded = {r["relname"]: (r["forced"], r["policy"]) for r in rows}
        assert guarded["newcomers"] == (True, True)
        assert guarded["lookup"] == (False, False)  # no tenant column: nothing to scope
    finally:
        await conn.close()
