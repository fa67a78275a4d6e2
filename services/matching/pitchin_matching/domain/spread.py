"""Newcomers' guaranteed share of a federation's asks.

Ranking gives newcomers a boost, but a boost only matters when they are near the top: in a
busy week the experienced few still take most asks, and newcomers who are never asked never
become experienced. So a share of the week's offers is kept for them: when the offers made
in the last seven days plus this pass's would leave newcomers below `share`, the pass swaps
planned donors for newcomer candidates of the same need, the swaps that cost the least score
first, never a newcomer without spare asks, never one already planned for that need.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set

from pitchin_matching.domain.assignment import Demand


def newcomers_owed(share: float, offered: int, to_newcomers: int, planned: int, planned_to_newcomers: int) -> int:
    """How many more of this pass's `planned` offers should go to newcomers to keep `share`."""
    if share <= 0 or planned == 0:
        return 0
    wanted = math.ceil(share * (offered + planned) - 1e-9)
    return max(0, min(planned - planned_to_newcomers, wanted - to_newcomers - planned_to_newcomers))


def keep_newcomers_share(
    plan: dict[str, list[str]],
    demands: Sequence[Demand],
    newcomers: Set[str],
    spare: Mapping[str, int],
    owed: int,
) -> int:
    """Swap up to `owed` planned donors for newcomers (in place); returns the swaps made.

    `spare` is each donor's capacity before the plan; a newcomer is used only within it.
    """
    if owed <= 0:
        return 0
    used: dict[str, int] = {}
    for donors in plan.values():
        for donor in donors:
            used[donor] = used.get(donor, 0) + 1
    swaps: list[tuple[float, str, str, str]] = []  # (score lost, need, planned donor, newcomer)
    for demand in demands:
        planned = plan.get(demand.need_id, [])
        if not planned:
            continue
        score = dict(demand.candidates)
        others = sorted((d for d in planned if d not in newcomers), key=lambda d: score[d])
        spare_new = [d for d, _ in demand.candidates if d in newcomers and d not in planned]
        for donor, newcomer in zip(others, spare_new, strict=False):
            swaps.append((score[donor] - score[newcomer], demand.need_id, donor, newcomer))
    swaps.sort()
    made = 0
    for _, need_id, donor, newcomer in swaps:
        if made >= owed:
            break
        planned = plan[need_id]
        if donor not in planned or newcomer in planned or used.get(newcomer, 0) >= spare.get(newcomer, 0):
            continue
        planned[planned.index(donor)] = newcomer
        used[donor] -= 1
        used[newcomer] = used.get(newcomer, 0) + 1
        made += 1
    return made
