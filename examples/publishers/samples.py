"""One example of every type a system may publish into Pitch In (docs/ingest.md), in the
order a publisher would send them. Plain dictionaries: no Pitch In code is needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

PREFIX = "org.pitchin.ingest."


def every_type(federation_id: str, organisation_id: str, run: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of every published type; `run` makes the external ids and emails unique.

    Types applied by different services (an RSVP by signups, its event's cancellation by
    scheduling) are ordered per service only: the event's cancellation comes last, and a
    publisher that wants the RSVPs to land first waits for their answers before sending it.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    tenant = {"federation_id": federation_id, "organisation_id": organisation_id}
    person, fight, event, rsvp = f"crm-person-{run}", f"crm-strike-{run}", f"cal-event-{run}", f"cal-rsvp-{run}"
    starts = (now + timedelta(days=20)).replace(hour=18, minute=0, second=0)

    def at(seconds: int) -> str:
        return (now + timedelta(seconds=seconds)).isoformat()

    return [
        (
            PREFIX + "person-signed-up.v1",
            {
                **tenant,
                "external_id": person,
                "updated_at": at(0),
                "name": "Ana Organiser",
                "email": f"ana-{run}@crm.example",
                "skills": [{"skill": "social-media", "level": "expert"}],
                "availability": {"hours_per_week": 5, "time_zone": "Europe/London"},
                "place": {"remote": True, "city": "Dudley", "country": "GB"},
                "consent": {"wording_version": "2026-01", "purposes": ["matching"], "agreed_at": at(-60)},
            },
        ),
        (
            PREFIX + "person-updated.v1",
            {
                **tenant,
                "external_id": person,
                "updated_at": at(1),
                "availability": {"hours_per_week": 8, "time_zone": "Europe/London"},
            },
        ),
        (
            PREFIX + "fight-opened.v1",
            {
                **tenant,
                "external_id": fight,
                "updated_at": at(2),
                "kind": "strike",
                "title": "Bus drivers' strike",
                "description": "A strike was called for next month; we need an online plan.",
                "needs": [
                    {
                        "title": "Run the strike's social media",
                        "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
                        "estimated_hours": 20,
                        "deadline": at(14 * 86_400),
                        "urgency": "critical",
                    }
                ],
            },
        ),
        (
            PREFIX + "event-created.v1",
            {
                **tenant,
                "external_id": event,
                "updated_at": at(3),
                "kind": "training",
                "title": "Digital tools for strikers",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "time_zone": "Europe/London",
                "venue_name": "Union hall",
                "capacity": 30,
                "organiser_email": "events@crm.example",
            },
        ),
        (
            PREFIX + "event-changed.v1",
            {**tenant, "external_id": event, "updated_at": at(4), "title": "Digital tools for strikers (2nd run)"},
        ),
        (
            PREFIX + "rsvp-made.v1",
            {
                **tenant,
                "external_id": rsvp,
                "updated_at": at(5),
                "event_external_id": event,
                "name": "Ben Member",
                "email": f"ben-{run}@crm.example",
            },
        ),
        (PREFIX + "rsvp-cancelled.v1", {**tenant, "external_id": rsvp, "updated_at": at(6)}),
        (PREFIX + "person-withdrawn.v1", {**tenant, "external_id": person, "updated_at": at(8)}),
        (
            PREFIX + "event-cancelled.v1",
            {**tenant, "external_id": event, "updated_at": at(7), "reason": "Hall flooded"},
        ),
    ]
