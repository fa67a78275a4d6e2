"""What the delivery log may show of a message's link: where it goes, never the credential in it.

A message's action link carries a donor credential (an offer token in the query, a signed
`/me/<token>` path). The log is read by organisers, who must not be able to act as the donor
(measured: an organiser read a token from the log and accepted an offer in the donor's name),
so it shows the link without its query and with signed path segments replaced. Pure.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

HIDDEN = "[signed]"


def _looks_signed(segment: str) -> bool:
    # pitchin_core.signing tokens are dot-separated parts with a signature; ids have no dots.
    return segment.count(".") >= 2 or len(segment) > 64


def shown_link(url: str | None) -> str | None:
    """`url` as the log shows it: scheme, host and path, signed segments hidden, no query or fragment."""
    if not url:
        return url
    parts = urlsplit(url)
    path = "/".join(HIDDEN if _looks_signed(segment) else segment for segment in parts.path.split("/"))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
