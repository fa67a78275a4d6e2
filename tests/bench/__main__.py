"""`make bench`: every benchmark in turn; each prints its figures beside this run's raw limits."""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys
import time
import traceback

import tests.bench
from tests.bench import targets


def _stop_on_sigterm() -> None:
    # SIGTERM (a `kill`, or CI's timeout) would end Python without running the benchmarks'
    # `finally` blocks, leaving Kafka, PostgreSQL and four services running behind.
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main() -> int:
    _stop_on_sigterm()
    names = sorted(m.name for m in pkgutil.iter_modules(tests.bench.__path__) if m.name.startswith("bench_"))
    wanted = set(sys.argv[1:])
    # The names chosen here are not the benchmarks' own arguments (`python -m tests.bench.bench_x N`).
    sys.argv = sys.argv[:1]
    failed = []
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"\n=== {name}", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"tests.bench.{name}").main()
        except Exception as exc:  # one broken benchmark should not hide the others' figures
            failed.append(name)
            print(f"  FAILED: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(limit=-6)  # where it broke, without the library's whole stack
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = targets.table()
    if summary:
        print("\n=== targets\n" + summary, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
