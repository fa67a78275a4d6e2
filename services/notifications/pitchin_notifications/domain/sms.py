"""SMS text rules: E.164 numbers, GSM-7 or UCS-2, and how a long text is split. Pure.

A single SMS carries 160 GSM-7 septets or 70 UCS-2 code units. A concatenated message
gives 7 septets (6 octets) of each part to the User Data Header, leaving 153 septets or
67 UCS-2 units per part. GSM-7 extension characters take two septets (escape + char) and
are never split across parts; nor is a UTF-16 surrogate pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
_BASIC = frozenset(GSM7_BASIC)
_EXTENSION = frozenset(GSM7_EXTENSION)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s().\-/]")


class InvalidNumber(ValueError):
    """Not a number an SMS can go to."""


def to_e164(raw: str, default_calling_code: str | None = None) -> str:
    """``+447700900123`` from ``+44 7700 900123``, ``0044…`` or, with ``44``, ``07700 900123``."""
    number = _SEPARATORS.sub("", raw)
    if number.startswith("00"):
        number = "+" + number[2:]
    elif not number.startswith("+"):
        if default_calling_code is None:
            raise InvalidNumber(f"{raw!r} has no country calling code")
        number = "+" + default_calling_code + number.removeprefix("0")
    if not _E164.match(number):
        raise InvalidNumber(f"{raw!r} is not an E.164 number")
    return number


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXTENSION for ch in text)


def encoding(text: str) -> str:
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _units(text: str) -> list[tuple[str, int]]:
    """Each indivisible piece of text with the units it takes in its encoding."""
    if is_gsm7(text):
        return [(ch, 2 if ch in _EXTENSION else 1) for ch in text]
    # UCS-2 on the wire is UTF-16: characters outside the BMP take a surrogate pair.
    return [(ch, 2 if ord(ch) > 0xFFFF else 1) for ch in text]


@dataclass(frozen=True)
class Segmented:
    encoding: str
    parts: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.parts)


def segments(text: str) -> Segmented:
    """How a provider splits ``text`` into concatenated SMS parts."""
    enc = encoding(text)
    single, per_part = (GSM7_SINGLE, GSM7_PART) if enc == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    pieces = _units(text)
    if sum(n for _, n in pieces) <= single:
        return Segmented(enc, (text,) if text else ())
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch, n in pieces:
        if used + n > per_part:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += n
    if current:
        parts.append("".join(current))
    return Segmented(enc, tuple(parts))


def fit(text: str, link: str, max_segments: int) -> str:
    """``text`` shortened (with an ellipsis) so that it and ``link`` fit in ``max_segments``."""
    if segments(f"{text} {link}".strip()).count <= max_segments:
        return f"{text} {link}".strip()
    words = text.split()
    while words:
        words.pop()
        candidate = f"{' '.join(words)}… {link}" if words else link
        if segments(candidate).count <= max_segments:
            return candidate
    return link
