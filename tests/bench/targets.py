"""The figures a benchmark holds against a target, printed together at the end of `make bench`.

Each benchmark prints its own figures as it goes; the ones that have a target (the issues'
tables: ingest events/s, fan-out mails/s, the replica kill...) are also recorded here, with
the raw limit measured in the same run, so one table at the end says what was met. Nothing
here asserts: a missed target is printed as missed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    measured: str
    target: str
    met: bool | None  # None: not comparable (a figure that failed to be measured)
    raw_limit: str = ""


_FIGURES: list[Figure] = []


def record(name: str, measured: str, target: str, met: bool | None, raw_limit: str = "") -> None:
    """Keep one figure for the closing table (`measured` and `raw_limit` already formatted, with their ratio)."""
    _FIGURES.append(Figure(name, measured, target, met, raw_limit))


def recorded() -> list[Figure]:
    return list(_FIGURES)


def table() -> str:
    """A Markdown table of every recorded figure, in the order recorded."""
    if not _FIGURES:
        return ""
    lines = ["| figure | measured | raw limit (same run), ratio | target | met |", "|---|---|---|---|---|"]
    for f in _FIGURES:
        met = "—" if f.met is None else ("yes" if f.met else "no")
        lines.append(f"| {f.name} | {f.measured} | {f.raw_limit or '—'} | {f.target} | {met} |")
    return "\n".join(lines)
