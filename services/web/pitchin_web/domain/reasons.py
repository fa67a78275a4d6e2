"""Why someone was matched, in words a person reads: the few score components that mattered.

Matching explains a score component by component (`name`, `points`, `why`), in the engine's
words ("0 open offer(s) or assignment(s) of at most 2"); that full explanation stays in its API.
A page shows only the three or four components worth the most points, phrased for its reader:
the donor reads why they were asked ("you know Python at expert level"), the organiser reads
what sets a candidate apart ("Knows Python at expert level", "Already asked 2 times this week").

The facts a sentence names (a skill and its level, a distance, a count) are read back out of
matching's `why` text; when a text is not in the shape expected, a plain sentence without the
detail stands in, never the engine's wording.

Pure: components and a translator in, sentences out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pitchin_web.messages import LANGUAGES

Audience = Literal["donor", "organiser"]
Translate = Callable[..., str]

SHOWN = 4
LEVELS = ("beginner", "intermediate", "advanced", "expert")
# The same for every candidate of a need (it orders needs, not people): it explains nothing about a
# person, and the need's urgency is shown beside it anyway.
SAME_FOR_EVERYONE = frozenset({"urgency"})
# Penalties tell an organiser why someone ranks lower; a donor is told why they were asked, not
# that they were asked despite something.
PENALTIES = frozenset({"load", "spread"})

_SKILL = re.compile(r"([a-z0-9][a-z0-9._-]*): (beginner|intermediate|advanced|expert)\b")
_NICE = re.compile(r"\(([^)]*)\)")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
_KM = re.compile(r"(\d+) km from the place")
_SPEAKS = re.compile(r"(?:speaks|does not list) ([A-Za-z-]+)")
_HISTORY = re.compile(r"(\d+) confirmed, (\d+) declined or expired")
_DAYS_AGO = re.compile(r"last asked (\d+(?:\.\d+)?) days ago")
_ASKED = re.compile(r"asked (\d+) time\(s\)")
_OPEN = re.compile(r"(\d+) open offer")
_CAUSES = re.compile(r"shares (\d+) of (\d+) causes")


@dataclass(frozen=True)
class Component:
    name: str
    points: float
    why: str


def components_of(raw: Iterable[Mapping[str, Any]] | None) -> list[Component]:
    """Matching's explanation (a list of `{name, points, why}`) as components; odd entries skipped."""
    found = []
    for item in raw or ():
        try:
            found.append(Component(str(item.get("name", "")), float(item.get("points") or 0), str(item.get("why", ""))))
        except (TypeError, ValueError):
            continue
    return found


def that_mattered(components: Iterable[Component], audience: Audience, limit: int = SHOWN) -> list[Component]:
    """The components worth the most points, largest first; never one worth nothing.

    The organiser sees penalties too (by their size); the donor only what counted for them.
    """
    kept = [
        c
        for c in components
        if c.name not in SAME_FOR_EVERYONE
        and round(c.points, 2) != 0
        and (audience == "organiser" or (c.points > 0 and c.name not in PENALTIES))
    ]
    return sorted(kept, key=lambda c: -abs(c.points))[:limit]


def plain_reasons(
    raw: Iterable[Mapping[str, Any]] | None,
    audience: Audience,
    t: Translate,
    skill_labels: Mapping[str, str] | None = None,
    limit: int = SHOWN,
) -> list[str]:
    """The three or four reasons that mattered, each one translated sentence."""
    return [said for _, said in phrased(raw, audience, t, skill_labels, limit)]


def phrased(
    raw: Iterable[Mapping[str, Any]] | None,
    audience: Audience,
    t: Translate,
    skill_labels: Mapping[str, str] | None = None,
    limit: int = SHOWN,
) -> list[tuple[Component, str]]:
    """The components that mattered, each beside its sentence (one with nothing to say is left out)."""
    labels = skill_labels or {}
    said = [(c, _sentence(c, audience, t, labels)) for c in that_mattered(components_of(raw), audience, limit)]
    return [(c, s) for c, s in said if s]


def skill_label(slug: str, labels: Mapping[str, str]) -> str:
    """A skill as the federation names it; its slug in words when the taxonomy is not to hand."""
    return labels.get(slug) or slug.replace("-", " ").replace("_", " ")


