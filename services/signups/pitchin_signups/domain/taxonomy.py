"""The skills taxonomy a federation owns; every federation starts from the brief's list."""

from __future__ import annotations

from pitchin_core.errors import FieldError, Invalid

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


class UnknownSkill(Invalid):
    """Skills the federation's taxonomy does not have, each named by its place in the request."""

    default_title = "Unknown skill"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors, detail="; ".join(f"{e.field}: {e.message}" for e in errors))


def check_known(wanted: list[str], taxonomy: dict[str, str], field: str) -> None:
    """Refuse every skill of `wanted` (listed under `field`) that the taxonomy does not have."""
    missing = unknown_skills(wanted, taxonomy)
    if missing:
        raise UnknownSkill(
            [FieldError(f"{field}.{i}.skill", f"{slug!r} is not in the federation's skills") for i, slug in missing]
        )
