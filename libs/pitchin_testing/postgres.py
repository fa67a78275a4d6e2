"""PostgreSQL as a local process, from Debian's ``postgresql-15`` binaries, run as the
``postgres`` system user when root.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from functools import partial
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from pitchin_core.db import OWNER_ROLE, app_role, bootstrap_roles_sql, database_grants_sql, migrate
from pitchin_testing.install import pg_bin_dir
from pitchin_testing.lifecycle import (
    POLL_INTERVAL,
    LocalServer,
    ServerError,
    children_of,
    pid_alive,
    run_async,
    running_servers,
    tail,
    wait_pids_gone,
)

# The schemas whose services get a runtime role (pitchin_core.db): every service with migrations.
SERVICE_SCHEMAS = ["signups", "matching", "notifications", "scheduling", "web"]
# TCP needs a password (SCRAM); the Unix socket, reachable only by root and postgres, trusts.
_HBA = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"


def role_password(superuser_password: str, role: str) -> str:
    """A role's password, derived from the cluster's superuser password: whoever holds the
    superuser DSN (the test stack, `make run`) can hand each service its own DSN."""
    return hmac.new(superuser_password.encode(), role.encode(), hashlib.sha256).hexdigest()[:32]


def role_dsn(superuser_dsn: str, role: str) -> str:
    """The DSN of `role` on the same server and database as `superuser_dsn`."""
    parts = urlsplit(superuser_dsn)
    password = role_password(parts.password or "", role)
    netloc = f"{quote(role)}:{quote(password)}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def migration_dsn(superuser_dsn: str) -> str:
    """The owner's DSN: what runs the migrations."""
    return role_dsn(superuser_dsn, OWNER_ROLE)


def service_dsn(superuser_dsn: str, service: str) -> str:
    """The runtime DSN of `service`: its non-owner login role."""
    return role_dsn(superuser_dsn, app_role(service))


# A schema made before the owner role (an older `make run` state, migrated as the superuser):
# it and everything in it become the owner's, so the migrations and policies can go on.
_HAND_TO_OWNER = f"""
DO $$DECLARE r record; BEGIN
  IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '<schema>'
             AND nspowner <> (SELECT oid FROM pg_roles WHERE rolname = '{OWNER_ROLE}')) THEN
    FOR r IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = '<schema>' AND c.relkind IN ('r', 'p', 'v', 'm') LOOP
      EXECUTE format('ALTER TABLE %s OWNER TO {OWNER_ROLE}', r.name);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = '<schema>' LOOP
      EXECUTE format('ALTER ROUTINE %s OWNER TO {OWNER_ROLE}', r.name);
    END LOOP;
    ALTER SCHEMA "<schema>" OWNER TO {OWNER_ROLE};
  END IF;
END$$"""


def has_schema(service: str) -> bool:
    """Whether `service` keeps tables (a `pitchin_<service>/migrations` folder)."""
    try:
        return (files(f"pitchin_{service}") / "migrations").is_dir()
    except ModuleNotFoundError:
        return False


async def prepare_service_schemas(superuser_dsn: str, services: list[str]) -> None:
    """The database's grants to the service roles, then each service's migrations run as the
    owner role (its own step: the services' runtime roles cannot run DDL)."""
    database = urlsplit(superuser_dsn).path.lstrip("/")
    conn = await asyncpg.connect(superuser_dsn)
    try:
        for statement in database_grants_sql(database, SERVICE_SCHEMAS):
            await conn.execute(statement)
        for service in services:
            await conn.execute(_HAND_TO_OWNER.replace("<schema>", service))
    finally:
        await conn.close()
    for service in services:
        await migrate(migration_dsn(superuser_dsn), service, files(f"pitchin_{service}") / "migrations")


