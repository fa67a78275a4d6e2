"""Real servers as local processes: Apache Kafka (KRaft), PostgreSQL and an SMTP sink.

No Docker: Kafka runs from the official jars (fetched by ``deploy/local/install.sh`` into a
cache outside the clone), PostgreSQL from Debian's ``postgresql-15`` binaries as the
``postgres`` system user, and the SMTP sink is an in-process aiosmtpd controller.

Every method here is synchronous. From async code, call the slow ones (``start``, ``stop``,
``create_database`` ...) through ``asyncio.to_thread`` so the event loop keeps running.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import email
import email.policy
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

__all__ = [
    "KAFKA_VERSION",
    "KafkaServer",
    "PostgresServer",
    "ServerError",
    "SmtpSink",
    "cache_dir",
    "ensure_installed",
    "free_port",
    "free_ports",
    "kafka_libs",
    "pg_bin_dir",
    "repo_root",
]

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
PREFERRED_PG_MAJOR = "15"
POLL_INTERVAL = 0.1

_T = TypeVar("_T")


class ServerError(RuntimeError):
    """A server failed to start, stop or answer in time."""


# --------------------------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------------------------


def repo_root() -> Path:
    """The root of the clone (``libs/pitchin_testing/servers.py`` -> ``parents[2]``)."""
    return Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all sockets held open while picking)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def cache_dir() -> Path:
    """Download cache shared by all clones: ``$PITCHIN_CACHE`` or ``~/.cache/pitchin``."""
    configured = os.environ.get("PITCHIN_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "pitchin"


def kafka_libs() -> Path:
    """Directory holding the Kafka runtime jars (its ``*`` is the JVM class path)."""
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def _kafka_installed() -> bool:
    return (kafka_libs() / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file()


def _pg_bin_dirs() -> list[Path]:
    dirs = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    # Preferred major first, then the newest of the others.
    return sorted(dirs, key=lambda d: (d.parent.name != PREFERRED_PG_MAJOR, -_major(d.parent.name)))


def _major(name: str) -> int:
    try:
        return int(name)
    except ValueError:
        return 0


def pg_bin_dir() -> Path:
    """``/usr/lib/postgresql/<major>/bin``, preferring major 15."""
    dirs = _pg_bin_dirs()
    if not dirs:
        raise ServerError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; run ensure_installed()")
    return dirs[0]


_install_lock = threading.Lock()


def ensure_installed() -> None:
    """Run ``deploy/local/install.sh`` if the Kafka jars or PostgreSQL's initdb are missing."""
    with _install_lock:
        if _kafka_installed() and _pg_bin_dirs():
            return
        script = repo_root() / "deploy" / "local" / "install.sh"
        env = dict(os.environ, PITCHIN_CACHE=str(cache_dir()))
        result = subprocess.run(["bash", str(script)], cwd=repo_root(), env=env, check=False)
        if result.returncode != 0:
            raise ServerError(f"{script} failed with exit code {result.returncode}")
        if not (_kafka_installed() and _pg_bin_dirs()):
            raise ServerError(f"{script} finished but the Kafka jars or initdb are still missing")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data.splitlines()[-lines:])


def _port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _run_async(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on a private loop in a worker thread.

    Works whether or not the calling thread already runs an event loop.
    """

    async def main() -> _T:
        return await factory()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitchin-servers") as pool:
        return pool.submit(asyncio.run, main()).result()


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (pid 1 here may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Format: "pid (comm) state ..."; comm may contain spaces and parentheses.
    state = stat[stat.rfind(")") + 2 :].split(" ", 1)[0]
    return state not in ("Z", "X")


def _children_of(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split(" ")
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(entry.name))
    return children


def _wait_pids_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if _pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _pid_alive(p)]
    return alive


# Servers still running when the interpreter exits are stopped (best effort), so an aborted
# test session does not leave brokers behind.
_live_servers: weakref.WeakSet[KafkaServer | PostgresServer] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop(timeout=10)


# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------


def _kafka_cluster_id() -> str:
    """A Kafka-style cluster id: a random UUID in URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ServerError("java not found on PATH; run ensure_installed()")
    return found


async def _kafka_metadata(bootstrap: str, limit: float) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(limit * 1000))
    try:
        async with asyncio.timeout(limit):
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
        return cluster
    finally:
        await admin.close()