def language_name(tag: str) -> str:
    """A language by its own name where the pages know it (English, Español, Cymraeg), else its tag."""
    return LANGUAGES.get(tag.split("-")[0].lower(), tag)


def _figure(number: str) -> str:
    """A figure as a person writes it: 8, not 8.0."""
    return number[:-2] if number.endswith(".0") else number


def _skills(why: str, t: Translate, labels: Mapping[str, str]) -> str:
    held = [
        t("reason.skill_level", skill=skill_label(slug, labels), level=t(f"reason.level.{level}"))
        for slug, level in _SKILL.findall(why)
    ]
    return t("reason.and").join(held)


def _sentence(c: Component, audience: Audience, t: Translate, labels: Mapping[str, str]) -> str:
    """One component in the reader's words; the key names who reads it (`reason.<name>.<audience>`)."""
    why = c.why
    key = f"reason.{c.name}"
    if c.name == "skills":
        held = _skills(why, t, labels)
        return t(f"{key}.{audience}", skills=held) if held else t(f"{key}.fit.{audience}")
    if c.name == "nice_to_have":
        listed = _NICE.search(why)
        names = [skill_label(s.strip(), labels) for s in listed.group(1).split(",")] if listed else []
        if names:
            return t(f"{key}.{audience}", skills=t("reason.and").join(names))
        return t(f"{key}.some.{audience}")
    if c.name == "hours":
        numbers = _NUMBER.findall(why)
        if len(numbers) >= 2:
            return t(f"{key}.{audience}", free=_figure(numbers[0]), share=_figure(numbers[1]))
        return t(f"{key}.some.{audience}")
    if c.name == "time_overlap":
        numbers = _NUMBER.findall(why)
        if numbers and "a week" in why:
            return t(f"{key}.{audience}", hours=_figure(numbers[0]))
        return t(f"{key}.some.{audience}")
    if c.name == "place":
        if "remote need" in why:
            return t(f"{key}.remote.{audience}" if c.points > 0 else f"{key}.prefers_site.{audience}")
        km = _KM.search(why)
        if km:
            return t(f"{key}.km.{audience}", km=km.group(1))
        return t(f"{key}.country.{audience}")
    if c.name == "language":
        spoken = _SPEAKS.search(why)
        name = language_name(spoken.group(1)) if spoken else ""
        if c.points > 0:
            return t(f"{key}.{audience}", language=name) if name else t(f"{key}.some.{audience}")
        return t(f"{key}.missing.{audience}", language=name or "?")
    if c.name == "causes":
        shared = _CAUSES.search(why)
        if shared and audience == "organiser":
            return t(f"{key}.{audience}", shared=shared.group(1), of=shared.group(2))
        return t(f"{key}.donor") if audience == "donor" else t(f"{key}.some.organiser")
    if c.name == "recency":
        if "never asked" in why:
            return t(f"{key}.never.{audience}")
        days = _DAYS_AGO.search(why)
        if days and float(days.group(1)) < 1:
            # Asked within the day: worth saying to an organiser, no reason to give a donor.
            return t(f"{key}.today.organiser") if audience == "organiser" else ""
        if days:
            return t(f"{key}.{audience}", days=round(float(days.group(1))))
        return t(f"{key}.some.{audience}")
    if c.name == "newcomer":
        return t(f"{key}.{audience}")
    if c.name == "history":
        counts = _HISTORY.search(why)
        if c.points > 0:
            done = counts.group(1) if counts else ""
            return t(f"{key}.{audience}", done=done) if done and done != "0" else t(f"{key}.some.{audience}")
        missed = counts.group(2) if counts else "?"
        return t(f"{key}.missed.organiser", missed=missed)
    if c.name == "load":
        found = _OPEN.search(why)
        return t(f"{key}.organiser", count=found.group(1) if found else "?")
    if c.name == "spread":
        found = _ASKED.search(why)
        return t(f"{key}.organiser", count=found.group(1) if found else "?")
    # A component matching added since: said plainly, by whether it helped, not in engine words.
    return t("reason.other.helped" if c.points > 0 else "reason.other.counted_against")
