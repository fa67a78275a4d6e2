"""What the local servers (Kafka, PostgreSQL) and other child processes (the services,
Prometheus) share: their error, starting and stopping processes and waiting on them, and a
registry that stops whatever server still runs when the interpreter exits.

Every function here is synchronous. From async code, call the slow server methods (``start``,
``stop``, ``create_database`` ...) through ``asyncio.to_thread`` so the event loop keeps running.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

import httpx

from pitchin_testing.ports import port_open

POLL_INTERVAL = 0.1

_T = TypeVar("_T")


class ServerError(RuntimeError):
    """A server failed to start, stop or answer in time."""


class Stoppable(Protocol):
    """A server ``running_servers`` can stop: KafkaServer, PostgresServer."""

    def stop(self, timeout: float = ...) -> object: ...


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data.splitlines()[-lines:])


def run_async(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on a private loop in a worker thread.

    Works whether or not the calling thread already runs an event loop.
    """

    async def main() -> _T:
        return await factory()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitchin-servers") as pool:
        return pool.submit(asyncio.run, main()).result()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (pid 1 here may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Format: "pid (comm) state ..."; comm may contain spaces and parentheses.
    state = stat[stat.rfind(")") + 2 :].split(" ", 1)[0]
    return state not in ("Z", "X")


def children_of(pid: int) -> list[int]:
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


def signal_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the process group of a child started with ``start_new_session`` (its own
    children too), or to the child alone where the group may not be signalled."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(sig)


def stop_process(process: subprocess.Popen[bytes], timeout: float, kill_wait: float = 30) -> int | None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout``; returns the exit code."""
    if process.poll() is None:
        signal_process(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_process(process, signal.SIGKILL)
            process.wait(kill_wait)
    return process.returncode


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout: float, kill_wait: float = 30) -> None:
    """``stop_process`` for several at once: SIGTERM to every one, then wait for each within one
    shared ``timeout``; those still running after it get SIGKILL."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        signal_process(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            signal_process(process, signal.SIGKILL)
            process.wait(kill_wait)


def wait_until_serving(
    process: subprocess.Popen[bytes], url: str, timeout: float, name: str, details: Callable[[], str]
) -> None:
    """Poll ``url`` until it answers 200. RuntimeError if the process exits first, TimeoutError
    after ``timeout`` seconds; both end with ``details()`` (a log tail, or where the log is)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{details()}")
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200:
                return
            last = answer.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{name} not ready after {timeout}s ({last}):\n{details()}")


def wait_pids_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


class LocalServer(ABC):
    """A server run as a local process on 127.0.0.1 (KafkaServer, PostgresServer): what starting
    one takes besides its own commands."""

    @property
    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def is_running(self) -> bool: ...

    @abstractmethod
    def start(self, timeout: float = ...) -> None: ...

    @abstractmethod
    def stop(self, timeout: float = ...) -> object: ...

    @abstractmethod
    def _wait_ready(self, deadline: float) -> None: ...

    def _refuse_second_start(self, *ports: int) -> None:
        if self.is_running():
            raise ServerError(f"{self!r} is already running (pid {self.pid})")
        for port in ports:
            if port_open(port):
                raise ServerError(f"port {port} is already in use; cannot start {self!r}")

    def _ready_or_stopped(self, deadline: float) -> None:
        """Wait until it serves; one that does not by ``deadline`` is stopped, not left half up."""
        running_servers.add(self)
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.stop(timeout=10)
            raise


# Servers still running when the interpreter exits are stopped (best effort), so an aborted
# test session does not leave brokers behind.
running_servers: weakref.WeakSet[Stoppable] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(running_servers):
        with contextlib.suppress(Exception):
            server.stop(timeout=10)
