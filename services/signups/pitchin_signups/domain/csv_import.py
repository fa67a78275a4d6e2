"""Donors from a federation's spreadsheet: each row becomes a sign-up or a named error."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pitchin_signups.domain.donors import DonorSignup

COLUMNS = (
    "name",
    "email",
    "phone",
    "skills",
    "hours_per_week",
    "time_zone",
    "remote",
    "city",
    "country",
    "languages",
    "causes",
    "union_member",
    "consent_wording_version",
    "consent_purposes",
    "consent_agreed_at",
)


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.replace(",", ";").split(";") if part.strip()]


def _skills(value: str) -> list[dict[str, str]]:
    skills = []
    for part in _split(value):
        skill, _, level = part.partition(":")
        skills.append({"skill": skill.strip(), "level": (level or "intermediate").strip()})
    return skills


def parse(text: str) -> tuple[list[tuple[int, DonorSignup]], list[RowError]]:
    """Rows are numbered as a spreadsheet shows them: the header is row 1."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [
        c
        for c in ("name", "email", "skills", "time_zone", "consent_wording_version", "consent_agreed_at")
        if c not in (reader.fieldnames or [])
    ]
    if missing:
        return [], [RowError(1, column, "this column is required") for column in missing]
    signups: list[tuple[int, DonorSignup]] = []
    errors: list[RowError] = []
    for number, row in enumerate(reader, start=2):
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        body: dict[str, Any] = {
            "name": cells.get("name", ""),
            "email": cells.get("email", ""),
            "phone": cells.get("phone") or None,
            "skills": _skills(cells.get("skills", "")),
            "availability": {"hours_per_week": cells.get("hours_per_week") or 2, "time_zone": cells.get("time_zone")},
            "place": {
                "remote": cells.get("remote", "yes").lower() not in ("no", "false", "0"),
                "city": cells.get("city") or None,
                "country": cells.get("country") or None,
            },
            "languages": _split(cells.get("languages", "")) or ["en"],
            "causes": _split(cells.get("causes", "")),
            "union_member": cells.get("union_member", "").lower() in ("yes", "true", "1"),
            "consent": {
                "wording_version": cells.get("consent_wording_version"),
                "purposes": _split(cells.get("consent_purposes", "")) or ["matching"],
                "agreed_at": cells.get("consent_agreed_at"),
            },
        }
        try:
            signups.append((number, DonorSignup.model_validate(body)))
        except ValidationError as exc:
            for err in exc.errors():
                errors.append(RowError(number, ".".join(str(p) for p in err["loc"]), err["msg"]))
    return signups, errors
