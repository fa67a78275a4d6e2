"""`make simulate`: print the strike week's table for the three policies."""

from __future__ import annotations

import argparse
import time

from pitchin_matching.simulation import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--donors", type=int, default=10_000)
    parser.add_argument("--needs", type=int, default=500)
    parser.add_argument("--critical", type=int, default=50)
    args = parser.parse_args()
    started = time.perf_counter()
    result = compare(args.seed, donors=args.donors, needs=args.needs, critical=args.critical)
    print(
        f"Strike week: {args.donors} donors, {args.needs} needs ({args.critical} critical, 72 h deadlines),"
        f" seed {args.seed}"
    )
    print(result.table())
    for outcome in result.outcomes[2:]:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(outcome.reasons.items()))
        print(f"{outcome.policy}: declines by reason: {reasons}; matching passes: {outcome.passes}.")
    timings = ", ".join(f"{n} {s:.1f} s" for n, s in zip(result.names, result.seconds, strict=True))
    print(f"Simulated in {time.perf_counter() - started:.1f} s ({timings}).")


if __name__ == "__main__":
    main()
