"""Reasons a person reads (domain.reasons): the few components that mattered, in plain translated words."""

from __future__ import annotations

from typing import Any

import pytest

from pitchin_web.domain import reasons
from pitchin_web.messages import CATALOGUES, Translator

LABELS = {"data-and-analytics": "Data and analytics", "python": "Python", "video": "Video"}

# Matching's explanation of one candidate, word for word as domain/ranking.py writes it.
EXPLANATION: list[dict[str, Any]] = [
    {"name": "skills", "points": 30.0, "why": "python: expert (needs advanced)"},
    {"name": "nice_to_have", "points": 5.0, "why": "has 1 of 2 nice-to-have skills (video)"},
    {"name": "hours", "points": 15.0, "why": "about 20 h free before the deadline for a share of 4 h"},
    {"name": "time_overlap", "points": 0.0, "why": "the federation has set no collaboration hours"},
    {"name": "place", "points": 15.0, "why": "remote need; donor works remotely"},
    {"name": "language", "points": 15.0, "why": "speaks es"},
    {"name": "causes", "points": 0.0, "why": "the need names no causes"},
    {
        "name": "urgency",
        "points": 5.0,
        "why": "critical need (same for every candidate; orders needs in the global assignment)",
    },
    {"name": "load", "points": -5.0, "why": "1 open offer(s) or assignment(s) of at most 2"},
    {"name": "recency", "points": 10.0, "why": "never asked"},
    {"name": "newcomer", "points": 0.0, "why": "not a newcomer (has served or joined long ago)"},
    {"name": "history", "points": 0.0, "why": "0 confirmed, 0 declined or expired"},
    {"name": "spread", "points": -12.0, "why": "asked 2 time(s) in the last 7 days of at most 3"},
]
ENGINE_WORDS = ("same for every candidate", "open offer(s)", "names no causes", "+0.00", "needs advanced")


def test_the_donor_reads_the_largest_helpful_reasons_in_plain_words() -> None:
    said = reasons.plain_reasons(EXPLANATION, "donor", Translator("en"), LABELS)
    assert said == [
        "You know Python at expert level",
        "You have about 20 hours free before the deadline, for about 4 hours of work",
        "It can be done remotely, as you prefer",
        "You speak Español, the language of the work",
    ]


def test_the_organiser_sees_what_sets_a_candidate_apart_penalties_too_by_size() -> None:
    chosen = reasons.that_mattered(reasons.components_of(EXPLANATION), "organiser")
    assert [c.name for c in chosen] == ["skills", "hours", "place", "language"]
    few = reasons.that_mattered(reasons.components_of(EXPLANATION), "organiser", limit=6)
    assert [c.name for c in few][-2:] == ["spread", "recency"], "a -12 penalty outranks a +10 reason"
    said = reasons.plain_reasons(EXPLANATION, "organiser", Translator("en"), LABELS, limit=6)
    assert "Already asked 2 time(s) this week" in said and "Knows Python at expert level" in said


def test_zero_terms_urgency_and_engine_wording_never_show() -> None:
    for audience in ("donor", "organiser"):
        chosen = reasons.that_mattered(reasons.components_of(EXPLANATION), audience, limit=20)
        names = {c.name for c in chosen}
        assert not names & {"time_overlap", "causes", "newcomer", "history", "urgency"}, audience
        for text in reasons.plain_reasons(EXPLANATION, audience, Translator("en"), LABELS, limit=20):
            assert not any(word in text for word in ENGINE_WORDS), text
    donor = {c.name for c in reasons.that_mattered(reasons.components_of(EXPLANATION), "donor", limit=20)}
    assert not donor & {"load", "spread"}, "a donor is told why they were asked, not what counted against"


