"""Demo data for `make run`, drawn from the seed documents: Dudley CVS's training afternoon
with free places and its informal meet-up, the Organizing 2.0 training conference, a union
local's strike that needs social media and graphic design help, and a few knowledge donors
with the skills unions say they lack. Safe to run again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pitchin_testing.stack import Stack

FEDERATION = "fed-demo"
CRM_SOURCE = "/crm/retail-workers-local-99"
KEYS = {
    "Dudley CVS (organiser)": ("org-dudley-cvs", "organiser", "pk_demo_dudley_cvs_organiser"),
    "Retail Workers Local 99 (organiser)": ("org-retail-local-99", "organiser", "pk_demo_local99_organiser"),
    "Organizing 2.0 (organiser)": ("org-organizing-2-0", "organiser", "pk_demo_organizing20_organiser"),
    "Federation staff": (None, "federation-staff", "pk_demo_federation_staff"),
}


def _on(days: int, hour: int, minute: int = 0) -> str:
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00"


def _events() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "Dudley CVS (organiser)",
            {
                "kind": "training",
                "title": "Building Blocks: digital tools for community groups, with Liam Barrington-Bush",
                "description": "A free training afternoon on how social media changes the way voluntary "
                "organisations in Dudley borough work.",
                "starts_at": _on(30, 13, 30),
                "ends_at": _on(30, 16, 30),
                "time_zone": "Europe/London",
                "venue_name": "Dudley CVS",
                "venue_address": "7 Albion Street, Brierley Hill DY5 3EE",
                "capacity": 30,
                "free_places": True,
                "organiser_email": "events@dudleycvs.example",
            },
        ),
        (
            "Dudley CVS (organiser)",
            {
                "kind": "meet-up",
                "title": "Informal meet-up: Anarchists in the Boardroom",
                "starts_at": _on(29, 17),
                "ends_at": _on(29, 19),
                "time_zone": "Europe/London",
                "venue_name": "Brewsmiths coffee shop, Birmingham",
                "free_places": True,
                "organiser_email": "events@dudleycvs.example",
            },
        ),
        (
            "Organizing 2.0 (organiser)",
            {
                "kind": "conference",
                "title": "Organizing 2.0: online organising strategies for the labour movement",
                "starts_at": _on(60, 9),
                "ends_at": _on(60, 17),
                "time_zone": "America/New_York",
                "venue_name": "CUNY Murphy Institute",
                "capacity": 200,
                "hashtag": "#org20",
                "online_url": "https://stream.example.org/org20",
                "organiser_email": "hello@organizing20.example",
            },
        ),
    ]


def _donors() -> list[dict[str, Any]]:
    consent = {
        "wording_version": "2026-01",
        "purposes": ["matching", "event-news"],
        "agreed_at": datetime.now(UTC).isoformat(),
    }
    people = [
        ("Amira Okafor", "amira", [("social-media", "expert"), ("writing-for-the-web", "advanced")], "Europe/London"),
        ("Tomasz Nowak", "tomasz", [("graphic-design", "advanced"), ("photography", "intermediate")], "Europe/London"),
        (
            "Rosa Delgado",
            "rosa",
            [("online-video", "advanced"), ("livestream-production", "expert")],
            "America/New_York",
        ),
        ("Dev Patel", "dev", [("web-development", "expert"), ("data-and-analytics", "intermediate")], "Europe/London"),
    ]
    return [
        {
            "name": name,
            "email": f"{handle}@donors.example",
            "skills": [{"skill": s, "level": level} for s, level in skills],
            "availability": {
                "hours_per_week": 4,
                "time_zone": zone,
                "windows": [{"day": "sat", "start": "10:00", "end": "13:00"}],
            },
            "place": {"remote": True},
            "languages": ["en"],
            "causes": ["labour"],
            "contact": {"email": True, "sms": False, "language": "en"},
            "consent": consent,
        }
        for name, handle, skills, zone in people
    ]


def _strike() -> dict[str, Any]:
    deadline = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0).isoformat()
    return {
        "kind": "strike",
        "title": "Retail Workers Local 99: strike at the distribution centre",
        "description": "The strike starts in a week. We have no online plan and need the public behind us.",
        "causes": ["labour"],
        "needs": [
            {
                "title": "Social media plan for the strike",
                "urgency": "critical",
                "estimated_hours": 12,
                "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
                "deadline": deadline,
            },
            {
                "title": "Graphic design for placards and posts",
                "urgency": "high",
                "estimated_hours": 8,
                "required_skills": [{"skill": "graphic-design", "min_level": "intermediate"}],
                "deadline": deadline,
            },
        ],
    }


def seed(stack: Stack) -> dict[str, str]:
    keys = {}
    for label, (organisation, role, key) in KEYS.items():
        keys[label] = stack.issue_key(FEDERATION, organisation, role, key=key)
    with httpx.Client(timeout=15) as client:
        for label, body in _events():
            client.post(
                f"{stack['scheduling'].url}/v1/events", json=body, headers={"Authorization": f"Bearer {keys[label]}"}
            ).raise_for_status()
        fights = client.get(
            f"{stack['signups'].url}/v1/fights",
            headers={"Authorization": f"Bearer {keys['Retail Workers Local 99 (organiser)']}"},
        )
        if not fights.json()["items"]:  # once: a second run keeps the first strike
            client.post(
                f"{stack['signups'].url}/v1/fights",
                json=_strike(),
                headers={"Authorization": f"Bearer {keys['Retail Workers Local 99 (organiser)']}"},
            ).raise_for_status()
        for body in _donors():
            answer = client.post(
                f"{stack['signups'].url}/v1/donors",
                json=body,
                headers={"Authorization": f"Bearer {keys['Federation staff']}"},
            )
            if answer.status_code not in (201, 409):  # 409: signed up on an earlier run
                answer.raise_for_status()
        _register_crm(client, stack, keys["Federation staff"])
    return keys


def _register_crm(client: httpx.Client, stack: Stack, staff_key: str) -> None:
    """The union local's CRM as a registered publishing system (once: a second run keeps its key)."""
    staff = {"Authorization": f"Bearer {staff_key}"}
    listed = client.get(f"{stack['signups'].url}/v1/publishers", headers=staff)
    listed.raise_for_status()
    if any(p["source"] == CRM_SOURCE for p in listed.json()["items"]):
        return
    client.post(
        f"{stack['signups'].url}/v1/publishers",
        json={"source": CRM_SOURCE, "label": "Retail Workers Local 99 CRM", "organisations": ["org-retail-local-99"]},
        headers=staff,
    ).raise_for_status()
