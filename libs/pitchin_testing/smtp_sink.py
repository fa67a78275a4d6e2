"""An SMTP sink: an in-process aiosmtpd server on 127.0.0.1 that accepts every mail and keeps it.

Tests read the messages from ``SmtpSink``; ``make run`` runs one until SIGTERM/SIGINT,
writing every message received to the mail directory as an ``.eml`` file:

    python -m pitchin_testing.smtp_sink --port 2525 --maildir .state/run/mail
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from types import FrameType
from typing import Any

from pitchin_testing.lifecycle import ServerError
from pitchin_testing.ports import free_port


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pitchin_testing.smtp_sink", description="SMTP sink that keeps every mail."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--maildir", type=Path, required=True, help="directory for the .eml files")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

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
