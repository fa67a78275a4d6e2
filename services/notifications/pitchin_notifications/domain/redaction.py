"""What the delivery log may show of a message's link: where it goes, never the credential in it.

A message's action link may carry a donor credential (an offer token in the query; donor and
booking pages are stored as references, signed when sent, issue 17, and older rows have signed
`/me/<token>` paths). The log is read by organisers, who must not be able to act as the donor
(measured: an organiser read a token from the log and accepted an offer in the donor's name),
so it shows the link without its query and with signed path segments replaced. Pure.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

HIDDEN = "[signed]"


def _looks_signed(segment: str) -> bool:
    # pitchin_core.signing tokens are dot-separated parts with a signature; ids have no dots. A
    # stored link holds a reference (``~d1~…~``, pitchin_core.links), signed only when sent: not a
    # credential, but the log shows the same "[signed]" wherever the sent mail had a link.
    return segment.count(".") >= 2 or len(segment) > 64 or "~" in segment


def shown_link(url: str | None) -> str | None:
    """`url` as the log shows it: scheme, host and path, signed segments hidden, no query or fragment."""
    if not url:
        return url
    parts = urlsplit(url)
    path = "/".join(HIDDEN if _looks_signed(segment) else segment for segment in parts.path.split("/"))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
