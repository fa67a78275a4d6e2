"""A federation's strike week, generated from a seed: donors, needs and how each donor answers.

Everything here is data the real domain reads (`DonorProfile`, `NeedState`), plus what the
engine can never see: each donor's response model. Matching only learns of a donor's
answer when it arrives, as in production; the simulation decides it.

The response model, per donor (drawn once from the seed, so every policy meets the same people):
- `p_answer`: the chance they answer an offer at all before it expires (else it expires);
- `delay_hours`: median hours before they answer (lognormal around it);
- `eagerness`: their base willingness, turned into an acceptance chance by fit and load;
- `tolerance`: asks in the week they put up with; past it they drift away (answer nothing more).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from pitchin_core.contracts.common import Weekday, WeeklyWindow
from pitchin_matching.domain.donors import DonorProfile, windows_in_utc
from pitchin_matching.domain.needs import NeedState

FEDERATION = "fed_strike_week"
ORGANISATIONS = ("org_rail", "org_care", "org_teachers", "org_post", "org_hospitality")
# Monday 5 January 2026 00:00 UTC: a winter week, so UK local time is UTC (no clock change inside).
WEEK_START = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = 3600.0
WEEK_HOURS = 168.0
CRITICAL_DEADLINE_HOURS = 72.0
NEWCOMER_DAYS = 30.0

# (city, latitude, longitude, share of donors)
CITIES = (
    ("London", 51.507, -0.128, 0.30),
    ("Manchester", 53.480, -2.242, 0.15),
    ("Birmingham", 52.486, -1.890, 0.13),
    ("Leeds", 53.801, -1.549, 0.10),
    ("Glasgow", 55.864, -4.252, 0.10),
    ("Cardiff", 51.481, -3.179, 0.08),
    ("Bristol", 51.455, -2.588, 0.08),
    ("Newcastle", 54.978, -1.618, 0.06),
)
# Skill slugs and how common each is among donors: a few everyday skills, a long tail of rare ones.
SKILLS = (
    ("leafleting", 0.40),
    ("phone-banking", 0.30),
    ("driving", 0.25),
    ("cooking", 0.20),
    ("social-media", 0.18),
    ("translation", 0.08),
    ("first-aid", 0.08),
    ("graphic-design", 0.06),
    ("web-development", 0.05),
    ("data-analysis", 0.05),
    ("photography", 0.05),
    ("accounting", 0.03),
    ("legal-advice", 0.02),
    ("press-relations", 0.02),
    ("childcare", 0.04),
)
CAUSES = ("labour", "housing", "health", "education", "climate", "transport")
LANGUAGES = (("en", 1.0), ("cy", 0.08), ("es", 0.06), ("pl", 0.05), ("ur", 0.04))
DECLINE_REASONS = ("not available then", "not my kind of task", "too far", "already doing enough")


@dataclass(frozen=True)
class Responder:
    """What a donor would do, hidden from matching."""

    p_answer: float
    delay_hours: float
    eagerness: float
    tolerance: int


@dataclass(frozen=True)
class OpenedNeed:
    need: NeedState
    opened_at: float  # epoch seconds


@dataclass(frozen=True)
class World:
    seed: int
    start: float  # epoch seconds of the week's first hour
    donors: tuple[DonorProfile, ...]
    registered_at: tuple[datetime, ...]
    responders: tuple[Responder, ...]
    newcomer: npt.NDArray[np.bool_]  # per donor: joined within the newcomer window, never served
    needs: tuple[OpenedNeed, ...]  # in order of opening

    @property
    def end(self) -> float:
        """When the last deadline has passed: nothing can change after it."""
        return max(n.need.deadline.timestamp() for n in self.needs) + HOUR


def generate(seed: int, donors: int = 10_000, needs: int = 500, critical: int = 50) -> World:
    rng = np.random.default_rng(seed)
    profiles: list[DonorProfile] = []
    registered: list[datetime] = []
    responders: list[Responder] = []
    newcomer = np.zeros(donors, dtype=np.bool_)
    city_weights = np.array([c[3] for c in CITIES])
    city_weights /= city_weights.sum()
    skill_share = np.array([s[1] for s in SKILLS])
    evening = [WeeklyWindow(day=d, start="18:00", end="21:00") for d in list(Weekday)[:5]]
    weekend = [WeeklyWindow(day=d, start="10:00", end="16:00") for d in (Weekday.sat, Weekday.sun)]
    daytime = [WeeklyWindow(day=d, start="09:00", end="17:00") for d in list(Weekday)[:5]]
    window_sets = ((), tuple(evening), tuple(weekend), tuple(daytime), tuple(evening + weekend))
    for i in range(donors):
        city = CITIES[int(rng.choice(len(CITIES), p=city_weights))]
        held = np.flatnonzero(rng.random(len(SKILLS)) < skill_share)
        if held.size == 0:
            held = np.array([int(rng.choice(len(SKILLS), p=skill_share / skill_share.sum()))])
        skills = {SKILLS[int(s)][0]: int(rng.choice(4, p=(0.3, 0.35, 0.25, 0.1))) for s in held}
        languages = tuple(code for code, share in LANGUAGES if rng.random() < share)
        causes = tuple(c for c in CAUSES if rng.random() < 0.3) or (CAUSES[int(rng.integers(len(CAUSES)))],)
        is_new = bool(rng.random() < 0.2)
        age_days = float(rng.uniform(1, NEWCOMER_DAYS - 1)) if is_new else float(rng.uniform(45, 1500))
        at = WEEK_START - timedelta(days=age_days)
        windows = window_sets[int(rng.integers(len(window_sets)))]
        profiles.append(
            DonorProfile(
                donor_id=f"don_{i:05d}",
                federation_id=FEDERATION,
                organisation_id=ORGANISATIONS[i % len(ORGANISATIONS)],
                status="active",
                version=0,
                time_zone="Europe/London",
                hours_per_week=float(rng.choice((2.0, 4.0, 6.0, 10.0, 15.0))),
                remote=bool(rng.random() < 0.5),
                latitude=city[1] + float(rng.normal(0, 0.08)),
                longitude=city[2] + float(rng.normal(0, 0.12)),
                country="GB",
                languages=languages,
                causes=causes,
                skills=skills,
                windows_utc=windows_in_utc(list(windows), "Europe/London", at) if windows else (),
                registered_at=at,
            )
        )
        registered.append(at)
        newcomer[i] = is_new
        responders.append(
            Responder(
                p_answer=float(rng.beta(4, 2)),
                delay_hours=float(rng.lognormal(np.log(3.0), 0.9)),
                eagerness=float(rng.beta(2, 3)),
                tolerance=int(rng.integers(3, 9)),
            )
        )
    opened = [_need(rng, j, critical=j < critical) for j in range(needs)]
    opened.sort(key=lambda n: (n.opened_at, n.need.need_id))
    return World(
        seed=seed,
        start=WEEK_START.timestamp(),
        donors=tuple(profiles),
        registered_at=tuple(registered),
        responders=tuple(responders),
        newcomer=newcomer,
        needs=tuple(opened),
    )


def _need(rng: np.random.Generator, j: int, *, critical: bool) -> OpenedNeed:
    skill_share = np.array([s[1] for s in SKILLS])
    # Needs ask for common skills more often, but the rare ones are asked for far beyond their supply.
    demand = np.sqrt(skill_share)
    demand /= demand.sum()
    count = 1 if rng.random() < 0.85 else 2
    picked = rng.choice(len(SKILLS), size=count, replace=False, p=demand)
    required = tuple((SKILLS[int(s)][0], int(rng.choice(3, p=(0.5, 0.35, 0.15)))) for s in picked)
    nice = tuple(SKILLS[int(s)][0] for s in rng.choice(len(SKILLS), size=int(rng.integers(0, 3)), replace=False))
    city = CITIES[int(rng.integers(len(CITIES)))]
    if critical:
        opened_hours = float(rng.uniform(0, WEEK_HOURS - CRITICAL_DEADLINE_HOURS))
        deadline_hours = opened_hours + CRITICAL_DEADLINE_HOURS
        urgency, wanted = "critical", int(rng.choice((1, 2, 3), p=(0.5, 0.3, 0.2)))
    else:
        opened_hours = float(rng.uniform(0, WEEK_HOURS - 48))
        deadline_hours = opened_hours + float(rng.uniform(72, 168))
        urgency = "high" if rng.random() < 0.25 else "normal"
        wanted = int(rng.choice((1, 2, 3, 4), p=(0.45, 0.3, 0.15, 0.1)))
    opened_at = WEEK_START + timedelta(hours=opened_hours)
    need = NeedState(
        need_id=f"need_{j:04d}",
        fight_id=f"fight_{j % 40:02d}",
        federation_id=FEDERATION,
        organisation_id=ORGANISATIONS[j % len(ORGANISATIONS)],
        title=f"{urgency} need {j}",
        required_skills=required,
        nice_to_have=tuple(s for s in nice if s not in {r[0] for r in required}),
        estimated_hours=float(rng.choice((2.0, 4.0, 8.0, 12.0))) * wanted,
        deadline=WEEK_START + timedelta(hours=deadline_hours),
        urgency=urgency,
        remote=bool(rng.random() < 0.4),
        latitude=city[1],
        longitude=city[2],
        country="GB",
        language="cy" if rng.random() < 0.03 else "en",
        causes=tuple(c for c in CAUSES if rng.random() < 0.25),
        donors_wanted=wanted,
        status="open",
        version=0,
    )
    return OpenedNeed(need=need, opened_at=opened_at.timestamp())


def acceptance_chance(responder: Responder, fit: float, commitments: int, asks: int) -> float:
    """Yes when the task fits and they are not already busy; each ask this week wears a little."""
    logit = -1.2 + 3.0 * responder.eagerness + 2.0 * (fit - 0.5) - 0.8 * commitments - 0.15 * asks
    return float(1.0 / (1.0 + np.exp(-logit)))


def decline_reason(fit_parts: dict[str, float], commitments: int) -> str:
    """The reason a donor gives: the weakest part of the fit, or being busy."""
    if commitments >= 1:
        return DECLINE_REASONS[3]
    weakest = min(fit_parts, key=lambda k: fit_parts[k])
    return {"time": DECLINE_REASONS[0], "skill": DECLINE_REASONS[1], "place": DECLINE_REASONS[2]}[weakest]


def true_fit(donor: DonorProfile, need: NeedState) -> dict[str, float]:
    """How well the task suits the person, as they see it (not the ranking's score)."""
    levels = [donor.skills.get(slug, -1) - minimum for slug, minimum in need.required_skills]
    skill = min(1.0, 0.5 + 0.2 * min(levels)) if levels else 0.7
    if need.remote:
        place = 1.0 if donor.remote else 0.6
    elif donor.latitude is None or donor.longitude is None or need.latitude is None or need.longitude is None:
        place = 0.3
    else:
        km = 111.0 * float(np.hypot(donor.latitude - need.latitude, (donor.longitude - need.longitude) * 0.62))
        place = max(0.0, 1.0 - km / 60.0)
    time = 0.8 if donor.windows_utc else 0.5
    return {"skill": skill, "place": place, "time": time}
