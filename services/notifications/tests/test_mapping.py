"""The event → message table: every rule renders, reaches the right people on the right channels."""

from datetime import UTC, datetime
from typing import Any

import pytest

from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.contracts.topics import consumed_by
from pitchin_notifications.domain.messages import (
    EVENT_WIDE,
    RULES,
    Channel,
    Priority,
    Recipient,
    Rule,
    plan,
    rules_for,
)
from pitchin_notifications.templates import Renderer, language_chain, package_name
from tests.unit.factories import donor_registered

BASE = "https://pitchin.example"
T = "2027-10-04T13:30:00Z"
IDS = {"federation_id": "fed-wm", "organisation_id": "org-dudley"}
OFFER = {**IDS, "offer_id": "off_1", "need_id": "need_1", "fight_id": "fight_1", "donor_id": "don_1"}
BOOKING = {
    **IDS,
    "booking_id": "bk_1",
    "event_id": "evt_1",
    "donor_id": None,
    "name": "Ana",
    "email": "ana@example.org",
}
EVENT = {
    **IDS,
    "event_id": "evt_1",
    "kind": "training",
    "title": "Anarchists in the Boardroom",
    "starts_at": T,
    "ends_at": "2027-10-04T16:30:00Z",
    "time_zone": "Europe/London",
    "venue_name": "Dudley CVS",
    "online_url": "https://stream.example/x",
    "organiser_email": "events@dudleycvs.example",
}

SAMPLES: dict[str, dict[str, Any]] = {
    "org.pitchin.donor.registered.v1": donor_registered(),
    "org.pitchin.offer.made.v1": {
        **OFFER,
        "need_title": "Design a strike poster",
        "score": 0.9,
        "explanation": [{"name": "skill", "points": 5, "why": "graphic design at expert level"}],
        "expires_at": "2027-10-06T12:00:00Z",
        "made_at": T,
    },
    "org.pitchin.offer.expired.v1": {**OFFER, "expired_at": T},
    "org.pitchin.offer.cancelled.v1": {**OFFER, "reason": "the need was filled", "cancelled_at": T},
    "org.pitchin.assignment.confirmed.v1": {**OFFER, "confirmed_at": T},
    "org.pitchin.assignment.released.v1": {**OFFER, "reason": "", "released_at": T},
    "org.pitchin.assignment.completed.v1": {
        **OFFER,
        "need_title": "Design a strike poster",
        "hours_given": 6.5,
        "thanks": "The posters were on every picket line by Monday.",
        "completed_at": T,
    },
    "org.pitchin.booking.confirmed.v1": {**BOOKING, "confirmed_at": T},
    "org.pitchin.booking.waitlisted.v1": {**BOOKING, "position": 3, "waitlisted_at": T},
    "org.pitchin.booking.promoted.v1": {**BOOKING, "promoted_at": T},
    "org.pitchin.booking.cancelled.v1": {**BOOKING, "cancelled_at": T, "by_organiser": True},
    "org.pitchin.event.created.v1": EVENT,
}

PERSON = Recipient(
    name="Farra Trompeter",
    email="farra@example.org",
    phone="+447700900123",
    time_zone="Europe/London",
    email_ok=True,
    sms_ok=True,
    purposes=frozenset({"matching", "event-news"}),
    ref="don_1",
)


def _sample(event_type: str) -> dict[str, Any]:
    if event_type in SAMPLES:
        return SAMPLES[event_type]
    # Event-wide types of pitchin.events.v1: the event's fields are what templates use.
    return {**EVENT, "reason": "the venue flooded", "recording_url": "https://rec.example/1"}


def test_every_rule_names_a_contract_type_on_a_topic_notifications_consumes() -> None:
    consumed = {t.event_type for spec in consumed_by("notifications") for t in spec.event_types}
    for rule in RULES:
        assert rule.event_type in EVENT_TYPES, rule
        assert rule.event_type in consumed, rule


