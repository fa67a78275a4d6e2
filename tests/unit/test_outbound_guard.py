"""The outbound URL guard: every spelling of an inside address is refused, resolved names included."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from pitchin_core.outbound import OutboundRefused, check, check_host, parse_allowed

# Each spelling the issue found passing the old check, and their cousins.
INSIDE = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://localhost/hook",
    "http://localhost./hook",
    "http://LOCALHOST:8080/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254, IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/hook",  # the same through NAT64
    "http://[2002:7f00:1::]/hook",  # 6to4 carrying 127.0.0.1
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://kubernetes.default.svc/api",
    "http://postgres:5432/",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://100.127.255.254/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://user:pass@example.org/hook",
    "ftp://example.org/hook",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", INSIDE)
async def test_every_inside_spelling_is_refused_naming_the_field(url: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        await check(url, field="url")
    assert refused.value.status == 422
    assert refused.value.problem_body()["errors"][0]["field"] == "url"


async def test_a_name_that_resolves_inside_is_refused_whatever_it_looks_like(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    answers = {"127.0.0.1.nip.io": ["127.0.0.1"], "rebind.example.org": ["93.184.215.14", "10.0.0.7"]}

    async def fake_getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror("unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(OutboundRefused, match="loopback"):
        await check("https://127.0.0.1.nip.io/hook")
    # One inside address among public ones is enough to refuse: the next lookup may pick it.
    with pytest.raises(OutboundRefused, match="private"):
        await check("https://rebind.example.org/hook")
    with pytest.raises(OutboundRefused, match="cannot be resolved"):
        await check("https://nowhere.example.org/hook")
    answers["hooks.example.org"] = ["93.184.215.14"]
    target = await check("https://hooks.example.org/v1/in?x=1")
    # The connection goes to the address checked, the name in Host and SNI.
    assert target.pinned_url == "https://93.184.215.14:443/v1/in?x=1"
    assert (target.host, target.host_header) == ("hooks.example.org", "hooks.example.org")


async def test_public_literals_pass_and_an_operator_may_allow_a_network() -> None:
    assert (await check("https://93.184.215.14/hook")).address == "93.184.215.14"
    allowed = parse_allowed("127.0.0.1/32")
    assert (await check("http://127.0.0.1:8080/hook", allowed=allowed)).port == 8080
    # Only what was allowed: the rest of loopback stays refused.
    with pytest.raises(OutboundRefused):
        await check("http://0x7f000002/hook", allowed=allowed)
    with pytest.raises(OutboundRefused) as refused:
        await check_host("10.1.2.3", 25, field="smtp_host")
    assert refused.value.problem_body()["errors"][0]["field"] == "smtp_host"
