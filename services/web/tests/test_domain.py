"""The web front's pure rules: signed links, times in the reader's zone, form checks, view models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitchin_core.links import BadLink, read_donor_link, read_record_link, sign_donor_link, sign_record_link
from pitchin_web.domain import forms, views
from pitchin_web.domain.forms import Form
from pitchin_web.domain.timefmt import format_span, format_when, parse_local, reader_zone
from pitchin_web.messages import Translator
from pitchin_web.messages.en import MESSAGES

SECRET = "a-secret-for-tests-that-is-long-enough"
NOW = datetime(2027, 10, 1, 12, 0, tzinfo=UTC)


def test_donor_links_are_signed_expire_and_name_their_donor() -> None:
    token = sign_donor_link(SECRET, "don_abc", NOW.timestamp(), lifetime=3600)
    assert read_donor_link(SECRET, token, NOW.timestamp()).donor_id == "don_abc"
    with pytest.raises(BadLink, match="expired"):
        read_donor_link(SECRET, token, NOW.timestamp() + 3601)
    with pytest.raises(BadLink, match="signature"):
        read_donor_link("another-secret", token, NOW.timestamp())
    forged = token.replace("don_abc", "don_xyz")
    with pytest.raises(BadLink):
        read_donor_link(SECRET, forged, NOW.timestamp())
    with pytest.raises(BadLink):
        read_donor_link(SECRET, "garbage", NOW.timestamp())


def test_times_are_shown_in_the_readers_zone() -> None:
    moment = datetime(2027, 10, 4, 17, 30, tzinfo=UTC)
    assert format_when(moment, "Europe/London") == "Mon 4 Oct 2027, 18:30 BST"
    assert format_when(moment.isoformat(), "America/New_York") == "Mon 4 Oct 2027, 13:30 EDT"
    assert format_span(moment, moment + timedelta(hours=2), "Europe/London") == "Mon 4 Oct 2027, 18:30\u201320:30 BST"
    assert reader_zone("Mars/Base", "Europe/London") == "Europe/London"
    assert reader_zone("America/New_York", "Europe/London") == "America/New_York"
    local = parse_local("2027-10-04T18:30", "Europe/London")
    assert local is not None and local.astimezone(UTC).hour == 17
    assert parse_local("tomorrow", "Europe/London") is None


def test_signup_steps_say_what_is_wrong_beside_each_field() -> None:
    labels = {"name": "Your name", "city": "Town"}
    _, errors = forms.signup_step1(Form({"email": ["x"], "time_zone": ["Nowhere"], "phone": ["123"]}), labels)
    assert {"name", "email", "time_zone", "phone", "city"} <= set(errors)
    values, errors = forms.signup_step1(
        Form({"name": ["Dana"], "email": ["d@x.org"], "time_zone": ["Europe/London"], "remote": ["on"]}), labels
    )
    assert errors == {} and values["languages"] == "en"
    _, errors = forms.signup_step2(Form({"hours": ["0"], "days": ["wed"], "from": ["20:00"], "to": ["19:00"]}), ["a"])
    assert set(errors) == {"skills", "hours", "to"}
    _, errors = forms.signup_step3(Form({"contact_sms": ["on"]}), has_phone=False)
    assert set(errors) == {"contact_sms", "consent"}


def test_signup_payload_records_the_consent_wording_version() -> None:
    draft = {
        "name": "Dana",
        "email": "d@x.org",
        "phone": "",
        "time_zone": "Europe/London",
        "languages": "en, cy",
        "remote": True,
        "city": "Dudley",
        "country": "GB",
        "skills": {"social-media": "advanced"},
        "hours": "3",
        "days": ["wed"],
        "from": "18:00",
        "to": "21:00",
        "causes": ["labour"],
        "contact_email": True,
        "contact_sms": False,
        "contact_language": "cy",
    }
    payload = forms.signup_payload(draft, consent_version="2026-01", purposes=["matching"], now=NOW)
    assert payload["consent"] == {"wording_version": "2026-01", "purposes": ["matching"], "agreed_at": NOW.isoformat()}
    assert payload["availability"]["windows"] == [{"day": "wed", "start": "18:00", "end": "21:00"}]
    assert payload["languages"] == ["en", "cy"] and "phone" not in payload


def test_api_error_paths_map_to_form_fields() -> None:
    assert forms.map_api_field("availability.time_zone", forms.SIGNUP_FIELDS) == ("time_zone", 1)
    assert forms.map_api_field("body.skills.0.level", forms.SIGNUP_FIELDS) == ("skills", 2)
    assert forms.map_api_field("needs.0.deadline", forms.FIGHT_FIELDS) == "deadline"
    assert forms.map_api_field("nothing", forms.FIGHT_FIELDS) is None


def test_fight_and_event_forms() -> None:
    labels = {"title": "T", "description": "D", "need_title": "N", "city": "C", "venue": "V", "address": "A"}
    _, errors = forms.fight(Form({"deadline": ["2001-01-01"], "hours": ["x"]}), ["design"], labels, "UTC", NOW)
    assert {"kind", "title", "need_title", "skill", "hours", "deadline", "city"} <= set(errors)
    form = Form(
        {
            "kind": ["strike"],
            "title": ["Bins"],
            "need_title": ["Graphics"],
            "skill": ["design"],
            "hours": ["6"],
            "deadline": ["2027-10-20"],
            "remote": ["on"],
        }
    )
    payload, errors = forms.fight(form, ["design"], labels, "Europe/London", NOW)
    assert errors == {} and payload["needs"][0]["deadline"].startswith("2027-10-20T23:59")
    _, errors = forms.event(
        Form(
            {
                "time_zone": ["Europe/London"],
                "starts": ["2027-10-04T18:00"],
                "ends": ["2027-10-04T17:00"],
                "hashtag": ["#no way"],
            }
        ),
        labels,
    )
    assert {"kind", "title", "ends", "venue", "organiser_email", "hashtag"} <= set(errors)


def test_waitlist_position_a_new_booking_would_get() -> None:
    assert views.Places(2, 2, 3).waitlist_position(waitlist=True) == 4
    assert views.Places(2, 1, 0).waitlist_position(waitlist=True) is None
    assert views.Places(2, 2, 0).waitlist_position(waitlist=False) is None
    assert views.Places(None, 50, 0).free is None


def test_public_event_view_live_closed_and_zones() -> None:
    start = NOW + timedelta(days=1)
    event = {
        "event_id": "e",
        "title": "T",
        "kind": "panel",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat(),
        "time_zone": "Europe/London",
        "status": "published",
        "hashtag": "Org20",
        "livestream_status": "live",
        "capacity": 1,
    }
    view = views.public_event(event, {"capacity": 1, "confirmed": 1, "waitlisted": 4}, "America/New_York", NOW)
    assert view.live and view.hashtag == "#Org20" and view.waitlist_position == 5 and view.can_book
    assert view.when_event is not None and "BST" in view.when_event
    closed = views.public_event(event, None, "Europe/London", start + timedelta(minutes=1))
    assert closed.closed and not closed.can_book and closed.when_event is None


def test_federation_totals_per_member_organisation() -> None:
    later = (NOW + timedelta(days=2)).isoformat()
    rows = views.federation_totals(
        donors=[{"organisation_id": "a"}, {"organisation_id": None}, {"organisation_id": "a", "status": "withdrawn"}],
        needs=[
            {"organisation_id": "a", "status": "open", "estimated_hours": 4, "assigned_donors": []},
            {"organisation_id": "a", "status": "filled", "estimated_hours": 5, "assigned_donors": ["don_1", "don_2"]},
        ],
        events=[{"organisation_id": "b", "status": "published", "ends_at": later}],
        now=NOW,
    )
    by_org = {r.organisation_id: r for r in rows}
    assert (by_org["a"].donors, by_org["a"].open_needs, by_org["a"].filled, by_org["a"].hours) == (1, 1, 1, 10.0)
    assert by_org["b"].upcoming_events == 1 and by_org[""].donors == 1
    assert rows[-1].organisation_id == ""

    # Hours organisations marked done replace the estimate, for every organisation.
    given = [{"organisation_id": "a", "hours_given": 6.5}, {"organisation_id": "c", "hours_given": 2.0}]
    marked = {r.organisation_id: r for r in views.federation_totals([], rows_needs(), [], NOW, given)}
    assert (marked["a"].hours, marked["c"].hours) == (6.5, 2.0)


def rows_needs() -> list[dict[str, object]]:
    return [{"organisation_id": "a", "status": "filled", "estimated_hours": 5, "assigned_donors": ["don_1"]}]


def test_every_message_key_used_in_code_and_templates_exists() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "pitchin_web"
    used = set()
    for path in [*root.rglob("*.py"), *root.rglob("*.html")]:
        text = path.read_text()
        used |= set(re.findall(r"""t\(\s*["']([a-z_]+\.[a-z0-9_.\-]+)["']""", text))
        used |= set(re.findall(r"""FieldError\(\s*["']([a-z_]+\.[a-z0-9_.\-]+)["']""", text))
        used |= set(re.findall(r"""_flash\(request, ["']([a-z_]+\.[a-z0-9_.\-]+)["']""", text))
    missing = sorted(k for k in used if k not in MESSAGES and not k.endswith("."))  # prefixes: "kind." ~ kind
    assert not missing, missing
    assert Translator("xx")("site.name") == "Pitch In"


def test_a_record_link_shows_the_record_only_and_a_page_link_is_no_record_link() -> None:
    record = sign_record_link(SECRET, "don_abc", NOW.timestamp())
    assert read_record_link(SECRET, record, NOW.timestamp() + 300 * 24 * 3600).donor_id == "don_abc"
    with pytest.raises(BadLink):
        read_donor_link(SECRET, record, NOW.timestamp())  # sharing the record opens nothing else
    with pytest.raises(BadLink):
        read_record_link(SECRET, sign_donor_link(SECRET, "don_abc", NOW.timestamp()), NOW.timestamp())
    swapped = "d1" + record[2:]
    with pytest.raises(BadLink):
        read_donor_link(SECRET, swapped, NOW.timestamp())  # the kind is signed too


def test_a_donor_record_totals_the_hours_and_keeps_the_thanks() -> None:
    record = {
        "work": [
            {
                "need_title": "Strike posters",
                "organisation_id": "org-rwl99",
                "hours_given": 6.5,
                "thanks": "On every picket line.",
                "completed_at": "2027-10-04T17:30:00Z",
            },
            {"need_title": "Livestream", "organisation_id": "org-rwl99", "hours_given": 2.25, "thanks": " "},
            {"need_title": "Rota", "organisation_id": "org-dudley", "hours_given": 1, "thanks": "Thanks!"},
        ]
    }
    view = views.donor_record(record, "Europe/London")
    assert (view.hours_given, view.completed, view.organisations) == (9.8, 3, 2)
    assert [w.thanks for w in view.thanks] == ["On every picket line.", "Thanks!"]
    assert view.work[0].when.startswith("Mon 4 Oct 2027, 18:30")
    assert views.donor_record({}, "UTC").completed == 0


def test_times_read_in_the_readers_language_with_the_zone_as_the_zone_database_names_it() -> None:
    start = "2027-10-04T17:30:00Z"
    assert format_when(start, "Europe/London") == "Mon 4 Oct 2027, 18:30 BST"
    assert format_when(start, "Europe/London", "cy") == "Llun 4 Hyd 2027, 18:30 BST"
    assert format_when(start, "Europe/London", "es") == "lun 4 oct 2027, 18:30 BST"
    assert format_span(start, "2027-10-04T19:00:00Z", "Europe/London", "cy") == "Llun 4 Hyd 2027, 18:30\u201320:00 BST"
    assert format_when(start, "UTC", "xx") == "Mon 4 Oct 2027, 17:30 UTC", "an unknown language reads English"
    view = views.donor_record({"work": [{"need_title": "T", "hours_given": 1, "completed_at": start}]}, "UTC", "es")
    assert view.work[0].when == "lun 4 oct 2027, 17:30 UTC"