def test_every_rule_has_its_templates_in_english() -> None:
    renderer = Renderer()
    for rule in RULES:
        for part in ("subject", "text"):
            assert renderer.source(rule.template, "en", part, {}) is not None, (rule.template, part)
        if Channel.sms in rule.channels:
            assert renderer.source(rule.template, "en", "sms", {}) is not None, rule.template


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.template)
def test_every_rule_renders_with_a_link_back_to_the_action_on_every_channel(rule: Rule) -> None:
    data = _sample(rule.event_type)
    person = (
        PERSON
        if rule.audience.value in ("donor",)
        else Recipient(name="Ana", email="ana@example.org", phone="+34600000000", sms_ok=True)
    )
    planned = plan(rule, person, data, event=EVENT if "event_id" in data else None, public_base_url=BASE)
    assert {p.channel for p in planned} == {c.value for c in rule.channels}
    for message in planned:
        rendered = Renderer().render(message, unsubscribe_url=f"{BASE}/v1/unsubscribe?token=t")
        assert rendered.subject and "\n" not in rendered.subject
        assert message.action_url and message.action_url.startswith(BASE)
        if message.channel == "sms":
            assert rendered.sms is not None and rendered.sms.endswith(message.action_url)
            assert rendered.sms_segments <= 4
        else:
            assert BASE in rendered.text
            assert f"{BASE}/v1/unsubscribe?token=t" in rendered.text


def test_the_table_chooses_priorities_as_people_expect() -> None:
    by_template = {r.template: r for r in RULES}
    assert by_template["booking_confirmed"].priority is Priority.urgent
    assert by_template["offer_made"].priority is Priority.normal
    assert by_template["offer_expired"].priority is Priority.low
    assert all(r.priority is Priority.urgent for r in RULES if r.template == "donor_welcome")
    assert all(r.audience not in EVENT_WIDE or r.event_type.startswith("org.pitchin.") for r in RULES)


def test_an_offer_reaches_a_donor_by_email_and_sms_with_accept_and_decline_links() -> None:
    [rule] = rules_for("org.pitchin.offer.made.v1", SAMPLES["org.pitchin.offer.made.v1"])
    planned = plan(rule, PERSON, SAMPLES["org.pitchin.offer.made.v1"], public_base_url=BASE)
    assert [(p.channel, p.recipient) for p in planned] == [("email", "farra@example.org"), ("sms", "+447700900123")]
    assert planned[0].send_by == datetime(2027, 10, 6, 12, tzinfo=UTC)
    text = Renderer().render(planned[0]).text
    assert f"{BASE}/offers/off_1/accept" in text and f"{BASE}/offers/off_1/decline" in text
    assert "graphic design at expert level" in text


def test_preferences_consent_unsubscribes_and_withdrawal_decide_the_channels() -> None:
    data = SAMPLES["org.pitchin.offer.made.v1"]
    [rule] = rules_for("org.pitchin.offer.made.v1", data)
    no_sms = Recipient(
        name="A", email="a@example.org", phone="+447700900123", sms_ok=False, purposes=frozenset({"matching"})
    )
    assert [p.channel for p in plan(rule, no_sms, data, public_base_url=BASE)] == ["email"]
    no_consent = Recipient(name="A", email="a@example.org", purposes=frozenset({"event-news"}))
    assert plan(rule, no_consent, data, public_base_url=BASE) == []
    unsubscribed = plan(
        rule, PERSON, data, public_base_url=BASE, suppressed=frozenset({("email", "farra@example.org")})
    )
    assert [p.channel for p in unsubscribed] == ["sms"]
    gone = Recipient(name="A", email="a@example.org", active=False)
    assert plan(rule, gone, data, public_base_url=BASE) == []


def test_who_cancelled_a_booking_picks_the_message() -> None:
    data = SAMPLES["org.pitchin.booking.cancelled.v1"]
    assert [r.template for r in rules_for("org.pitchin.booking.cancelled.v1", data)] == [
        "booking_cancelled_by_organiser"
    ]
    assert [r.template for r in rules_for("org.pitchin.booking.cancelled.v1", {**data, "by_organiser": False})] == [
        "booking_cancelled"
    ]
    assert rules_for("org.pitchin.donor.updated.v1", {}) == []


