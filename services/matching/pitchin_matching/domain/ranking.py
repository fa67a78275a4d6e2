"""Ranking donors for a need: vectorised, pure, and explained component by component.

Every donor attribute ranking reads is a numpy column (`DonorColumns`), one entry per
donor, so a need is scored against a million donors with a handful of array passes
instead of a Python loop. The same functions score one donor for an explanation, so the
numbers shown to an organiser are exactly the numbers the ranking used.

Score = sum over components of weight x value. Values are in [0, 1] (the fairness
penalty for load and the outcome history reach into [-1, 0]). Hard filters come first:
same federation, an active donor, every required skill at its minimum level, below the
cap of open offers + active assignments, and for on-site needs within reach.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from pitchin_matching.domain.budget import AskBudget, weekly_counts, within_budget
from pitchin_matching.domain.needs import URGENCY_RANK

SLOT_MINUTES = 30
SLOTS_PER_WEEK = 7 * 24 * 60 // SLOT_MINUTES  # 336
SLOT_WORDS = SLOTS_PER_WEEK // 64 + 1  # 6 x 64 bits
LEVEL_NAMES = ("beginner", "intermediate", "advanced", "expert")
NO_SKILL = -1
SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Words = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class Weights:
    """Points for a perfect value of each component; defaults add up to 150 before penalties."""

    skills: float = 30.0
    nice_to_have: float = 10.0
    hours: float = 15.0
    time_overlap: float = 10.0
    place: float = 15.0
    language: float = 15.0
    causes: float = 10.0
    urgency: float = 5.0
    load: float = 10.0
    recency: float = 10.0
    newcomer: float = 10.0
    history: float = 10.0
    # SmartSort's idea on the donor side: each ask this week lowers the donor's rank for the
    # next, so the same people do not take every ask (0 without an ask budget to count against).
    spread: float = 10.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def with_overrides(self, overrides: Mapping[str, float]) -> Weights:
        unknown = set(overrides) - set(self.names())
        if unknown:
            raise ValueError(f"unknown weight(s): {', '.join(sorted(unknown))}")
        values = {name: float(overrides.get(name, getattr(self, name))) for name in self.names()}
        return Weights(**values)


@dataclass(frozen=True)
class Policy:
    """A federation's matching rules; every field has a default a federation may change."""

    weights: Weights = field(default_factory=Weights)
    max_open_per_donor: int = 2  # open offers + active assignments before a donor is left alone
    offer_ttl_seconds: int = 48 * 3600
    fan_out: Mapping[str, float] = field(default_factory=lambda: {"critical": 3.0, "high": 2.0, "normal": 1.0})
    max_distance_km: float = 50.0
    recency_days: float = 14.0
    newcomer_days: float = 30.0
    overlap_target_hours: float = 3.0
    # When the organisation works, as UTC minute-of-week intervals (remote collaboration).
    collaboration_utc: tuple[tuple[int, int], ...] = ()
    # How often one donor may be asked; None: only the load cap applies.
    ask_budget: AskBudget | None = None
    # The share of a week's offers kept for newcomers when any fit (`domain.spread`); 0: none kept.
    newcomer_share: float = 0.0


@dataclass
class DonorColumns:
    """One entry per donor (the index's rows); `size` rows are in use."""

    size: int
    federation: npt.NDArray[np.int32]
    active: Bools
    skills: Mapping[str, npt.NDArray[np.int8]]  # skill slug -> level rank, NO_SKILL when absent
    hours_per_week: npt.NDArray[np.float32]
    slots: npt.NDArray[np.uint64]  # (rows, SLOT_WORDS) bitmap of 30-minute UTC slots
    has_windows: Bools
    remote: Bools
    latitude: npt.NDArray[np.float32]  # NaN when unknown
    longitude: npt.NDArray[np.float32]
    country: npt.NDArray[np.int16]  # interned code, -1 when unknown
    languages: Words  # bitmap of interned primary languages
    causes: Words  # bitmap of interned causes
    load: npt.NDArray[np.int16]  # open offers + active assignments
    last_asked: Floats  # epoch seconds, NaN when never asked
    registered: Floats  # epoch seconds
    completed: npt.NDArray[np.int32]  # assignments confirmed
    declined: npt.NDArray[np.int32]  # offers declined or left to expire
    # What the ask budget reads; None where an index does not count them (the budget is then not applied).
    pending: npt.NDArray[np.int16] | None = None  # offers waiting for the donor's answer
    # (rows, budget.RECENT_ASKS) epoch seconds of the donor's latest offers, NaN for none.
    recent_asks: Floats | None = None


