"""Global assignment of donors to competing needs (a wave of strikes in one week).

Greedy per need (each need takes its best donors as it arrives) lets the first need to
be opened take the one donor a later, more urgent need cannot do without, and piles
asks on the few people who rank first everywhere. Instead, all needs waiting for offers
in a federation are solved together:

1. **Urgency tiers, lexicographically**: critical needs are solved first with the whole
   pool, then high ones with what capacity is left, then normal ones. So the most urgent
   are covered first, whatever happens below them.
2. **Within a tier, a maximum-weight bipartite matching** between the tier's free places
   (one row per offer a need wants now) and donors with spare capacity (one column per
   donor), on the sparse graph of each need's top candidates. An edge's value is
   `COVER + score + deadline bonus + spread bonus`: COVER (larger than any score) makes the
   matching first cover as many places as possible, then prefer better-fitting donors, then
   needs whose deadline is nearer, and needs with fewer places taken (SmartSort's spreading:
   a need's pull drops with each acceptance, so more needs get their first yes). Every row
   also has a private "leave unfilled" column, so a full matching always exists. It is solved exactly with LAPJVsp
   (`scipy.sparse.csgraph.min_weight_full_bipartite_matching`, Jonker-Volgenant on a sparse
   graph), in near-linear time on these sparse graphs.
3. **Capacity in rounds**: a column is a donor once per round, so no donor gets two places
   of the same need and a round spreads asks over as many people as possible; donors with
   spare capacity (the per-donor cap on open offers + active assignments, minus their load)
   return in the next round for places still open, until no place can be filled.

Rounds of assignments are a (slightly) restricted min-cost flow: the flow version could
give a donor two places in one round when that raises the total, which is exactly what
the fairness rule prefers to avoid. Pure: donor ids and scores in, a plan out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_array  # type: ignore[import-untyped]
from scipy.sparse.csgraph import min_weight_full_bipartite_matching  # type: ignore[import-untyped]

from pitchin_matching.domain.needs import URGENCY_RANK

COVER = 1_000.0
DEADLINE_BONUS = 50.0
# The pull of a need with no acceptance yet; 1/2 of it with one, 1/3 with two...
SPREAD_BONUS = 20.0
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Demand:
    """A need waiting for `places` offers, with its candidates (donor id, score), best first."""

    need_id: str
    urgency: str
    deadline: float  # epoch seconds
    places: int
    candidates: Sequence[tuple[str, float]]
    accepted: int = 0  # places already taken (active assignments)


def assign(demands: Sequence[Demand], capacity: Mapping[str, int], now: float) -> dict[str, list[str]]:
    """Which donors each need should be offered now: need id -> donor ids (best value first)."""
    spare = {donor: c for donor, c in capacity.items() if c > 0}
    plan: dict[str, list[str]] = {d.need_id: [] for d in demands}
    for tier in sorted({URGENCY_RANK.get(d.urgency, 0) for d in demands}, reverse=True):
        in_tier = [d for d in demands if URGENCY_RANK.get(d.urgency, 0) == tier]
        while _one_round(in_tier, spare, plan, now):
            pass
    return plan


def _one_round(demands: Sequence[Demand], spare: dict[str, int], plan: dict[str, list[str]], now: float) -> bool:
    row_need: list[int] = []
    edges_row: list[int] = []
    edges_col: list[int] = []
    edges_value: list[float] = []
    column_of: dict[str, int] = {}
    donors: list[str] = []
    for index, demand in enumerate(demands):
        open_places = demand.places - len(plan[demand.need_id])
        if open_places <= 0:
            continue
        taken = set(plan[demand.need_id])
        urgency_bonus = DEADLINE_BONUS / (1.0 + max(demand.deadline - now, 0.0) / SECONDS_PER_DAY)
        urgency_bonus += SPREAD_BONUS / (1.0 + demand.accepted)
        usable = [(d, s) for d, s in demand.candidates if spare.get(d, 0) > 0 and d not in taken]
        if not usable:
            continue
        for _ in range(min(open_places, len(usable))):
            row = len(row_need)
            row_need.append(index)
            for donor, score in usable:
                column = column_of.get(donor)
                if column is None:
                    column = column_of[donor] = len(donors)
                    donors.append(donor)
                edges_row.append(row)
                edges_col.append(column)
                edges_value.append(COVER + score + urgency_bonus)
    rows = len(row_need)
    if rows == 0:
        return False
    values = np.asarray(edges_value)
    # Positive weights to minimise: `ceiling - value`; each row's private "unfilled" column
    # costs `ceiling`, i.e. a value of 0, so any real edge beats leaving a place empty.
    ceiling = float(values.max()) + 1.0
    row_index = np.concatenate([np.asarray(edges_row), np.arange(rows)])
    col_index = np.concatenate([np.asarray(edges_col), len(donors) + np.arange(rows)])
    weights = np.concatenate([ceiling - values, np.full(rows, ceiling)])
    graph = csr_array((weights, (row_index, col_index)), shape=(rows, len(donors) + rows))
    matched_rows, matched_cols = min_weight_full_bipartite_matching(graph)
    progress = False
    for row, column in zip(matched_rows.tolist(), matched_cols.tolist(), strict=True):
        if column >= len(donors):
            continue
        donor = donors[column]
        need_id = demands[row_need[row]].need_id
        plan[need_id].append(donor)
        spare[donor] -= 1
        progress = True
    return progress