class KafkaServer:
    """A single-node Kafka (KRaft broker + controller) on 127.0.0.1, run from the cached jars.

    Everything lives in ``state_dir``: ``server.properties``, ``data/`` (log.dirs; kept across
    restarts) and ``logs/`` (``server.log`` from log4j2, ``stdout.log`` from the JVM).
    """

    def __init__(
        self,
        state_dir: Path,
        port: int,
        controller_port: int,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        # Appended after the defaults (a later key wins in Java .properties), e.g.
        # {"broker.session.timeout.ms": "3000"} for faster restarts after kill().
        self.extra_properties = dict(extra_properties or {})
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths and properties ----------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def properties_file(self) -> Path:
        return self.state_dir / "server.properties"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        return f"KafkaServer(bootstrap={self.bootstrap!r}, state_dir={str(self.state_dir)!r})"

    def server_properties(self) -> str:
        """The broker configuration. Java .properties: comments only on their own lines."""
        extra = [f"{key}={value}" for key, value in self.extra_properties.items()]
        for line in extra:
            if "\n" in line or "#" in line:
                raise ValueError(f"unsupported characters in Kafka property {line!r}")
        return "\n".join(
            [
                "# Written by pitchin_testing.servers.KafkaServer; rewritten on every start.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data_dir}",
                "num.partitions=3",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "min.insync.replicas=1",
                "default.replication.factor=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "# Flushing: Kafka's defaults (no forced fsync per message or interval; the OS page",
                "# cache writes back). Spelled out so nobody mistakes them for an oversight.",
                "log.flush.interval.messages=9223372036854775807",
                "log.flush.scheduler.interval.ms=9223372036854775807",
                "log.flush.offset.checkpoint.interval.ms=60000",
                *(["# extra_properties"] if extra else []),
                *extra,
                "",
            ]
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def _is_formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()

    def _format(self) -> None:
        tools_log4j = repo_root() / "deploy" / "local" / "kafka" / "tools-log4j2.properties"
        cmd = [
            _java(),
            f"-Dlog4j2.configurationFile={tools_log4j}",
            "-cp",
            f"{kafka_libs()}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _kafka_cluster_id(),
            "-c",
            str(self.properties_file),
            "--standalone",
        ]
        result = subprocess.run(cmd, cwd=self.state_dir, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise ServerError(
                f"kafka storage format failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def start(self, timeout: float = 120) -> None:
        """Write the config, format storage if new, launch the JVM and wait until it serves."""
        if self.is_running():
            raise ServerError(f"{self!r} is already running (pid {self.pid})")
        if not _kafka_installed():
            raise ServerError(f"Kafka jars missing in {kafka_libs()}; run ensure_installed()")
        for port in (self.port, self.controller_port):
            if _port_open(port):
                raise ServerError(f"port {port} is already in use; cannot start {self!r}")
        deadline = time.monotonic() + timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.server_properties())
        if not self._is_formatted():
            self._format()

        log4j = repo_root() / "deploy" / "local" / "kafka" / "log4j2.properties"
        cmd = [
            _java(),
            "-Xms512m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{kafka_libs()}/*",
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with (self.logs_dir / "stdout.log").open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _live_servers.add(self)
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.stop(timeout=10)
            raise

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        last_error = "broker port not open yet"
        while True:
            code = proc.poll()
            if code is not None:
                raise ServerError(
                    f"Kafka exited early with code {code}.\n--- server.log ---\n{_tail(self.server_log)}"
                    f"\n--- stdout.log ---\n{_tail(self.logs_dir / 'stdout.log')}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(
                    f"Kafka on {self.bootstrap} not ready in time ({last_error}).\n"
                    f"--- server.log ---\n{_tail(self.server_log)}"
                )
            if _port_open(self.port):
                try:
                    cluster = _run_async(partial(_kafka_metadata, self.bootstrap, min(10.0, remaining)))
                except Exception as exc:
                    last_error = f"metadata request failed: {exc!r}"
                else:
                    if cluster.get("brokers"):
                        return
                    last_error = f"metadata without brokers: {cluster!r}"
            time.sleep(POLL_INTERVAL)

    def _signal(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (controlled shutdown), then SIGKILL after ``timeout``. Returns the exit code.

        143 (128 + SIGTERM) is the JVM's normal exit code after SIGTERM.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait(timeout=30)
        _live_servers.discard(self)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the broker (crash tests); data stays for the next ``start()``."""
        proc = self._proc
        if proc is None:
            return
        self._signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _live_servers.discard(self)


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def _quote_ident(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


class PostgresServer:
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
        self._as_root = os.geteuid() == 0

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

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
        return pid if _pid_alive(pid) else None

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
                "# --- pitchin_testing.servers.PostgresServer ---",
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
        if self.is_running():
            raise ServerError(f"{self!r} is already running (pid {self.pid})")
        if _port_open(self.port):
            raise ServerError(f"port {self.port} is already in use; cannot start {self!r}")
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
        _live_servers.add(self)
        if result.returncode != 0:
            self.stop(timeout=10)
            raise ServerError(
                f"pg_ctl start failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"--- server.log ---\n{_tail(self.log_file)}"
            )
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.stop(timeout=10)
            raise

    def _wait_ready(self, deadline: float) -> None:
        last_error = ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(
                    f"PostgreSQL on port {self.port} not ready in time ({last_error}).\n"
                    f"--- server.log ---\n{_tail(self.log_file)}"
                )
            try:
                _run_async(partial(self._query_value, "SELECT 1", min(5.0, remaining)))
            except Exception as exc:
                last_error = repr(exc)
            else:
                return
            if not self.is_running():
                raise ServerError(f"PostgreSQL exited early.\n--- server.log ---\n{_tail(self.log_file)}")
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
            _live_servers.discard(self)
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
        _live_servers.discard(self)

    def kill(self) -> None:
        """SIGKILL the postmaster (crash tests); waits until its children have exited too."""
        pid = self.pid
        if pid is None:
            return
        children = _children_of(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        # Backends notice the postmaster's death and exit on their own; a straggler would keep
        # the shared memory segment attached and block the next start.
        leftovers = _wait_pids_gone([pid, *children], timeout=10)
        for child in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        _wait_pids_gone(leftovers, timeout=5)
        # The dead postmaster is re-parented to pid 1, which on this machine kind reaps orphans
        # only every few seconds; until then it is a zombie, and PostgreSQL (kill(pid, 0)) would
        # take its lock files for a live server and refuse to start. The postmaster and all its
        # children are verified gone, so those lock files are stale: remove them.
        if not _pid_alive(pid):
            for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"):
                with contextlib.suppress(OSError):
                    if lock.read_text().split("\n", 1)[0].strip() == str(pid):
                        lock.unlink()
        _live_servers.discard(self)

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
        _run_async(lambda: self._execute(f"CREATE DATABASE {_quote_ident(name)}"))
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions."""
        _run_async(lambda: self._execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"))


# --------------------------------------------------------------------------------------------
# SMTP sink
# --------------------------------------------------------------------------------------------


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        # SMTP lines end in CRLF; store them with LF like a local mailbox does, so that
        # get_content() returns the text as the sender wrote it.
        message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        # Same convention as aiosmtpd.handlers.Message: keep the envelope visible.
        message["X-MailFrom"] = str(envelope.mail_from)
        message["X-RcptTo"] = ", ".join(str(r) for r in envelope.rcpt_tos)
        # Wall-clock arrival, for benchmarks that measure request-to-inbox latency.
        message["X-Sink-Received-At"] = f"{time.time():.6f}"
        self._sink._deliver(message)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that accepts everything and keeps it.

    Messages are parsed into ``EmailMessage`` objects (with aiosmtpd's ``X-MailFrom`` and
    ``X-RcptTo`` headers for the envelope) and, if ``maildir`` is given, also written there as
    ``.eml`` files that a person can open.
    """

    def __init__(self, port: int | None = None, maildir: Path | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        # aiosmtpd's Controller cannot bind port 0 (its readiness check connects to the port
        # it was given), so pick a free port first.
        self.port = port if port is not None else free_port()
        self.maildir = Path(maildir) if maildir is not None else None
        self._messages: list[EmailMessage] = []
        self._cond = threading.Condition()
        self._counter = 0
        self._controller: Any = None

    def __repr__(self) -> str:
        return f"SmtpSink(host={self.host!r}, port={self.port})"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            raise ServerError(f"{self!r} is already running")
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        controller = Controller(_SinkHandler(self), hostname=self.host, port=self.port, ready_timeout=30)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        controller = self._controller
        self._controller = None
        if controller is not None:
            controller.stop()

    def is_running(self) -> bool:
        return self._controller is not None

    def _deliver(self, message: EmailMessage) -> None:
        with self._cond:
            self._counter += 1
            seq = self._counter
            self._messages.append(message)
            self._cond.notify_all()
        if self.maildir is not None:
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{seq:06d}.eml"
            tmp = self.maildir / f".{name}.tmp"
            tmp.write_bytes(message.as_bytes())
            tmp.rename(self.maildir / name)

    @property
    def messages(self) -> list[EmailMessage]:
        """A copy of the messages received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def _find(self, predicate: Callable[[EmailMessage], bool] | None) -> EmailMessage | None:
        for message in self._messages:
            if predicate is None or predicate(message):
                return message
        return None

    def wait_for(self, predicate: Callable[[EmailMessage], bool] | None = None, timeout: float = 10.0) -> EmailMessage:
        """The first received message matching ``predicate``; waits up to ``timeout`` seconds.

        Blocks the calling thread: from a coroutine whose event loop must keep working (for
        example one that also sends the mail), use ``wait_for_async``.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._find(predicate)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._timeout_message(timeout))
                self._cond.wait(min(remaining, 0.5))

    def wait_for_all(self, predicate: Callable[[EmailMessage], bool], count: int, timeout: float) -> list[EmailMessage]:
        """Messages matching ``predicate`` once ``count`` of them arrived, or those that did by the deadline.

        Not an error at the deadline: a benchmark prints how many arrived. Each message is looked
        at once, as it arrives (thousands of them in a benchmark).
        """
        deadline = time.monotonic() + timeout
        matched: list[EmailMessage] = []
        seen = 0
        with self._cond:
            while True:
                matched += [m for m in self._messages[seen:] if predicate(m)]
                seen = len(self._messages)
                remaining = deadline - time.monotonic()
                if len(matched) >= count or remaining <= 0:
                    return matched
                self._cond.wait(min(remaining, 0.5))

    async def wait_for_async(
        self,
        predicate: Callable[[EmailMessage], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - same signature as wait_for, on purpose
    ) -> EmailMessage:
        """Like ``wait_for`` but polls with ``asyncio.sleep`` so the event loop keeps running."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                found = self._find(predicate)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                with self._cond:
                    raise TimeoutError(self._timeout_message(timeout))
            await asyncio.sleep(0.02)

    def _timeout_message(self, timeout: float) -> str:
        subjects = [str(m.get("Subject", "")) for m in self._messages]
        return f"no matching message within {timeout} s; received subjects: {subjects!r}"

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[EmailMessage]:
        return iter(self.messages)
