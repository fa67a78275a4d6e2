"""Apache Kafka (KRaft, one node) as a local process, run from the official jars in the cache."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

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

    def server_properties(self) -> str:
        """The broker configuration. Java .properties: comments only on their own lines."""
        extra = [f"{key}={value}" for key, value in self.extra_properties.items()]
        for line in extra:
            if "\n" in line or "#" in line:
                raise ValueError(f"unsupported characters in Kafka property {line!r}")
        return "\n".join(
            [
                "# Written by pitchin_testing.kafka.KafkaServer; rewritten on every start.",
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
            # One argument: an id may start with "-", which the tool would take for an option.
            f"--cluster-id={_kafka_cluster_id()}",
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
        if not kafka_installed():
            raise ServerError(f"Kafka jars missing in {kafka_libs()}; run ensure_installed()")
        self._refuse_second_start(self.port, self.controller_port)
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
                    cluster = run_async(partial(_kafka_metadata, self.bootstrap, min(10.0, remaining)))
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
