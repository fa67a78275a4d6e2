import random
from datetime import UTC, datetime, timedelta

from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.scheduling import EventCreatedV1
from pitchin_notifications.domain.messages import message_id, next_attempt, plan_messages
from pitchin_notifications.templates import Renderer
from tests.unit.factories import donor_registered


def test_a_new_donor_gets_one_welcome_email_linking_to_their_profile() -> None:
    donor = DonorRegisteredV1.model_validate(donor_registered())
    page = "/me/d1.don_1.1800000000.signature"
    [planned] = plan_messages(donor, public_base_url="https://pitchin.example", donor_page=page)
    assert (planned.channel, planned.recipient, planned.template) == ("email", "farra@example.org", "donor_welcome")
    rendered = Renderer().render(planned)
    assert rendered.subject == "Welcome to Pitch In, Farra Trompeter"
    assert "social media, graphic design" in rendered.text
    assert f"https://pitchin.example{page}" in rendered.text
    assert rendered.html is not None and f'href="https://pitchin.example{page}"' in rendered.html
    assert planned.action_url == f"https://pitchin.example{page}"


def test_a_donor_who_wants_no_email_gets_none() -> None:
    donor = DonorRegisteredV1.model_validate(donor_registered(contact={"email": False, "sms": False, "language": "en"}))
    assert plan_messages(donor, public_base_url="https://x") == []


def test_html_escapes_what_people_typed() -> None:
    donor = DonorRegisteredV1.model_validate(donor_registered(name="<script>x</script>"))
    [planned] = plan_messages(donor, public_base_url="https://x")
    html = Renderer().render(planned).html
    assert html is not None and "<script>" not in html and "&lt;script&gt;" in html


def test_event_created_tells_the_organiser_with_a_calendar_link() -> None:
    event = EventCreatedV1(
        federation_id="fed-wm",
        organisation_id="org-dudley-cvs",
        event_id="evt_1",
        kind="training",
        title="Anarchists in the Boardroom",
        starts_at=datetime(2027, 10, 4, 13, tzinfo=UTC),
        ends_at=datetime(2027, 10, 4, 16, tzinfo=UTC),
        time_zone="Europe/London",
        venue_name="Dudley CVS",
        organiser_email="events@dudleycvs.example",
    )
    [planned] = plan_messages(event, public_base_url="https://p")
    assert planned.recipient == "events@dudleycvs.example"
    assert "https://p/v1/events/evt_1.ics" in Renderer().render(planned).text


def test_idempotency_key_and_message_id_are_stable_per_event_recipient_channel() -> None:
    donor = DonorRegisteredV1.model_validate(donor_registered())
    [a] = plan_messages(donor, public_base_url="https://x")
    [b] = plan_messages(donor, public_base_url="https://x")
    assert a.idempotency_key("e1") == b.idempotency_key("e1") != a.idempotency_key("e2")
    assert message_id(a.idempotency_key("e1"), "d") == message_id(b.idempotency_key("e1"), "d")


def test_backoff_grows_and_stays_under_the_cap() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    delays = [(next_attempt(now, n, rng, base=2, cap=60) - now).total_seconds() for n in range(1, 12)]
    assert all(1 <= d <= 60 for d in delays)
    assert max(delays[6:]) > max(delays[:2])
    assert next_attempt(now, 1, rng, base=2, cap=60) - now <= timedelta(seconds=2)
