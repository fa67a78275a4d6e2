"""What a week achieved, per policy, and the issue's targets beside it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pitchin_matching.domain.budget import WEEK_SECONDS
from pitchin_matching.simulation.model import HOUR
from pitchin_matching.simulation.week import Outcome

Floats = npt.NDArray[np.float64]


def gini(values: npt.ArrayLike) -> float:
    """Gini coefficient of non-negative counts: 0 when all equal, towards 1 when one holds all."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, float(x.sum())
    if n == 0 or total == 0.0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2.0 * (ranks * x).sum()) / (n * total) - (n + 1.0) / n)


def lowest_gini(total: int, people: int) -> float:
    """The most even spread of `total` whole offers over `people`: everyone gets the floor or the
    ceiling. With fewer offers than people most must get none, so it is far from 0."""
    if people == 0:
        return 0.0
    base, extra = divmod(total, people)
    return gini(np.array([base + 1] * extra + [base] * (people - extra)))


@dataclass(frozen=True)
class Metrics:
    critical_places_filled: float  # share of critical places accepted before the deadline
    critical_needs_answered: int  # critical needs with at least one acceptance
    critical_needs: int
    noncritical_fully_filled: float
    noncritical_fillable: float  # ceiling: share of non-critical needs with enough donors who fit
    needs_with_acceptance: float
    places_filled: int
    places_wanted: int
    places_fillable: int  # ceiling: places with a donor who fits
    critical_first_median_h: float  # inf when half or more got none
    critical_first_p90_h: float
    offers_per_place: float
    offers_per_place_critical: float
    redundant_acceptances: int
    gini: float
    gini_lowest: float
    top10_share: float
    newcomer_share: float
    newcomer_share_critical: float
    distinct_per_offer: float
    offers: int
    max_load: int
    max_weekly_asks: int  # most offers one donor got in any seven days
    drifted: int


