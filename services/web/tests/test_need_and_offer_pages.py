"""The organiser's need page and the donor's offer page speak to people (issue 21), against stand-ins of
the services (httpx.MockTransport): names not ids, the reasons that mattered in words, the
escalation's steps, and Confirm/Release only while an assignment awaits confirmation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from pitchin_web.clients import Services
from pitchin_web.main import WebSettings, create_app
from pitchin_web.sessions import MemorySessions

DEADLINE = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
NEED = {
    "need_id": "need_1",
    "fight_id": "fight_1",
    "title": "Strike comms",
    "status": "partly-filled",
    "urgency": "critical",
    "donors_wanted": 2,
    "deadline": DEADLINE.isoformat(),
    # Signups has not learned the confirmation yet (it comes over Kafka): the page must not say 0/2.
    "assigned_donors": [],
}
COMPONENTS = [
    {"name": "skills", "points": 30.0, "why": "social-media: expert (needs advanced)"},
    {"name": "time_overlap", "points": 0.0, "why": "the federation has set no collaboration hours"},
    {
        "name": "urgency",
        "points": 5.0,
        "why": "critical need (same for every candidate; orders needs in the global assignment)",
    },
    {"name": "load", "points": 0.0, "why": "0 open offer(s) or assignment(s) of at most 2"},
    {"name": "causes", "points": 0.0, "why": "the need names no causes"},
    {"name": "recency", "points": 10.0, "why": "never asked"},
    {"name": "place", "points": 15.0, "why": "remote need; donor works remotely"},
    {"name": "spread", "points": -3.3, "why": "asked 1 time(s) in the last 7 days of at most 3"},
    {"name": "newcomer", "points": 1.0, "why": "newcomer boost"},
]
CANDIDATES = {
    "need_id": "need_1",
    "candidates": [
        {"donor_id": "don_353a7f01", "score": 57.7, "offer_status": "accepted", "components": COMPONENTS},
        {"donor_id": "don_lent0002", "score": 41.0, "offer_status": None, "components": COMPONENTS},
        {"donor_id": "don_unknown3", "score": 12.0, "offer_status": None, "components": COMPONENTS},
    ],
}
PROFILES = {
    "profiles": [
        {
            "donor_id": "don_353a7f01",
            "name": "Ada Analyst",
            "organisation_id": "org",
            "skills": [{"skill": "photography", "level": "beginner"}, {"skill": "social-media", "level": "expert"}],
            "languages": ["en", "cy"],
            "remote": True,
            "lent": False,
        },
        {
            "donor_id": "don_lent0002",
            "name": "Bryn Benn",
            "organisation_id": "org-other",
            "skills": [{"skill": "social-media", "level": "advanced"}],
            "languages": ["en"],
            "remote": False,
            "lent": True,
        },
    ]
}
ESCALATION: dict[str, Any] = {
    "need_id": "need_1",
    "urgency": "critical",
    "stage": 1,
    "next_step_at": "2026-12-05T15:00:00+00:00",
    "steps": [
        {
            "step": 0,
            "kind": "first-wave",
            "detail": "the best-fit 6 asked first (3 per place)",
            "offers_wanted": 6,
            "taken_at": "2026-12-03T09:00:00+00:00",
        },
        {
            "step": 1,
            "kind": "widened",
            "detail": "step 1: nice-to-have skills no longer count, reach 75 km, 4 offers at once per free place",
            "offers_wanted": 8,
            "taken_at": "2026-12-03T11:30:00+00:00",
        },
    ],
}
NOT_FOUND = httpx.Response(
    404, json={"title": "Not found", "detail": "x"}, headers={"content-type": "application/problem+json"}
)


class Stand:
    """The services as the need page reads them; a test changes what one answers."""

    def __init__(self) -> None:
        self.assignment = "accepted"
        self.profiles: Callable[[], httpx.Response] = lambda: httpx.Response(200, json=PROFILES)
        self.escalation: dict[str, Any] | None = ESCALATION
        self.asked_for: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, host = request.url.path, request.url.host
        if path == "/v1/skills":
            return httpx.Response(200, json={"social-media": "Social media", "photography": "Photography"})
        if path == "/v1/events":
            return httpx.Response(200, json=[])
        if host == "signups" and path == "/v1/needs/need_1":
            return httpx.Response(200, json=NEED)
        if host == "signups" and path == "/v1/needs/need_1/candidate-profiles":
            self.asked_for = json.loads(request.content)["donor_ids"]
            return self.profiles()
        if host == "matching" and path == "/v1/needs/need_1/candidates":
            return httpx.Response(200, json=CANDIDATES)
        if host == "matching" and path == "/v1/needs/need_1/offers":
            offers = [
                {
                    "offer_id": "off_1",
                    "donor_id": "don_353a7f01",
                    "status": "accepted",
                    "assignment_status": self.assignment,
                },
                {"offer_id": "off_2", "donor_id": "don_unknown3", "status": "declined", "assignment_status": None},
            ]
            return httpx.Response(200, json={"need_id": "need_1", "status": "open", "offers": offers})
        if host == "matching" and path == "/v1/needs/need_1/hours":
            logs = [
                {
                    "log_id": "log_1",
                    "donor_id": "don_353a7f01",
                    "worked_on": "2026-12-01",
                    "hours": 2,
                    "note": "",
                    "status": "logged",
                }
            ]
            return httpx.Response(200, json={"logs": logs})
        if host == "matching" and path == "/v1/needs/need_1/escalation":
            return httpx.Response(200, json=self.escalation) if self.escalation is not None else NOT_FOUND
        if host == "matching" and path == "/v1/offers/off_1":
            return httpx.Response(200, json=OFFER)
        return NOT_FOUND


OFFER = {
    "offer_id": "off_1",
    "need_id": "need_1",
    "fight_id": "fight_1",
    "donor_id": "don_353a7f01",
    "status": "pending",
    "score": 57.7,
    "made_at": "2026-12-03T09:00:00+00:00",
    "expires_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    "need_title": "Strike comms",
    "estimated_hours": 4.0,
    "deadline": DEADLINE.isoformat(),
    "urgency": "critical",
    "explanation": [
        *COMPONENTS,
        {"name": "load", "points": -5.0, "why": "1 open offer(s) or assignment(s) of at most 2"},
        {"name": "causes", "points": 0.0, "why": "the need names no causes"},
    ],
}


@pytest.fixture
def stand() -> Stand:
    return Stand()


@pytest.fixture
def client(stand: Stand) -> TestClient:
    settings = WebSettings(
        environment="test",
        session_secret="s" * 40,
        donor_link_secret="d" * 40,
        federation_key="pk_fed",
        signups_url="http://signups",
        matching_url="http://matching",
        notifications_url="http://notifications",
        scheduling_url="http://scheduling",
    )
    app = create_app(settings, MemorySessions(3600, 8 * 3600))
    app.state.web.services = Services(settings.service_urls, 2.0, httpx.MockTransport(stand))
    return TestClient(app)


def _organiser(client: TestClient) -> None:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert found
    client.post("/login", data={"csrf": found.group(1), "api_key": "pk_org", "role": "organiser"})


def _section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("</section>", start)
    return html[start:end]


def test_candidates_by_name_with_a_short_profile_never_the_id(client: TestClient, stand: Stand) -> None:
    _organiser(client)
    html = client.get("/organiser/needs/need_1").text
    assert html.count("<h1") == 1
    assert set(stand.asked_for) == {"don_353a7f01", "don_lent0002", "don_unknown3"}
    cards = _section(html, "cand-title")
    assert re.search(r"<h3>Ada Analyst", cards) and re.search(r"<h3>Bryn Benn", cards)
    assert "Social media (Expert), Photography (Beginner)" in cards, "strongest skill first, with its level"
    assert "speaks English, Cymraeg" in cards and "works remotely" in cards and "prefers on site" in cards
    assert "from another member organisation" in cards.split("Bryn Benn")[1].split("</h3>")[0]
    assert "from another member organisation" not in cards.split("Ada Analyst")[1].split("</h3>")[0]
    assert re.search(r"<h3>A donor", cards), "a donor signups left out reads as a donor"
    assert "don_" not in html.replace('value="need_1"', ""), "no raw donor id anywhere on the page"


def test_reasons_in_words_without_zero_terms_or_engine_wording(client: TestClient) -> None:
    _organiser(client)
    cards = _section(client.get("/organiser/needs/need_1").text, "cand-title")
    first = cards.split("<h3>")[1]
    assert "Knows Social media at expert level" in first and "Works remotely" in first
    assert "Never asked before" in first and "Already asked 1 time(s) this week" in first
    assert "New to Pitch In" not in first, "four reasons at most: the +1 newcomer term is not among them"
    for engine in ("+0.00", "same for every candidate", "open offer(s) or assignment", "names no causes", "(+"):
        assert engine not in cards, engine


def test_confirm_and_release_only_while_the_assignment_awaits_confirmation(client: TestClient, stand: Stand) -> None:
    _organiser(client)
    asked = _section(client.get("/organiser/needs/need_1").text, "offers-title")
    assert "/assignments/off_1/confirm" in asked and "/assignments/off_1/release" in asked
    assert "Mark done" not in asked
    assert "0 of 2 confirmed" in client.get("/organiser/needs/need_1").text

    stand.assignment = "confirmed"
    html = client.get("/organiser/needs/need_1").text
    asked = _section(html, "offers-title")
    assert "/confirm" not in asked and "/release" not in asked
    assert "confirmed" in asked and "Mark done" in asked
    assert "1 of 2 confirmed" in html, "the count is matching's confirmed assignments, not signups' late copy"

    stand.assignment = "completed"
    asked = _section(client.get("/organiser/needs/need_1").text, "offers-title")
    assert "/confirm" not in asked and "Mark done" not in asked and "done" in asked


def test_the_escalation_steps_in_the_readers_zone(client: TestClient, stand: Stand) -> None:
    _organiser(client)
    client.cookies.set("tz", "America/New_York")
    html = client.get("/organiser/needs/need_1").text
    steps = _section(html, "esc-title")
    assert "How the ask is widening" in steps
    assert "Asked the best-fit 6 first" in steps
    assert "Widened the ask (step 1): nice-to-have skills no longer count, reach 75 km, 8 requests out at once" in steps
    assert '<time datetime="2026-12-03T09:00:00+00:00">' in steps
    assert "04:00" in steps and "06:30" in steps, "09:00 and 11:30 UTC read in New York time"
    assert "Next step: the ask widens on" in steps and "10:00" in steps
    assert steps.index("best-fit") < steps.index("Widened")

    stand.escalation = {
        **ESCALATION,
        "next_step_at": None,
        "steps": [
            *ESCALATION["steps"],
            {"step": 2, "kind": "stood-down", "detail": "x", "offers_wanted": 0, "taken_at": "2026-12-03T12:00:00Z"},
        ],
    }
    steps = _section(client.get("/organiser/needs/need_1").text, "esc-title")
    assert "the others asked were stood down and thanked" in steps and "Next step" not in steps


def test_no_escalation_section_for_a_need_without_one(client: TestClient, stand: Stand) -> None:
    _organiser(client)
    stand.escalation = None  # matching answers 404
    assert 'id="escalation"' not in client.get("/organiser/needs/need_1").text
    stand.escalation = {"need_id": "need_1", "urgency": "normal", "stage": 0, "next_step_at": None, "steps": []}
    assert 'id="escalation"' not in client.get("/organiser/needs/need_1").text


@pytest.mark.parametrize("status", [404, 503])
def test_without_profiles_every_donor_reads_as_a_donor(client: TestClient, stand: Stand, status: int) -> None:
    _organiser(client)
    stand.profiles = lambda: httpx.Response(status, json={"title": "x", "detail": "x"})
    answer = client.get("/organiser/needs/need_1")
    assert answer.status_code == 200
    assert "don_" not in answer.text.replace('value="need_1"', "")
    assert "A donor" in _section(answer.text, "cand-title") and "A donor" in _section(answer.text, "offers-title")


def test_the_need_page_in_welsh(client: TestClient) -> None:
    _organiser(client)
    client.get("/language/cy")
    html = unescape(client.get("/organiser/needs/need_1").text)
    assert "Sut mae'r cais yn ehangu" in html and "Yn gwybod Social media ar lefel arbenigol" in html


def test_the_offer_page_gives_the_reasons_that_mattered_in_the_donors_words(client: TestClient) -> None:
    html = client.get("/offers/off_1", params={"token": "tok"}).text
    why = html[html.index("Why we asked you") :]
    items = re.findall(r"<li>(.*?)</li>", why.split("</ul>")[0])
    assert items == [
        "You know Social media at expert level",
        "It can be done remotely, as you prefer",
        "We have not asked you before",
        "You are new, and newcomers get a fair share of the asks",
    ]
    assert "open offer(s)" not in html and "names no causes" not in html and "same for every candidate" not in html
    assert "The organisers will contact you with the details once you say yes." in html
