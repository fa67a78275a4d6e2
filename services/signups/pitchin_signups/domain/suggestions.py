"""For organisations that "don't know who or how to ask": plain words in, suggested needs out.

A small library of kits drawn from what union locals and community groups keep missing;
each kit is a set of need drafts the organisation can accept or edit. Matching is by
keywords, deliberately simple and explainable: the answer says which words chose the kit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pitchin_core.contracts.common import SkillLevel
from pitchin_core.contracts.fights import NeedPlace, RequiredSkill, Urgency
from pitchin_signups.domain.fights import NeedDraft


@dataclass(frozen=True)
class NeedTemplate:
    title: str
    description: str
    skills: tuple[tuple[str, SkillLevel], ...]
    estimated_hours: float
    days_before_deadline: int


@dataclass(frozen=True)
class Kit:
    slug: str
    name: str
    keywords: tuple[str, ...]
    needs: tuple[NeedTemplate, ...]


KITS: tuple[Kit, ...] = (
    Kit(
        "strike-communications",
        "Strike communications kit",
        ("strike", "walkout", "picket", "industrial action", "ballot", "lockout"),
        (
            NeedTemplate(
                "Social media plan for the strike",
                "A plan and calendar of posts for before, during and "
                "after the strike, and someone to run it on the day.",
                (("social-media", SkillLevel.advanced),),
                12,
                5,
            ),
            NeedTemplate(
                "Graphic design for placards and posts",
                "Placard artwork and shareable images in the union's colours.",
                (("graphic-design", SkillLevel.intermediate),),
                8,
                4,
            ),
            NeedTemplate(
                "Short videos from the picket line",
                "Filming and editing short clips of members saying why they are out.",
                (("online-video", SkillLevel.intermediate),),
                10,
                3,
            ),
            NeedTemplate(
                "Writing for the web: the strike explained",
                "A clear page and press-ready text on what the dispute is about.",
                (("writing-for-the-web", SkillLevel.intermediate),),
                6,
                4,
            ),
        ),
    ),
    Kit(
        "organising-drive",
        "Organising drive kit",
        ("organising", "organizing", "recognition", "sign up members", "membership drive", "union drive"),
        (
            NeedTemplate(
                "A sign-up page and form",
                "A simple, secure page where workers can join or ask to be contacted.",
                (("web-development", SkillLevel.intermediate),),
                15,
                10,
            ),
            NeedTemplate(
                "Contact data kept tidy",
                "A spreadsheet or CRM set-up to track conversations.",
                (("data-and-analytics", SkillLevel.intermediate),),
                6,
                10,
            ),
            NeedTemplate(
                "Social media for the drive",
                "Posts that reach workers where they are.",
                (("social-media", SkillLevel.intermediate),),
                8,
                7,
            ),
        ),
    ),
    Kit(
        "event-livestream",
        "Event and livestream kit",
        ("livestream", "live stream", "panel", "conference", "book launch", "hashtag", "training event"),
        (
            NeedTemplate(
                "Livestream production",
                "Camera, sound and streaming for the event.",
                (("livestream-production", SkillLevel.advanced),),
                6,
                7,
            ),
            NeedTemplate(
                "Event photography",
                "Photos for the website and social media.",
                (("photography", SkillLevel.intermediate),),
                4,
                7,
            ),
            NeedTemplate(
                "Live social media with the hashtag",
                "Posting and answering during the event.",
                (("social-media", SkillLevel.intermediate),),
                4,
                5,
            ),
        ),
    ),
    Kit(
        "advocacy-campaign",
        "Advocacy campaign kit",
        ("campaign", "petition", "council", "lobby", "advocacy", "paid sick days", "family leave"),
        (
            NeedTemplate(
                "Online advertising to reach supporters",
                "Small, well-targeted ad campaigns.",
                (("online-advertising", SkillLevel.intermediate),),
                8,
                10,
            ),
            NeedTemplate(
                "Writing for the web: the case",
                "A campaign page and emails.",
                (("writing-for-the-web", SkillLevel.intermediate),),
                8,
                10,
            ),
            NeedTemplate(
                "Campaign graphics",
                "Shareable graphics and a consistent look.",
                (("graphic-design", SkillLevel.intermediate),),
                6,
                10,
            ),
        ),
    ),
    Kit(
        "digital-skills-training",
        "Digital skills training kit",
        ("training", "don't know how", "dont know how", "new to", "website", "online tools", "skills"),
        (
            NeedTemplate(
                "Training in digital tools for staff",
                "A hands-on session on the tools the organisation already pays for.",
                (("training-in-digital-tools", SkillLevel.advanced),),
                6,
                21,
            ),
        ),
    ),
)


@dataclass(frozen=True)
class Suggestion:
    kit: str
    name: str
    because: list[str]
    needs: list[NeedDraft]


def suggest(
    situation: str, *, now: datetime, deadline: datetime | None = None, remote: bool = True
) -> list[Suggestion]:
    text = " " + re.sub(r"\s+", " ", situation.lower()) + " "
    found = []
    for kit in KITS:
        because = [word for word in kit.keywords if re.search(rf"\b{re.escape(word)}\b", text)]
        if not because:
            continue
        urgency = Urgency.critical if deadline and deadline - now <= timedelta(days=7) else Urgency.high
        needs = [
            NeedDraft(
                title=template.title,
                description=template.description,
                required_skills=[RequiredSkill(skill=s, min_level=level) for s, level in template.skills],
                estimated_hours=template.estimated_hours,
                deadline=(deadline - timedelta(days=1))
                if deadline
                else now + timedelta(days=template.days_before_deadline),
                urgency=urgency if kit.slug == "strike-communications" else Urgency.normal,
                place=NeedPlace(remote=remote),
            )
            for template in kit.needs
        ]
        found.append(Suggestion(kit.slug, kit.name, because, needs))
    found.sort(key=lambda s: len(s.because), reverse=True)
    return found
