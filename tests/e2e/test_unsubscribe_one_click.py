"""One-click unsubscribe (RFC 8058) at the URL a real mail gives, exactly as sent: the web front.

The welcome mail's `List-Unsubscribe` header is read raw (a strict reader: one `<URI>`, no
RFC 2047 encoded-word), the URL is POSTed to unchanged with only the one-click body (no
cookie, no CSRF token: what a mail client sends), and the address is then suppressed.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from email.message import EmailMessage

import httpx
import pytest

from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import eventually, fetch, sign_up

pytestmark = pytest.mark.e2e

# RFC 8058 section 3.1 and RFC 2369: the header is a list of <URI>; one HTTPS(/HTTP locally) URI here.
ONE_URI = re.compile(r"^<(https?://[^\s<>]+)>$")


def raw_header(mail: EmailMessage, name: str) -> str:
    """The header as it came over SMTP, unfolded: not decoded, as a strict parser sees it."""
    values = [str(value) for key, value in mail.raw_items() if key.lower() == name.lower()]
    assert len(values) == 1, f"{name}: {values}"
    return re.sub(r"\r?\n[ \t]+", " ", values[0]).strip()


def test_the_mailed_one_click_url_unsubscribes_on_the_web_front(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink
) -> None:
    email = f"unsub-{uuid.uuid4().hex[:8]}@example.org"
    assert sign_up(stack, tenant.organiser_key, name="Una Subscriber", email=email).status_code == 201
    welcome = mailbox.wait_for(lambda m: m["To"] == email, timeout=30)

    assert raw_header(welcome, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    header = raw_header(welcome, "List-Unsubscribe")
    assert "=?" not in header, f"List-Unsubscribe is RFC 2047-encoded: {header}"
    match = ONE_URI.match(header)
    assert match, f"List-Unsubscribe is not one <URI>: {header}"
    link = match.group(1)
    # The public base URL is the web front's: the link must answer there, not on notifications.
    assert link.startswith(f"{stack['web'].url}/v1/unsubscribe?token="), link

    page = httpx.get(link, timeout=10)
    assert page.status_code == 200 and 'value="One-Click"' in page.text  # a GET changes nothing
    hashed = hashlib.sha256(email.lower().encode()).hexdigest()
    query = "SELECT channel FROM notifications.suppressions WHERE federation_id = $1 AND address_hash = $2"
    assert fetch(stack, query, tenant.federation_id, hashed) == []

    done = httpx.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert done.status_code == 200, done.text
    rows = eventually(lambda: fetch(stack, query, tenant.federation_id, hashed) or None, what="the suppression")
    assert [r["channel"] for r in rows] == ["email"]
