"""The double opt-in mail: a held sign-up's confirmation link, to the address it confirms, at once."""

from datetime import UTC, datetime, timedelta

import pytest

from pitchin_core.contracts.donors import DonorConfirmationRequestedV1
from pitchin_notifications.domain.messages import (
    NOT_FOR_WEBHOOKS,
    SECRET_FIELDS,
    Audience,
    Channel,
    Priority,
    Recipient,
    plan,
    plan_messages,
    rules_for,
)
from pitchin_notifications.domain.quiet_hours import QuietHours, release_at
from pitchin_notifications.templates import Renderer

BASE = "https://pitchin.example"
TYPE = "org.pitchin.donor.confirmation-requested.v1"
LINK = f"{BASE}/donors/confirm?token=Zx-9_aQ"


def _requested(language: str = "en") -> DonorConfirmationRequestedV1:
    return DonorConfirmationRequestedV1(
        federation_id="fed-wm",
        pending_id="pnd_1",
        name="Dana Okafor",
        email="dana@example.org",
        language=language,
        confirm_url=LINK,
        expires_at=datetime(2027, 10, 6, 12, tzinfo=UTC),
        valid_hours=48,
    )


def test_the_confirmation_goes_by_email_only_to_the_address_in_the_event_urgently_with_its_link() -> None:
    [message] = plan_messages(_requested(), public_base_url=BASE)
    assert (message.template, message.channel, message.recipient) == ("signup_confirm", "email", "dana@example.org")
    assert message.priority is Priority.urgent
    assert message.action_url == LINK, "the link signups made, as it made it"
    assert message.person_ref is None, "no donor exists yet"
    [rule] = rules_for(TYPE, _requested().model_dump(mode="json"))
    assert rule.audience is Audience.booker and rule.channels == (Channel.email,) and rule.purpose is None


def test_quiet_hours_and_digests_never_hold_it() -> None:
    [message] = plan_messages(_requested(), public_base_url=BASE)
    night = datetime(2027, 10, 5, 23, 30, tzinfo=UTC)
    quiet = QuietHours.parse("21:00-08:00")
    assert release_at(night, "Europe/London", quiet, message.priority) == night
    # The same message at normal priority would wait for the morning: the rule's priority is what lets it go.
    assert release_at(night, "Europe/London", quiet, Priority.normal) > night + timedelta(hours=6)
    assert message.priority is not Priority.low, "low is what a digest holds"


def test_it_reaches_an_address_whatever_the_person_chose_about_news_but_not_an_unsubscribed_one() -> None:
    data = _requested().model_dump(mode="json")
    [rule] = rules_for(TYPE, data)
    person = Recipient(name="Dana Okafor", email="dana@example.org")
    assert [m.channel for m in plan(rule, person, data, public_base_url=BASE)] == ["email"]
    # Someone whose address was typed in by another and who unsubscribed gets no more of these.
    blocked = frozenset({("email", "dana@example.org")})
    assert plan(rule, person, data, public_base_url=BASE, suppressed=blocked) == []


@pytest.mark.parametrize(
    ("language", "subject", "words"),
    [
        ("en", "Confirm your sign-up to Pitch In, Dana Okafor", "The link works for 48 hours"),
        ("cy", "Cadarnhewch eich cofrestriad â Pitch In, Dana Okafor", "am 48 awr"),
        ("es", "Confirma tu inscripción en Pitch In, Dana Okafor", "durante 48 horas"),
    ],
)
def test_it_is_written_in_the_persons_language_with_the_link_exactly_as_made(
    language: str, subject: str, words: str
) -> None:
    [message] = plan_messages(_requested(language), public_base_url=BASE)
    rendered = Renderer().render(message, unsubscribe_url=f"{BASE}/v1/unsubscribe?token=u")
    assert rendered.language == language and rendered.subject == subject
    assert LINK in rendered.text and words in rendered.text
    assert rendered.html is not None and f'href="{LINK}"' in rendered.html


def test_the_link_is_a_secret_kept_from_webhooks() -> None:
    assert "confirm_url" in SECRET_FIELDS
    assert TYPE in NOT_FOR_WEBHOOKS
