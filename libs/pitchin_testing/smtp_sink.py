"""An SMTP sink: an in-process aiosmtpd server on 127.0.0.1 that accepts every mail and keeps it.

Tests read the messages from ``SmtpSink``; ``make run`` runs one until SIGTERM/SIGINT,
writing every message received to the mail directory as an ``.eml`` file:

    python -m pitchin_testing.smtp_sink --port 2525 --maildir .state/run/mail

Benchmarks run one in a process of its own that only notes who got a mail and when, one
line per recipient (``SmtpSinkProcess``): parsing thousands of mails in the benchmark's own
process would take the CPU the system under test needs, and delay the arrival times.

    python -m pitchin_testing.smtp_sink --port 2525 --log mail.log
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from types import FrameType
from typing import IO, Any

from pitchin_testing.lifecycle import ServerError, stop_process
from pitchin_testing.ports import free_port
from pitchin_testing.processes import _die_with_parent as die_with_parent


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


class _ArrivalLogHandler:
    """Accepts every mail and writes `<arrival wall time>\t<recipient>` per recipient, nothing else."""

    def __init__(self, log: IO[str]) -> None:
        self._log = log
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.time()
        self._log.write("".join(f"{arrived:.6f}\t{str(r).lower()}\n" for r in envelope.rcpt_tos))
        # Flushed per mail: the benchmark reads the file while mail is still arriving.
        self._log.flush()
        self.received += 1
        return "250 Message accepted for delivery"


class SmtpSinkProcess:
    """The sink in a process of its own, logging (recipient, arrival time) per mail to `log`.

    For benchmarks: the arrival time is taken in the sink's process as the mail comes in, not
    when a busy benchmark process gets round to it.
    """

    def __init__(self, log: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port if port is not None else free_port()
        self.log = Path(log)
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"SmtpSinkProcess(host={self.host!r}, port={self.port}, log={str(self.log)!r})"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            raise ServerError(f"{self!r} is already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pitchin_testing.smtp_sink", "--host", self.host, "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--log", str(self.log)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: `stop_process` signals the group
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"{self!r} exited with {self.process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerError(f"{self!r} did not listen within {timeout} s") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, timeout)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def arrivals(self) -> list[tuple[str, float]]:
        """(recipient, arrival wall time) of every mail so far, oldest first."""
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            arrived, _, recipient = line.partition("\t")
            if recipient:  # a line still being written has no tab yet
                out.append((recipient, float(arrived)))
        return out

    def count(self) -> int:
        """How many recipients got a mail so far (cheap: counts lines)."""
        try:
            with self.log.open("rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except FileNotFoundError:
            return 0

    def __enter__(self) -> SmtpSinkProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve_arrival_log(host: str, port: int, log_path: Path, stop: threading.Event) -> int:
    from aiosmtpd.controller import Controller

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        handler = _ArrivalLogHandler(log)
        controller = Controller(handler, hostname=host, port=port, ready_timeout=30)
        controller.start()
        print(f"smtp sink listening on {host}:{port}, arrivals in {log_path}", file=sys.stderr, flush=True)
        try:
            while not stop.wait(1.0):
                pass
        finally:
            controller.stop()
    print(f"smtp sink stopped; {handler.received} message(s) received", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pitchin_testing.smtp_sink", description="SMTP sink that keeps every mail."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    kept = parser.add_mutually_exclusive_group(required=True)
    kept.add_argument("--maildir", type=Path, help="directory for the .eml files")
    kept.add_argument("--log", type=Path, help="file for one line per recipient: arrival time, tab, address")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.log is not None:
        return _serve_arrival_log(args.host, args.port, args.log, stop)
    sink = SmtpSink(port=args.port, maildir=args.maildir, host=args.host)
    sink.start()
    print(f"smtp sink listening on {args.host}:{args.port}, mail in {args.maildir}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        sink.stop()
    print(f"smtp sink stopped; {len(sink.messages)} message(s) received", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
