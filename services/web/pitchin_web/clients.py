"""Calls to the four services' HTTP APIs: timeouts, and problem+json answers made into errors a page can show.

The web front reads no table of any service: everything it shows comes through these calls,
with the caller's own API key (an organiser's, from their session) or the web's own narrow
`web-front` key for public pages (with a person's signed link beside it where a page acts for
them). Tenancy and roles are the services' to enforce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.propagate import inject


@dataclass
class ServiceError(Exception):
    """A service said no (4xx), or could not be reached or failed (`status` 503 / 5xx)."""

    status: int
    title: str
    detail: str
    fields: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    @property
    def unavailable(self) -> bool:
        return self.status >= 500


def problem_of(response: httpx.Response) -> ServiceError:
    """A problem+json body (RFC 9457, with pitchin's `errors: [{field, message}]`) as a ServiceError."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    fields = [
        (str(e.get("field", "")), str(e.get("message", ""))) for e in body.get("errors") or [] if isinstance(e, dict)
    ]
    detail = str(body.get("detail") or response.reason_phrase or "")
    return ServiceError(response.status_code, str(body.get("title") or response.reason_phrase), detail, fields)


class ServiceClient:
    """One service: a pooled async HTTP client with a timeout and the caller's key per call."""

    def __init__(self, name: str, base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        sent: dict[str, str] = dict(headers or {})
        if key:
            sent["Authorization"] = f"Bearer {key}"
        inject(sent)  # the trace continues into the service
        try:
            response = await self.http.request(method, path, json=json, params=params, headers=sent)
        except httpx.TimeoutException as exc:
            raise ServiceError(503, "Timeout", f"{self.name} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise ServiceError(503, "Unavailable", f"{self.name} is not reachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise problem_of(response)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    async def raw(self, path: str) -> httpx.Response:
        """A GET passed through as it is (iCalendar feeds)."""
        try:
            return await self.http.get(path)
        except httpx.HTTPError as exc:
            raise ServiceError(503, "Unavailable", f"{self.name} is not reachable: {type(exc).__name__}") from exc

    async def healthy(self) -> bool:
        try:
            response = await self.http.get("/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


class Services:
    """The four services the pages are built from."""

    def __init__(self, urls: Mapping[str, str], timeout: float, transport: httpx.AsyncBaseTransport | None = None):
        self.signups = ServiceClient("signups", urls["signups"], timeout, transport)
        self.matching = ServiceClient("matching", urls["matching"], timeout, transport)
        self.notifications = ServiceClient("notifications", urls["notifications"], timeout, transport)
        self.scheduling = ServiceClient("scheduling", urls["scheduling"], timeout, transport)

    @property
    def all(self) -> tuple[ServiceClient, ...]:
        return (self.signups, self.matching, self.notifications, self.scheduling)

    async def close(self) -> None:
        for client in self.all:
            await client.close()

    async def readiness(self) -> dict[str, str]:
        return {c.name: "ok" if await c.healthy() else "failing: no answer" for c in self.all}