@pytest.mark.parametrize(
    ("name", "points", "why", "donor", "organiser"),
    [
        ("place", 9.0, "12 km from the place", "You are about 12 km from where it happens", "About 12 km away"),
        ("place", 5.0, "same country, distance unknown", "You are in the same country", None),
        ("causes", 10.0, "shares 2 of 3 causes", "You care about the causes this fight is about", None),
        ("recency", 6.0, "last asked 9.6 days ago", "We have not asked you for 10 days", "Last asked 10 days ago"),
        ("recency", 0.5, "last asked 0.2 days ago", None, "Asked in the last day"),
        ("newcomer", 10.0, "newcomer boost", None, "New to Pitch In"),
        ("history", 4.0, "3 confirmed, 1 declined or expired", "You have helped 3 time(s) before", None),
        ("history", -4.0, "0 confirmed, 4 declined or expired", None, "Said no to or let lapse 4 request(s)"),
        ("time_overlap", 7.0, "2.5 h a week inside the organisation's working hours (UTC-aligned)", None, None),
        ("language", -15.0, "does not list cy", None, "Does not list Cymraeg"),
        ("skills", 30.0, "no skills required", "Your skills fit what is needed", "Has the skills needed"),
        ("novelty", 3.0, "some new engine term", "Something else in the match counted in their favour", None),
    ],
)
def test_each_component_in_words(name: str, points: float, why: str, donor: str | None, organiser: str | None) -> None:
    one = [{"name": name, "points": points, "why": why}]
    t = Translator("en")
    said_donor = reasons.plain_reasons(one, "donor", t, LABELS)
    if donor is not None:
        assert said_donor == [donor]
    if points <= 0:
        assert said_donor == [], "a donor is not told what counted against them"
    said_organiser = reasons.plain_reasons(one, "organiser", t, LABELS)
    assert len(said_organiser) == (1 if round(points, 2) else 0)
    if organiser is not None:
        assert said_organiser == [organiser]
    for text in said_donor + said_organiser:
        assert not text.startswith("reason."), f"no message for {text}"


def test_several_skills_and_an_unknown_slug_read_as_words() -> None:
    why = "python: expert (needs advanced); data-and-analytics: advanced (needs beginner); gis-mapping: beginner"
    said = reasons.plain_reasons([{"name": "skills", "points": 30, "why": why}], "donor", Translator("en"), LABELS)
    assert said == [
        "You know Python at expert level, Data and analytics at advanced level, gis mapping at beginner level"
    ]


@pytest.mark.parametrize("language", ["es", "cy"])
def test_reasons_are_translated(language: str) -> None:
    english = reasons.plain_reasons(EXPLANATION, "donor", Translator("en"), LABELS)
    translated = reasons.plain_reasons(EXPLANATION, "donor", Translator(language), LABELS)
    assert len(translated) == len(english) and not set(translated) & set(english)
    assert any("Python" in s for s in translated)


def test_every_message_the_module_can_ask_for_exists() -> None:
    """Every `reason.*` key a sentence may use is in the catalogue (a missing one would show its key)."""
    asked: set[str] = set()

    def t(key: str, **values: object) -> str:
        asked.add(key)
        return key

    samples = [
        *EXPLANATION,
        {"name": "place", "points": 9, "why": "12 km from the place"},
        {"name": "place", "points": 9, "why": "same country, distance unknown"},
        {"name": "place", "points": 3, "why": "remote need; donor prefers on site"},
        {"name": "time_overlap", "points": 7, "why": "2.5 h a week inside the organisation's working hours"},
        {"name": "time_overlap", "points": 7, "why": "the donor gave no weekly windows"},
        {"name": "causes", "points": 10, "why": "shares 2 of 3 causes"},
        {"name": "recency", "points": 6, "why": "last asked 9.6 days ago"},
        {"name": "recency", "points": 1, "why": "last asked 0.2 days ago"},
        {"name": "newcomer", "points": 10, "why": "newcomer boost"},
        {"name": "history", "points": 4, "why": "3 confirmed, 1 declined or expired"},
        {"name": "history", "points": -4, "why": "0 confirmed, 4 declined or expired"},
        {"name": "language", "points": -15, "why": "does not list cy"},
        {"name": "skills", "points": 30, "why": "no skills required"},
        {"name": "nice_to_have", "points": 5, "why": "has some"},
        {"name": "hours", "points": 5, "why": "plenty"},
        {"name": "novelty", "points": 3, "why": "x"},
        {"name": "novelty", "points": -3, "why": "x"},
    ]
    for audience in ("donor", "organiser"):
        for sample in samples:
            reasons.plain_reasons([sample], audience, t, LABELS)
    missing = sorted(k for k in asked if k not in CATALOGUES["en"])
    assert not missing, missing
