"""The mail notifications sends, DKIM-signed over both list headers as the relay must sign it (RFC 8058
§4 wants `List-Unsubscribe` and `List-Unsubscribe-Post` covered), and checked by dkimpy as a receiver.

Pitch In does not sign: the relay does (README, "Mail and one-click unsubscribe"). This proves that
the mail as built survives a signature over both headers and that a receiver sees a change to either.
"""

from __future__ import annotations

import base64
from typing import Any

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pitchin_notifications.channels import EmailChannel

SELECTOR, DOMAIN = b"relay", b"pitchin.example"
LIST_HEADERS = [b"List-Unsubscribe", b"List-Unsubscribe-Post"]
SIGNED = [b"From", b"To", b"Subject", b"Date", b"Message-ID", *LIST_HEADERS]
URL = "https://pitchin.example/v1/unsubscribe?token=abc.def"


def _mail() -> bytes:
    row: dict[str, Any] = {
        "mail_from": None,
        "recipient": "ana@example.org",
        "subject": "Reminder: Organizing 2.0 — Siân's training",
        "idempotency_key": "evt-1:ana@example.org:email",
        "body_text": "Hello Siân,\n\nSee you on Saturday.\n",
        "body_html": "<p>See you on Saturday.</p>\n",
        "unsubscribe_url": URL,
    }
    envelope = EmailChannel("127.0.0.1", 25, "Pitch In <no-reply@pitchin.example>").envelope(row)
    assert envelope is not None
    return envelope[2]


def _relay_key() -> tuple[bytes, bytes]:
    """The relay's signing key (PEM) and the DNS TXT record a receiver finds at relay._domainkey."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_both_list_headers_are_sent_once_each_unencoded() -> None:
    header = _mail().split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert [line for line in header if line.lower().startswith(b"list-unsubscribe:")] == [
        f"List-Unsubscribe: <{URL}>".encode()
    ]
    assert [line for line in header if line.lower().startswith(b"list-unsubscribe-post:")] == [
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ]


def test_a_relay_signature_over_both_list_headers_verifies_and_catches_a_change_to_either() -> None:
    private, record = _relay_key()
    mail = _mail()
    signature = dkim.sign(mail, SELECTOR, DOMAIN, private, include_headers=SIGNED)
    signed = signature + mail
    tags = dict(
        part.strip().split(b"=", 1) for part in b"".join(signature.split(b"\r\n")).split(b":", 1)[1].split(b";")
    )
    covered = {name.strip().lower() for name in tags[b"h"].split(b":")}
    assert {h.lower() for h in LIST_HEADERS} <= covered

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == SELECTOR + b"._domainkey." + DOMAIN + b"." else b""

    assert dkim.verify(signed, dnsfunc=dns)
    for changed in (
        signed.replace(b"token=abc.def", b"token=abc.xyz"),
        signed.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Click"),
    ):
        assert changed != signed and not dkim.verify(changed, dnsfunc=dns)
