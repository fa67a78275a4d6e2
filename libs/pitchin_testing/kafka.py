"""Apache Kafka (KRaft, one node) as a local process, run from the official jars in the cache.

Authenticated as production is (pitchin_core.kafka_auth): clients log in with SASL/SCRAM-SHA-512,
StandardAuthorizer denies whatever no ACL allows, and only the admin principal (the tests' and
`make run`'s tooling, never a service) is a super user. Plaintext on loopback: no password
crosses the wire (SCRAM), but the data is not encrypted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pitchin_core.kafka_auth import SCRAM_MECHANISM, KafkaCredentials, client_options
from pitchin_testing.install import kafka_installed, kafka_libs, repo_root
from pitchin_testing.lifecycle import (
    POLL_INTERVAL,
    LocalServer,
    ServerError,
    run_async,
    running_servers,
    signal_process,
    stop_process,
    tail,
)
from pitchin_testing.ports import port_open


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


async def _kafka_metadata(bootstrap: str, credentials: KafkaCredentials, limit: float) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(bootstrap, credentials), request_timeout_ms=int(limit * 1000))
    try:
        async with asyncio.timeout(limit):
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
        return cluster
    finally:
        await admin.close()


class KafkaServer(LocalServer):
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
        self.bootstrap = f"127.0.0.1:{port}"
        self.data_dir = self.state_dir / "data"
        self.logs_dir = self.state_dir / "logs"
        self.properties_file = self.state_dir / "server.properties"
        self.server_log = self.logs_dir / "server.log"
        # The admin's and the controller's passwords, made with the storage (the admin's SCRAM
        # credential is written into the metadata at format time: the broker logs in as admin).
        self.credentials_file = self.state_dir / "credentials.json"
        self._passwords: dict[str, str] = {}
        # Appended after the defaults (a later key wins in Java .properties), e.g.
        # {"broker.session.timeout.ms": "3000"} for faster restarts after kill().
        self.extra_properties = dict(extra_properties or {})
        self._proc: subprocess.Popen[bytes] | None = None

    # -- state and properties ----------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        return f"KafkaServer(bootstrap={self.bootstrap!r}, state_dir={str(self.state_dir)!r})"

    # -- credentials ---------------------------------------------------------------------------
    def _load_passwords(self) -> dict[str, str]:
        if not self._passwords:
            if self.credentials_file.is_file():
                self._passwords = json.loads(self.credentials_file.read_text())
            elif self._is_formatted():
                raise ServerError(
                    f"{self.data_dir} was formatted before Kafka had authentication (no {self.credentials_file}):"
                    " remove the state directory (`make clean` for `make run`) and start again"
                )
            else:
                # Hex: SCRAM's format-time parser splits on `,` `=` `]`; 48 characters pass the
                # 32+ rule of `*_secret` settings outside local runs.
                self._passwords = {"admin": secrets.token_hex(24), "controller": secrets.token_hex(24)}
                self.state_dir.mkdir(parents=True, exist_ok=True)
                self.credentials_file.touch(mode=0o600)
                self.credentials_file.write_text(json.dumps(self._passwords))
        return self._passwords

    @property
    def admin(self) -> KafkaCredentials:
        """The super user: topics, users and ACLs; the tests' producers and consumers."""
        return KafkaCredentials("admin", self._load_passwords()["admin"])

    def admin_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments for a client logged in as the admin."""
        return client_options(self.bootstrap, self.admin)

    def server_properties(self) -> str:
        """The broker configuration. Java .properties: comments only on their own lines."""
        extra = [f"{key}={value}" for key, value in self.extra_properties.items()]
        for line in extra:
            if "\n" in line or "#" in line:
                raise ValueError(f"unsupported characters in Kafka property {line!r}")
        passwords = self._load_passwords()
        admin, controller = passwords["admin"], passwords["controller"]
        return "\n".join(
            [
                "# Written by pitchin_testing.kafka.KafkaServer; rewritten on every start. Holds",
                "# passwords: mode 0600.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                f"listeners=BROKER://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=BROKER://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=BROKER",
                "listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
                "# Clients and the broker itself (transaction markers): SCRAM. This JAAS line is also",
                "# the broker's own login, as admin, whose credential is written at format time.",
                f"listener.name.broker.sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
                "listener.name.broker.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required"
                f' username="admin" password="{admin}";',
                "# Broker to controller: PLAIN with a static user, so it does not depend on credentials",
                "# kept in the metadata log. A PLAINTEXT controller listener would reach the authorizer",
                "# as User:ANONYMOUS, which is denied CLUSTER_ACTION (and must never be a super user).",
                "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                "sasl.mechanism.controller.protocol=PLAIN",
                "listener.name.controller.plain.sasl.jaas.config="
                "org.apache.kafka.common.security.plain.PlainLoginModule required"
                f' username="controller" password="{controller}" user_controller="{controller}";',
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:admin;User:controller",
                "allow.everyone.if.no.acl.found=false",
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
            # One argument: an id may start with "-", which the tool would take for an option.
            f"--cluster-id={_kafka_cluster_id()}",
            "-c",
            str(self.properties_file),
            "--standalone",
            # The broker's own login must exist before it starts; every other principal is
            # added later through the Admin API (pitchin_testing.kafka_access).
            f"--add-scram={SCRAM_MECHANISM}=[name=admin,password={self.admin.password}]",
        ]
        result = subprocess.run(cmd, cwd=self.state_dir, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise ServerError(
                f"kafka storage format failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def start(self, timeout: float = 120) -> None:
        """Write the config, format storage if new, launch the JVM and wait until it serves."""
        if not kafka_installed():
            raise ServerError(f"Kafka jars missing in {kafka_libs()}; run ensure_installed()")
        self._refuse_second_start(self.port, self.controller_port)
        deadline = time.monotonic() + timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.touch(mode=0o600)
        self.properties_file.chmod(0o600)
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
        self._ready_or_stopped(deadline)

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        last_error = "broker port not open yet"
        while True:
            code = proc.poll()
            if code is not None:
                raise ServerError(
                    f"Kafka exited early with code {code}.\n--- server.log ---\n{tail(self.server_log)}"
                    f"\n--- stdout.log ---\n{tail(self.logs_dir / 'stdout.log')}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(
                    f"Kafka on {self.bootstrap} not ready in time ({last_error}).\n"
                    f"--- server.log ---\n{tail(self.server_log)}"
                )
            if port_open(self.port):
                try:
                    cluster = run_async(partial(_kafka_metadata, self.bootstrap, self.admin, min(10.0, remaining)))
                except Exception as exc:
                    last_error = f"metadata request failed: {exc!r}"
                else:
                    if cluster.get("brokers"):
                        return
                    last_error = f"metadata without brokers: {cluster!r}"
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (controlled shutdown), then SIGKILL after ``timeout``. Returns the exit code.

        143 (128 + SIGTERM) is the JVM's normal exit code after SIGTERM.
        """
        proc = self._proc
        if proc is None:
            return None
        code = stop_process(proc, timeout)
        running_servers.discard(self)
        return code

    def kill(self) -> None:
        """SIGKILL the broker (crash tests); data stays for the next ``start()``."""
        proc = self._proc
        if proc is None:
            return
        signal_process(proc, signal.SIGKILL)
        proc.wait(timeout=30)
        running_servers.discard(self)


def admin_credentials(bootstrap: str) -> KafkaCredentials:
    """The admin of the broker this process runs on `bootstrap`."""
    for server in list(running_servers):
        if isinstance(server, KafkaServer) and server.bootstrap == bootstrap:
            return server.admin
    raise LookupError(f"no KafkaServer of this process serves {bootstrap}")


def admin_options(bootstrap: str) -> dict[str, Any]:
    """aiokafka keyword arguments for the admin of the broker running here on `bootstrap`: for
    tooling that is handed a bootstrap address only (the tests' producers and consumers)."""
    return client_options(bootstrap, admin_credentials(bootstrap))