@dataclass(frozen=True)
class NeedQuery:
    """A need in the index's codes."""

    federation: int
    required: tuple[tuple[str, int], ...]
    nice_to_have: tuple[str, ...]
    share_hours: float  # estimated hours / donors wanted
    deadline: float  # epoch seconds
    urgency: str
    remote: bool
    latitude: float | None
    longitude: float | None
    country: int
    language_bit: int  # 0 when no donor speaks it
    language: str
    cause_bits: int
    cause_count: int
    collaboration: Words  # (SLOT_WORDS,) bitmap; all zero when the policy names no hours


@dataclass(frozen=True)
class Ranking:
    rows: Ints  # best first
    scores: Floats
    values: dict[str, Floats]  # component -> value per row of `rows`
    eligible: int  # donors past the hard filters


def slots_of(intervals: Sequence[tuple[int, int]]) -> Words:
    """30-minute UTC slots a donor is available in; a slot counts when its middle is inside a window."""
    bits = np.zeros(SLOT_WORDS, dtype=np.uint64)
    for start, end in intervals:
        first = max(math.ceil((start - SLOT_MINUTES / 2) / SLOT_MINUTES), 0)
        last = min(math.ceil((end - SLOT_MINUTES / 2) / SLOT_MINUTES), SLOTS_PER_WEEK)
        for slot in range(first, last):
            bits[slot // 64] |= np.uint64(1 << (slot % 64))
    return bits


def hard_filter(
    columns: DonorColumns,
    query: NeedQuery,
    policy: Policy,
    exclude: Ints | None = None,
    now: float | None = None,
    unsure: Ints | None = None,
) -> Ints:
    """Rows of the donors who may be asked at all (the ask budget counts the week up to `now`;
    without `now` it is not applied: who fits, however often asked).

    `unsure` rows pass the load cap and the budget whatever the columns say: their figures
    changed in the running transaction, which the index cannot see yet (the offer engine
    checks every chosen donor against the tables anyway).
    """
    n = columns.size
    if not query.required:
        rows = np.flatnonzero(columns.federation[:n] == query.federation)
    else:
        # Start from the first required skill: one pass over a small int8 column, and
        # everything after works on the (much shorter) list of holders.
        slug, minimum = query.required[0]
        column = columns.skills.get(slug)
        if column is None:
            return np.empty(0, dtype=np.int64)
        rows = np.flatnonzero(column[:n] >= minimum)
        rows = rows[columns.federation[rows] == query.federation]
        for slug, minimum in query.required[1:]:
            column = columns.skills.get(slug)
            if column is None:
                return np.empty(0, dtype=np.int64)
            rows = rows[column[rows] >= minimum]
    unsure_here = np.isin(rows, unsure) if unsure is not None and unsure.size else np.zeros(rows.size, np.bool_)
    keep = columns.active[rows] & ((columns.load[rows] < policy.max_open_per_donor) | unsure_here)
    rows, unsure_here = rows[keep], unsure_here[keep]
    if policy.ask_budget is not None and now is not None and columns.pending is not None:
        asked = asked_this_week(columns, rows, now)
        rows = rows[within_budget(columns.pending[rows], asked, policy.ask_budget) | unsure_here]
    if not query.remote:
        rows = rows[within_reach(columns, rows, query, policy)]
    if exclude is not None and exclude.size:
        rows = rows[~np.isin(rows, exclude)]
    return rows.astype(np.int64, copy=False)


def asked_this_week(columns: DonorColumns, rows: Ints, now: float) -> npt.NDArray[np.int16]:
    """Offers made to each row's donor in the seven days up to `now` (0 where the index keeps no times)."""
    if columns.recent_asks is None:
        return np.zeros(rows.size, dtype=np.int16)
    return weekly_counts(columns.recent_asks[rows], now)


def within_reach(columns: DonorColumns, rows: Ints, query: NeedQuery, policy: Policy) -> Bools:
    """On-site needs: near enough when both places are known, else the same country."""
    distance = distance_km(columns, rows, query)
    known = ~np.isnan(distance)
    same_country = (columns.country[rows] == query.country) & (query.country >= 0)
    return np.where(known, distance <= policy.max_distance_km, same_country)


def distance_km(columns: DonorColumns, rows: Ints, query: NeedQuery) -> Floats:
    if query.latitude is None or query.longitude is None:
        return np.full(rows.size, np.nan)
    lat1 = np.radians(columns.latitude[rows].astype(np.float64))
    lon1 = np.radians(columns.longitude[rows].astype(np.float64))
    lat2, lon2 = math.radians(query.latitude), math.radians(query.longitude)
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * math.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    result: Floats = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return result


def component_values(
    columns: DonorColumns, rows: Ints, query: NeedQuery, policy: Policy, now: float
) -> dict[str, Floats]:
    """Each component's value for each row; the weights turn them into points."""
    m = rows.size
    values: dict[str, Floats] = {}

    if query.required:
        levels = np.zeros(m)
        for slug, _ in query.required:
            levels += (columns.skills[slug][rows].astype(np.float64) + 1.0) / len(LEVEL_NAMES)
        values["skills"] = levels / len(query.required)
    else:
        values["skills"] = np.ones(m)

    if query.nice_to_have:
        held = np.zeros(m)
        for slug in query.nice_to_have:
            column = columns.skills.get(slug)
            if column is not None:
                held += column[rows] >= 0
        values["nice_to_have"] = held / len(query.nice_to_have)
    else:
        values["nice_to_have"] = np.zeros(m)

    weeks_left = max(query.deadline - now, 0.0) / SECONDS_PER_WEEK
    capacity = columns.hours_per_week[rows].astype(np.float64) * weeks_left
    values["hours"] = np.minimum(capacity / max(query.share_hours, 1e-9), 1.0)

    values["time_overlap"] = _overlap_values(columns, rows, query, policy)
    values["place"] = _place_values(columns, rows, query, policy)

    if query.language_bit:
        speaks = (columns.languages[rows] & np.uint64(query.language_bit)) != 0
        values["language"] = speaks.astype(np.float64)
    else:
        values["language"] = np.zeros(m)

    if query.cause_count:
        shared = np.bitwise_count(columns.causes[rows] & np.uint64(query.cause_bits)).astype(np.float64)
        values["causes"] = shared / query.cause_count
    else:
        values["causes"] = np.zeros(m)

    values["urgency"] = np.full(m, urgency_value(query.urgency))
    values["load"] = -columns.load[rows].astype(np.float64) / max(policy.max_open_per_donor, 1)

    since = (now - columns.last_asked[rows]) / (policy.recency_days * SECONDS_PER_DAY)
    values["recency"] = np.where(np.isnan(since), 1.0, np.clip(since, 0.0, 1.0))

    age = (now - columns.registered[rows]) / (policy.newcomer_days * SECONDS_PER_DAY)
    never_served = columns.completed[rows] == 0
    values["newcomer"] = np.where(never_served, np.clip(1.0 - age, 0.0, 1.0), 0.0)

    completed = columns.completed[rows].astype(np.float64)
    declined = columns.declined[rows].astype(np.float64)
    # Laplace-smoothed share of yeses, centred: no history is neutral (0), not a penalty.
    values["history"] = 2.0 * (completed + 1.0) / (completed + declined + 2.0) - 1.0

    if policy.ask_budget is not None:
        values["spread"] = -asked_this_week(columns, rows, now).astype(np.float64) / policy.ask_budget.weekly_asks
    else:
        values["spread"] = np.zeros(m)
    return values


def urgency_value(urgency: str) -> float:
    return {2: 1.0, 1: 0.6, 0: 0.2}[URGENCY_RANK.get(urgency, 0)]


def _overlap_values(columns: DonorColumns, rows: Ints, query: NeedQuery, policy: Policy) -> Floats:
    if not query.collaboration.any():
        return np.full(rows.size, 0.5)
    shared_slots = np.bitwise_count(columns.slots[rows] & query.collaboration).sum(axis=1).astype(np.float64)
    hours = shared_slots * SLOT_MINUTES / 60.0
    result: Floats = np.where(
        columns.has_windows[rows], np.minimum(hours / max(policy.overlap_target_hours, 1e-9), 1.0), 0.5
    )
    return result


def _place_values(columns: DonorColumns, rows: Ints, query: NeedQuery, policy: Policy) -> Floats:
    if query.remote:
        result: Floats = np.where(columns.remote[rows], 1.0, 0.5)
        return result
    distance = distance_km(columns, rows, query)
    near = np.clip(1.0 - distance / policy.max_distance_km, 0.0, 1.0)
    same_country = ((columns.country[rows] == query.country) & (query.country >= 0)).astype(np.float64) * 0.3
    result = np.where(np.isnan(distance), same_country, near)
    return result


def scores_of(values: Mapping[str, Floats], weights: Weights) -> Floats:
    total: Floats | None = None
    for name in Weights.names():
        points = values[name] * getattr(weights, name)
        total = points if total is None else total + points
    assert total is not None
    return total


def rank(
    columns: DonorColumns,
    query: NeedQuery,
    policy: Policy,
    now: float,
    limit: int,
    exclude: Ints | None = None,
    newcomers: int = 0,
    budgeted: bool = True,
    unsure: Ints | None = None,
) -> Ranking:
    """The best `limit` donors for a need, best first (ties: the earlier-registered row first),
    and the best `newcomers` newcomers beyond them, so a newcomers' share can be kept from them.
    Not `budgeted`: donors past their ask budget are ranked too (an organiser's view of who fits)."""
    if query.deadline <= now or limit <= 0:
        return Ranking(np.empty(0, dtype=np.int64), np.empty(0), {}, 0)
    rows = hard_filter(columns, query, policy, exclude, now if budgeted else None, unsure)
    eligible = int(rows.size)
    if eligible == 0:
        return Ranking(rows, np.empty(0), {}, 0)
    values = component_values(columns, rows, query, policy, now)
    scores = scores_of(values, policy.weights)
    if eligible > limit:
        top = np.argpartition(-scores, limit - 1)[:limit]
        if newcomers > 0:
            beyond = np.ones(eligible, dtype=np.bool_)
            beyond[top] = False
            new = np.flatnonzero(beyond & (values["newcomer"] > 0))
            if new.size > newcomers:
                new = new[np.argpartition(-scores[new], newcomers - 1)[:newcomers]]
            top = np.concatenate([top, new])
    else:
        top = np.arange(eligible)
    order = top[np.lexsort((rows[top], -scores[top]))]
    return Ranking(
        rows=rows[order],
        scores=scores[order],
        values={name: value[order] for name, value in values.items()},
        eligible=eligible,
    )


@dataclass(frozen=True)
class Component:
    name: str
    points: float
    why: str


def explain(
    columns: DonorColumns, row: int, value: Mapping[str, float], query: NeedQuery, policy: Policy, now: float
) -> list[Component]:
    """Points and a sentence for every component of one donor's score."""
    w = policy.weights
    why: dict[str, str] = {}
    held = []
    for slug, minimum in query.required:
        level = int(columns.skills[slug][row])
        held.append(f"{slug}: {LEVEL_NAMES[level]} (needs {LEVEL_NAMES[minimum]})")
    why["skills"] = "; ".join(held) if held else "no skills required"
    nice = [s for s in query.nice_to_have if s in columns.skills and columns.skills[s][row] >= 0]
    why["nice_to_have"] = (
        f"has {len(nice)} of {len(query.nice_to_have)} nice-to-have skills" + (f" ({', '.join(nice)})" if nice else "")
        if query.nice_to_have
        else "the need lists no nice-to-have skills"
    )
    weeks_left = max(query.deadline - now, 0.0) / SECONDS_PER_WEEK
    capacity = float(columns.hours_per_week[row]) * weeks_left
    why["hours"] = f"about {capacity:.0f} h free before the deadline for a share of {query.share_hours:.0f} h"
    if not query.collaboration.any():
        why["time_overlap"] = "the federation has set no collaboration hours"
    elif not columns.has_windows[row]:
        why["time_overlap"] = "the donor gave no weekly windows"
    else:
        shared = int(np.bitwise_count(columns.slots[row] & query.collaboration).sum()) * SLOT_MINUTES / 60
        why["time_overlap"] = f"{shared:.1f} h a week inside the organisation's working hours (UTC-aligned)"
    if query.remote:
        why["place"] = (
            "remote need; donor works remotely" if columns.remote[row] else "remote need; donor prefers on site"
        )
    else:
        distance = distance_km(columns, np.array([row]), query)[0]
        why["place"] = (
            f"{distance:.0f} km from the place" if not np.isnan(distance) else "same country, distance unknown"
        )
    why["language"] = f"speaks {query.language}" if value["language"] > 0 else f"does not list {query.language}"
    why["causes"] = (
        f"shares {value['causes'] * query.cause_count:.0f} of {query.cause_count} causes"
        if query.cause_count
        else "the need names no causes"
    )
    why["urgency"] = f"{query.urgency} need (same for every candidate; orders needs in the global assignment)"
    why["load"] = f"{int(columns.load[row])} open offer(s) or assignment(s) of at most {policy.max_open_per_donor}"
    last = float(columns.last_asked[row])
    why["recency"] = "never asked" if math.isnan(last) else f"last asked {(now - last) / SECONDS_PER_DAY:.1f} days ago"
    why["newcomer"] = "newcomer boost" if value["newcomer"] > 0 else "not a newcomer (has served or joined long ago)"
    why["history"] = f"{int(columns.completed[row])} confirmed, {int(columns.declined[row])} declined or expired"
    budget = policy.ask_budget
    why["spread"] = (
        f"asked {round(-value['spread'] * budget.weekly_asks)} time(s) in the last 7 days of at most"
        f" {budget.weekly_asks}"
        if budget is not None
        else "the federation sets no weekly ask budget"
    )
    return [Component(name, round(value[name] * getattr(w, name), 3), why[name]) for name in Weights.names()]