def _quote_ident(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


class PostgresServer(LocalServer):
    """A private PostgreSQL cluster on 127.0.0.1, run as the ``postgres`` user when root.

    PostgreSQL refuses to run as root, and the ``postgres`` user cannot enter 0700 directories
    such as ``/root``. The cluster itself therefore lives in
    ``/var/tmp/pitchin-pg-<sha1(state_dir)[:12]>`` (``data/``, ``sock/``, ``server.log``);
    ``state_dir/cluster`` is a symlink to it. ``cleanup()`` removes it (after copying the server
    log into ``state_dir/logs``).
    """

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        digest = hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:12]
        self.base_dir = Path("/var/tmp") / f"pitchin-pg-{digest}"
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_file = self.base_dir / "server.log"
        # A new superuser password each start; the service roles' passwords derive from it.
        self.superuser_password = secrets.token_urlsafe(24)
        self.dsn = self.dsn_for("postgres")
        self._as_root = os.geteuid() == 0

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres:{self.superuser_password}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid``, if the server is running."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        except OSError:
            return None
        if not first.isdigit():
            return None
        pid = int(first)
        return pid if pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def __repr__(self) -> str:
        return f"PostgresServer(dsn={self.dsn!r}, base_dir={str(self.base_dir)!r})"

    # -- commands --------------------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        if self._as_root:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._cmd(*args),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )

    def _prepare_dirs(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        link = self.state_dir / "cluster"
        if not link.is_symlink():
            link.symlink_to(self.base_dir, target_is_directory=True)

    def _initdb(self, bindir: Path) -> None:
        result = self._run(
            str(bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            timeout=120,
        )
        if result.returncode != 0:
            raise ServerError(f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
        settings = "\n".join(
            [
                "",
                "# --- pitchin_testing.postgres.PostgresServer ---",
                "listen_addresses = '127.0.0.1'",
                f"port = {self.port}",
                f"unix_socket_directories = '{self.socket_dir}'",
                "shared_buffers = 256MB",
                "max_connections = 300",
                "fsync = on",
                "",
            ]
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def _write_hba(self) -> None:
        """Password (SCRAM) on TCP, also for a cluster made before this rule (``make run``'s)."""
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(_HBA)
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(hba, pw.pw_uid, pw.pw_gid)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 90) -> None:
        """initdb if needed, ``pg_ctl start`` and wait until asyncpg can connect."""
        self._refuse_second_start(self.port)
        deadline = time.monotonic() + timeout
        bindir = pg_bin_dir()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bindir)
        self._write_hba()
        wait = max(1, int(min(60.0, deadline - time.monotonic())))
        result = self._run(
            str(bindir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            f"-p {self.port}",
            "-w",
            "-t",
            str(wait),
            "start",
            timeout=wait + 30,
        )
        running_servers.add(self)
        if result.returncode != 0:
            self.stop(timeout=10)
            raise ServerError(
                f"pg_ctl start failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"--- server.log ---\n{tail(self.log_file)}"
            )
        self._ready_or_stopped(deadline)

    def _wait_ready(self, deadline: float) -> None:
        last_error = ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(
                    f"PostgreSQL on port {self.port} not ready in time ({last_error}).\n"
                    f"--- server.log ---\n{tail(self.log_file)}"
                )
            try:
                run_async(partial(self._set_up_roles, min(5.0, remaining)))
            except Exception as exc:
                last_error = repr(exc)
            else:
                return
            if not self.is_running():
                raise ServerError(f"PostgreSQL exited early.\n--- server.log ---\n{tail(self.log_file)}")
            time.sleep(POLL_INTERVAL)

    async def _set_up_roles(self, limit: float) -> None:
        """Over the Unix socket (trusted): this start's superuser password, then the owner and
        every service's runtime roles with passwords derived from it (pitchin_core.db)."""
        conn = await asyncpg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", database="postgres", timeout=limit
        )
        try:
            await conn.execute(f"ALTER ROLE postgres PASSWORD '{self.superuser_password}'", timeout=limit)
            roles = [OWNER_ROLE, *(app_role(s) for s in SERVICE_SCHEMAS)]
            passwords = {role: role_password(self.superuser_password, role) for role in roles}
            for statement in bootstrap_roles_sql(SERVICE_SCHEMAS, passwords):
                await conn.execute(statement, timeout=limit)
        finally:
            await conn.close()

    async def _query_value(self, sql: str, limit: float = 10.0) -> object:
        conn = await asyncpg.connect(self.dsn, timeout=limit)
        try:
            return await conn.fetchval(sql, timeout=limit)
        finally:
            await conn.close()

    async def _execute(self, sql: str, limit: float = 60.0) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=limit)
        try:
            await conn.execute(sql, timeout=limit)
        finally:
            await conn.close()

    def stop(self, timeout: float = 30) -> None:
        """``pg_ctl -m fast -w stop``; SIGKILL if that does not finish in ``timeout``."""
        if not self.is_running():
            running_servers.discard(self)
            return
        bindir = pg_bin_dir()
        try:
            result = self._run(
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(max(1, int(timeout))),
                "stop",
                timeout=timeout + 10,
            )
            ok = result.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if not ok and self.is_running():
            self.kill()
        running_servers.discard(self)

    def kill(self) -> None:
        """SIGKILL the postmaster (crash tests); waits until its children have exited too."""
        pid = self.pid
        if pid is None:
            return
        children = children_of(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        # Backends notice the postmaster's death and exit on their own; a straggler would keep
        # the shared memory segment attached and block the next start.
        leftovers = wait_pids_gone([pid, *children], timeout=10)
        for child in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        wait_pids_gone(leftovers, timeout=5)
        # The dead postmaster is re-parented to pid 1, which on this machine kind reaps orphans
        # only every few seconds; until then it is a zombie, and PostgreSQL (kill(pid, 0)) would
        # take its lock files for a live server and refuse to start. The postmaster and all its
        # children are verified gone, so those lock files are stale: remove them.
        if not pid_alive(pid):
            for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"):
                with contextlib.suppress(OSError):
                    if lock.read_text().split("\n", 1)[0].strip() == str(pid):
                        lock.unlink()
        running_servers.discard(self)

    def cleanup(self) -> None:
        """Stop, keep a copy of the server log in ``state_dir/logs`` and delete the cluster."""
        self.stop()
        if self.log_file.is_file():
            logs = self.state_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log_file, logs / "postgresql.log")
        shutil.rmtree(self.base_dir, ignore_errors=True)
        link = self.state_dir / "cluster"
        if link.is_symlink():
            link.unlink()

    # -- databases -------------------------------------------------------------------------
    def create_database(self, name: str) -> str:
        """Create database ``name`` (its schemas made by the owner role) and return its superuser DSN."""
        run_async(lambda: self._execute(f"CREATE DATABASE {_quote_ident(name)}"))
        self.grant_service_roles(name)
        return self.dsn_for(name)

    def grant_service_roles(self, name: str) -> None:
        """Let the owner create schemas in database ``name`` and each service's role connect."""
        run_async(lambda: self._execute_in(name, database_grants_sql(name, SERVICE_SCHEMAS)))

    async def _execute_in(self, database: str, statements: list[str], limit: float = 60.0) -> None:
        conn = await asyncpg.connect(self.dsn_for(database), timeout=limit)
        try:
            for statement in statements:
                await conn.execute(statement, timeout=limit)
        finally:
            await conn.close()

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions."""
        run_async(lambda: self._execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"))
