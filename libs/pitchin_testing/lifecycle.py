"""What the local servers (Kafka, PostgreSQL) share: their error, waiting on processes, and a
registry that stops whatever still runs when the interpreter exits.

Every function here is synchronous. From async code, call the slow server methods (``start``,
``stop``, ``create_database`` ...) through ``asyncio.to_thread`` so the event loop keeps running.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

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


def wait_pids_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


# Servers still running when the interpreter exits are stopped (best effort), so an aborted
# test session does not leave brokers behind.
running_servers: weakref.WeakSet[Stoppable] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(running_servers):
        with contextlib.suppress(Exception):
            server.stop(timeout=10)
