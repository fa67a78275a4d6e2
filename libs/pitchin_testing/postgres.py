"""PostgreSQL as a local process, from Debian's ``postgresql-15`` binaries, run as the
``postgres`` system user when root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

import asyncpg

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
        self.dsn = self.dsn_for("postgres")
        self._as_root = os.geteuid() == 0

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

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

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 90) -> None:
        """initdb if needed, ``pg_ctl start`` and wait until asyncpg can connect."""
        self._refuse_second_start(self.port)
        deadline = time.monotonic() + timeout
        bindir = pg_bin_dir()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bindir)
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
                run_async(partial(self._query_value, "SELECT 1", min(5.0, remaining)))
            except Exception as exc:
                last_error = repr(exc)
            else:
                return
            if not self.is_running():
                raise ServerError(f"PostgreSQL exited early.\n--- server.log ---\n{tail(self.log_file)}")
            time.sleep(POLL_INTERVAL)

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
        """Create database ``name`` and return its DSN."""
        run_async(lambda: self._execute(f"CREATE DATABASE {_quote_ident(name)}"))
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions."""
        run_async(lambda: self._execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"))