def measure(outcome: Outcome) -> Metrics:
    world = outcome.world
    needs = [n.need for n in world.needs]
    critical = np.array([n.urgency == "critical" for n in needs])
    wanted = np.array([n.donors_wanted for n in needs])
    pools = np.array(outcome.pools)
    filled = np.array([min(len(a), w) for a, w in zip(outcome.accepted_at, wanted, strict=True)])
    firsts = np.array(
        [
            (min(a) - opened.opened_at) / HOUR if a else math.inf
            for a, opened in zip(outcome.accepted_at, world.needs, strict=True)
        ]
    )
    need_of_offer = np.array([o.need for o in outcome.offers], dtype=np.int64)
    row_of_offer = np.array([o.row for o in outcome.offers], dtype=np.int64)
    offers_total = len(outcome.offers)
    critical_offers = int(critical[need_of_offer].sum()) if offers_total else 0
    per_donor = np.bincount(row_of_offer, minlength=len(world.donors))[outcome.eligible]
    top = max(1, per_donor.size // 10)
    top_share = float(np.sort(per_donor)[::-1][:top].sum() / max(per_donor.sum(), 1))
    to_newcomers = world.newcomer[row_of_offer] if offers_total else np.zeros(0, dtype=np.bool_)
    critical_mask = critical[need_of_offer] if offers_total else np.zeros(0, dtype=np.bool_)
    critical_firsts = firsts[critical]
    return Metrics(
        critical_places_filled=_share(filled[critical].sum(), wanted[critical].sum()),
        critical_needs_answered=int((filled[critical] > 0).sum()),
        critical_needs=int(critical.sum()),
        noncritical_fully_filled=_share((filled[~critical] >= wanted[~critical]).sum(), (~critical).sum()),
        noncritical_fillable=_share((pools[~critical] >= wanted[~critical]).sum(), (~critical).sum()),
        needs_with_acceptance=_share((filled > 0).sum(), len(needs)),
        places_filled=int(filled.sum()),
        places_wanted=int(wanted.sum()),
        places_fillable=int(np.minimum(pools, wanted).sum()),
        critical_first_median_h=float(np.quantile(critical_firsts, 0.5, method="higher")),
        critical_first_p90_h=float(np.quantile(critical_firsts, 0.9, method="higher")),
        offers_per_place=offers_total / max(int(filled.sum()), 1),
        offers_per_place_critical=critical_offers / max(int(filled[critical].sum()), 1),
        redundant_acceptances=outcome.redundant,
        gini=gini(per_donor),
        gini_lowest=lowest_gini(int(per_donor.sum()), int(per_donor.size)),
        top10_share=top_share,
        newcomer_share=_share(to_newcomers.sum(), offers_total),
        newcomer_share_critical=_share(to_newcomers[critical_mask].sum(), critical_offers),
        distinct_per_offer=_share(np.unique(row_of_offer).size, offers_total),
        offers=offers_total,
        max_load=outcome.max_load,
        max_weekly_asks=most_asks_in_a_week(row_of_offer, np.array([o.made_at for o in outcome.offers])),
        drifted=outcome.drifted,
    )


def most_asks_in_a_week(rows: npt.NDArray[np.int64], made_at: Floats) -> int:
    """The most offers any one donor was made in a window of seven days (ending at one of them)."""
    if rows.size == 0:
        return 0
    # One sorted key per offer, donor first: a window is a range of keys of the same donor.
    key = rows.astype(np.float64) * 1e9 + (made_at - made_at.min())
    key.sort()
    starts = np.searchsorted(key, key - WEEK_SECONDS, side="right")
    return int((np.arange(key.size) - starts + 1).max())


def _share(part: float | np.integer, whole: float | np.integer) -> float:
    return float(part) / float(whole) if whole else 0.0


@dataclass(frozen=True)
class Row:
    label: str
    value: Callable[[Metrics], str]
    target: str = ""
    # Whether Pitch In meets the target: (its metrics, the greedy baseline's).
    met: Callable[[Metrics, Metrics], bool] | None = None


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _hours(x: float) -> str:
    return "none" if math.isinf(x) else f"{x:.1f} h"


ROWS: tuple[Row, ...] = (
    Row(
        "critical places accepted before deadline",
        lambda m: _pct(m.critical_places_filled),
        ">= 98 %",
        lambda m, g: m.critical_places_filled >= 0.98,
    ),
    Row(
        "critical needs with >= 1 acceptance",
        lambda m: f"{m.critical_needs_answered}/{m.critical_needs}",
        "all",
        lambda m, g: m.critical_needs_answered == m.critical_needs,
    ),
    Row(
        "non-critical needs fully filled",
        lambda m: _pct(m.noncritical_fully_filled),
        ">= 85 %",
        lambda m, g: m.noncritical_fully_filled >= 0.85,
    ),
    Row("  ceiling: enough donors fit at all", lambda m: _pct(m.noncritical_fillable)),
    Row(
        "needs with >= 1 acceptance",
        lambda m: _pct(m.needs_with_acceptance),
        "+10 % vs greedy",
        lambda m, g: m.needs_with_acceptance >= 1.10 * g.needs_with_acceptance,
    ),
    Row(
        "places filled",
        lambda m: f"{m.places_filled}/{m.places_wanted}",
        "<= 2 % fewer than greedy",
        lambda m, g: m.places_filled >= 0.98 * g.places_filled,
    ),
    Row("  ceiling: places some donor fits", lambda m: f"{m.places_fillable}"),
    Row(
        "time to first acceptance, critical, median",
        lambda m: _hours(m.critical_first_median_h),
        "<= 2 h",
        lambda m, g: m.critical_first_median_h <= 2.0,
    ),
    Row(
        "time to first acceptance, critical, p90",
        lambda m: _hours(m.critical_first_p90_h),
        "<= 8 h",
        lambda m, g: m.critical_first_p90_h <= 8.0,
    ),
    Row("offers sent", lambda m: f"{m.offers}"),
    Row("offers per place filled", lambda m: f"{m.offers_per_place:.2f}", "<= 3", lambda m, g: m.offers_per_place <= 3),
    Row(
        "offers per place filled, critical",
        lambda m: f"{m.offers_per_place_critical:.2f}",
        "<= 5",
        lambda m, g: m.offers_per_place_critical <= 5,
    ),
    Row("redundant acceptances", lambda m: f"{m.redundant_acceptances}"),
    Row(
        "Gini of offers per eligible donor",
        lambda m: f"{m.gini:.3f}",
        "<= 0.45",
        lambda m, g: m.gini <= 0.45,
    ),
    Row(
        "  lowest achievable at that volume",
        lambda m: f"{m.gini_lowest:.3f}",
        "Gini <= 1.2x this",
        lambda m, g: m.gini <= 1.2 * m.gini_lowest,
    ),
    Row("top 10 % of eligible donors' share", lambda m: _pct(m.top10_share)),
    Row(
        "newcomers' share of offers",
        lambda m: _pct(m.newcomer_share),
        ">= 30 %",
        lambda m, g: m.newcomer_share >= 0.30,
    ),
    Row(
        "newcomers' share of offers, critical",
        lambda m: _pct(m.newcomer_share_critical),
        ">= 15 %",
        lambda m, g: m.newcomer_share_critical >= 0.15,
    ),
    Row("distinct donors asked per offer", lambda m: f"{m.distinct_per_offer:.3f}"),
    Row("most open offers + assignments one donor held", lambda m: f"{m.max_load}"),
    Row("most offers one donor got in 7 days", lambda m: f"{m.max_weekly_asks}"),
    Row("donors who drifted away (asked too often)", lambda m: f"{m.drifted}"),
)


def table(names: Sequence[str], metrics: Sequence[Metrics], judged: Sequence[int], greedy: int) -> str:
    """The policies side by side; the target and whether each `judged` policy meets it on the right."""
    header = ["metric", *names, "target", *(f"{names[j]}: target" for j in judged)]

    def verdict(row: Row, j: int) -> str:
        return "" if row.met is None else ("met" if row.met(metrics[j], metrics[greedy]) else "NOT met")

    lines = [
        [row.label, *(row.value(m) for m in metrics), row.target, *(verdict(row, j) for j in judged)] for row in ROWS
    ]
    widths = [max(len(str(line[c])) for line in [header, *lines]) for c in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(header), rule, *(render(line) for line in lines)])
