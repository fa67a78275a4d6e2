"""Run an SMTP sink until SIGTERM/SIGINT (used by ``make run``).

    python -m pitchin_testing.smtp_sink --port 2525 --maildir .state/run/mail

Every message received is written to the mail directory as an ``.eml`` file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from pitchin_testing.servers import SmtpSink


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