def test_languages_fall_back_to_english_and_regional_variants_to_the_language() -> None:
    assert language_chain("cy") == ["cy", "en"]
    assert language_chain("es-MX") == ["es-MX", "es", "en"]
    assert package_name("donor_welcome", "en", "subject") == "donor_welcome.subject.txt"
    assert package_name("donor_welcome", "cy", "html") == "donor_welcome.cy.html"
    [rule] = rules_for("org.pitchin.donor.registered.v1", {})
    for language, subject, footer in (
        ("cy", "Croeso i Pitch In, Farra", "Dad-danysgrifio"),
        ("es-MX", "Bienvenida a Pitch In, Farra", "Darse de baja"),
        ("fr", "Welcome to Pitch In, Farra", "Unsubscribe"),
    ):
        person = Recipient(name="Farra", email="f@example.org", language=language)
        [message] = plan(rule, person, donor_registered(), public_base_url=BASE)
        rendered = Renderer().render(message, unsubscribe_url="u")
        assert rendered.subject == subject
        assert footer in rendered.text


def test_overrides_organisation_before_federation_before_package_and_html_stays_escaped() -> None:
    [rule] = rules_for("org.pitchin.donor.registered.v1", {})
    [message] = plan(rule, PERSON, donor_registered(name="<b>Farra</b>"), public_base_url=BASE)
    renderer = Renderer()
    federation = {("federation", "en", "subject"): "Fed: {{ name }}", ("federation", "en", "html"): "<p>{{ name }}</p>"}
    assert renderer.render(message, federation).subject == "Fed: Farra Trompeter"
    html = renderer.render(message, federation).html
    assert html is not None and html.startswith("<p>Farra Trompeter</p>")
    both = {**federation, ("organisation", "en", "subject"): "Org: {{ name }}"}
    assert renderer.render(message, both).subject == "Org: Farra Trompeter"
    welsh = Recipient(name="<b>Farra</b>", email="f@example.org", language="cy")
    [cy] = plan(rule, welsh, donor_registered(), public_base_url=BASE)
    html_cy = renderer.render(cy, {("organisation", "en", "subject"): "Org"}).html
    assert renderer.render(cy, {("organisation", "en", "subject"): "Org"}).subject == "Croeso i Pitch In, <b>Farra</b>"
    assert html_cy is not None and "&lt;b&gt;Farra&lt;/b&gt;" in html_cy


def test_override_templates_run_in_a_sandbox() -> None:
    renderer = Renderer()
    escape = "{{ name.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(Exception, match=r"unsafe|not safely|access"):
        renderer.check("text", escape)  # refused when saved
    # One stored before the check (or a sandbox rule added since) gives way to the default at send.
    [rule] = rules_for("org.pitchin.donor.registered.v1", {})
    [message] = plan(rule, PERSON, donor_registered(), public_base_url=BASE)
    rendered = renderer.render(message, {("organisation", "en", "text"): escape})
    assert rendered.text == renderer.render(message).text and "subclasses" not in rendered.text


def test_donors_mail_links_to_pages_they_can_open_without_a_password() -> None:
    offer = {**SAMPLES["org.pitchin.offer.made.v1"], "offer_token": "tok/en+1"}
    [rule] = rules_for("org.pitchin.offer.made.v1", offer)
    [email, sms] = plan(rule, PERSON, offer, public_base_url=BASE, donor_page="/me/d1.don_1.9.sig")
    assert email.action_url == f"{BASE}/offers/{offer['offer_id']}?token=tok%2Fen%2B1", "the offer opens with its token"
    assert sms.action_url == email.action_url
    for event_type in ("org.pitchin.assignment.completed.v1", "org.pitchin.offer.expired.v1"):
        [rule] = rules_for(event_type, SAMPLES[event_type])
        [planned] = plan(rule, PERSON, SAMPLES[event_type], public_base_url=BASE, donor_page="/me/d1.don_1.9.sig")
        assert planned.action_url == f"{BASE}/me/d1.don_1.9.sig", event_type
