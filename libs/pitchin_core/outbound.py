"""One guard for every connection the platform opens to an address a tenant gave: webhooks, SMS, SMTP.

A tenant's URL must not reach inside the platform's network (the metadata service, the
Kubernetes API, PostgreSQL, another tenant's pod). Looking at the text is not enough: `127.1`,
`2130706433`, `0x7f000001`, `localhost.` and `*.nip.io` all reach loopback. So the name is
resolved, **every** address it resolves to must be public, and the connection is then made to
the address that was checked (`Target.address`), so a second lookup that answers differently
(DNS rebinding) is never used. Redirects are not followed by the callers.

The operator may allow some private networks explicitly (`PITCHIN_OUTBOUND_ALLOW`, e.g. a
local test receiver on 127.0.0.1/32); there is no environment in which the guard is off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pitchin_core.errors import Refused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that only mean something inside a cluster or a host, refused before any lookup.
INTERNAL_SUFFIXES = (".internal", ".local", ".localhost", ".svc", ".cluster.local", ".localdomain", ".home.arpa")
INTERNAL_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "kubernetes"})
# Beyond what `ipaddress` calls not global: NAT64's well-known prefix carries an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT_SECONDS = 3.0


class OutboundRefused(Refused):
    """An address the platform will not connect to for a tenant (422, naming the field)."""

    default_title = "Address not allowed"


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked `address`, and the `host` name for TLS (SNI) and the Host header."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the name (the name goes in Host and SNI)."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return urlunsplit((parts.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, ""))

    @property
    def host_header(self) -> str:
        default = {"https": 443, "http": 80}.get(self.scheme)
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_allowed(text: str) -> tuple[Network, ...]:
    """`PITCHIN_OUTBOUND_ALLOW`: comma-separated networks (e.g. "127.0.0.1/32") the operator allows."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def refused_address(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why `address` may not be reached (None when it may): loopback, private, link-local, CGNAT…"""
    if any(address in network for network in allowed if network.version == address.version):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            why = refused_address(embedded, allowed)
            return f"it carries {embedded}: {why}" if why else None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (the cloud metadata service lives there)"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT address"
    if address.is_private:
        return "a private address"
    if not address.is_global or address.is_reserved or address.is_unspecified:
        return "not a public address"
    return None


async def check(
    url: str,
    *,
    field: str = "url",
    allowed: Sequence[Network] = (),
    schemes: Sequence[str] = ("https", "http"),
    default_port: int | None = None,
) -> Target:
    """Resolve `url`'s host and return where to connect, or raise OutboundRefused naming `field`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(field, f"not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise OutboundRefused(field, f"the scheme must be {' or '.join(schemes)}")
    if parts.username or parts.password:
        raise OutboundRefused(field, "no credentials in the URL")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise OutboundRefused(field, "the URL has no host")
    port = port or default_port or (443 if scheme == "https" else 80)
    return await check_host(host, port, field=field, allowed=allowed, url=url, scheme=scheme)


async def check_host(
    host: str, port: int, *, field: str, allowed: Sequence[Network] = (), url: str = "", scheme: str = ""
) -> Target:
    """The same guard for a bare host and port (an SMTP server)."""
    host = host.rstrip(".").lower()
    literal = _literal(host)
    if literal is None and (host in INTERNAL_NAMES or host.endswith(INTERNAL_SUFFIXES) or "." not in host):
        raise OutboundRefused(field, f"{host} is a name inside a network, not on the internet")
    if literal is not None:
        addresses = [literal]
    else:
        addresses = await _resolve(host, port, field)
    for address in addresses:
        why = refused_address(address, allowed)
        if why:
            raise OutboundRefused(field, f"{host} resolves to {address}, {why}: use a public address")
    return Target(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))


def _literal(host: str) -> Address | None:
    """An IP address however it is spelt: dotted, shortened (127.1), decimal or hex (inet_aton's rules)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


async def _resolve(host: str, port: int, field: str) -> list[Address]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise OutboundRefused(field, f"{host} cannot be resolved ({type(exc).__name__})") from exc
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise OutboundRefused(field, f"{host} resolves to no address")
    return found
