"""The journeys of issue 11, walked in Chromium against the real services, Kafka, PostgreSQL and SMTP.

Each test is a person at a phone-sized browser in New York; every page is checked with axe-core
(no serious or critical violation) and saved as a screenshot; every form is first sent wrong and
must answer with a message beside the field.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from examples.publishers.samples import every_type
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from pitchin_web.messages import cy, es
from tests.browser.conftest import Visitor, off_loop
from tests.conftest import Tenant
from tests.e2e.helpers import bearer, create_event, eventually, wait_until_signups_knows
from tests.e2e.test_notifications_kit import configure


def _login(who: Visitor, key: str, role: str = "organiser") -> None:
    who.go("/login")
    who.page.fill("#f-api_key", "pk_not_a_key")
    who.submit()
    assert "not accepted" in who.error_for("api_key")
    who.page.fill("#f-api_key", key)
    who.page.check(f"#role-{'staff' if role == 'staff' else 'org'}")
    who.submit()


def test_donor_signs_up_in_three_steps(visitor: Visitor, mailbox: SmtpSink) -> None:
    who, page = visitor, visitor.page
    email = f"donor-{uuid.uuid4().hex[:8]}@example.org"
    who.go("/donors/signup")
    assert page.input_value("#f-time_zone") == "America/New_York"  # filled in from the browser, editable

    # Step 1: nothing typed -> a message beside each field that needs one.
    who.submit()
    assert "Enter Your name" in who.error_for("name")
    assert "email address" in who.error_for("email")
    assert page.get_attribute("#f-email", "aria-invalid") == "true"
    page.fill("#f-name", "Dana Okafor")
    page.fill("#f-email", "not-an-email")
    page.fill("#f-time_zone", "Mars/Olympus")
    who.submit()
    assert "email address" in who.error_for("email")
    assert "time zone" in who.error_for("time_zone")
    assert page.input_value("#f-name") == "Dana Okafor"  # what was typed stays
    page.fill("#f-email", email)
    page.fill("#f-time_zone", "Europe/London")
    page.fill("#f-languages", "en, cy")
    who.submit()

    # Step 2: skills with levels from the federation's taxonomy, availability in their own zone.
    assert "Step 2 of 3" in page.inner_text("main")
    who.submit()
    assert "at least one skill" in who.error_for("skills")
    page.select_option("#f-skill-social-media", "advanced")
    page.select_option("#f-skill-graphic-design", "intermediate")
    page.fill("#f-hours", "500")
    page.check("#f-day-wed")
    page.fill("#f-from", "20:00")
    page.fill("#f-to", "18:00")
    who.submit()
    assert "between" in who.error_for("hours")
    assert "later than the start" in who.error_for("to")
    page.fill("#f-hours", "3")
    page.fill("#f-from", "18:00")
    page.fill("#f-to", "21:00")
    page.check("#f-cause-labour")
    who.submit()

    # Step 3: contact preferences and the consent wording, shown and recorded.
    assert "Your consent" in page.inner_text("main")
    assert "We never sell it" in page.inner_text("#consent-text")
    page.check("#f-contact_sms")
    who.submit()
    assert "Tick the box" in who.error_for("consent")
    assert "phone number" in who.error_for("contact_sms")
    page.uncheck("#f-contact_sms")
    page.check("#f-consent")
    who.submit()

    # Double opt-in (issue 18): held until they confirm from the mail; the mail's link opens a
    # page with a button (a GET confirms nothing), and the button registers them.
    assert "Check your email, Dana Okafor" in page.inner_text("h1")
    assert email in page.inner_text("#check-email")
    asked = mailbox.wait_for(lambda m: m["To"] == email, timeout=30)
    assert asked["Subject"] == "Confirm your sign-up to Pitch In, Dana Okafor"
    confirm = re.search(r"https?://[^/\s]+(/donors/confirm\?token=\S+)", asked.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert confirm, "the confirmation link in the mail"
    who.go(confirm.group(1))
    assert "Confirm your sign-up" in page.inner_text("h1")
    who.submit("#confirm-signup")

    assert "Thank you, Dana Okafor" in page.inner_text("h1")
    link = page.get_attribute("#donor-link", "href")
    assert link and "/me/d1." in link

    mail = mailbox.wait_for(lambda m: m["To"] == email and m["Subject"] != asked["Subject"], timeout=30)
    assert mail["Subject"] == "Welcome to Pitch In, Dana Okafor"
    # The welcome email's link opens their page too: signed by notifications, read by the web.
    welcome = re.search(r"https?://\S+(/me/d1\.\S+)", mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert welcome, "a signed link to their page in the welcome email"
    who.go(welcome.group(1))
    assert "Dana Okafor" in page.inner_text("main")

    # The signed link opens their own page; a tampered one does not.
    who.go(urlsplit(link).path)
    assert "Social media" in page.inner_text("main") or "social-media" in page.inner_text("main")
    who.go(urlsplit(link).path[:-3] + "xyz")
    assert "does not work" in page.inner_text("main")

    # Signing up twice with the same address is told beside the email field.
    who.go("/donors/signup")
    page.fill("#f-name", "Dana Again")
    page.fill("#f-email", email)
    page.fill("#f-time_zone", "Europe/London")
    who.submit()
    page.select_option("#f-skill-photography", "beginner")
    who.submit()
    page.check("#f-consent")
    who.submit()
    assert "already signed up" in who.error_for("email")


def test_organiser_creates_event_public_rsvp_and_check_in(
    visitor: Visitor, stack: Stack, web_tenant: Tenant, mailbox: SmtpSink
) -> None:
    who, page = visitor, visitor.page
    _login(who, web_tenant.organiser_key)
    assert "Your organisation" in page.inner_text("h1")

    who.go("/organiser/events/new")
    page.fill("#f-time_zone", "Europe/London")
    who.submit()
    assert "Enter Title" in who.error_for("title")
    assert "date and time" in who.error_for("starts")
    assert "venue" in who.error_for("venue")
    assert "email address" in who.error_for("organiser_email")

    start = (datetime.now(ZoneInfo("Europe/London")) + timedelta(days=10)).replace(
        hour=18, minute=30, second=0, microsecond=0
    )
    page.select_option("#f-kind", "panel")
    page.fill("#f-title", "Anarchists in the Boardroom: a panel")
    page.fill("#f-description", "Brian Whitley and friends on organising online.")
    page.fill("#f-starts", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-ends", (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-venue", "Dudley CVS, Stone Street")
    page.fill("#f-online_url", "https://stream.example.org/panel")
    page.fill("#f-hashtag", "#Org20")
    page.fill("#f-capacity", "1")
    page.fill("#f-organiser_email", f"events-{uuid.uuid4().hex[:6]}@dudleycvs.example")
    who.submit()
    assert "Manage Anarchists in the Boardroom" in page.inner_text("h1")
    event_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    # A session, first without its times.
    page.fill("#f-title", "Opening")
    who.submit("#sessions button[type=submit]")
    assert "date and time" in who.error_for("starts")
    page.fill("#f-title", "Opening")
    page.fill("#f-starts", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-ends", (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-room", "Main hall")
    who.submit("#sessions button[type=submit]")
    assert "Opening" in page.inner_text("#sessions")

    wait_until_signups_knows(stack, web_tenant.organiser_key, event_id)

    # The public page, read from New York: times in the reader's zone, the event's own beside them.
    public = browser_of(who)
    public.go("/events")  # the browser tells the site its zone on the first page; times follow it from then on
    assert "Anarchists in the Boardroom" in public.page.inner_text("main")
    public.go(f"/events/{event_id}")
    text = public.page.inner_text("main")
    assert "EDT" in text or "EST" in text
    assert "Local time at the event" in text
    assert "1 of 1 places free" in text
    assert public.page.get_attribute("a[href$='.ics']", "href") == f"/v1/events/{event_id}.ics"
    public.submit("form[action$='/rsvp'] button[type=submit]")
    assert "Enter Your name" in public.error_for("name")
    public.page.fill("#f-name", "Rosa Member")
    public.page.fill("#f-email", "not-an-email")
    public.submit("form[action$='/rsvp'] button[type=submit]")
    assert "email address" in public.error_for("email")
    rosa = f"rosa-{uuid.uuid4().hex[:6]}@example.org"
    public.page.fill("#f-email", rosa)
    public.submit("form[action$='/rsvp'] button[type=submit]")
    assert "You have a place at Anarchists in the Boardroom" in public.page.inner_text("main")

    # The next reader is told the waitlist position they would get, and gets it.
    public.go(f"/events/{event_id}")
    assert "number 1 on the waitlist" in public.page.inner_text("main")
    public.page.fill("#f-name", "Sam Late")
    public.page.fill("#f-email", f"sam-{uuid.uuid4().hex[:6]}@example.org")
    public.submit("form[action$='/rsvp'] button[type=submit]")
    assert "number 1 on the waitlist" in public.page.inner_text("main")

    # The calendar link answers iCalendar through the web front.
    ics = httpx.get(f"{stack['web'].url}/v1/events/{event_id}.ics", timeout=5)
    assert ics.status_code == 200 and "BEGIN:VCALENDAR" in ics.text

    # The organiser sees the booking and the waitlist, and checks Rosa in from the phone.
    who.go(f"/organiser/events/{event_id}")
    assert "Rosa Member" in page.inner_text("#bookings")
    assert "Sam Late" in page.inner_text("#waitlist")
    who.submit("#bookings button[type=submit]")
    assert "Rosa Member is checked in" in page.inner_text("main")
    assert "Checked in" in page.inner_text("#bookings")

    # Live now, with the hashtag, while the stream is on.
    who.submit("form[action$='/livestream'] button[type=submit]")
    public.go(f"/events/{event_id}")
    assert "Live now" in public.page.inner_text(".live")
    assert "#Org20" in public.page.inner_text(".live")

    # The booker's mail carries the event; another organisation cannot manage this event.
    mail = mailbox.wait_for(lambda m: m["To"] == rosa, timeout=30)
    assert "Your place at" in mail["Subject"]
    other = off_loop(stack.issue_key, web_tenant.federation_id, f"org-{uuid.uuid4().hex[:8]}", "organiser")
    answer = httpx.get(f"{stack['scheduling'].url}/v1/events/{event_id}", headers=bearer(other), timeout=5)
    assert answer.status_code == 404


def browser_of(who: Visitor) -> Visitor:
    """A second person (own cookies) in the same browser."""
    context = who.page.context.browser.new_context(  # type: ignore[union-attr]
        timezone_id="America/New_York", viewport={"width": 390, "height": 844}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    return Visitor(page, who.base, who.axe, who.name + "-public", findings=who.findings)


def test_organiser_describes_a_fight_or_picks_suggestions(visitor: Visitor, web_tenant: Tenant) -> None:
    who, page = visitor, visitor.page
    _login(who, web_tenant.organiser_key)
    who.go("/organiser/fights/new")
    page.fill("#f-hours", "-3")
    page.fill("#f-deadline", "2001-01-01")
    page.uncheck("#f-remote")
    who.submit()
    assert "Enter Name of the fight" in who.error_for("title")
    assert "between" in who.error_for("hours")
    assert "future" in who.error_for("deadline")
    assert "town or city" in who.error_for("city")
    deadline = (datetime.now(UTC) + timedelta(days=14)).date().isoformat()
    page.select_option("#f-kind", "strike")
    page.fill("#f-title", "Bin workers' strike")
    page.fill("#f-need_title", "Strike graphics for social media")
    page.select_option("#f-skill", "graphic-design")
    page.select_option("#f-level", "intermediate")
    page.fill("#f-hours", "6")
    page.fill("#f-deadline", deadline)
    page.check("#f-remote")
    who.submit()
    assert "Need: Strike graphics for social media" in page.inner_text("h1")
    assert "Best-matched people" in page.inner_text("main")

    # Not knowing how to ask: plain words, then suggested needs to pick.
    who.go("/organiser/suggest")
    page.fill("#f-situation", "a")
    who.submit()
    assert "a little more" in who.error_for("situation")
    page.fill("#f-situation", "We are going on strike next month and have no online plan or social media")
    who.submit()
    assert "Suggested needs" in page.inner_text("main")
    page.fill("#f-fight_title", "Care workers' strike")
    who.submit("button[value=pick]")
    assert "Pick at least one" in who.error_for("pick")
    page.locator("input[name=pick]").first.check()
    who.submit("button[value=pick]")
    assert page.inner_text("h1").startswith("Need: ")


def test_donor_answers_an_offer_from_the_email_link(
    visitor: Visitor, stack: Stack, web_tenant: Tenant, mailbox: SmtpSink
) -> None:
    who, page = visitor, visitor.page
    # The thank-you mail is normal priority: quiet hours (21:00-08:00 by default) would hold it
    # until morning, so the journey turns them off for its federation to pass at any hour.
    configure(stack, web_tenant, quiet_hours="")
    email = f"analyst-{uuid.uuid4().hex[:8]}@example.org"
    signup = {
        "name": "Ada Analyst",
        "email": email,
        "skills": [{"skill": "data-and-analytics", "level": "expert"}],
        "availability": {"hours_per_week": 10, "time_zone": "Europe/London"},
        "consent": {
            "wording_version": "2026-01",
            "purposes": ["matching", "contact"],
            "agreed_at": "2026-01-01T00:00:00Z",
        },
    }
    answer = httpx.post(f"{stack['signups'].url}/v1/donors", json=signup, headers=bearer(web_tenant.staff_key))
    assert answer.status_code == 201, answer.text
    donor_id = answer.json()["donor_id"]

    _login(who, web_tenant.organiser_key)
    who.go("/organiser/fights/new")
    page.select_option("#f-kind", "organising-drive")
    page.fill("#f-title", f"Warehouse drive {uuid.uuid4().hex[:4]}")
    page.fill("#f-need_title", "Who signed the petition, by site")
    page.select_option("#f-skill", "data-and-analytics")
    page.fill("#f-hours", "4")
    page.fill("#f-deadline", (datetime.now(UTC) + timedelta(days=10)).date().isoformat())
    page.select_option("#f-urgency", "critical")
    who.submit()
    need_url = page.url

    mail = mailbox.wait_for(lambda m: m["To"] == email and "petition" in str(m["Subject"]), timeout=60)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"https?://\S+/v1/offers/\S+/accept\?token=\S+", text)
    assert found, text
    link = urlsplit(found.group(0))
    # The link's host is the deployment's public address; here the test's web front.
    who.go(f"{link.path}?{link.query}")
    assert "Can you help with: Who signed the petition" in page.inner_text("main h2")
    offer_text = page.inner_text("main")
    assert "Why we asked you" in offer_text
    # The reasons that mattered, in the donor's words (issue 21), not the engine's.
    assert "at expert level" in offer_text and "You know" in offer_text, offer_text
    for engine in ("open offer(s)", "names no causes", "same for every candidate", "needs expert"):
        assert engine not in offer_text, engine
    who.submit("form[action$='/answer'] button[type=submit]")
    assert "The organisers will be in touch" in page.inner_text("main")

    who.page.goto(need_url)
    who.check("need-after-accept")

    def accepted() -> bool | None:
        page.reload()
        return True if "You said yes" in page.inner_text("main") else None

    eventually(accepted, timeout=30, what="the organiser page to show the accepted offer")
    # People by name, never by id (issue 21); reasons in words, no zero terms.
    shown = page.inner_text("main")
    assert page.locator("section:has(#cand-title) h3", has_text="Ada Analyst").count() == 1
    assert "Ada Analyst" in page.inner_text("section:has(#offers-title)")
    assert donor_id not in shown, "no raw donor id on the organiser's page"
    assert "+0.00" not in shown and "same for every candidate" not in shown
    assert "Knows " in shown and "at expert level" in shown
    # A critical need escalates: its first wave is on the page, with the next step.
    escalation = page.inner_text("section#escalation")
    assert "How the ask is widening" in escalation and "Asked the best-fit" in escalation, escalation
    who.check("need-accepted")

    # The organiser confirms: Confirm and Release go, the confirmed donor counts at once (matching's
    # count; signups learns the confirmation over Kafka a moment later), and Mark done appears.
    who.submit("form[action$='/confirm'] button[type=submit]")
    asked = page.locator("section:has(#offers-title)")
    assert asked.locator("form[action$='/confirm'], form[action$='/release']").count() == 0
    assert "confirmed" in asked.inner_text()
    assert "1 of 1 confirmed" in page.inner_text("main")
    page.locator("a", has_text="Mark done").first.click()
    who.check("complete")
    page.fill("#f-hours_given", "0")
    who.submit()
    assert "between" in who.error_for("hours_given")
    thanks = "Your map of the signatures won us the Tilbury ballot."
    page.fill("#f-hours_given", "5.5")
    page.fill("#f-thanks", thanks)
    who.submit()
    assert "Marked done" in page.inner_text("main") and "done" in page.inner_text("main")
    assert "1 of 1 confirmed" in page.inner_text("main"), "the need counts its assigned donor"

    # The thank-you email links to the donor's own page (a signed link: no password), which
    # shows the hours and the thanks ...
    thanked = mailbox.wait_for(lambda m: m["To"] == email and "Thank you for your work" in str(m["Subject"]), 60)
    body = thanked.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert thanks in body
    found = re.search(r"https?://\S+(/me/d1\.\S+)", body)
    assert found, body
    who.go(found.group(1))
    mine = page.inner_text("main")
    assert "5.5 hours given to 1 piece(s) of work" in mine and thanks in mine
    # ... and a link to a record they can show, which shows nothing else about them.
    share = page.get_attribute("a:has-text('Your record to show others')", "href")
    assert share and share.startswith("/record/r1.")
    who.go(share)
    assert "What Ada Analyst gave through Pitch In" in page.inner_text("h1")
    shown = page.inner_text("main")
    assert thanks in shown and "5.5 hours" in shown and email not in page.content()
    assert page.locator("meta[name=robots][content=noindex]").count() == 1
    who.go(share.replace("/record/r1.", "/me/d1."))
    assert "does not work" in page.inner_text("main"), "the record link opens nothing else"


def test_federation_staff_see_members_taxonomy_and_publishing_systems(
    visitor: Visitor, stack: Stack, web_tenant: Tenant
) -> None:
    who, page = visitor, visitor.page
    _login(who, web_tenant.staff_key, role="staff")
    assert "Federation overview" in page.inner_text("h1")
    assert "Social media" in page.inner_text("main")
    assert "Member organisations" in page.inner_text("main")

    # Registering a publishing system: bad input beside each field first.
    run = uuid.uuid4().hex[:8]
    source = f"/crm/browser-{run}"
    page.fill("#f-source", "no scheme here")
    who.submit("form[action='/staff/publishers'] button[type=submit]")
    assert "starting with /" in who.error_for("source")
    assert "Enter Name" in who.error_for("label")
    assert "at least one organisation" in who.error_for("organisations")
    assert page.input_value("#f-source") == "no scheme here", "what was typed stays"
    page.fill("#f-source", source)
    page.fill("#f-label", f"Browser CRM {run}")
    page.fill("#f-organisations", web_tenant.organisation_id)
    who.submit("form[action='/staff/publishers'] button[type=submit]")
    assert "Publishing system registered" in page.inner_text("h1")
    key = page.inner_text("#publisher-key")
    assert key.startswith("pub_") and page.inner_text("#publisher-secret").startswith("whsec_")

    # The key opens the ingest door; the staff page counts what it sent.
    event_type, person = every_type(web_tenant.federation_id, web_tenant.organisation_id, run)[0]

    def publish(event_id: str) -> httpx.Response:
        return httpx.post(
            f"{stack['signups'].url}/v1/ingest",
            content=json.dumps(person),
            headers={
                **bearer(key),
                "content-type": "application/json",
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": source,
                "ce-type": event_type,
            },
            timeout=10,
        )

    published = publish(f"evt-{run}")
    assert published.status_code == 202, published.text
    who.go("/staff")
    row = page.locator("tr", has_text=source)
    assert "Active" in row.inner_text() and web_tenant.organisation_id in row.inner_text()
    assert row.locator("td").nth(1).inner_text() == "1", "one accepted in the last 24 h"
    who.check("staff-publishers")

    # Revoking: the key stops working within seconds.
    row.locator("button", has_text="Revoke").click()
    who.check("revoked")
    assert "is revoked" in page.inner_text("main")
    assert "Revoked" in page.locator("tr", has_text=source).inner_text()

    def refused() -> bool | None:
        return True if publish(f"evt-{uuid.uuid4().hex[:8]}").status_code in (401, 403) else None

    eventually(refused, timeout=15, what="the revoked key to be refused")


def test_a_reader_chooses_their_language_with_a_plain_link(visitor: Visitor) -> None:
    who, page = visitor, visitor.page
    who.go("/donors/signup")
    page.locator("a[hreflang=cy]").click()
    who.check("welsh")
    assert page.get_attribute("html", "lang") == "cy"
    assert urlsplit(page.url).path == "/donors/signup", "back where the reader was"
    assert cy.MESSAGES["nav.events"] in page.inner_text("header nav")
    who.submit()
    assert cy.MESSAGES["field.email"] in who.error_for("email"), "errors beside the field, in Welsh"

    page.locator("a[hreflang=es]").click()
    who.check("spanish")
    who.go("/events")
    assert page.get_attribute("html", "lang") == "es"
    assert es.MESSAGES["nav.signup"] in page.inner_text("header nav")


def test_a_person_on_the_waitlist_takes_a_freed_place_from_the_offer_email(
    visitor: Visitor, stack: Stack, web_tenant: Tenant, mailbox: SmtpSink
) -> None:
    who, page = visitor, visitor.page
    title = f"Housing co-op open meeting {uuid.uuid4().hex[:4]}"
    created = create_event(stack, web_tenant.organiser_key, capacity=1, waitlist_offer_seconds=3600, title=title)
    event_id = created.json()["event_id"]
    wait_until_signups_knows(stack, web_tenant.organiser_key, event_id)
    holder = httpx.post(
        f"{stack['signups'].url}/v1/events/{event_id}/bookings",
        json={"name": "Early Bird", "email": f"early-{uuid.uuid4().hex[:6]}@example.org"},
        headers=bearer(web_tenant.staff_key),
        timeout=15,
    )
    assert holder.status_code == 201, holder.text

    # Full: the reader joins the waitlist from the public page.
    who.go(f"/events/{event_id}")
    assert "number 1 on the waitlist" in page.inner_text("#places")
    waiting = f"wren-{uuid.uuid4().hex[:6]}@example.org"
    page.fill("#f-name", "Wren Waiting")
    page.fill("#f-email", waiting)
    who.submit("form[action$='/rsvp'] button[type=submit]")
    assert "number 1 on the waitlist" in page.inner_text("main")

    # The place frees up: it is offered to Wren by email, with a link to take it.
    cancelled = httpx.post(
        f"{stack['signups'].url}/v1/bookings/{holder.json()['booking_id']}/cancel",
        headers=bearer(web_tenant.staff_key),
        timeout=15,
    )
    assert cancelled.status_code == 200, cancelled.text
    mail = mailbox.wait_for(lambda m: m["To"] == waiting and "A place is free" in str(m["Subject"]), timeout=60)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"https?://\S+/bookings/\S+/take", text)
    assert found, text

    # A new reader meanwhile is told the truth: the freed place is being offered to the waitlist.
    public = browser_of(who)
    public.go(f"/events/{event_id}")
    assert "being offered to the people on the waitlist" in public.page.inner_text("#places")

    # From the mail: the page says until when the place is held; one click takes it.
    who.go(urlsplit(found.group(0)).path)
    assert "is held for you until" in page.inner_text("#offer")
    buttons = page.locator("form[action$='/offer'] button[type=submit]")
    assert buttons.first.inner_text() == "Take the place" and buttons.nth(1).inner_text() == "Give up my spot"
    who.submit("form[action$='/offer'] button[type=submit]")
    assert "The place is yours" in page.inner_text(".flash")
    assert f"You have a place at {title}" in page.inner_text("main")
    confirmed = mailbox.wait_for(lambda m: m["To"] == waiting and "You have a place" in str(m["Subject"]), timeout=60)
    assert title in str(confirmed["Subject"])
