"""The mail bytes the email channel sends: read back with the standard library's parser."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest

from pitchin_notifications.channels import EmailChannel, mime_message
from pitchin_notifications.domain.messages import message_id

TEXT = (
    "Hello Siân,\n\nA line with = in it and a trailing space \n.a line starting with a dot\nFrom the start\n"
    + "a long line " * 20
    + "\n"
)
HTML = "<p>Helô <a href='https://pitchin.example/events/e1?a=1&amp;b=2'>the event</a></p>\n"


def _parse(raw: bytes) -> EmailMessage:
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends only
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))  # RFC 5322 2.1.1
    raw.decode("ascii")  # 7-bit clean: no SMTP extension needed
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects and all(not part.defects for part in message.walk())
    return message


def _row(**changes: Any) -> dict[str, Any]:
    return {
        "mail_from": None,
        "recipient": "ana@example.org",
        "subject": "Reminder: Organizing 2.0",
        "idempotency_key": "evt-1:ana@example.org:email",
        "body_text": TEXT,
        "body_html": HTML,
        "unsubscribe_url": "https://pitchin.example/v1/unsubscribe?token=abc.def",
        **changes,
    }


def test_a_mail_with_html_is_multipart_alternative_text_first() -> None:
    channel = EmailChannel("127.0.0.1", 25, "Pitch In <no-reply@pitchin.example>")
    envelope = channel.envelope(_row())
    assert envelope is not None
    sender, recipient, raw = envelope
    assert (sender, recipient) == ("no-reply@pitchin.example", "ana@example.org")
    mail = _parse(raw)
    assert mail["From"] == "Pitch In <no-reply@pitchin.example>"
    assert mail["To"] == "ana@example.org"
    assert mail["Subject"] == "Reminder: Organizing 2.0"
    assert mail["Date"] is not None and mail["MIME-Version"] == "1.0"
    assert mail["Message-ID"] == message_id("evt-1:ana@example.org:email", "pitchin.example")
    assert mail["List-Unsubscribe"] == "<https://pitchin.example/v1/unsubscribe?token=abc.def>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == TEXT.replace("\n", "\r\n")  # CRLF on the wire, as sent
    assert html.get_content() == HTML.replace("\n", "\r\n")


def test_the_same_delivery_gets_the_same_message_id_on_every_attempt() -> None:
    channel = EmailChannel("127.0.0.1", 25, "Pitch In <no-reply@pitchin.example>")
    first, again = channel.envelope(_row()), channel.envelope(_row())
    assert first is not None and again is not None
    assert _parse(first[2])["Message-ID"] == _parse(again[2])["Message-ID"]


def test_a_text_only_mail_without_unsubscribe_is_a_single_part() -> None:
    raw = mime_message(
        header_from="Pitch In <no-reply@pitchin.example>",
        to="ana@example.org",
        subject="Hi",
        message_id="<m1@pitchin.example>",
        text="Plain.\n",
        html=None,
        unsubscribe_url=None,
    )
    mail = _parse(raw)
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert mail.get_content() == "Plain.\r\n"
    assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    "subject",
    ["Croeso i Pitch In, Siân", "¿Puedes ayudar? " * 8, "A long plain subject line that goes on " * 4],
)
def test_subjects_that_are_not_ascii_or_long_are_encoded_and_folded_per_rfc_2047(subject: str) -> None:
    raw = mime_message(
        header_from="Pitch In <no-reply@pitchin.example>",
        to="ana@example.org",
        subject=subject,
        message_id="<m1@pitchin.example>",
        text="x\n",
        html=None,
        unsubscribe_url=None,
    )
    header = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in header.split(b"\r\n") if not line.startswith(b"List-Unsubscribe"))
    if not subject.isascii():
        assert b"=?utf-8?" in header
    assert _parse(raw)["Subject"] == subject


def test_a_line_break_in_a_subject_cannot_add_a_header() -> None:
    raw = mime_message(
        header_from="Pitch In <no-reply@pitchin.example>",
        to="ana@example.org",
        subject="Hello\r\nBcc: everyone@example.org",
        message_id="<m1@pitchin.example>",
        text="x\n",
        html=None,
        unsubscribe_url=None,
    )
    mail = _parse(raw)
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Hello  Bcc: everyone@example.org"


def test_a_display_name_that_is_not_ascii_is_encoded() -> None:
    channel = EmailChannel("127.0.0.1", 25, "Pitch In <no-reply@pitchin.example>")
    envelope = channel.envelope(_row(mail_from="Cymdeithas Gŵyr <post@gwyr.example>"))
    assert envelope is not None and envelope[0] == "post@gwyr.example"
    assert str(_parse(envelope[2])["From"]) == "Cymdeithas Gŵyr <post@gwyr.example>"


def test_an_address_only_smtputf8_can_carry_takes_the_email_package_path() -> None:
    channel = EmailChannel("127.0.0.1", 25, "Pitch In <no-reply@pitchin.example>")
    assert channel.envelope(_row(recipient="siân@example.org")) is None
    assert channel.build(_row(recipient="siân@example.org"))["To"] == "siân@example.org"
