"""The skills taxonomy a federation owns; every federation starts from the brief's list."""

from __future__ import annotations

DEFAULT_SKILLS: dict[str, str] = {
    "social-media": "Social media",
    "writing-for-the-web": "Writing for the web",
    "graphic-design": "Graphic design",
    "online-video": "Online video",
    "web-development": "Web development",
    "training-in-digital-tools": "Training in digital tools",
    "online-advertising": "Online advertising",
    "livestream-production": "Livestream production",
    "photography": "Photography",
    "data-and-analytics": "Data and analytics",
}


def unknown_skills(wanted: list[str], taxonomy: dict[str, str]) -> list[tuple[int, str]]:
    """(position, slug) of each skill the federation's taxonomy does not have."""
    return [(i, slug) for i, slug in enumerate(wanted) if slug not in taxonomy]
