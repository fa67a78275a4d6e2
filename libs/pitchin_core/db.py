"""PostgreSQL access: one pool per service bound to its own schema, and the migrations runner.

Roles (docs: `bootstrap_roles_sql`, created by a DBA or `pitchin_testing.postgres` locally):
- `pitchin_owner` owns every service schema and runs the migrations (its own step: the Helm
  Job, the test stack before it starts services). It is bound by row-level security too (FORCE).
- `<service>_app`, the runtime login: DML on its own schema only; no DDL, no other schema, not
  a superuser, no BYPASSRLS. Alone it is the service's *background* identity (outbox relay,
  timers, senders, key and token look-ups), which the `across_tenants` policy lets see its own
  schema's rows of every federation.
- `<service>_tenant`, NOLOGIN, granted to `<service>_app`: every transaction that acts for a
  tenant switches to it in its first statement (`pitchin_core.uow.SET_TENANT`) and then sees
  only that federation's rows, whatever its WHERE says.
"""

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
            # After every migration, not in each file: a table added later cannot be forgotten.
            # Skipped (no lock taken) when every tenant table already has its policy and grants.
            if applied or await tenancy_incomplete(conn, schema):
                await apply_tenancy(conn, schema)
    finally:
        await conn.close()
    if applied:
        log.info("applied migrations to %s: %s", schema, ", ".join(applied))
    return applied


OWNER_ROLE = "pitchin_owner"
# What a tenant transaction may see: its federation's rows. Unset, NULL and '' match nothing
# (fail-closed). Organisation scoping within a federation stays in the application (a
# federation's staff see every member organisation, donors are lent across them).
TENANT_CHECK = "federation_id = current_setting('pitchin.federation_id', true)"


def app_role(schema: str) -> str:
    """The service's runtime login role (its background identity)."""
    return f"{schema}_app"


def tenant_role(schema: str) -> str:
    """The role a tenant's transaction switches to: bound by the `tenant` policy only."""
    return f"{schema}_tenant"


# The tables of `schema` that hold tenant data: every ordinary or partitioned table with a
# federation_id column.
_TENANT_TABLES = """
SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity AS forced,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant') AS has_policy
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'federation_id'
              AND NOT a.attisdropped)
ORDER BY c.relname
"""


async def tenancy_incomplete(conn: Conn, schema: str) -> bool:
    """Whether a tenant table lacks FORCEd RLS or its policy, or the runtime roles lack grants."""
    for row in await conn.fetch(_TENANT_TABLES, schema):
        if not (row["forced"] and row["has_policy"]):
            return True
    app = app_role(schema)
    if not await _role_exists(conn, app):
        return False
    missing = await conn.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'"
        " AND NOT has_table_privilege($2, c.oid, 'SELECT, INSERT, UPDATE, DELETE')",
        schema,
        app,
    )
    return bool(missing)


async def apply_tenancy(conn: Conn, schema: str) -> list[str]:
    """Row-level security on every tenant table of `schema`, and the runtime roles' grants.

    Idempotent; run by `migrate` after a schema's migrations. ENABLE + FORCE (the owner is bound
    too: a data migration that must see every row wraps itself in NO FORCE / FORCE); the
    `tenant` policy for everyone, and `across_tenants` for the service's login role only.
    Returns the tenant tables.
    """
    _check_schema(schema)
    app, tenant = app_role(schema), tenant_role(schema)
    roles = await _role_exists(conn, app) and await _role_exists(conn, tenant)
    tables = [r["relname"] for r in await conn.fetch(_TENANT_TABLES, schema)]
    for table in tables:
        qualified = f'"{schema}"."{table}"'
        await conn.execute(f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        await conn.execute(f"DROP POLICY IF EXISTS tenant ON {qualified}")
        await conn.execute(f"CREATE POLICY tenant ON {qualified} USING ({TENANT_CHECK}) WITH CHECK ({TENANT_CHECK})")
        if roles:
            await conn.execute(f"DROP POLICY IF EXISTS across_tenants ON {qualified}")
            await conn.execute(f'CREATE POLICY across_tenants ON {qualified} TO "{app}" USING (true) WITH CHECK (true)')
    if roles:
        # DML only, never TRUNCATE (it ignores row-level security); no CREATE on the schema.
        for role in (app, tenant):
            await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            await conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
            await conn.execute(f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
            await conn.execute(f'REVOKE ALL ON "{schema}".schema_migrations FROM "{role}"')
    return tables


async def _role_exists(conn: Conn, role: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role))


def bootstrap_roles_sql(schemas: list[str], passwords: dict[str, str]) -> list[str]:
    """The statements a superuser runs once per cluster (and again to change passwords).

    `passwords` maps each login role (`pitchin_owner`, `<schema>_app`) to its password, stored
    as SCRAM (PostgreSQL's default `password_encryption`). The runtime roles are NOBYPASSRLS
    and own nothing; `pitchin.tenant_role` tells the unit of work which role a tenant's
    transaction becomes.
    """

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    statements = [_create_role(OWNER_ROLE, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")]
    statements.append(f"ALTER ROLE {OWNER_ROLE} PASSWORD {literal(passwords[OWNER_ROLE])}")
    for schema in schemas:
        _check_schema(schema)
        app, tenant = app_role(schema), tenant_role(schema)
        statements += [
            _create_role(app, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT"),
            f"ALTER ROLE {app} PASSWORD {literal(passwords[app])}",
            _create_role(tenant, "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"),
            f"GRANT {tenant} TO {app}",
            f"ALTER ROLE {app} SET pitchin.tenant_role = {literal(tenant)}",
        ]
    return statements


def _create_role(role: str, options: str) -> str:
    return (
        f"DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN"
        f" CREATE ROLE {role} {options}; ELSE ALTER ROLE {role} {options}; END IF; END$$"
    )


def database_grants_sql(database: str, schemas: list[str]) -> list[str]:
    """Per database: the owner creates the schemas; each runtime role may connect, nothing more."""
    quoted = '"' + database.replace('"', '""') + '"'
    statements = [
        f"GRANT CONNECT, CREATE ON DATABASE {quoted} TO {OWNER_ROLE}",
        # PostgreSQL 15 already refuses CREATE in public to everyone but its owner; said again.
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ]
    statements += [f"GRANT CONNECT ON DATABASE {quoted} TO {app_role(s)}" for s in schemas]
    return statements


def _check_schema(schema: str) -> None:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")


# What a service's SQL functions take: a plain connection or one borrowed from the pool.
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
