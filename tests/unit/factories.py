"""Valid contract payloads for tests; each test changes what it is about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def donor_signup(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Farra Trompeter",
        "email": "farra@example.org",
        "phone": "+447700900123",
        "skills": [{"skill": "social-media", "level": "expert"}, {"skill": "graphic-design", "level": "intermediate"}],
        "availability": {
            "hours_per_week": 4,
            "time_zone": "Europe/London",
            "windows": [{"day": "sat", "start": "10:00", "end": "13:00"}],
        },
        "place": {"remote": True, "city": "Dudley", "country": "GB"},
        "languages": ["en"],
        "causes": ["labour", "community"],
        "union_member": False,
        "contact": {"email": True, "sms": False, "language": "en"},
        "consent": {
            "wording_version": "2026-01",
            "purposes": ["matching", "event-news"],
            "agreed_at": "2026-11-01T09:00:00Z",
        },
    }
    body.update(overrides)
    return body


def donor_registered(**overrides: Any) -> dict[str, Any]:
    body = donor_signup()
    body.update(
        federation_id="fed-wm",
        organisation_id=None,
        donor_id="don_1",
        registered_at=datetime(2026, 11, 2, 10, 0, tzinfo=UTC).isoformat(),
    )
    body.update(overrides)
    return body
